/**
 * kinesalite, run in-process, is the Kinesis to test resharding against (moto never closes a
 * parent shard): after a split, new records go to the children and, once the parent is
 * drained, its NextShardIterator is null.
 */
import { createRequire } from 'node:module';
import type { AddressInfo, Server } from 'node:net';
import {
  CreateStreamCommand,
  DescribeStreamSummaryCommand,
  GetRecordsCommand,
  GetShardIteratorCommand,
  KinesisClient,
  ListShardsCommand,
  PutRecordCommand,
  SplitShardCommand,
} from '@aws-sdk/client-kinesis';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

interface KinesaliteOptions {
  createStreamMs?: number;
  deleteStreamMs?: number;
  updateStreamMs?: number;
  shardLimit?: number;
}

// kinesalite is CommonJS without type declarations.
const kinesalite = createRequire(import.meta.url)('kinesalite') as (opts?: KinesaliteOptions) => Server;

let server: Server;
let kinesis: KinesisClient;

beforeAll(async () => {
  server = kinesalite({ createStreamMs: 10, deleteStreamMs: 10, updateStreamMs: 10, shardLimit: 10 });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  kinesis = new KinesisClient({
    endpoint: `http://127.0.0.1:${port}`,
    region: 'us-east-1',
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    // The client speaks HTTP/2 by default; kinesalite is HTTP/1.1.
    requestHandler: new NodeHttpHandler(),
  });
});

afterAll(async () => {
  kinesis?.destroy();
  if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
});

async function waitActive(StreamName: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const { StreamDescriptionSummary } = await kinesis.send(new DescribeStreamSummaryCommand({ StreamName }));
    if (StreamDescriptionSummary?.StreamStatus === 'ACTIVE') return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`stream ${StreamName} did not become ACTIVE`);
}

const text = (data: Uint8Array | undefined): string => Buffer.from(data ?? []).toString('utf8');

describe('kinesalite in-process with @aws-sdk/client-kinesis', () => {
  it('put/get a record, split the shard, drain the parent to a null NextShardIterator', async () => {
    const StreamName = 'smoke-reshard';
    await kinesis.send(new CreateStreamCommand({ StreamName, ShardCount: 1 }));
    await waitActive(StreamName);

    const put = await kinesis.send(
      new PutRecordCommand({ StreamName, PartitionKey: 'farm-1', Data: Buffer.from('before-split') }),
    );
    const parent = put.ShardId!;
    expect(parent).toBe('shardId-000000000000');

    const { ShardIterator } = await kinesis.send(
      new GetShardIteratorCommand({ StreamName, ShardId: parent, ShardIteratorType: 'TRIM_HORIZON' }),
    );
    const first = await kinesis.send(new GetRecordsCommand({ ShardIterator }));
    expect(first.Records?.map((r) => text(r.Data))).toEqual(['before-split']);
    expect(first.Records?.[0].SequenceNumber).toBe(put.SequenceNumber);
    expect(first.NextShardIterator).toBeTruthy(); // the shard is still open

    await kinesis.send(
      new SplitShardCommand({
        StreamName,
        ShardToSplit: parent,
        NewStartingHashKey: (2n ** 127n).toString(),
      }),
    );
    await waitActive(StreamName);

    const { Shards = [] } = await kinesis.send(new ListShardsCommand({ StreamName }));
    expect(Shards).toHaveLength(3);
    const closed = Shards.find((s) => s.ShardId === parent)!;
    expect(closed.SequenceNumberRange?.EndingSequenceNumber).toBeTruthy();
    const children = Shards.filter((s) => s.ParentShardId === parent);
    expect(children).toHaveLength(2);

    // New records go to a child, not to the closed parent.
    const after = await kinesis.send(
      new PutRecordCommand({ StreamName, PartitionKey: 'farm-1', Data: Buffer.from('after-split') }),
    );
    expect(children.map((c) => c.ShardId)).toContain(after.ShardId);

    // Drain the parent from the start: its records, then a null NextShardIterator.
    let iterator = (
      await kinesis.send(
        new GetShardIteratorCommand({ StreamName, ShardId: parent, ShardIteratorType: 'TRIM_HORIZON' }),
      )
    ).ShardIterator;
    const drained: string[] = [];
    let calls = 0;
    while (iterator && calls < 20) {
      const res = await kinesis.send(new GetRecordsCommand({ ShardIterator: iterator }));
      drained.push(...(res.Records ?? []).map((r) => text(r.Data)));
      iterator = res.NextShardIterator;
      calls++;
    }
    expect(drained).toEqual(['before-split']);
    expect(iterator ?? null).toBeNull();

    // The child that took the new record returns it.
    const child = await kinesis.send(
      new GetShardIteratorCommand({ StreamName, ShardId: after.ShardId, ShardIteratorType: 'TRIM_HORIZON' }),
    );
    const fromChild = await kinesis.send(new GetRecordsCommand({ ShardIterator: child.ShardIterator }));
    expect(fromChild.Records?.map((r) => text(r.Data))).toEqual(['after-split']);
    expect(fromChild.NextShardIterator).toBeTruthy();
  });
});
