/**
 * `file`: a local data lake. One file per partition per flush, written to a temporary name,
 * fsynced and renamed, so a reader never sees half a file. Paths come from a template
 * (`{partition}`, `{batch_start}`, `{first_position}`, …) under `dir`. ndjson or csv (optional
 * gzip or zstd) or parquet, encoded as the s3 sink encodes objects.
 *
 * Transient and permanent failures: `transient` in the definition (the stage reference shows it).
 */

import { join, normalize, resolve, sep } from 'node:path';
import { Type } from '@sinclair/typebox';
import { writeAtomic } from '../../runtime/checkpoint.ts';
import { type EncodedObject, encodeBatch, keptRecords, objectKey } from '../../runtime/objects.ts';
import { compileTemplate } from '../../runtime/template.ts';
import { Template } from '../../spec/types.ts';
import { defineSink, type RecordFailure, type Sink, type StageContext, StageError } from '../define.ts';
import {
  checkObjectFormat,
  type ObjectFormatOptions,
  objectEncoding,
  objectFormatOptions,
} from './object-format.ts';

export const fileSink = defineSink({
  type: 'file',
  kind: 'sink',
  description:
    'Writes batches as local files (ndjson or csv, optional gzip or zstd, or parquet), one per partition per flush, atomically.',
  transient:
    'Transient: every file-system error (a full disk, a read-only or unmounted volume, ' +
    'permissions), which an operator fixes while the sink waits. Permanent for the record alone: ' +
    'a value that cannot be encoded (the batch is split until it is alone), a record that does not ' +
    'fit the parquet schema, and a path template that escapes `dir`.',
  example: `
version: 1
name: file-sink-example
sources:
  orders:
    type: generate
    count: 100000
    fields:
      id: 'i'
      amount: 'rand * 100.0'
sinks:
  lake:
    type: file
    from: [orders]
    dir: ./out/orders
    path: 'orders_{first_position}-{last_position}{ext}'
    format: csv
    compression: gzip
    buffer: { max_records: 10000, max_age: 30s }
`,
  options: Type.Object({
    dir: Type.String({ minLength: 1, description: 'Base directory', examples: ['${DEMO_OUT:-./out}'] }),
    path: Template({
      description: 'File path template under `dir`',
      examples: ['historico_diario/{partition}/historico_consumo_{batch_start}{ext}'],
    }),
    ...objectFormatOptions,
  }),
  check: (o, report) => checkObjectFormat(o, report),
  batching: {
    defaults: { max_records: 10_000, max_bytes: 8 * 1024 * 1024, max_age: 5_000 },
    byPartition: true,
  },
  create: (o, ctx) =>
    fileWriter(o, ctx, async (target, encoded) => {
      await writeAtomic(target, encoded.body);
      ctx.metrics.count('files');
      ctx.metrics.wrote(encoded.body.length);
    }),
  preview: (o, ctx) =>
    fileWriter(o, ctx, async (_target, { body, contentType, contentEncoding }, path) => {
      ctx.capture({ kind: 'object', key: path, body, contentType, contentEncoding });
    }),
});

/** Encodes each batch and names its file; `put` writes it (or, in a preview, captures it). */
function fileWriter(
  o: { dir: string; path: string } & ObjectFormatOptions,
  ctx: StageContext,
  put: (target: string, encoded: EncodedObject, path: string) => Promise<void>,
): Sink {
  const template = compileTemplate(o.path);
  const base = resolve(o.dir);
  const encoding = objectEncoding(o, ctx.log);
  return {
    async write(batch) {
      const encoded = encodeBatch(batch.records, encoding);
      // Records that do not fit the parquet schema fail alone; the file holds the others.
      const failed: RecordFailure[] = (encoded.rejected ?? []).map(({ index, reason }) => ({
        index,
        reason: `file: record ${reason}`,
        retryable: false,
      }));
      const { records } = failed.length > 0 ? keptRecords(batch.records, encoded) : batch;
      if (records.length === 0) return { failed };
      const path = normalize(objectKey(template, { ...batch, records }, encoded.ext));
      const target = resolve(join(base, path));
      if (!target.startsWith(base + sep))
        throw new StageError(`path escapes ${o.dir}: ${target}`, { retryable: false });
      await put(target, encoded, path);
      return failed.length > 0 ? { failed } : undefined;
    },
  };
}
