/**
 * Parquet and zstd objects from the file sink, read back with hyparquet's reader (pyarrow reads
 * them in test/integration/lake-formats.test.ts): declared and inferred schemas, records that do
 * not fit failing alone, type conversions, and the static checks on the options.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync, zstdDecompressSync } from 'node:zlib';
import { parquetMetadata, parquetReadObjects } from 'hyparquet';
import { describe, expect, it } from 'vitest';
import { inferSchema, ParquetEncoder, parseType, typeName } from '../../src/runtime/parquet.ts';
import { validateText } from '../../src/spec/validate.ts';
import { fileSink } from '../../src/stages/sinks/file.ts';
import { tempDir } from '../runtime/helpers.ts';
import { record, sink } from '../runtime/stage-harness.ts';

const compressors = {
  ZSTD: (input: Uint8Array) => new Uint8Array(zstdDecompressSync(input)),
  GZIP: (input: Uint8Array) => new Uint8Array(gunzipSync(input)),
};

async function readParquet(path: string): Promise<Record<string, unknown>[]> {
  const buf = readFileSync(path);
  const file = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
  return parquetReadObjects({ file, compressors, utf8: true });
}

function metadata(path: string) {
  const buf = readFileSync(path);
  return parquetMetadata(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
}

const records = (values: unknown[], from = 0) => values.map((v, i) => record(v, { position: `${from + i}` }));

const onlyFile = (dir: string): string => {
  const files = readdirSync(dir);
  expect(files).toHaveLength(1);
  return join(dir, files[0]);
};

describe('file sink, format parquet', () => {
  it('writes a declared schema in one row group; a value of another type fails alone', async () => {
    const dir = tempDir();
    const s = sink(fileSink, {
      dir,
      path: 'part_{first_position}-{last_position}{ext}',
      format: 'parquet',
      compression: 'snappy',
      schema: {
        id_lote: 'string',
        quantidade_animais: 'bigint',
        peso_medio: 'double',
        ativo: 'boolean',
        row_ts: 'timestamp',
        preco: 'decimal(10,2)',
        dia: 'date',
        tags: 'array<string>',
        pos: 'struct<lat:double,lon:double>',
      },
    });
    const result = await s.write(
      records([
        {
          id_lote: 'L1',
          quantidade_animais: 120,
          peso_medio: 410.5,
          ativo: true,
          row_ts: '2024-03-20T12:00:00.250Z',
          preco: '12.345',
          dia: '2024-03-20',
          tags: ['a', 'b'],
          pos: { lat: -15.5, lon: -47.25 },
        },
        { id_lote: 'L2', quantidade_animais: 'many' },
        { id_lote: 'L3', quantidade_animais: 7, ativo: null },
      ]),
    );
    expect(result).toEqual({
      failed: [
        {
          index: 1,
          reason:
            'file: record does not fit the parquet schema: quantidade_animais is the text "many", not bigint',
          retryable: false,
        },
      ],
    });
    // The file is named after the records it holds: 0 and 2.
    const path = onlyFile(dir);
    expect(path).toMatch(/part_0-2\.parquet$/);
    const rows = await readParquet(path);
    expect(rows).toEqual([
      {
        id_lote: 'L1',
        quantidade_animais: 120n,
        peso_medio: 410.5,
        ativo: true,
        row_ts: new Date('2024-03-20T12:00:00.250Z'),
        preco: 12.35,
        dia: new Date('2024-03-20T00:00:00Z'),
        tags: ['a', 'b'],
        pos: { lat: -15.5, lon: -47.25 },
      },
      {
        id_lote: 'L3',
        quantidade_animais: 7n,
        peso_medio: null,
        ativo: null,
        row_ts: null,
        preco: null,
        dia: null,
        tags: null,
        pos: null,
      },
    ]);
    const meta = metadata(path);
    expect(meta.row_groups).toHaveLength(1);
    expect(meta.row_groups[0].columns[0].meta_data?.codec).toBe('SNAPPY');
  });

  it('infers the schema from the first batch and enforces it on the next', async () => {
    const dir = tempDir();
    const s = sink(fileSink, { dir, path: '{first_position}{ext}', format: 'parquet' });
    expect(
      await s.write(
        records([
          { id: 1, peso: 400, at: '2024-03-20T12:00:00Z', nome: 'a', ok: true },
          { id: 2, peso: 400.5, at: '2024-03-20T13:00:00.000+00:00', nome: null, extra: { n: 1 } },
        ]),
      ),
    ).toBeUndefined();
    const second = await s.write(
      records(
        [
          { id: 3, peso: 1, at: '2024-03-21T00:00:00Z' },
          { id: 4.5 },
          { id: 5, novo: 'x' },
          { id: 6, at: 'yesterday' },
          'not an object',
        ],
        10,
      ),
    );
    expect(second?.failed.map((f) => [f.index, f.reason.replace(/^.*schema: /, '')])).toEqual([
      [1, 'id is the number 4.5, not bigint'],
      [2, 'novo is not in the schema'],
      [3, 'at is the text "yesterday", not a timestamp'],
      [4, 'the record is the text "not an object", not an object'],
    ]);
    const first = await readParquet(join(dir, '0.parquet'));
    expect(first[1]).toEqual({
      id: 2n,
      peso: 400.5,
      at: new Date('2024-03-20T13:00:00Z'),
      nome: null,
      ok: null,
      extra: { n: 1n },
    });
    // Only the first record of the second batch fits.
    expect(await readParquet(join(dir, '10.parquet'))).toEqual([
      { id: 3n, peso: 1, at: new Date('2024-03-21T00:00:00Z'), nome: null, ok: null, extra: null },
    ]);
    expect(metadata(join(dir, '10.parquet')).row_groups[0].columns[0].meta_data?.codec).toBe('ZSTD');
  });

  it('writes no file when no record of the batch fits', async () => {
    const dir = tempDir();
    const s = sink(fileSink, { dir, path: '{first_position}{ext}', format: 'parquet', schema: { n: 'int' } });
    const result = await s.write(records([{ n: 2 ** 31 }, { n: 'x' }]));
    expect(result?.failed.map((f) => f.index)).toEqual([0, 1]);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('zstd and gzip codecs are read back; ndjson with zstd ends in .zst', async () => {
    const dir = tempDir();
    for (const compression of ['gzip', 'none'] as const) {
      const s = sink(fileSink, { dir, path: `${compression}{ext}`, format: 'parquet', compression });
      await s.write(records([{ a: 'x', b: 1.5 }]));
      expect(await readParquet(join(dir, `${compression}.parquet`))).toEqual([{ a: 'x', b: 1.5 }]);
    }
    const z = sink(fileSink, { dir, path: 'lines{ext}', format: 'ndjson', compression: 'zstd' });
    await z.write(records([{ a: 1 }, { a: 2 }]));
    expect(zstdDecompressSync(readFileSync(join(dir, 'lines.ndjson.zst'))).toString()).toBe(
      '{"a":1}\n{"a":2}\n',
    );
    const c = sink(fileSink, { dir, path: 'rows{ext}', format: 'csv', compression: 'zstd' });
    await c.write(records([{ a: 1 }]));
    expect(zstdDecompressSync(readFileSync(join(dir, 'rows.csv.zst'))).toString()).toBe('a\n1\n');
  });
});

describe('parquet encoder', () => {
  const encoder = (schema: Record<string, string>) => new ParquetEncoder({ schema, compression: 'none' });

  it('rounds decimals half away from zero and refuses more digits than the precision', () => {
    const e = encoder({ d: 'decimal(5,2)' });
    const { rejected } = e.encode([{ d: 1.005 }, { d: '-2.675' }, { d: 999.994 }, { d: 1000 }, { d: '1e3' }]);
    expect(rejected.map((r) => r.index)).toEqual([3, 4]);
    expect(rejected[0].reason).toContain('more digits than decimal(5,2) holds');
  });

  it('checks int ranges, list elements and struct fields', () => {
    const e = encoder({ i: 'int', l: 'array<bigint>', s: 'struct<a:string>' });
    const { rejected } = e.encode([
      { i: 2 ** 31 - 1, l: [1, null, 3], s: { a: 'x' } },
      { i: 2 ** 31 },
      { l: [1, 'two'] },
      { s: { a: 'x', b: 1 } },
      { s: [1] },
    ]);
    expect(rejected.map((r) => r.reason.replace(/^.*schema: /, ''))).toEqual([
      'i is the number 2147483648, not int',
      'l[1] is the text "two", not bigint',
      's.b is not in the schema',
      's is a list, not struct<a:string>',
    ]);
  });

  it('parses type names and prints them back', () => {
    for (const t of ['string', 'decimal(38,10)', 'array<struct<a:bigint,b:array<timestamp>>>', 'json']) {
      expect(typeName(parseType(t))).toBe(t);
    }
    expect(typeName(parseType(' ARRAY< string > '))).toBe('array<string>');
    expect(() => parseType('varchar')).toThrow(/unknown type 'varchar'/);
    expect(() => parseType('decimal(3,4)')).toThrow(/scale cannot exceed/);
    expect(() => parseType('array<string')).toThrow(/expected '>' at the end/);
    expect(() => parseType('string string')).toThrow(/unexpected 'string'/);
  });

  it('infers types from every value of the batch', () => {
    const schema = inferSchema([
      { n: 1, t: '2024-03-20T12:00:00Z', d: '2024-03-20', l: [], o: { x: 1 } },
      { n: 2.5, t: '2024-03-20T12:00:00-03:00', l: [1.5], z: null },
    ]);
    expect(Object.fromEntries(schema.map((c) => [c.name, typeName(c.type)]))).toEqual({
      n: 'double',
      t: 'timestamp',
      d: 'string',
      l: 'array<double>',
      o: 'struct<x:bigint>',
      z: 'string',
    });
  });
});

describe('validation of the object options', () => {
  const spec = (sinkYaml: string) => `
version: 1
name: t
sources:
  s: { type: generate, count: 1, fields: { a: '1' } }
sinks:
  out:
    type: file
    from: [s]
    dir: ./out
    path: 'x{ext}'
${sinkYaml}`;

  const problems = (sinkYaml: string) =>
    validateText('spec.yaml', spec(sinkYaml))
      .diagnostics.filter((d) => d.severity === 'error')
      .map((d) => d.message);

  it('accepts parquet with a schema and zstd for ndjson', () => {
    expect(problems('    format: parquet\n    schema: { a: bigint, t: "array<string>" }')).toEqual([]);
    expect(problems('    compression: zstd')).toEqual([]);
  });

  it('reports a bad type, snappy outside parquet and a schema without parquet', () => {
    expect(problems('    format: parquet\n    schema: { a: varchar }')).toEqual([
      expect.stringMatching(/type of a: unknown type 'varchar'/),
    ]);
    expect(problems('    compression: snappy')).toEqual([expect.stringMatching(/snappy compresses parquet/)]);
    expect(problems('    schema: { a: string }')).toEqual([expect.stringMatching(/format: parquet only/)]);
  });
});
