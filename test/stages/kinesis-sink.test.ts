import {
  GetRecordsCommand,
  GetShardIteratorCommand,
  type KinesisClient,
  ListShardsCommand,
  type PutRecordsCommandInput,
  type PutRecordsCommandOutput,
} from '@aws-sdk/client-kinesis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AckGroup } from '../../src/runtime/ack.ts';
import type { SluiceRecord } from '../../src/runtime/record.ts';
import type { SinkBatch } from '../../src/stages/define.ts';
import { type KinesisSink, kinesisSink } from '../../src/stages/sinks/kinesis.ts';
import { createStream, type Kinesalite, stageContext, startKinesalite, suffix } from './kinesis-harness.ts';

let k: Kinesalite;
beforeAll(async () => {
  k = await startKinesalite();
});
afterAll(async () => {
  await k.close();
});

function batch(values: unknown[]): SinkBatch {
  const ack = new AckGroup(values.length);
  const records: SluiceRecord[] = values.map((value) => ({ value, meta: { source: 't' }, size: 10, ack }));
  return { records, partition: undefined, startedAt: Date.now(), bytes: values.length * 10, seq: 0 };
}

async function newSink(stream: string, extra: { ordered?: boolean; partition_key?: string } = {}) {
  const ctx = await stageContext('out', 'sink', 'kinesis');
  const sink = kinesisSink.create(
    { stream, endpoint: k.endpoint, region: 'us-east-1', partition_key: 'user', ...extra },
    ctx,
  ) as KinesisSink;
  return { sink, ctx };
}

/** Everything in the stream, per shard in sequence order. */
async function readAll(client: KinesisClient, stream: string): Promise<{ key: string; data: string }[]> {
  const out: { key: string; data: string }[] = [];
  const shards = (await client.send(new ListShardsCommand({ StreamName: stream }))).Shards ?? [];
  for (const s of shards) {
    let it = (
      await client.send(
        new GetShardIteratorCommand({
          StreamName: stream,
          ShardId: s.ShardId,
          ShardIteratorType: 'TRIM_HORIZON',
        }),
      )
    ).ShardIterator;
    for (;;) {
      const res = await client.send(new GetRecordsCommand({ ShardIterator: it, Limit: 10000 }));
      for (const r of res.Records ?? [])
        out.push({ key: r.PartitionKey ?? '', data: Buffer.from(r.Data ?? []).toString() });
      if (!res.Records?.length || !res.NextShardIterator) break;
      it = res.NextShardIterator;
    }
  }
  return out;
}

/**
 * Makes kinesalite fail the chosen entries the way AWS does: they are taken out of the request
 * (so they are not written) and come back as ProvisionedThroughputExceededException results.
 */
function injectPartialFailure(sink: KinesisSink, shouldFail: (data: string, call: number) => boolean): void {
  let call = 0;
  sink.client.middlewareStack.add(
    (next, context) => async (args) => {
      if (context.commandName !== 'PutRecordsCommand') return next(args);
      call++;
      const input = args.input as PutRecordsCommandInput;
      const all = input.Records ?? [];
      const failing = all.map((r) => shouldFail(Buffer.from(r.Data ?? []).toString(), call));
      const kept = all.filter((_, i) => !failing[i]);
      let sent: PutRecordsCommandOutput['Records'] = [];
      if (kept.length > 0) {
        const res = await next({ ...args, input: { ...input, Records: kept } });
        sent = (res.output as PutRecordsCommandOutput).Records ?? [];
      }
      let j = 0;
      const records = all.map((_, i) =>
        failing[i]
          ? { ErrorCode: 'ProvisionedThroughputExceededException', ErrorMessage: 'Rate exceeded for shard' }
          : sent[j++],
      );
      const output = { Records: records, FailedRecordCount: failing.filter(Boolean).length, $metadata: {} };
      return { output, response: {} } as Awaited<ReturnType<typeof next>>;
    },
    { step: 'initialize', name: 'injectPartialFailure' },
  );
}

describe('kinesis sink', () => {
  it('splits a batch into PutRecords calls of at most 500 and keys records by the expression', async () => {
    const stream = `s-${suffix()}`;
    await createStream(k.client, stream, 3);
    const { sink, ctx } = await newSink(stream);
    const values = Array.from({ length: 1200 }, (_, i) => ({ user: `u${i % 9}`, i }));
    expect(await sink.write(batch(values))).toBeUndefined();
    expect(ctx.metrics.snapshot().extra.put_records_calls).toBe(3);
    const got = await readAll(k.client, stream);
    expect(got).toHaveLength(1200);
    for (const g of got) expect(g.key).toBe((JSON.parse(g.data) as { user: string }).user);
    await sink.close();
  });

  it('fails oversized records and bad keys for good, and writes the rest', async () => {
    const stream = `s-${suffix()}`;
    await createStream(k.client, stream, 1);
    const { sink } = await newSink(stream);
    const res = await sink.write(
      batch([
        { user: 'a', n: 0 },
        { user: 'a', pad: 'x'.repeat(1024 * 1024) },
        { n: 2 },
        'plain text',
        { user: 'b', n: 4 },
      ]),
    );
    expect(res?.failed.map((f) => [f.index, f.retryable])).toEqual([
      [1, false],
      [2, false],
      [3, false],
    ]);
    expect(res?.failed[0].reason).toMatch(/exceeds the Kinesis limit/);
    const got = await readAll(k.client, stream);
    expect(got.map((g) => g.data)).toEqual(['{"user":"a","n":0}', '{"user":"b","n":4}']);
    await sink.close();
  });

  it('returns only the entries AWS rejected, as retryable', async () => {
    const stream = `s-${suffix()}`;
    await createStream(k.client, stream, 2);
    const { sink } = await newSink(stream);
    injectPartialFailure(sink, (data, call) => call === 1 && /"i":(3|7)\b/.test(data));
    const b = batch(Array.from({ length: 10 }, (_, i) => ({ user: `u${i}`, i })));
    const res = await sink.write(b);
    expect(res?.failed.map((f) => [f.index, f.retryable])).toEqual([
      [3, true],
      [7, true],
    ]);
    expect(res?.failed[0].reason).toMatch(/ProvisionedThroughputExceeded/);
    // What the runtime does next: write just the failed ones again.
    expect(await sink.write({ ...b, records: [b.records[3], b.records[7]] })).toBeUndefined();
    const got = (await readAll(k.client, stream)).map((g) => (JSON.parse(g.data) as { i: number }).i);
    expect(got.sort((x, y) => x - y)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    await sink.close();
  });

  it('keeps per-key order across partial failures when ordered', async () => {
    const stream = `s-${suffix()}`;
    await createStream(k.client, stream, 1);
    const { sink, ctx } = await newSink(stream, { ordered: true });
    // The first record of key a fails twice; later records of a must still land after it.
    let failures = 0;
    injectPartialFailure(sink, (data) => {
      if (data === '{"user":"a","n":0}' && failures < 2) {
        failures++;
        return true;
      }
      return false;
    });
    const values = [0, 1, 2].flatMap((n) => ['a', 'b', 'c'].map((user) => ({ user, n })));
    expect(await sink.write(batch(values))).toBeUndefined();
    const got = (await readAll(k.client, stream)).map(
      (g) => JSON.parse(g.data) as { user: string; n: number },
    );
    expect(got).toHaveLength(9);
    for (const user of ['a', 'b', 'c'])
      expect(got.filter((g) => g.user === user).map((g) => g.n)).toEqual([0, 1, 2]);
    expect(ctx.metrics.snapshot().retries).toBe(2);

    // Unordered, the same failure lets a's later records overtake its first.
    const stream2 = `s-${suffix()}`;
    await createStream(k.client, stream2, 1);
    const plain = await newSink(stream2);
    injectPartialFailure(plain.sink, (data, call) => call === 1 && data === '{"user":"a","n":0}');
    const res = await plain.sink.write(batch(values));
    expect(res?.failed.map((f) => f.index)).toEqual([0]);
    await sink.close();
    await plain.sink.close();
  });

  it('orders concurrent batches, and hands a failing key back only when closing', async () => {
    const stream = `s-${suffix()}`;
    await createStream(k.client, stream, 1);
    const { sink } = await newSink(stream, { ordered: true });
    let failA = true;
    injectPartialFailure(sink, (data) => failA && data === '{"user":"a","n":0}');
    // Batch 1's a0 keeps failing; batch 2 (written concurrently, as the runtime may) must wait.
    const first = sink.write(batch([0, 1].flatMap((n) => ['a', 'b'].map((user) => ({ user, n })))));
    const second = sink.write(batch([{ user: 'a', n: 2 }]));
    await new Promise((r) => setTimeout(r, 400));
    expect((await readAll(k.client, stream)).map((g) => g.data)).toEqual(['{"user":"b","n":0}']);
    failA = false;
    expect(await first).toBeUndefined();
    expect(await second).toBeUndefined();
    const got = (await readAll(k.client, stream)).map(
      (g) => JSON.parse(g.data) as { user: string; n: number },
    );
    expect(got.filter((g) => g.user === 'a').map((g) => g.n)).toEqual([0, 1, 2]);

    // Closing while a record keeps failing: it and its key's later records come back as retryable.
    failA = true;
    const stream2 = `s-${suffix()}`;
    await createStream(k.client, stream2, 1);
    const again = await newSink(stream2, { ordered: true });
    injectPartialFailure(again.sink, (data) => data === '{"user":"a","n":0}');
    const pending = again.sink.write(batch([0, 1].flatMap((n) => ['a', 'b'].map((user) => ({ user, n })))));
    await new Promise((r) => setTimeout(r, 300));
    await again.sink.close();
    const res = await pending;
    expect(res?.failed.map((f) => [f.index, f.retryable])).toEqual([
      [0, true],
      [2, true],
    ]);
    expect(res?.failed[1].reason).toMatch(/earlier record with partition key 'a'/);
    expect((await readAll(k.client, stream2)).map((g) => g.data)).toEqual([
      '{"user":"b","n":0}',
      '{"user":"b","n":1}',
    ]);
    await sink.close();
  });
});
