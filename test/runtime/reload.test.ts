/**
 * Hot reload in the engine: a reloaded pipeline drains and restarts without losing or repeating
 * a record, keeps the checkpoint of a source whose identity did not change and starts afresh one
 * whose identity changed, and goes back to the previous spec when the new one cannot start.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Type } from '@sinclair/typebox';
import { describe, expect, it } from 'vitest';
import { FileCheckpointStore } from '../../src/runtime/checkpoint.ts';
import { changedSources, ReloadingPipeline } from '../../src/runtime/reload.ts';
import type { PipelineSpec } from '../../src/spec/validate.ts';
import { validateText } from '../../src/spec/validate.ts';
import { defineSink, defineSource } from '../../src/stages/define.ts';
import { definitions } from '../../src/stages/registry.ts';
import { silent, tempDir } from './helpers.ts';

/** Every record the test sink made durable, in order, per run of the test. */
const delivered: { topic: string; i: number; v: unknown }[] = [];

/**
 * A source reading an endless numbered "topic": its checkpoint is the last index delivered, so
 * its positions mean something only for that topic (its identity).
 */
const numbered = defineSource({
  type: 'numbered',
  kind: 'source',
  description: 'Numbered records of a topic, a batch every few milliseconds.',
  identity: ['topic'],
  options: Type.Object({ topic: Type.String(), pause: Type.Optional(Type.Integer()) }),
  create: (o) => ({
    async run(sc) {
      const stored = await sc.checkpoints.load();
      let i = stored?.at !== undefined ? Number(stored.at) + 1 : 0;
      while (!sc.signal.aborted) {
        const first = i;
        const batch = Array.from({ length: 5 }, () => ({ value: { topic: o.topic, i: i++ } }));
        await sc.emit(batch, (err) => {
          if (!err) sc.checkpoints.commit('at', String(first + 4));
        });
        await sleep(o.pause ?? 5);
      }
    },
  }),
});

const collect = defineSink({
  type: 'collect',
  kind: 'sink',
  description: 'Keeps records in memory; fails to open when asked to.',
  options: Type.Object({ fail_open: Type.Optional(Type.Boolean()) }),
  batching: { defaults: { max_records: 10, max_bytes: 1 << 20, max_age: 5 } },
  create: (o) => ({
    async open() {
      if (o.fail_open) throw new Error('the destination is gone');
    },
    async write(batch) {
      for (const r of batch.records) delivered.push(r.value as { topic: string; i: number; v: unknown });
      return undefined;
    },
  }),
});

const stages = [...definitions, numbered, collect];

function spec(opts: { topic?: string; pause?: number; v?: string; failOpen?: boolean } = {}): PipelineSpec {
  const text = [
    'version: 1',
    'name: reloaded',
    'runtime: { checkpoint_interval: 10ms }',
    'sources:',
    `  src: { type: numbered, topic: ${opts.topic ?? 'a'}, pause: ${opts.pause ?? 5} }`,
    'transforms:',
    `  tag: { type: enrich, from: [src], set: { v: '${opts.v ?? '1'}' } }`,
    'sinks:',
    `  out: { type: collect, from: [tag], fail_open: ${opts.failOpen ?? false} }`,
    '',
  ].join('\n');
  const r = validateText('reloaded.yaml', text, {}, { stages });
  if (!r.spec) throw new Error(JSON.stringify(r.diagnostics));
  return r.spec;
}

async function until(what: () => boolean): Promise<void> {
  for (let n = 0; !what(); n++) {
    if (n > 1000) throw new Error('timed out');
    await sleep(10);
  }
}

describe('source identity', () => {
  it('changes with the type or an identifying option, not with other options', () => {
    expect(changedSources(spec(), spec({ pause: 7, v: '2' }))).toEqual([]);
    expect(changedSources(spec(), spec({ topic: 'b' }))).toEqual(['src']);
    const kinesis = (stream: string, limit: number) =>
      validateText(
        'k.yaml',
        `version: 1\nname: k\nsources:\n  s: { type: kinesis, stream: ${stream}, region: us-east-1, limit: ${limit} }\nsinks:\n  o: { type: stdout, from: [s] }\n`,
        {},
      ).spec as PipelineSpec;
    expect(changedSources(kinesis('a', 10), kinesis('a', 20))).toEqual([]);
    expect(changedSources(kinesis('a', 10), kinesis('b', 10))).toEqual(['s']);
  });
});

describe('ReloadingPipeline', () => {
  it('applies new specs with nothing lost or repeated; a changed identity starts afresh', async () => {
    delivered.length = 0;
    const stateDir = tempDir();
    const p = new ReloadingPipeline(spec(), { stateDir, log: silent });
    const done = p.run();
    await until(() => delivered.length >= 50);
    expect(await p.reload(spec({ v: '2', pause: 3 }))).toEqual({ applied: true, restarted: [] });
    await until(() => delivered.some((r) => r.v === 2) && delivered.length >= 120);
    expect(await p.reload(spec({ topic: 'b', v: '3' }))).toEqual({ applied: true, restarted: ['src'] });
    await until(() => delivered.filter((r) => r.topic === 'b').length >= 30);
    p.stop('test');
    const result = await done;
    expect(result.ok).toBe(true);
    expect(result.unacked).toBe(0);

    const a = delivered.filter((r) => r.topic === 'a');
    const b = delivered.filter((r) => r.topic === 'b');
    // Topic a: every index once, in order, the first ones tagged 1 and the rest 2.
    expect(a.map((r) => r.i)).toEqual(a.map((_, k) => k));
    const firstTwo = a.findIndex((r) => r.v === 2);
    expect(firstTwo).toBeGreaterThanOrEqual(50);
    expect(a.slice(0, firstTwo).every((r) => r.v === 1)).toBe(true);
    expect(a.slice(firstTwo).every((r) => r.v === 2)).toBe(true);
    // Topic b started from its own beginning, not after a's checkpoint.
    expect(b.map((r) => r.i)).toEqual(b.map((_, k) => k));
    expect(b.every((r) => r.v === 3)).toBe(true);
    // The counters went on across the three specs.
    const out = p.metrics.snapshot().stages.find((s) => s.name === 'out');
    expect(out?.recordsOut).toBe(delivered.length);
  });

  it('goes back to the previous spec, with its checkpoint, when the new one cannot start', async () => {
    delivered.length = 0;
    const stateDir = tempDir();
    const p = new ReloadingPipeline(spec(), { stateDir, log: silent });
    const done = p.run();
    await until(() => delivered.length >= 30);
    const outcome = await p.reload(spec({ topic: 'b', failOpen: true }));
    expect(outcome.applied).toBe(false);
    expect(outcome).toMatchObject({
      reason: expect.stringMatching(/the destination is gone.*previous spec runs again/),
    });
    const before = delivered.length;
    await until(() => delivered.length >= before + 30);
    p.stop('test');
    expect((await done).ok).toBe(true);
    // Still topic a, resumed where it stood: every index once.
    expect(delivered.every((r) => r.topic === 'a')).toBe(true);
    expect(delivered.map((r) => r.i)).toEqual(delivered.map((_, k) => k));
    const stored = await new FileCheckpointStore(stateDir, 'reloaded').load('src');
    expect(Number(stored?.at)).toBe(delivered.length - 1);
  });

  it('refuses a new name: checkpoints and metrics belong to it', async () => {
    const p = new ReloadingPipeline(spec(), { stateDir: tempDir(), log: silent });
    const renamed = { ...spec(), name: 'other' };
    expect(await p.reload(renamed)).toMatchObject({
      applied: false,
      reason: expect.stringMatching(/name changed/),
    });
  });
});
