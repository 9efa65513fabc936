/**
 * Kinesis Producer Library (KPL) record aggregation. An aggregated Kinesis record is
 *   magic (F3 89 9A C2) · protobuf AggregatedRecord · MD5 of the protobuf bytes (16 bytes)
 * where
 *   AggregatedRecord { repeated string partition_key_table = 1; repeated string explicit_hash_key_table = 2;
 *                      repeated Record records = 3; }
 *   Record { uint64 partition_key_index = 1; uint64 explicit_hash_key_index = 2; bytes data = 3;
 *            repeated Tag tags = 4; }
 * The schema is small and stable, so it is decoded by hand: no protobuf runtime on the hot path.
 * Like the KCL, data that starts with the magic but fails the checksum or the parse is taken as
 * an ordinary record: a producer that is not the KPL may legitimately send those bytes.
 */
import { createHash } from 'node:crypto';

export const KPL_MAGIC = Uint8Array.of(0xf3, 0x89, 0x9a, 0xc2);
const DIGEST_BYTES = 16;

export interface UserRecord {
  partitionKey: string;
  explicitHashKey?: string;
  data: Uint8Array;
}

export function isAggregated(data: Uint8Array): boolean {
  return (
    data.length >= KPL_MAGIC.length + DIGEST_BYTES &&
    data[0] === KPL_MAGIC[0] &&
    data[1] === KPL_MAGIC[1] &&
    data[2] === KPL_MAGIC[2] &&
    data[3] === KPL_MAGIC[3]
  );
}

/**
 * The user records inside an aggregated record, or undefined when `data` is not one (no magic,
 * wrong checksum, malformed protobuf, or a partition key index out of range).
 */
export function deaggregate(data: Uint8Array): UserRecord[] | undefined {
  if (!isAggregated(data)) return undefined;
  const body = data.subarray(KPL_MAGIC.length, data.length - DIGEST_BYTES);
  const digest = data.subarray(data.length - DIGEST_BYTES);
  const actual = createHash('md5').update(body).digest();
  if (!actual.equals(digest)) return undefined;
  try {
    return decodeAggregated(body);
  } catch {
    return undefined;
  }
}

interface RawRecord {
  pk: number;
  ehk: number | undefined;
  data: Uint8Array;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function decodeAggregated(buf: Uint8Array): UserRecord[] {
  const r = new Reader(buf);
  const pkTable: string[] = [];
  const ehkTable: string[] = [];
  const raw: RawRecord[] = [];
  while (!r.done) {
    const tag = r.varint();
    const field = tag >>> 3;
    const wire = tag & 7;
    if (wire === 2 && field === 1) pkTable.push(utf8.decode(r.bytes()));
    else if (wire === 2 && field === 2) ehkTable.push(utf8.decode(r.bytes()));
    else if (wire === 2 && field === 3) raw.push(decodeRecord(r.bytes()));
    else r.skip(wire);
  }
  return raw.map((x) => {
    const partitionKey = pkTable[x.pk];
    if (partitionKey === undefined) throw new Error('partition key index out of range');
    const out: UserRecord = { partitionKey, data: x.data };
    if (x.ehk !== undefined) {
      const ehk = ehkTable[x.ehk];
      if (ehk === undefined) throw new Error('explicit hash key index out of range');
      out.explicitHashKey = ehk;
    }
    return out;
  });
}

function decodeRecord(buf: Uint8Array): RawRecord {
  const r = new Reader(buf);
  let pk: number | undefined;
  let ehk: number | undefined;
  let data: Uint8Array | undefined;
  while (!r.done) {
    const tag = r.varint();
    const field = tag >>> 3;
    const wire = tag & 7;
    if (wire === 0 && field === 1) pk = r.varint();
    else if (wire === 0 && field === 2) ehk = r.varint();
    else if (wire === 2 && field === 3) data = r.bytes();
    else r.skip(wire); // tags (field 4) are not surfaced
  }
  if (pk === undefined || data === undefined) throw new Error('record lacks a required field');
  return { pk, ehk, data };
}

class Reader {
  private pos = 0;
  private readonly buf: Uint8Array;

  constructor(buf: Uint8Array) {
    this.buf = buf;
  }

  get done(): boolean {
    return this.pos >= this.buf.length;
  }

  /** Varints up to 2^53; table indexes and lengths are far smaller. */
  varint(): number {
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.buf.length) throw new Error('truncated varint');
      const b = this.buf[this.pos++];
      result += (b & 0x7f) * mul;
      if (b < 0x80) return result;
      mul *= 128;
    }
    throw new Error('varint too long');
  }

  bytes(): Uint8Array {
    const len = this.varint();
    const end = this.pos + len;
    if (end > this.buf.length) throw new Error('truncated field');
    const out = this.buf.subarray(this.pos, end);
    this.pos = end;
    return out;
  }

  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.advance(8);
    else if (wire === 2) this.bytes();
    else if (wire === 5) this.advance(4);
    else throw new Error(`unsupported wire type ${wire}`);
  }

  private advance(n: number): void {
    if (this.pos + n > this.buf.length) throw new Error('truncated field');
    this.pos += n;
  }
}

// ---------------------------------------------------------------- encoding

/**
 * Builds an aggregated record the way the KPL does (one partition key table entry per
 * distinct key). Used by tests and available to a sink that wants to aggregate.
 */
export function aggregate(records: readonly UserRecord[]): Uint8Array {
  const pkIndex = new Map<string, number>();
  const ehkIndex = new Map<string, number>();
  const parts: Uint8Array[] = [];
  const enc = new TextEncoder();
  const recordParts: Uint8Array[] = [];
  for (const rec of records) {
    let pk = pkIndex.get(rec.partitionKey);
    if (pk === undefined) {
      pk = pkIndex.size;
      pkIndex.set(rec.partitionKey, pk);
      parts.push(lengthDelimited(1, enc.encode(rec.partitionKey)));
    }
    let ehk: number | undefined;
    if (rec.explicitHashKey !== undefined) {
      ehk = ehkIndex.get(rec.explicitHashKey);
      if (ehk === undefined) {
        ehk = ehkIndex.size;
        ehkIndex.set(rec.explicitHashKey, ehk);
        parts.push(lengthDelimited(2, enc.encode(rec.explicitHashKey)));
      }
    }
    const fields = [varintField(1, pk)];
    if (ehk !== undefined) fields.push(varintField(2, ehk));
    fields.push(lengthDelimited(3, rec.data));
    recordParts.push(lengthDelimited(3, concat(fields)));
  }
  const body = concat([...parts, ...recordParts]);
  const digest = createHash('md5').update(body).digest();
  return concat([KPL_MAGIC, body, digest]);
}

function encodeVarint(n: number): Uint8Array {
  const out: number[] = [];
  let v = n;
  while (v >= 0x80) {
    out.push((v % 128) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return Uint8Array.from(out);
}

function varintField(field: number, n: number): Uint8Array {
  return concat([encodeVarint(field << 3), encodeVarint(n)]);
}

function lengthDelimited(field: number, bytes: Uint8Array): Uint8Array {
  return concat([encodeVarint((field << 3) | 2), encodeVarint(bytes.length), bytes]);
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  let len = 0;
  for (const p of parts) len += p.length;
  const out = new Uint8Array(len);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}
