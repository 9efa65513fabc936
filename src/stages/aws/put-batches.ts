/** Shared by the Kinesis and Firehose sinks: record encoding and splitting into API-sized calls. */

const encoder = new TextEncoder();

/** Bytes are sent as they are, strings as UTF-8, any other value as JSON. */
export function encodeValue(value: unknown): Uint8Array {
  if (value instanceof Uint8Array) return value;
  if (typeof value === 'string') return encoder.encode(value);
  return encoder.encode(JSON.stringify(value) ?? 'null');
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

/** Errors worth another attempt: throttling, service faults, networking. */
export function isRetryable(err: unknown): boolean {
  const e = err as { name?: string; $fault?: string; $retryable?: unknown; retryable?: boolean };
  if (e.retryable === false) return false;
  const name = e.name ?? '';
  if (
    name === 'ValidationException' ||
    name === 'InvalidArgumentException' ||
    name === 'AccessDeniedException' ||
    name === 'KMSAccessDeniedException' ||
    name === 'InvalidKMSResourceException'
  ) {
    return false;
  }
  return true;
}

export const MiB = 1024 * 1024;
