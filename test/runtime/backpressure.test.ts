/** Backpressure: a sink that does not keep up pauses the source; memory stays bounded. */
import { describe, expect, it } from 'vitest';
import { buildPipeline, stageMetrics, testSink, until } from './helpers.ts';

const BATCH = 10;
const CAPACITY = 2;
const MAX_RECORDS = 10;

describe('backpressure', () => {
  it('a blocked sink fills the channels and stops an unbounded source', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let writes = 0;
    let written = 0;
    const slow = testSink(async (batch) => {
      writes++;
      await gate;
      written += batch.records.length;
      return undefined;
    });
    const p = buildPipeline(
      `
version: 1
name: slow
runtime: { batch_size: ${BATCH}, channel_capacity: ${CAPACITY} }
sources:
  gen: { type: generate, fields: { n: 'i' } }
transforms:
  more: { type: enrich, from: [gen], set: { m: 'n + 1' } }
sinks:
  out: { type: stdout, from: [more], buffer: { max_records: ${MAX_RECORDS}, max_age: 1h }, max_in_flight: 1 }
`,
      { sinks: { out: slow } },
    );
    const done = p.run();
    // Both channels full: the source can go no further.
    await until(
      () => stageMetrics(p, 'out').queueFill === 1 && stageMetrics(p, 'more').queueFill === 1,
      10_000,
      'full channels',
    );
    const produced = stageMetrics(p, 'gen').recordsOut;
    // What may be held: each channel's batches, one batch in the hands of the source and of the
    // transform, the write in flight and one full buffer waiting for it.
    const bound = 2 * CAPACITY * BATCH + 2 * BATCH + 2 * MAX_RECORDS;
    expect(produced).toBeLessThanOrEqual(bound);
    expect(writes).toBe(1);
    // Many turns of the event loop later the source is still paused: nothing more was produced.
    for (let k = 0; k < 200; k++) await new Promise((r) => setImmediate(r));
    await new Promise((r) => setTimeout(r, 100));
    expect(stageMetrics(p, 'gen').recordsOut).toBe(produced);
    expect(stageMetrics(p, 'gen').queueFill).toBe(1);

    // Released, the pipeline drains: everything produced reaches the sink.
    p.stop();
    release();
    const result = await done;
    expect(result.ok).toBe(true);
    expect(written).toBe(stageMetrics(p, 'gen').recordsOut);
    expect(stageMetrics(p, 'out').recordsOut).toBe(written);
  });

  it('a sink buffer per partition that never fills still flushes at max_age', async () => {
    const seen: { partition: string | undefined; n: number }[] = [];
    const sink = testSink((batch) => {
      seen.push({ partition: batch.partition, n: batch.records.length });
      return undefined;
    });
    sink.batching = { defaults: { max_records: 1000, max_bytes: 1 << 30, max_age: 1000 }, byPartition: true };
    const p = buildPipeline(
      `
version: 1
name: age
runtime: { batch_size: 5 }
sources:
  gen: { type: generate, fields: { n: 'i' }, rate: 200 }
transforms:
  part: { type: partition, from: [gen], by: '"p" + string(n % 2)' }
sinks:
  out: { type: stdout, from: [part], buffer: { max_age: 30ms } }
`,
      { sinks: { out: sink } },
    );
    const done = p.run();
    await until(() => seen.length >= 4, 10_000, 'flushes by age');
    p.stop();
    expect((await done).ok).toBe(true);
    expect(new Set(seen.map((s) => s.partition))).toEqual(new Set(['p0', 'p1']));
    expect(seen.every((s) => s.n < 1000)).toBe(true);
  });
});

describe('drain', () => {
  it('run() resolves only after every buffer flushed, including ones flushed by age while writes were busy', async () => {
    let written = 0;
    let closed = false;
    let lateWrites = 0;
    const sink = testSink(async (batch) => {
      await new Promise((r) => setTimeout(r, 15));
      if (closed) lateWrites++;
      written += batch.records.length;
      return undefined;
    });
    const create = sink.create;
    sink.create = (o, ctx) => ({
      ...create(o, ctx),
      close: async () => {
        closed = true;
      },
    });
    sink.batching = { defaults: { max_records: 7, max_bytes: 1 << 30, max_age: 1 }, byPartition: true };
    const p = buildPipeline(
      `
version: 1
name: drain
runtime: { batch_size: 3 }
sources:
  gen: { type: generate, count: 60, fields: { n: 'i' } }
transforms:
  part: { type: partition, from: [gen], by: '"p" + string(n % 4)' }
sinks:
  out: { type: stdout, from: [part], max_in_flight: 1 }
`,
      { sinks: { out: sink } },
    );
    expect((await p.run()).ok).toBe(true);
    expect(written).toBe(60);
    expect(lateWrites).toBe(0);
  });
});
