/**
 * At-least-once: a checkpoint never passes a record that is not durable in every sink, and a
 * restart from it delivers every record at least once.
 */
import { describe, expect, it } from 'vitest';
import { StageError } from '../../src/stages/define.ts';
import { buildPipeline, collectingSink, indices, MemoryCheckpointStore, testSink, until } from './helpers.ts';

const COUNT = 1000;

const spec = (sinks = 'out') => `
version: 1
name: acks
runtime: { batch_size: 10, checkpoint_interval: 5ms }
sources:
  gen: { type: generate, count: ${COUNT}, fields: { n: 'i' } }
sinks:
${sinks
  .split(',')
  .map(
    (s) =>
      `  ${s}: { type: stdout, from: [gen], buffer: { max_records: 10, max_age: 5ms }, retry: { max_attempts: 2, backoff: 1ms }, max_in_flight: 4 }`,
  )
  .join('\n')}
`;

/** Positions the store saved for the generator, as numbers. */
const commits = (store: MemoryCheckpointStore) => store.saved.map((s) => Number(s.positions.generate));

/**
 * Watches every checkpoint save: each must be covered by records the sink already has.
 * Returns the violations (empty when the guarantee holds).
 */
function watchCheckpoints(store: MemoryCheckpointStore, delivered: Set<number>): string[] {
  const violations: string[] = [];
  store.onSave = (_source, positions) => {
    const upTo = Number(positions.generate);
    for (let n = 0; n <= upTo; n++) {
      if (!delivered.has(n)) {
        violations.push(`checkpoint ${upTo} passes record ${n}, which is not durable`);
        return;
      }
    }
  };
  return violations;
}

describe('acks and checkpoints', () => {
  it('never checkpoints past a batch the sink failed, and a restart delivers every record', async () => {
    const failing = new Set([137, 502, 874]);
    const store = new MemoryCheckpointStore();
    const delivered = new Set<number>();
    const violations = watchCheckpoints(store, delivered);
    let failedWrites = 0;
    const flaky = testSink((batch) => {
      const ns = indices(batch.records.map((r) => r.value));
      if (ns.some((n) => failing.has(n))) {
        failedWrites++;
        throw new StageError('disk on fire', { retryable: true });
      }
      for (const n of ns) delivered.add(n);
      return undefined;
    });
    const first = buildPipeline(spec(), { sinks: { out: flaky }, checkpointStore: store });
    const result = await first.run();
    expect(result.ok).toBe(true);
    expect(violations).toEqual([]);
    // Two attempts for each of the three failing batches.
    expect(failedWrites).toBe(6);
    expect(delivered.size).toBe(COUNT - 30);
    // Everything before the first failed batch (130..139) is acked: the checkpoint stops right there.
    expect(Math.max(...commits(store))).toBe(129);

    // Restart with a healthy sink: it resumes after the checkpoint and fills every gap.
    const healthy = collectingSink();
    const second = buildPipeline(spec(), { sinks: { out: healthy.def }, checkpointStore: store });
    expect((await second.run()).ok).toBe(true);
    const again = indices(healthy.values);
    expect(Math.min(...again)).toBe(130);
    for (const n of again) delivered.add(n);
    expect(delivered.size).toBe(COUNT);
    expect(Math.max(...commits(store))).toBe(COUNT - 1);
  });

  it('a record that fails alone holds the checkpoint back while its neighbours are acked', async () => {
    const store = new MemoryCheckpointStore();
    const delivered = new Set<number>();
    const violations = watchCheckpoints(store, delivered);
    const sink = testSink((batch) => {
      const failed = [];
      for (let i = 0; i < batch.records.length; i++) {
        const n = (batch.records[i].value as { n: number }).n;
        if (n === 421) failed.push({ index: i, reason: 'row rejected', retryable: false });
        else delivered.add(n);
      }
      return failed.length ? { failed } : undefined;
    });
    const p = buildPipeline(spec(), { sinks: { out: sink }, checkpointStore: store });
    expect((await p.run()).ok).toBe(true);
    expect(violations).toEqual([]);
    expect(delivered.size).toBe(COUNT - 1);
    expect(Math.max(...commits(store))).toBe(419);
    expect(p.metrics.snapshot().stages.find((s) => s.name === 'out')?.errors).toBe(1);
  });

  it('a record fanned out to two sinks is acked only when both wrote it', async () => {
    const store = new MemoryCheckpointStore();
    const inA = new Set<number>();
    const inB = new Set<number>();
    const both = new Set<number>();
    const violations = watchCheckpoints(store, both);
    const mark = (own: Set<number>, other: Set<number>, n: number) => {
      own.add(n);
      if (other.has(n)) both.add(n);
    };
    const a = testSink((batch) => {
      for (const r of batch.records) mark(inA, inB, (r.value as { n: number }).n);
      return undefined;
    });
    const b = testSink((batch) => {
      const ns = indices(batch.records.map((r) => r.value));
      if (ns.includes(655)) throw new Error('b is down');
      for (const n of ns) mark(inB, inA, n);
      return undefined;
    });
    const p = buildPipeline(spec('a,b'), { sinks: { a, b }, checkpointStore: store });
    expect((await p.run()).ok).toBe(true);
    expect(violations).toEqual([]);
    expect(inA.size).toBe(COUNT);
    expect(Math.max(...commits(store))).toBe(649);
  });

  it('fan-out branches do not see what a transform on another branch did to the record', async () => {
    // Three readers of one output, one of them slow: copies for later branches must not be
    // taken after the first branch already transformed the shared record.
    const plain = collectingSink();
    const enriched = collectingSink();
    const slow = testSink(async () => {
      await new Promise((r) => setTimeout(r, 2));
      return undefined;
    });
    const p = buildPipeline(
      `
version: 1
name: fanout
runtime: { batch_size: 10, channel_capacity: 1 }
sources:
  gen: { type: generate, count: 300, fields: { n: 'i' } }
transforms:
  more: { type: enrich, from: [gen], set: { doubled: 'n * 2' } }
  part: { type: partition, from: [more], by: '"p" + string(n % 3)' }
sinks:
  enriched: { type: stdout, from: [part] }
  slow: { type: stdout, from: [gen], buffer: { max_records: 10 }, max_in_flight: 1 }
  plain: { type: stdout, from: [gen] }
`,
      { sinks: { enriched: enriched.def, plain: plain.def, slow } },
    );
    expect((await p.run()).ok).toBe(true);
    expect(plain.values).toHaveLength(300);
    expect(enriched.values).toHaveLength(300);
    const touched = plain.records.filter(
      (r) => Object.keys(r.value as object).length !== 1 || r.partition !== undefined,
    );
    expect(touched).toEqual([]);
    for (const r of enriched.records) expect(r.partition).toMatch(/^p[012]$/);
  });
});

describe('records routed to an error output', () => {
  it('hold the checkpoint back until the error output wrote them', async () => {
    const store = new MemoryCheckpointStore();
    const handled = new Set<number>();
    const violations = watchCheckpoints(store, handled);
    let releaseErrors!: () => void;
    const errorsGate = new Promise<void>((r) => {
      releaseErrors = r;
    });
    const main = testSink((batch) => {
      for (const r of batch.records) handled.add((r.value as { n: number }).n);
      return undefined;
    });
    const errors = testSink(async (batch) => {
      await errorsGate;
      for (const r of batch.records) handled.add((r.meta as { index: number }).index);
      return undefined;
    });
    const p = buildPipeline(
      `
version: 1
name: errs
runtime: { batch_size: 10, checkpoint_interval: 5ms }
sources:
  gen: { type: generate, count: 300, fields: { n: 'i', inv: '100 / (i % 97 - 5)' } }
sinks:
  main: { type: stdout, from: [gen], buffer: { max_records: 10, max_age: 5ms } }
  errors: { type: stdout, from: [gen.errors], buffer: { max_records: 1000, max_age: 5ms } }
`,
      { sinks: { main, errors }, checkpointStore: store },
    );
    const done = p.run();
    // The main sink has everything but the failed records; the error sink still holds those.
    await until(() => handled.size === 296, 10_000, 'main sink');
    await new Promise((r) => setTimeout(r, 50));
    expect(violations).toEqual([]);
    expect(Math.max(-1, ...commits(store))).toBeLessThan(5);
    releaseErrors();
    expect((await done).ok).toBe(true);
    expect(violations).toEqual([]);
    expect(handled.size).toBe(300);
    expect(Math.max(...commits(store))).toBe(299);
  });
});
