import { describe, expect, it } from 'vitest';
import { buildPipeline, collectingSink, testSink } from './helpers.ts';

describe('shutdown_timeout', () => {
  it('a stop whose drain hangs ends after shutdown_timeout, reported as timed out', async () => {
    let writes = 0;
    // A sink whose write never completes: the drain cannot finish on its own.
    const sink = testSink(() => {
      writes++;
      return new Promise(() => undefined);
    });
    const p = buildPipeline(
      `
version: 1
name: hang
runtime: { shutdown_timeout: 300ms }
sources:
  gen: { type: generate, fields: { n: 'i' } }
sinks:
  out: { type: stdout, from: [gen], buffer: { max_age: 10ms } }
`,
      { sinks: { out: sink } },
    );
    const done = p.run();
    while (writes === 0) await new Promise((r) => setTimeout(r, 10));
    const stoppedAt = Date.now();
    p.stop();
    const result = await done;
    expect(result.timedOut).toBe(true);
    expect(Date.now() - stoppedAt).toBeGreaterThanOrEqual(250);
    expect(Date.now() - stoppedAt).toBeLessThan(5_000);
  });

  it('a pipeline that ends on its own is not timed out', async () => {
    const collected = collectingSink();
    const p = buildPipeline(
      `
version: 1
name: finite
runtime: { shutdown_timeout: 100ms }
sources:
  gen: { type: generate, count: 100, fields: { n: 'i' } }
sinks:
  out: { type: stdout, from: [gen] }
`,
      { sinks: { out: collected.def } },
    );
    const result = await p.run();
    expect(collected.values).toHaveLength(100);
    expect(result).toMatchObject({
      ok: true,
      error: undefined,
      timedOut: false,
      unacked: 0,
      errorRecords: 0,
    });
  });
});
