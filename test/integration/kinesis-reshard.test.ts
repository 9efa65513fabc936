/**
 * Resharding, end to end: the kinesis-consumer pipeline reads a stream on kinesalite (moto
 * cannot reshard) while a producer puts records and shards are split and merged under it.
 * Per partition key, what sluice prints must be exactly what was put, in the same order.
 */
import {
  ListShardsCommand,
  MergeShardsCommand,
  type Shard,
  SplitShardCommand,
} from '@aws-sdk/client-kinesis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStream, type Kinesalite, putJson, startKinesalite } from '../stages/kinesis-harness.ts';
import { runCli, tempDir, unique } from './kinesis-harness.ts';

let k: Kinesalite;
beforeAll(async () => {
  k = await startKinesalite();
});
afterAll(async () => {
  await k?.close();
});

const open = (shards: Shard[]) => shards.filter((s) => !s.SequenceNumberRange?.EndingSequenceNumber);

async function listOpen(stream: string): Promise<Shard[]> {
  return open((await k.client.send(new ListShardsCommand({ StreamName: stream }))).Shards ?? []);
}

async function split(stream: string, shard: Shard): Promise<void> {
  const lo = BigInt(shard.HashKeyRange?.StartingHashKey ?? '0');
  const hi = BigInt(shard.HashKeyRange?.EndingHashKey ?? '0');
  await k.client.send(
    new SplitShardCommand({
      StreamName: stream,
      ShardToSplit: shard.ShardId,
      NewStartingHashKey: String((lo + hi) / 2n),
    }),
  );
}

describe('kinesis source resharding (kinesalite)', () => {
  it('keeps per-key order across splits and a merge, before and while it reads', async () => {
    const stream = unique('reshard');
    await createStream(k.client, stream, 2);
    const keys = Array.from({ length: 24 }, (_, i) => `key-${i}`);
    const next = new Map(keys.map((key) => [key, 0]));
    let total = 0;
    const produce = async (rounds: number) => {
      for (let r = 0; r < rounds; r++) {
        const batch = keys.map((key) => {
          const n = next.get(key) ?? 0;
          next.set(key, n + 1);
          return { key, value: { key, n } };
        });
        await putJson(k.client, stream, batch);
        total += batch.length;
        await new Promise((res) => setTimeout(res, 20));
      }
    };

    await produce(40);
    const [first] = await listOpen(stream);
    await split(stream, first);
    await produce(40);
    // Merge two adjacent open shards (the children of the split).
    const children = (await listOpen(stream))
      .filter((s) => s.ParentShardId === first.ShardId)
      .sort((a, b) =>
        BigInt(a.HashKeyRange?.StartingHashKey ?? 0) < BigInt(b.HashKeyRange?.StartingHashKey ?? 0) ? -1 : 1,
      );
    expect(children).toHaveLength(2);
    await k.client.send(
      new MergeShardsCommand({
        StreamName: stream,
        ShardToMerge: children[0].ShardId,
        AdjacentShardToMerge: children[1].ShardId,
      }),
    );
    await produce(20);

    // The consumer starts with a backlog across parents and children (they must not be read
    // side by side), then a split happens while it reads and the producer goes on.
    const state = await tempDir();
    const consumer = runCli(
      'pipelines/kinesis-consumer.yaml',
      { AWS_ENDPOINT_URL: k.endpoint, KINESIS_STREAM: stream, KINESIS_START: 'trim_horizon' },
      ['--exit-idle', '5s', '--state-dir', state],
    );

    await produce(20);
    const merged = (await listOpen(stream)).find((s) => s.AdjacentParentShardId);
    expect(merged).toBeDefined();
    if (merged) await split(stream, merged);
    await produce(40);

    const code = await consumer.exited;
    expect(code, consumer.stderr().slice(-2000)).toBe(0);
    const lines = consumer
      .lines()
      .map((l) => JSON.parse(l) as { key: string; n: number; kinesis: { shard_id: string } });
    expect(lines).toHaveLength(total);
    // Records came from parents, split children and the merged shard.
    expect(new Set(lines.map((l) => l.kinesis.shard_id)).size).toBeGreaterThanOrEqual(5);
    for (const key of keys) {
      const got = lines.filter((l) => l.key === key).map((l) => l.n);
      expect(got).toEqual(Array.from({ length: next.get(key) ?? 0 }, (_, i) => i));
    }
  });
});
