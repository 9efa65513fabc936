/**
 * Shared by the Kinesis and Firehose sinks: record encoding and splitting into API-sized calls.
 * The S3 sink uses the encoding failure reasons too.
 */

const encoder = new TextEncoder();

/**
 * Bytes are sent as they are, strings as UTF-8, any other value as JSON. Throws for a value JSON
 * cannot hold (RangeError when nested too deep, TypeError for a BigInt or a cycle): callers
 * encode one record at a time and fail that record alone.
 */
export function encodeValue(value: unknown): Uint8Array {
  if (value instanceof Uint8Array) return value;
  if (typeof value === 'string') return encoder.encode(value);
  return encoder.encode(JSON.stringify(value) ?? 'null');
}

/** A failure reason for an error thrown by `encodeValue`. */
export function encodeProblem(err: unknown): string {
  if (err instanceof RangeError && /call stack/i.test(err.message)) return 'value nested too deep for JSON';
  return err instanceof Error ? err.message : String(err);
}

export interface Entry {
  /** Index into the sink batch. */
  index: number;
  /** Bytes counted against the call and record limits. */
  bytes: number;
}

/** Splits entries, in order, into groups of at most `maxRecords` entries and `maxBytes` bytes. */
export function chunk<E extends Entry>(entries: readonly E[], maxRecords: number, maxBytes: number): E[][] {
  const out: E[][] = [];
  let cur: E[] = [];
  let bytes = 0;
  for (const e of entries) {
    if (cur.length > 0 && (cur.length >= maxRecords || bytes + e.bytes > maxBytes)) {
      out.push(cur);
      cur = [];
      bytes = 0;
    }
    cur.push(e);
    bytes += e.bytes;
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

export const MiB = 1024 * 1024;
