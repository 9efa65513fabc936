import { afterEach, describe, expect, it, vi } from 'vitest';
import { stdoutSink } from '../../src/stages/sinks/stdout.ts';
import { record, sink } from '../runtime/stage-harness.ts';

afterEach(() => {
  vi.restoreAllMocks();
});

function capture(): string[] {
  const out: string[] = [];
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    out.push(String(chunk));
    return true;
  });
  return out;
}

describe('stdout sink', () => {
  it('prints one JSON line per record', async () => {
    const out = capture();
    const s = sink(stdoutSink, {});
    expect(await s.write([record({ a: 1 }), record('x'), record({ b: [1, 2] })])).toBeUndefined();
    expect(out.join('')).toBe('{"a":1}\n"x"\n{"b":[1,2]}\n');
    expect(s.metrics.extra.get('printed')).toBe(3);
  });

  it('pretty prints indented JSON', async () => {
    const out = capture();
    await sink(stdoutSink, { format: 'pretty' }).write([record({ a: { b: 1 } })]);
    expect(out.join('')).toBe('{\n  "a": {\n    "b": 1\n  }\n}\n');
  });

  it('prints a sample across batches (every 4th record for 0.25) and counts only what it printed', async () => {
    const out = capture();
    const s = sink(stdoutSink, { sample: 0.25 });
    await s.write(Array.from({ length: 6 }, (_, i) => record({ i })));
    await s.write(Array.from({ length: 6 }, (_, i) => record({ i: i + 6 })));
    expect(out.join('')).toBe('{"i":0}\n{"i":4}\n{"i":8}\n');
    expect(s.metrics.extra.get('printed')).toBe(3);
  });

  it('waits for drain when stdout is full', async () => {
    let full = true;
    vi.spyOn(process.stdout, 'write').mockImplementation(() => !full);
    const s = sink(stdoutSink, {});
    let done = false;
    const p = s.write([record({ a: 1 })]).then(() => {
      done = true;
    });
    await new Promise((r) => setTimeout(r, 20));
    expect(done).toBe(false);
    full = false;
    process.stdout.emit('drain');
    await p;
    expect(done).toBe(true);
  });
});
