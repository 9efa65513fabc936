/** Error outputs, unwired errors, on_error: stop, and retries with backoff. */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ErrorValue } from '../../src/runtime/record.ts';
import { StageError } from '../../src/stages/define.ts';
import {
  buildPipeline,
  collectingSink,
  MemoryCheckpointStore,
  stageMetrics,
  tempDir,
  testSink,
} from './helpers.ts';

const readLines = (dir: string): unknown[] =>
  readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ndjson'))
    .flatMap((e) =>
      readFileSync(join(e.parentPath, e.name), 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l)),
    );

describe('error outputs', () => {
  it('enriched.errors wired to a file sink receives stage, reason, original value and meta', async () => {
    const out = tempDir();
    const good = collectingSink();
    const p = buildPipeline(
      `
version: 1
name: errout
runtime: { batch_size: 25 }
sources:
  gen: { type: generate, count: 100, fields: { n: 'i', reading: 'i % 10 == 3 ? dyn("n/a") : dyn(double(i))' } }
transforms:
  enriched: { type: enrich, from: [gen], set: { reading: 'to_double(reading) * 2.0' } }
sinks:
  good: { type: stdout, from: [enriched] }
  rejected: { type: file, from: [enriched.errors], dir: ${out}, path: 'errors/{first_position}{ext}' }
`,
      { sinks: { good: good.def } },
    );
    expect((await p.run()).ok).toBe(true);
    expect(good.values).toHaveLength(90);
    const errors = readLines(join(out, 'errors')) as ErrorValue[];
    expect(errors).toHaveLength(10);
    const e = errors.find((x) => (x.value as { n: number }).n === 13);
    expect(e).toMatchObject({ stage: 'enriched', value: { n: 13, reading: 'n/a' }, meta: { index: 13 } });
    expect(e?.reason).toMatch(/^set reading: /);
    expect(Date.parse(e?.at ?? '')).not.toBeNaN();
    expect(stageMetrics(p, 'enriched').errors).toBe(10);
    expect(stageMetrics(p, 'rejected').recordsOut).toBe(10);
  });

  it('unwired errors are counted, sampled in metrics, and acked so the checkpoint moves on', async () => {
    const store = new MemoryCheckpointStore();
    const good = collectingSink();
    const p = buildPipeline(
      `
version: 1
name: unwired
runtime: { batch_size: 10 }
sources:
  gen: { type: generate, count: 100, fields: { n: 'i' } }
transforms:
  checked: { type: filter, from: [gen], where: 'n % 7 == 0 ? dyn("maybe") : n >= 0' }
sinks:
  good: { type: stdout, from: [checked] }
`,
      { sinks: { good: good.def }, checkpointStore: store },
    );
    const errors: string[] = [];
    p.metrics.onError((s) => errors.push(s.reason));
    expect((await p.run()).ok).toBe(true);
    const m = stageMetrics(p, 'checked');
    expect(m.errors).toBe(15);
    expect(m.lastErrors.at(-1)?.reason).toMatch(/where must give true or false/);
    expect(errors).toHaveLength(15);
    expect(good.values).toHaveLength(85);
    expect(store.saved.at(-1)?.positions.generate).toBe('99');
  });

  it('on_error: stop fails the pipeline on the first error', async () => {
    const good = collectingSink();
    const p = buildPipeline(
      `
version: 1
name: stop
runtime: { batch_size: 10 }
sources:
  gen: { type: generate, fields: { n: 'i' } }
transforms:
  strict: { type: enrich, from: [gen], on_error: stop, set: { x: 'n == 55 ? 1 / 0 : n' } }
sinks:
  good: { type: stdout, from: [strict] }
`,
      { sinks: { good: good.def } },
    );
    const result = await p.run();
    expect(result.ok).toBe(false);
    expect(result.error).toMatch(/strict.*division by zero.*on_error: stop/i);
    expect(p.metrics.state).toBe('failed');
    expect(good.values.map((v) => (v as { n: number }).n)).not.toContain(55);
  });
});

describe('retries', () => {
  const spec = (extra = '') => `
version: 1
name: retry
runtime: { batch_size: 5 }
sources:
  gen: { type: generate, count: 20, fields: { n: 'i' } }
sinks:
  out: { type: stdout, from: [gen], buffer: { max_records: 5, max_age: 5ms }, retry: { max_attempts: 3, backoff: 40ms, max_backoff: 1s }, max_in_flight: 1 }
  dead: { type: stdout, from: [out.errors] }
${extra}`;

  it('retries failed records with growing backoff, then sends them to the error output with the reason', async () => {
    const attempts: number[] = [];
    const delivered: number[] = [];
    const sink = testSink((batch) => {
      const failed = [];
      for (let i = 0; i < batch.records.length; i++) {
        const n = (batch.records[i].value as { n: number }).n;
        if (n === 7) {
          attempts.push(performance.now());
          failed.push({ index: i, reason: 'throttled', retryable: true });
        } else delivered.push(n);
      }
      return failed.length ? { failed } : undefined;
    });
    const dead = collectingSink();
    const p = buildPipeline(spec(), { sinks: { out: sink, dead: dead.def } });
    expect((await p.run()).ok).toBe(true);
    expect(attempts).toHaveLength(3);
    // Backoff 40ms doubling, with jitter in [ceiling/2, ceiling]: ≥ 20ms, then ≥ 40ms.
    expect(attempts[1] - attempts[0]).toBeGreaterThanOrEqual(19);
    expect(attempts[2] - attempts[1]).toBeGreaterThanOrEqual(39);
    // Only the failed record was retried; its neighbours were written once.
    expect(delivered.sort((a, b) => a - b)).toEqual([...Array(20).keys()].filter((n) => n !== 7));
    expect(dead.values).toEqual([
      expect.objectContaining({
        stage: 'out',
        reason: 'gave up after 3 attempts (retry.max_attempts: 3): throttled',
        value: { n: 7 },
      }),
    ]);
    expect(stageMetrics(p, 'out').retries).toBe(2);
    expect(stageMetrics(p, 'out').errors).toBe(1);
  });

  it('a write that succeeds on a later attempt delivers once and reports no error', async () => {
    let calls = 0;
    const delivered: number[] = [];
    const sink = testSink((batch) => {
      calls++;
      if (calls <= 2) throw new Error('connection reset');
      for (const r of batch.records) delivered.push((r.value as { n: number }).n);
      return undefined;
    });
    const dead = collectingSink();
    const p = buildPipeline(spec(), { sinks: { out: sink, dead: dead.def } });
    expect((await p.run()).ok).toBe(true);
    expect(delivered.sort((a, b) => a - b)).toEqual([...Array(20).keys()]);
    expect(dead.values).toEqual([]);
    expect(stageMetrics(p, 'out').errors).toBe(0);
    expect(stageMetrics(p, 'out').retries).toBe(10);
  });

  it('a non-retryable whole-batch failure is never retried: the batch is split until the failing record is alone', async () => {
    const delivered: number[] = [];
    const sink = testSink((batch) => {
      const ns = batch.records.map((r) => (r.value as { n: number }).n);
      if (ns.includes(10)) throw new StageError('schema mismatch', { retryable: false });
      delivered.push(...ns);
      return undefined;
    });
    const dead = collectingSink();
    const p = buildPipeline(spec(), { sinks: { out: sink, dead: dead.def } });
    const result = await p.run();
    expect(result.ok).toBe(true);
    expect(result.errorRecords).toBe(1);
    expect(delivered.sort((a, b) => a - b)).toEqual([...Array(20).keys()].filter((n) => n !== 10));
    expect(dead.values).toEqual([
      expect.objectContaining({ stage: 'out', reason: 'schema mismatch', value: { n: 10 } }),
    ]);
    expect(stageMetrics(p, 'out').retries).toBe(0);
  });
});
