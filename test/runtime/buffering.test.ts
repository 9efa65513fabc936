import { describe, expect, it } from 'vitest';
import { buildPipeline, testSink } from './helpers.ts';

describe('sink buffers across partitions', () => {
  it('hold at most max_total_records: past it the largest partition buffer flushes early', async () => {
    const flushes: { partition: string | undefined; n: number }[] = [];
    const sink = testSink((batch) => {
      flushes.push({ partition: batch.partition, n: batch.records.length });
      return undefined;
    });
    sink.batching = {
      defaults: { max_records: 10_000, max_bytes: 1 << 30, max_age: 60_000 },
      byPartition: true,
    };
    const p = buildPipeline(
      `
version: 1
name: total
runtime: { batch_size: 50 }
sources:
  gen: { type: generate, count: 5000, fields: { n: 'i' } }
transforms:
  part: { type: partition, from: [gen], by: '"p" + string(n % 20)' }
sinks:
  out: { type: stdout, from: [part], buffer: { max_records: 300, max_total_records: 400 } }
`,
      { sinks: { out: sink } },
    );
    const result = await p.run();
    expect(result.ok).toBe(true);
    expect(flushes.reduce((a, f) => a + f.n, 0)).toBe(5000);
    // 20 partitions of 250 records each never reach max_records (300) nor max_age (60s):
    // without the bound all 5000 would wait for the end in one flush per partition.
    expect(flushes.length).toBeGreaterThan(20);
    expect(Math.max(...flushes.map((f) => f.n))).toBeLessThanOrEqual(300);
  });
});
