import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { aggregate, deaggregate, isAggregated } from '../../src/stages/aws/kpl.ts';

/** An aggregated record written out byte by byte from the KPL's published format. */
function handBuilt(): Uint8Array {
  const body = Buffer.from([
    // partition_key_table: "pk1", "pk2"
    0x0a, 0x03, 0x70, 0x6b, 0x31, 0x0a, 0x03, 0x70, 0x6b, 0x32,
    // explicit_hash_key_table: "42"
    0x12, 0x02, 0x34, 0x32,
    // records[0] { partition_key_index: 1, data: "hi", tags: [{ key: "t" }] }
    0x1a, 0x0b, 0x08, 0x01, 0x1a, 0x02, 0x68, 0x69, 0x22, 0x03, 0x0a, 0x01, 0x74,
    // records[1] { partition_key_index: 0, explicit_hash_key_index: 0, data: "{}" }
    0x1a, 0x08, 0x08, 0x00, 0x10, 0x00, 0x1a, 0x02, 0x7b, 0x7d,
  ]);
  const digest = createHash('md5').update(body).digest();
  return Buffer.concat([Buffer.from([0xf3, 0x89, 0x9a, 0xc2]), body, digest]);
}

describe('KPL de-aggregation', () => {
  it('decodes an aggregated record built from the wire format', () => {
    const users = deaggregate(handBuilt());
    expect(users).toBeDefined();
    expect(users?.map((u) => ({ ...u, data: Buffer.from(u.data).toString() }))).toEqual([
      { partitionKey: 'pk2', data: 'hi' },
      { partitionKey: 'pk1', explicitHashKey: '42', data: '{}' },
    ]);
  });

  it('round-trips what aggregate() builds', () => {
    const input = Array.from({ length: 300 }, (_, i) => ({
      partitionKey: `key-${i % 7}`,
      data: Buffer.from(JSON.stringify({ i, pad: 'x'.repeat(i) })),
    }));
    const out = deaggregate(aggregate(input));
    expect(out?.map((u) => u.partitionKey)).toEqual(input.map((u) => u.partitionKey));
    expect(out?.map((u) => Buffer.from(u.data).toString())).toEqual(input.map((u) => u.data.toString()));
  });

  it('takes data with a wrong checksum, a bad body or no magic as an ordinary record', () => {
    const good = handBuilt();
    const badDigest = Uint8Array.from(good);
    badDigest[badDigest.length - 1] ^= 1;
    expect(isAggregated(badDigest)).toBe(true);
    expect(deaggregate(badDigest)).toBeUndefined();

    const garbage = Buffer.from([0xff, 0xff, 0xff]);
    const badBody = Buffer.concat([
      Buffer.from([0xf3, 0x89, 0x9a, 0xc2]),
      garbage,
      createHash('md5').update(garbage).digest(),
    ]);
    expect(deaggregate(badBody)).toBeUndefined();

    // A record pointing past the partition key table.
    const outOfRange = Buffer.from([0x1a, 0x06, 0x08, 0x05, 0x1a, 0x02, 0x68, 0x69]);
    expect(
      deaggregate(
        Buffer.concat([
          Buffer.from([0xf3, 0x89, 0x9a, 0xc2]),
          outOfRange,
          createHash('md5').update(outOfRange).digest(),
        ]),
      ),
    ).toBeUndefined();

    expect(deaggregate(Buffer.from('{"plain": "json record"}'))).toBeUndefined();
  });
});
