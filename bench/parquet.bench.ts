// Lake encodings: records/s and bytes of one object of feedlot records as sluice encodes it
// (parquet with a declared schema, checked record by record; parquet inferred; ndjson + zstd),
// next to baselines written by hand in the same run: the bare hyparquet-writer fed columns a
// loop builds with no check, and JSON lines through zlib's zstd.
//
//   node bench/parquet.bench.ts [records-per-object] [rounds]

import { zstdCompressSync } from 'node:zlib';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { AckGroup } from '../src/runtime/ack.ts';
import { encodeBatch } from '../src/runtime/objects.ts';
import { ParquetEncoder } from '../src/runtime/parquet.ts';
import type { SluiceRecord } from '../src/runtime/record.ts';

const perObject = Number(process.argv[2] ?? 100_000);
const rounds = Number(process.argv[3] ?? 5);

const SCHEMA = {
  id_treated_data: 'string',
  id_lote: 'string',
  fazenda: 'string',
  data: 'timestamp',
  peso_medio: 'double',
  quantidade_animais: 'bigint',
  consumo_meta: 'double',
  ativo: 'boolean',
};

function makeValues(): Record<string, unknown>[] {
  return Array.from({ length: perObject }, (_, i) => ({
    id_treated_data: `00000000-0000-5000-8000-${String(i).padStart(12, '0')}`,
    id_lote: `L${i % 997}`,
    fazenda: i % 2 ? 'fazenda_um' : 'fazenda_dois',
    data: new Date(Date.UTC(2024, 2, 20) + i * 1000).toISOString(),
    peso_medio: 400 + (i % 150) * 0.5,
    quantidade_animais: 20 + (i % 100),
    consumo_meta: (400 + (i % 150) * 0.5) * 0.025 * (20 + (i % 100)),
    ativo: i % 3 === 0,
  }));
}

const BARE_CODECS = { ZSTD: (b: Uint8Array) => zstdCompressSync(b) };

/** The bare writer, columns built by hand for the known shape (no per-value check). */
function bareParquet(values: Record<string, unknown>[]): number {
  const col = (name: string) => values.map((v) => v[name]);
  const buf = parquetWriteBuffer({
    columnData: [
      { name: 'id_treated_data', data: col('id_treated_data'), type: 'STRING' },
      { name: 'id_lote', data: col('id_lote'), type: 'STRING' },
      { name: 'fazenda', data: col('fazenda'), type: 'STRING' },
      { name: 'data', data: values.map((v) => new Date(v.data as string)), type: 'TIMESTAMP' },
      { name: 'peso_medio', data: col('peso_medio'), type: 'DOUBLE' },
      {
        name: 'quantidade_animais',
        data: values.map((v) => BigInt(v.quantidade_animais as number)),
        type: 'INT64',
      },
      { name: 'consumo_meta', data: col('consumo_meta'), type: 'DOUBLE' },
      { name: 'ativo', data: col('ativo'), type: 'BOOLEAN' },
    ],
    codec: 'ZSTD',
    compressors: BARE_CODECS,
    rowGroupSize: values.length,
  });
  return buf.byteLength;
}

function bareNdjsonZstd(values: Record<string, unknown>[]): number {
  let text = '';
  for (const v of values) text += `${JSON.stringify(v)}\n`;
  return zstdCompressSync(Buffer.from(text)).length;
}

/** Best of `rounds` (after one warm-up): records/s and the object's size. */
function measure(run: () => number): { rate: number; bytes: number } {
  let bytes = run();
  let best = Number.POSITIVE_INFINITY;
  for (let r = 0; r < rounds; r++) {
    const t = performance.now();
    bytes = run();
    best = Math.min(best, performance.now() - t);
  }
  return { rate: perObject / (best / 1000), bytes };
}

const values = makeValues();
const ack = new AckGroup(perObject);
const records: SluiceRecord[] = values.map((value) => ({ value, meta: {}, size: 0, ack }));

const declared = measure(() => {
  const parquet = new ParquetEncoder({ schema: SCHEMA, compression: 'zstd' });
  return encodeBatch(records, { format: 'parquet', compression: 'zstd', parquet }).body.length;
});
const inferred = measure(() => {
  const parquet = new ParquetEncoder({ compression: 'zstd' });
  return encodeBatch(records, { format: 'parquet', compression: 'zstd', parquet }).body.length;
});
const snappy = measure(() => {
  const parquet = new ParquetEncoder({ schema: SCHEMA, compression: 'snappy' });
  return encodeBatch(records, { format: 'parquet', compression: 'snappy', parquet }).body.length;
});
const bare = measure(() => bareParquet(values));
const ndjson = measure(() => encodeBatch(records, { format: 'ndjson', compression: 'zstd' }).body.length);
const bareNdjson = measure(() => bareNdjsonZstd(values));

const row = (name: string, m: { rate: number; bytes: number }, base?: { rate: number }) =>
  `${name.padEnd(44)} ${Math.round(m.rate).toLocaleString('en').padStart(10)} rec/s ${String(m.bytes).padStart(10)} bytes${
    base ? `  ${(m.rate / base.rate).toFixed(2)}x the baseline` : ''
  }`;

console.log(`${perObject.toLocaleString('en')} feedlot records per object, best of ${rounds}`);
console.log(row('sluice parquet zstd, declared schema', declared, bare));
console.log(row('sluice parquet zstd, inferred schema', inferred, bare));
console.log(row('sluice parquet snappy, declared schema', snappy, bare));
console.log(row('baseline: bare hyparquet-writer, zstd', bare));
console.log(row('sluice ndjson zstd', ndjson, bareNdjson));
console.log(row('baseline: JSON lines + zlib zstd', bareNdjson));
