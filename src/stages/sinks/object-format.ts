/**
 * The options the object sinks (file, s3) share for how a batch becomes one object: format,
 * compression and, for parquet, the schema; their static checks; and the parquet encoder a sink
 * keeps for its whole run (the schema it inferred lives there).
 */
import { type Static, Type } from '@sinclair/typebox';
import type { Logger } from 'pino';
import type { Compression, ObjectFormat } from '../../runtime/objects.ts';
import { type ParquetCompression, ParquetEncoder, parseType } from '../../runtime/parquet.ts';
import type { CheckReport } from '../define.ts';

export const objectFormatOptions = {
  format: Type.Optional(
    Type.Union([Type.Literal('ndjson'), Type.Literal('csv'), Type.Literal('parquet')], {
      default: 'ndjson',
      description:
        'ndjson: one JSON value per line; csv: a header with the union of field names, then one row per record; ' +
        'parquet: columns typed by `schema` (declared, or inferred from the first batch), one row group per object, {ext} .parquet',
    }),
  ),
  compression: Type.Optional(
    Type.Union([Type.Literal('none'), Type.Literal('gzip'), Type.Literal('zstd'), Type.Literal('snappy')], {
      description:
        'ndjson and csv (default none): gzip adds `.gz` to {ext}, zstd `.zst`, and the object gets that Content-Encoding. ' +
        'parquet (default zstd): the codec of its column chunks, snappy, zstd, gzip or none; {ext} stays .parquet',
      examples: ['zstd'],
    }),
  ),
  schema: Type.Optional(
    Type.Record(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$' }), Type.String({ minLength: 1 }), {
      description:
        'parquet only: column name → type, in column order. Types: string, boolean, int, bigint, float, double, ' +
        'decimal(p,s), date, timestamp (UTC, milliseconds; ISO-8601 text or epoch ms), json (any value as JSON text), ' +
        'array<type>, struct<name:type,…>. Every column is nullable. A record with a field not listed, or a value ' +
        'of another type, fails alone. Absent: inferred from the first batch (logged), then enforced',
      examples: [
        { id_lote: 'string', peso_medio: 'double', quantidade_animais: 'bigint', row_ts: 'timestamp' },
      ],
    }),
  ),
};

const formatOptions = Type.Object(objectFormatOptions);
export type ObjectFormatOptions = Static<typeof formatOptions>;

export function checkObjectFormat(o: ObjectFormatOptions, report: CheckReport): void {
  const parquet = o.format === 'parquet';
  if (!parquet && o.compression === 'snappy') {
    report(['compression'], 'schema-value', 'snappy compresses parquet column chunks only; use gzip or zstd');
  }
  if (!parquet && o.schema !== undefined) {
    report(['schema'], 'schema-value', 'a schema applies to format: parquet only');
  }
  for (const [column, text] of Object.entries(o.schema ?? {})) {
    try {
      parseType(text);
    } catch (err) {
      report(['schema', column], 'schema-value', `type of ${column}: ${(err as Error).message}`);
    }
  }
}

/** What `encodeBatch` takes for these options; for parquet, a new encoder for the sink's run. */
export function objectEncoding(
  o: ObjectFormatOptions,
  log: Logger,
): { format: ObjectFormat; compression: Compression; parquet?: ParquetEncoder } {
  const format = o.format ?? 'ndjson';
  if (format !== 'parquet') return { format, compression: o.compression ?? 'none' };
  const compression: ParquetCompression = o.compression ?? 'zstd';
  const parquet = new ParquetEncoder({
    schema: o.schema,
    compression,
    onInfer: (schema) =>
      log.info(
        { schema },
        'parquet schema inferred from the first batch and enforced from now on; declare it as `schema` to keep it across restarts',
      ),
  });
  return { format, compression, parquet };
}
