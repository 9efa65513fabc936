/**
 * Object encoding shared by the file and S3 sinks: the bytes are exactly the lines or rows of the
 * batch, whatever the sizes the records claim (the buffer grows), in UTF-8.
 */
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { encodeBatch } from '../../src/runtime/objects.ts';
import type { SluiceRecord } from '../../src/runtime/record.ts';

const rec = (value: unknown, size = 0) => ({ value, size, meta: {} }) as unknown as SluiceRecord;

describe('encodeBatch', () => {
  it('ndjson: one JSON text per line, in order, even when the records are far larger than their sizes say', () => {
    // Sizes of 0 make the first estimate tiny: the buffer has to grow many times.
    const values = Array.from({ length: 3000 }, (_, i) => ({ i, s: `é𝄞${'x'.repeat(i % 200)}\u2028"` }));
    const { body, ext, contentType } = encodeBatch(
      values.map((v) => rec(v)),
      { format: 'ndjson', compression: 'none' },
    );
    expect(ext).toBe('.ndjson');
    expect(contentType).toBe('application/x-ndjson');
    const expected = values.map((v) => `${JSON.stringify(v)}\n`).join('');
    expect(body.toString('utf8')).toBe(expected);
    expect(body.length).toBe(Buffer.byteLength(expected));
  });

  it('ndjson: a value with no JSON form is an encoding error (the engine splits the batch around it)', () => {
    expect(() =>
      encodeBatch([rec({ a: 1 }), rec(undefined)], { format: 'ndjson', compression: 'none' }),
    ).toThrow(TypeError);
    expect(() => encodeBatch([rec({ a: 1n })], { format: 'ndjson', compression: 'none' })).toThrow(TypeError);
  });

  it('csv: a header with the union of fields, quoted cells, objects as JSON, missing fields empty', () => {
    const { body } = encodeBatch(
      [rec({ a: 1, b: 'x,y' }), rec({ b: 'say "hi"', c: { d: [1] } }), rec({ a: null, c: 'line\nbreak' })],
      { format: 'csv', compression: 'none' },
    );
    expect(body.toString('utf8')).toBe('a,b,c\n1,"x,y",\n,"say ""hi""","{""d"":[1]}"\n,,"line\nbreak"\n');
  });

  it('gzip compresses exactly the ndjson bytes', () => {
    const values = Array.from({ length: 500 }, (_, i) => ({ i, text: 'ação'.repeat(i % 9) }));
    const { body, ext, contentEncoding } = encodeBatch(
      values.map((v) => rec(v, 10)),
      { format: 'ndjson', compression: 'gzip' },
    );
    expect(ext).toBe('.ndjson.gz');
    expect(contentEncoding).toBe('gzip');
    expect(gunzipSync(body).toString('utf8')).toBe(values.map((v) => `${JSON.stringify(v)}\n`).join(''));
  });
});
