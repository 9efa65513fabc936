/**
 * The error path cannot fail on content: error records are bounded copies of whatever failed,
 * and every sink that writes them (files in each format, JSON encoders of the network sinks)
 * encodes them, whatever a transform left in the record.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { Type } from '@sinclair/typebox';
import { describe, expect, it } from 'vitest';
import type { ErrorValue } from '../../src/runtime/record.ts';
import { safeValue } from '../../src/runtime/safe-value.ts';
import { defineTransform, type TransformDefinition } from '../../src/stages/define.ts';
import { buildPipeline, collectingSink, tempDir } from './helpers.ts';

function nested(depth: number): unknown {
  let v: unknown = 1;
  for (let i = 0; i < depth; i++) v = { a: v };
  return v;
}

function cyclic(): unknown {
  const a: Record<string, unknown> = { name: 'a', list: [] };
  const b = { name: 'b', parent: a };
  (a.list as unknown[]).push(b, a);
  return a;
}

const TEN_MB = 'x'.repeat(10 * 1024 * 1024);
const LONE = `before\ud800after\udc00end`;

/** Values that break a plain JSON.stringify or make an unusable error record. */
const HOSTILE: [string, () => unknown][] = [
  ['nested 100,000 deep', () => ({ id: 1, deep: nested(100_000) })],
  ['a cycle', () => ({ id: 2, graph: cyclic() })],
  ['lone surrogates', () => ({ id: 3, text: LONE, [LONE]: 1 })],
  ['a 10 MB string', () => ({ id: 4, blob: TEN_MB })],
  ['a BigInt', () => ({ id: 5, big: 2n ** 70n })],
  [
    'binary, a Map, a Set, NaN, a Date',
    () => ({
      id: 6,
      buf: Buffer.from('hi'),
      m: new Map([['k', 1]]),
      s: new Set([1]),
      nan: Number.NaN,
      d: new Date(0),
    }),
  ],
];

describe('safeValue', () => {
  it('turns every hostile value into a bounded tree that JSON.stringify encodes, marked when cut', () => {
    for (const [what, make] of HOSTILE) {
      const { value, truncated } = safeValue(make(), { maxDepth: 64, maxBytes: 1024 * 1024 });
      const text = JSON.stringify(value);
      expect(text.length, what).toBeLessThan(1.1 * 1024 * 1024);
      // Well-formed UTF-16: no lone surrogate left (each would become U+FFFD in UTF-8 anyway).
      expect(Buffer.from(text, 'utf8').toString('utf8'), what).toBe(text);
      expect(truncated, what).toBe(true);
    }
  });

  it('leaves an ordinary record as it is, unmarked', () => {
    const record = {
      id: 'a',
      n: 1.5,
      ok: true,
      none: null,
      list: [1, 'two', { three: 3 }],
      nested: { x: { y: 'z' } },
    };
    expect(safeValue(record)).toEqual({ value: record, truncated: false });
  });

  it('cuts at the depth limit and at the size budget with markers that say so', () => {
    const deep = safeValue(nested(10), { maxDepth: 3, maxBytes: 1000 });
    expect(JSON.stringify(deep.value)).toBe('{"a":{"a":{"a":"[cut: nested deeper than 3 levels]"}}}');
    const big = safeValue({ s: 'y'.repeat(500) }, { maxDepth: 8, maxBytes: 100 }).value as { s: string };
    expect(big.s).toMatch(/^y+…\[cut: \d+ more characters\]$/);
    expect(big.s.length).toBeLessThan(150);
  });
});

/** A transform that fails every record after replacing its value with the hostile one. */
function poisoning(): TransformDefinition {
  return defineTransform({
    type: 'poison',
    kind: 'transform',
    description: 'test',
    options: Type.Object({}),
    create: () => ({
      process(records, out) {
        for (const r of records) {
          const i = (r.value as { n: number }).n;
          r.value = HOSTILE[i][1]();
          out.fail(r, `hostile value: ${HOSTILE[i][0]}`);
        }
      },
    }),
  }) as unknown as TransformDefinition;
}

describe('error outputs receive hostile values', () => {
  it('file sinks (ndjson, csv, gzip) and a JSON-encoding sink write every error record', async () => {
    const dir = tempDir();
    const encoded = collectingSink();
    const p = buildPipeline(
      `
version: 1
name: hostile
sources:
  gen: { type: generate, count: ${HOSTILE.length}, fields: { n: 'i' } }
transforms:
  bad: { type: enrich, from: [gen], set: { m: 'n' } }
sinks:
  ndjson: { type: file, from: [bad.errors], dir: ${join(dir, 'ndjson')}, path: 'e{ext}' }
  csv: { type: file, from: [bad.errors], dir: ${join(dir, 'csv')}, path: 'e{ext}', format: csv }
  gz: { type: file, from: [bad.errors], dir: ${join(dir, 'gz')}, path: 'e{ext}', compression: gzip }
  wire: { type: stdout, from: [bad.errors] }
  main: { type: stdout, from: [bad] }
`,
      { transforms: { bad: poisoning() }, sinks: { wire: encoded.def } },
    );
    const result = await p.run();
    expect(result.ok, result.error).toBe(true);
    expect(result.errorRecords).toBe(HOSTILE.length);
    expect(result.deadLettered).toBe(0);
    const read = (sub: string, gz = false) => {
      const f = readdirSync(join(dir, sub))[0];
      const body = readFileSync(join(dir, sub, f));
      return (gz ? gunzipSync(body) : body).toString('utf8');
    };
    const lines = read('ndjson')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as ErrorValue);
    expect(lines).toHaveLength(HOSTILE.length);
    for (const l of lines) {
      expect(l.stage).toBe('bad');
      expect(l.reason).toMatch(/^hostile value: /);
      expect(l.truncated).toBe(true);
      expect(l.position).toMatch(/^\d+$/);
    }
    expect(read('gz', true)).toBe(read('ndjson'));
    expect(read('csv').split('\n')[0]).toMatch(/^stage,reason,at,value,meta/);
    // What a network sink does with a record (JSON.stringify) now works on every one.
    for (const r of encoded.records) expect(() => JSON.stringify(r.value)).not.toThrow();
    expect(encoded.records).toHaveLength(HOSTILE.length);
  });
});
