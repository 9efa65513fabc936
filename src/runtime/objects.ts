/**
 * Encoding of a sink batch as one object or file (ndjson or csv, optional gzip or zstd; or
 * parquet, see parquet.ts) and its key, shared by the file sink and the S3 sink.
 */
import { gzipSync, zstdCompressSync } from 'node:zlib';
import type { SinkBatch } from '../stages/define.ts';
import type { ParquetEncoder } from './parquet.ts';
import type { SluiceRecord } from './record.ts';
import { type CompiledTemplate, fileTime, safePosition } from './template.ts';

export type ObjectFormat = 'ndjson' | 'csv' | 'parquet';
/** For ndjson and csv the whole object's; for parquet its column chunks' (snappy only there). */
export type Compression = 'none' | 'gzip' | 'zstd' | 'snappy';

export interface EncodedObject {
  body: Buffer;
  ext: string;
  contentType: string;
  contentEncoding?: string;
  /** Records left out because they do not fit the parquet schema (index in the batch, reason). */
  rejected?: { index: number; reason: string }[];
}

export function encodeBatch(
  records: SluiceRecord[],
  opts: { format: ObjectFormat; compression: Compression; parquet?: ParquetEncoder },
): EncodedObject {
  if (opts.format === 'parquet') return encodeParquet(records, opts.parquet);
  const raw = opts.format === 'csv' ? toCsv(records) : toNdjson(records);
  const ext = opts.format === 'csv' ? '.csv' : '.ndjson';
  const contentType = opts.format === 'csv' ? 'text/csv' : 'application/x-ndjson';
  if (opts.compression === 'gzip') {
    return { body: gzipSync(raw, { level: 6 }), ext: `${ext}.gz`, contentType, contentEncoding: 'gzip' };
  }
  if (opts.compression === 'zstd') {
    // zstd's default level 3: several times gzip's speed at about its ratio.
    return { body: zstdCompressSync(raw), ext: `${ext}.zst`, contentType, contentEncoding: 'zstd' };
  }
  return { body: raw, ext, contentType };
}

/**
 * An object's bytes, appended as text is produced. Each piece is written into one growing Buffer
 * (outside the V8 heap) as UTF-8 straight away: joining a batch's lines into one string first
 * made a flat string of the whole object (hundreds of KiB) in V8's large-object space for every
 * flush, which only a full collection frees, and copied it once more into the Buffer.
 */
class ObjectBytes {
  #buf: Buffer;
  #at = 0;

  constructor(estimate: number) {
    this.#buf = Buffer.allocUnsafe(Math.max(4096, estimate));
  }

  /** Appends `text` as UTF-8 (at most 3 bytes per UTF-16 unit), then `end` as one ASCII byte. */
  append(text: string, end: number): void {
    const need = this.#at + text.length * 3 + 1;
    if (need > this.#buf.length) {
      const grown = Buffer.allocUnsafe(Math.max(need, this.#buf.length * 2));
      this.#buf.copy(grown, 0, 0, this.#at);
      this.#buf = grown;
    }
    this.#at += this.#buf.write(text, this.#at, 'utf8');
    this.#buf[this.#at++] = end;
  }

  /** The bytes written (a view on the buffer: no copy). */
  done(): Buffer {
    return this.#buf.subarray(0, this.#at);
  }
}

const NEWLINE = 10;
const COMMA = 44;

/** Room for a batch: its records' sizes as received, plus a share for fields added on the way. */
function estimate(records: SluiceRecord[]): number {
  let bytes = 0;
  for (let i = 0; i < records.length; i++) bytes += records[i].size;
  return Math.ceil(bytes * 1.5) + records.length * 16;
}

function toNdjson(records: SluiceRecord[]): Buffer {
  const out = new ObjectBytes(estimate(records));
  for (let i = 0; i < records.length; i++) {
    const line = JSON.stringify(records[i].value) as string | undefined;
    // An `undefined` value has no JSON: the record fails alone (the batch is split around it).
    if (line === undefined) throw new TypeError('the record has no JSON form (undefined)');
    out.append(line, NEWLINE);
  }
  return out.done();
}

/** CSV with a header: the union of the batch's field names in first-seen order. */
function toCsv(records: SluiceRecord[]): Buffer {
  const columns: string[] = [];
  const seen = new Set<string>();
  for (const r of records) {
    if (r.value && typeof r.value === 'object') {
      for (const k of Object.keys(r.value)) {
        if (!seen.has(k)) {
          seen.add(k);
          columns.push(k);
        }
      }
    }
  }
  const out = new ObjectBytes(estimate(records));
  const last = columns.length - 1;
  for (let c = 0; c <= last; c++) out.append(csvCell(columns[c]), c === last ? NEWLINE : COMMA);
  if (columns.length === 0) out.append('', NEWLINE);
  for (const r of records) {
    const v = (r.value ?? {}) as Record<string, unknown>;
    for (let c = 0; c <= last; c++) out.append(csvCell(v[columns[c]]), c === last ? NEWLINE : COMMA);
    if (columns.length === 0) out.append('', NEWLINE);
  }
  return out.done();
}

const NEEDS_QUOTES = /[",\n\r]/;

function csvCell(v: unknown): string {
  if (v === undefined || v === null) return '';
  const s = typeof v === 'object' ? JSON.stringify(v) : String(v);
  return NEEDS_QUOTES.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

/** Renders a batch's key. Positions make it deterministic across replays of the same range. */
export function objectKey(template: CompiledTemplate, batch: SinkBatch, ext: string): string {
  const first = batch.records[0];
  const last = batch.records[batch.records.length - 1];
  return template.render({
    partition: batch.partition ?? first?.partition ?? '_',
    batch_start: fileTime(batch.startedAt),
    batch_start_ms: String(batch.startedAt),
    first_position: safePosition(first?.position),
    last_position: safePosition(last?.position),
    count: String(batch.records.length),
    seq: String(batch.seq),
    ext,
  });
}

/** The parquet body of the records that fit the encoder's schema; the others in `rejected`. */
function encodeParquet(records: SluiceRecord[], encoder: ParquetEncoder | undefined): EncodedObject {
  if (!encoder) throw new Error('the parquet format needs the sink parquet encoder');
  const { body, rejected } = encoder.encode(records.map((r) => r.value));
  return {
    body: body ?? Buffer.alloc(0),
    ext: '.parquet',
    contentType: 'application/vnd.apache.parquet',
    rejected,
  };
}

/** The records an object holds: the batch less those the encoding rejected, with their indices. */
export function keptRecords(
  records: SluiceRecord[],
  encoded: EncodedObject,
): { records: SluiceRecord[]; indices: number[] } {
  const out: { records: SluiceRecord[]; indices: number[] } = { records: [], indices: [] };
  const rejected = new Set(encoded.rejected?.map((r) => r.index));
  for (let i = 0; i < records.length; i++) {
    if (rejected.has(i)) continue;
    out.records.push(records[i]);
    out.indices.push(i);
  }
  return out;
}
