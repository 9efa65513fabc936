import { describe, expect, it } from 'vitest';
import { chunk, encodeValue } from '../../src/stages/aws/put-batches.ts';
import { firehoseSink } from '../../src/stages/sinks/firehose.ts';
import { kinesisSink } from '../../src/stages/sinks/kinesis.ts';

describe('put batching shared by the firehose and kinesis sinks', () => {
  it('sends bytes and strings as they are, other values as JSON', () => {
    expect(Buffer.from(encodeValue(Uint8Array.of(1, 2))).toJSON().data).toEqual([1, 2]);
    expect(Buffer.from(encodeValue('héllo')).toString()).toBe('héllo');
    expect(Buffer.from(encodeValue({ a: [1, 'x'] })).toString()).toBe('{"a":[1,"x"]}');
    expect(Buffer.from(encodeValue(null)).toString()).toBe('null');
  });

  it('splits in order by record count and by bytes, never leaving a group empty', () => {
    const entries = Array.from({ length: 1203 }, (_, index) => ({ index, bytes: 10 }));
    expect(chunk(entries, 500, 1 << 30).map((g) => g.length)).toEqual([500, 500, 203]);
    const big = [
      { index: 0, bytes: 3 },
      { index: 1, bytes: 3 },
      { index: 2, bytes: 9 },
      { index: 3, bytes: 1 },
    ];
    expect(chunk(big, 500, 6).map((g) => g.map((e) => e.index))).toEqual([[0, 1], [2], [3]]);
    expect(chunk([], 500, 6)).toEqual([]);
  });

  it('declares the API limits for the runtime buffers', () => {
    expect(firehoseSink.batching).toMatchObject({
      limits: { max_records: 500, max_bytes: 4 * 1024 * 1024, max_record_bytes: 1000 * 1024 },
    });
    expect(kinesisSink.batching).toMatchObject({
      limits: { max_records: 500, max_bytes: 5 * 1024 * 1024, max_record_bytes: 1024 * 1024 },
    });
  });
});
