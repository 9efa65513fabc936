/** One owner per counter: a sink's bytes out are what it wrote, when it reports them, never twice. */
import { readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildPipeline, collectingSink, stageMetrics, tempDir } from './helpers.ts';

describe('bytes out', () => {
  it('of a file sink are the bytes of the files it wrote (gzip included), not also the input sizes', async () => {
    const dir = tempDir();
    const input = join(dir, 'in.ndjson');
    writeFileSync(
      input,
      `${Array.from({ length: 5000 }, (_, n) => JSON.stringify({ n, text: `some text ${n}` })).join('\n')}\n`,
    );
    const p = buildPipeline(`
version: 1
name: bytes
sources:
  gen: { type: file, path: ${input} }
sinks:
  plain: { type: file, from: [gen], dir: ${join(dir, 'plain')}, path: 'p_{first_position}{ext}' }
  packed: { type: file, from: [gen], dir: ${join(dir, 'packed')}, path: 'p_{first_position}{ext}', compression: gzip }
`);
    expect((await p.run()).ok).toBe(true);
    const size = (sub: string) =>
      readdirSync(join(dir, sub)).reduce((n, f) => n + statSync(join(dir, sub, f)).size, 0);
    expect(stageMetrics(p, 'plain').bytesOut).toBe(size('plain'));
    expect(stageMetrics(p, 'packed').bytesOut).toBe(size('packed'));
    expect(size('packed')).toBeLessThan(size('plain') / 2);
    expect(stageMetrics(p, 'plain').recordsOut).toBe(5000);
    // The input sizes are known and not zero: adding them too would have doubled the figure.
    expect(stageMetrics(p, 'plain').bytesIn).toBeGreaterThan(size('plain') / 2);
  });

  it('of a sink that reports nothing are the sizes of the records it delivered', async () => {
    const sink = collectingSink();
    const input = join(tempDir(), 'in.ndjson');
    const lines = Array.from({ length: 100 }, (_, n) => JSON.stringify({ n, pad: 'x'.repeat(n) }));
    writeFileSync(input, `${lines.join('\n')}\n`);
    const p = buildPipeline(
      `
version: 1
name: bytes2
sources:
  in: { type: file, path: ${input} }
sinks:
  out: { type: stdout, from: [in] }
`,
      { sinks: { out: sink.def } },
    );
    expect((await p.run()).ok).toBe(true);
    const out = stageMetrics(p, 'out');
    expect(out.bytesOut).toBe(out.bytesIn);
    expect(out.bytesOut).toBeGreaterThanOrEqual(lines.join('').length);
  });
});
