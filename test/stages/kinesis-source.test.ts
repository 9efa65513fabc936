import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DescribeStreamSummaryCommand,
  ListShardsCommand,
  PutRecordCommand,
  SplitShardCommand,
} from '@aws-sdk/client-kinesis';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { aggregate } from '../../src/stages/aws/kpl.ts';
import { type KinesisSource, kinesisSource } from '../../src/stages/sources/kinesis.ts';
import {
  createStream,
  Harness,
  type Kinesalite,
  putJson,
  sleep,
  stageContext,
  startKinesalite,
  suffix,
} from './kinesis-harness.ts';

let k: Kinesalite;
beforeAll(async () => {
  k = await startKinesalite();
});
afterAll(async () => {
  await k.close();
});

type Opts = Parameters<typeof kinesisSource.create>[0];

async function newSource(stream: string, stateDir: string, extra: Partial<Opts> = {}) {
  const ctx = await stageContext('src', 'source', 'kinesis', stateDir);
  const source = kinesisSource.create(
    {
      stream,
      endpoint: k.endpoint,
      region: 'us-east-1',
      start: 'trim_horizon',
      poll_interval: 200,
      idle_interval: 200,
      shard_refresh: 300,
      ...extra,
    },
    ctx,
  ) as KinesisSource;
  return { source, ctx };
}

/** Runs a source until `until` resolves, then stops it and flushes its checkpoints. */
async function runUntil(source: KinesisSource, h: Harness, until: () => Promise<void>): Promise<void> {
  const running = source.run(h.context());
  try {
    await until();
  } finally {
    h.abort.abort();
    await running;
    await h.scope.flush();
    await source.close();
  }
}

const tmp = () => mkdtemp(join(tmpdir(), 'sluice-kinesis-'));

describe('kinesis source', () => {
  it('reads every shard with metadata, then resumes from the checkpoint without re-reading', async () => {
    const stream = `s-${suffix()}`;
    await createStream(k.client, stream, 4);
    const input = Array.from({ length: 200 }, (_, i) => ({ key: `k${i % 17}`, value: { i } }));
    await putJson(k.client, stream, input);
    const dir = await tmp();

    const h = new Harness(dir);
    const { source, ctx } = await newSource(stream, dir);
    await runUntil(source, h, () => h.waitFor(200));
    expect(new Set(h.values().map((v) => (v as { i: number }).i)).size).toBe(200);
    const shards = new Set(h.emitted.map((e) => e.record.meta?.shard_id));
    expect(shards.size).toBe(4);
    const first = h.emitted[0].record;
    expect(first.meta).toMatchObject({ stream, partition_key: first.key });
    expect(first.meta?.sequence_number).toMatch(/^\d+$/);
    expect(new Date(String(first.meta?.arrival_time)).toISOString()).toBe(first.meta?.arrival_time);
    expect(first.time).toBe(Date.parse(String(first.meta?.arrival_time)));
    expect(first.position).toBe(`${first.meta?.shard_id}:${first.meta?.sequence_number}`);
    expect(Object.keys(ctx.metrics.snapshot().lagByPartition).length).toBe(4);
    expect(ctx.metrics.snapshot().lagUnit).toBe('ms');

    // The checkpoint holds each shard's last sequence number.
    const stored = (await h.store.load('src')) ?? {};
    for (const e of h.emitted) {
      expect(BigInt(stored[String(e.record.meta?.shard_id)])).toBeGreaterThanOrEqual(
        BigInt(String(e.record.meta?.sequence_number)),
      );
    }

    // Second run: only what was put since.
    await putJson(k.client, stream, [{ key: 'x', value: { i: 1000 } }]);
    const h2 = new Harness(dir);
    const again = await newSource(stream, dir);
    await runUntil(again.source, h2, async () => {
      await h2.waitFor(1);
      await sleep(800);
    });
    expect(h2.values()).toEqual([{ i: 1000 }]);
  });

  it('commits only the highest contiguous acked position', async () => {
    const stream = `s-${suffix()}`;
    await createStream(k.client, stream, 1);
    await putJson(k.client, stream, [{ key: 'a', value: 1 }]);
    const dir = await tmp();
    const h = new Harness(dir, 'src', false);
    const { source } = await newSource(stream, dir, { limit: 1 });
    await runUntil(source, h, async () => {
      await h.waitFor(1);
      await putJson(k.client, stream, [{ key: 'a', value: 2 }]);
      await h.waitFor(2);
      // Ack the second batch only: nothing may be committed yet.
      h.pending[1].ack();
      await h.scope.flush();
      expect((await h.store.load('src'))?.['shardId-000000000000']).toBeUndefined();
      h.pending[0].ack();
      await h.scope.flush();
      expect((await h.store.load('src'))?.['shardId-000000000000']).toBe(
        h.emitted[1].record.meta?.sequence_number,
      );
    });
  });

  it('starts at latest, skipping what was there before', async () => {
    const stream = `s-${suffix()}`;
    await createStream(k.client, stream, 2);
    await putJson(k.client, stream, [{ key: 'a', value: 'old' }]);
    const dir = await tmp();
    const h = new Harness(dir);
    const { source } = await newSource(stream, dir, { start: 'latest' });
    await runUntil(source, h, async () => {
      await sleep(700); // both shards have taken their iterators
      await putJson(k.client, stream, [{ key: 'b', value: 'new' }]);
      await h.waitFor(1);
      await sleep(500);
    });
    expect(h.values()).toEqual(['new']);
  });

  it('starts at a timestamp', async () => {
    const stream = `s-${suffix()}`;
    await createStream(k.client, stream, 1);
    await putJson(k.client, stream, [{ key: 'a', value: 'before' }]);
    await sleep(1100);
    const at = new Date().toISOString();
    await sleep(1100);
    await putJson(k.client, stream, [{ key: 'a', value: 'after' }]);
    const dir = await tmp();
    const h = new Harness(dir);
    const { source } = await newSource(stream, dir, { start: 'at_timestamp', start_timestamp: at });
    await runUntil(source, h, async () => {
      await h.waitFor(1);
      await sleep(500);
    });
    expect(h.values()).toEqual(['after']);
  });

  it('sends undecodable data to the error output with its sequence number', async () => {
    const stream = `s-${suffix()}`;
    await createStream(k.client, stream, 1);
    await putJson(k.client, stream, [
      { key: 'a', value: { ok: 1 } },
      { key: 'a', value: Buffer.from('not json {') },
      { key: 'a', value: Uint8Array.of(0xff, 0xfe) },
    ]);
    const dir = await tmp();
    const h = new Harness(dir);
    const { source } = await newSource(stream, dir);
    await runUntil(source, h, () => h.waitFor(3));
    expect(h.values()).toEqual([{ ok: 1 }]);
    const bad = h.emitted.filter((e) => e.reason);
    expect(bad).toHaveLength(2);
    expect(bad[0].reason).toContain(String(bad[0].record.meta?.sequence_number));
    expect(bad[0].reason).toContain('not JSON');
    expect(bad[0].record.value).toBe('not json {');
    expect(bad[1].reason).toContain('not valid UTF-8');
    expect(bad[1].record.value).toBe(Buffer.from([0xff, 0xfe]).toString('base64'));
    // Failed inputs are acked like the rest: the checkpoint moves past them.
    expect((await h.store.load('src'))?.['shardId-000000000000']).toBe(bad[1].record.meta?.sequence_number);
  });

  it('routes records past max_depth or max_record_bytes to the error output and reads on', async () => {
    const stream = `s-${suffix()}`;
    await createStream(k.client, stream, 1);
    const deep = `${'['.repeat(5000)}${']'.repeat(5000)}`;
    await putJson(k.client, stream, [
      { key: 'a', value: Buffer.from(deep) },
      { key: 'a', value: { pad: 'x'.repeat(3000) } },
      { key: 'a', value: { a: { b: 1 } } },
    ]);
    const dir = await tmp();
    const h = new Harness(dir);
    const { source } = await newSource(stream, dir, { max_record_bytes: 2048, max_depth: 2 });
    await runUntil(source, h, () => h.waitFor(3));
    expect(h.values()).toEqual([{ a: { b: 1 } }]);
    const bad = h.emitted.filter((e) => e.reason);
    expect(bad.map((b) => b.reason?.replace(/record \d+/, 'record N'))).toEqual([
      'record N in shard shardId-000000000000: record of 10000 bytes is larger than max_record_bytes (2048)',
      'record N in shard shardId-000000000000: record of 3010 bytes is larger than max_record_bytes (2048)',
    ]);
    expect(String(bad[1].record.value)).toHaveLength(1025);

    // Depth alone, with the default size limit.
    const h2 = new Harness(await tmp());
    const again = await newSource(stream, await tmp(), { max_depth: 2 });
    await runUntil(again.source, h2, () => h2.waitFor(3));
    expect(
      h2.emitted.filter((e) => e.reason).map((e) => e.reason?.replace(/record \d+/, 'record N')),
    ).toEqual(['record N in shard shardId-000000000000: value nested deeper than 2 levels']);
    expect(h2.values()).toEqual([{ pad: 'x'.repeat(3000) }, { a: { b: 1 } }]);
  });

  it('says once per shard where it starts or resumes', async () => {
    const stream = `s-${suffix()}`;
    await createStream(k.client, stream, 2);
    await putJson(k.client, stream, [{ key: 'a', value: { i: 1 } }]);
    const dir = await tmp();
    const run = async (records: number) => {
      const lines: string[] = [];
      const ctx = await stageContext('src', 'source', 'kinesis', dir);
      ctx.log = pino({ level: 'info' }, { write: (l: string) => lines.push(JSON.parse(l).msg) });
      const source = kinesisSource.create(
        { stream, endpoint: k.endpoint, region: 'us-east-1', start: 'trim_horizon', poll_interval: 200 },
        ctx,
      ) as KinesisSource;
      const h = new Harness(dir);
      await runUntil(source, h, async () => {
        await h.waitFor(records);
        await sleep(300);
      });
      return lines.filter((l) => l.includes('shard')).sort();
    };
    expect(await run(1)).toEqual([
      'no checkpoint for shard shardId-000000000000: starting at TRIM_HORIZON',
      'no checkpoint for shard shardId-000000000001: starting at TRIM_HORIZON',
    ]);
    // The shard that held the record resumes after it; the empty one still has no checkpoint.
    const second = await run(0);
    expect(second).toHaveLength(2);
    expect(
      second.filter((l) =>
        /^no checkpoint for shard shardId-00000000000[01]: starting at TRIM_HORIZON$/.test(l),
      ),
    ).toHaveLength(1);
    expect(
      second.filter((l) =>
        /^resuming shard shardId-00000000000[01] after sequence \d+ \(checkpoint in state file .*\/test\.checkpoint\.json\)$/.test(
          l,
        ),
      ),
    ).toHaveLength(1);
  });

  it('decodes text and binary', async () => {
    const stream = `s-${suffix()}`;
    await createStream(k.client, stream, 1);
    await putJson(k.client, stream, [{ key: 'a', value: Buffer.from('héllo') }]);
    for (const [codec, expected] of [
      ['text', 'héllo'],
      ['binary', new Uint8Array(Buffer.from('héllo'))],
    ] as const) {
      const dir = await tmp();
      const h = new Harness(dir);
      const { source } = await newSource(stream, dir, { codec });
      await runUntil(source, h, () => h.waitFor(1));
      expect(h.values()[0]).toEqual(expected);
    }
  });

  it('de-aggregates KPL records and resumes inside an aggregate', async () => {
    const stream = `s-${suffix()}`;
    await createStream(k.client, stream, 1);
    const users = [0, 1, 2].map((i) => ({
      partitionKey: `u${i}`,
      data: Buffer.from(JSON.stringify({ n: i })),
    }));
    const put = await k.client.send(
      new PutRecordCommand({ StreamName: stream, PartitionKey: 'agg', Data: aggregate(users) }),
    );
    const seq = put.SequenceNumber;
    const dir = await tmp();
    const h = new Harness(dir);
    const { source, ctx } = await newSource(stream, dir);
    await runUntil(source, h, () => h.waitFor(3));
    expect(h.values()).toEqual([{ n: 0 }, { n: 1 }, { n: 2 }]);
    expect(h.emitted.map((e) => e.record.key)).toEqual(['u0', 'u1', 'u2']);
    expect(h.emitted.map((e) => e.record.meta?.sub_sequence_number)).toEqual([0, 1, 2]);
    expect(h.emitted.map((e) => e.record.position)).toEqual([
      `shardId-000000000000:${seq}:0`,
      `shardId-000000000000:${seq}:1`,
      `shardId-000000000000:${seq}`,
    ]);
    expect((await h.store.load('src'))?.['shardId-000000000000']).toBe(seq);
    expect(ctx.metrics.snapshot().extra.kpl_aggregates).toBe(1);

    // A checkpoint inside the aggregate: only the user records after it are read.
    const dir2 = await tmp();
    const file = join(dir2, 'test.checkpoint.json');
    await writeFile(
      file,
      JSON.stringify({
        version: 1,
        pipeline: 'test',
        updatedAt: new Date().toISOString(),
        sources: { src: { 'shardId-000000000000': `${seq}:0` } },
      }),
    );
    const h2 = new Harness(dir2);
    const again = await newSource(stream, dir2);
    await runUntil(again.source, h2, async () => {
      await h2.waitFor(2);
      await sleep(500);
    });
    expect(h2.values()).toEqual([{ n: 1 }, { n: 2 }]);
  });

  it('reads children only after the parent is drained and acked, keeping per-key order', async () => {
    const stream = `s-${suffix()}`;
    const [shard] = await createStream(k.client, stream, 1);
    const keys = ['a', 'b', 'c', 'd', 'e', 'f'];
    let n = 0;
    const batch = () => keys.map((key) => ({ key, value: { key, n: n++ } }));
    for (let i = 0; i < 5; i++) await putJson(k.client, stream, batch());
    const lo = BigInt(shard.HashKeyRange?.StartingHashKey ?? '0');
    const hi = BigInt(shard.HashKeyRange?.EndingHashKey ?? '0');
    await k.client.send(
      new SplitShardCommand({
        StreamName: stream,
        ShardToSplit: shard.ShardId,
        NewStartingHashKey: String((lo + hi) / 2n),
      }),
    );
    // The split completes asynchronously: a put before the stream is ACTIVE again still lands in the parent.
    for (let status = ''; status !== 'ACTIVE'; ) {
      const d = await k.client.send(new DescribeStreamSummaryCommand({ StreamName: stream }));
      status = d.StreamDescriptionSummary?.StreamStatus ?? '';
      if (status !== 'ACTIVE') await sleep(50);
    }
    for (let i = 0; i < 5; i++) await putJson(k.client, stream, batch());
    const listed = (await k.client.send(new ListShardsCommand({ StreamName: stream }))).Shards ?? [];
    expect(listed.length).toBe(3);

    const dir = await tmp();
    const h = new Harness(dir, 'src', false);
    const { source } = await newSource(stream, dir);
    await runUntil(source, h, async () => {
      await h.waitFor(30);
      await sleep(1200);
      // The parent is read to its end, but nothing of the children while its records are unacked.
      expect(new Set(h.emitted.map((e) => e.record.meta?.shard_id))).toEqual(new Set([shard.ShardId]));
      expect(new Set(h.emitted.map((e) => e.record.meta?.sequence_number)).size).toBe(30);
      h.ackAll();
      await h.waitFor(60);
      h.ackAll();
      await sleep(500);
      h.ackAll();
    });
    // Per key, first deliveries keep the order of the puts; every record arrives.
    const firsts = new Map<number, { key: string; n: number }>();
    for (const v of h.values() as { key: string; n: number }[]) if (!firsts.has(v.n)) firsts.set(v.n, v);
    const byKey = new Map<string, number[]>();
    for (const v of firsts.values()) byKey.set(v.key, [...(byKey.get(v.key) ?? []), v.n]);
    for (const [, ns] of byKey) expect(ns).toEqual([...ns].sort((x, y) => x - y));
    expect(firsts.size).toBe(60);
    const stored = (await h.store.load('src')) ?? {};
    expect(stored[String(shard.ShardId)]).toBe('SHARD_END');
    expect(Object.keys(stored)).toHaveLength(3);
  });

  it('reads a failed batch again from the checkpoint', async () => {
    const stream = `s-${suffix()}`;
    await createStream(k.client, stream, 1);
    await putJson(k.client, stream, [
      { key: 'a', value: 1 },
      { key: 'a', value: 2 },
    ]);
    const dir = await tmp();
    const h = new Harness(dir, 'src', false);
    const { source } = await newSource(stream, dir, { limit: 1 });
    await runUntil(source, h, async () => {
      await h.waitFor(2);
      h.pending[0].ack();
      h.pending[1].ack(new Error('sink down'));
      h.pending.splice(0);
      h.autoAck = true;
      await h.waitFor(3);
      await sleep(300);
    });
    expect(h.values()).toEqual([1, 2, 2]);
    expect((await h.store.load('src'))?.['shardId-000000000000']).toBe(
      h.emitted[2].record.meta?.sequence_number,
    );
  });

  it('backs off on throttling and renews an expired iterator without losing or repeating records', async () => {
    const stream = `s-${suffix()}`;
    await createStream(k.client, stream, 1);
    await putJson(
      k.client,
      stream,
      Array.from({ length: 6 }, (_, i) => ({ key: 'a', value: i })),
    );
    const dir = await tmp();
    const h = new Harness(dir);
    const { source, ctx } = await newSource(stream, dir, { limit: 2 });
    // Real responses from kinesalite, with service errors injected on some GetRecords calls.
    let calls = 0;
    source.client.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName === 'GetRecordsCommand') {
          calls++;
          const fail = (name: string) => Object.assign(new Error(name), { name, $fault: 'client' });
          if (calls === 1 || calls === 2) throw fail('ProvisionedThroughputExceededException');
          if (calls === 4) throw fail('ExpiredIteratorException');
        }
        return next(args);
      },
      { step: 'initialize', name: 'inject' },
    );
    await runUntil(source, h, async () => {
      await h.waitFor(6);
      await sleep(400);
    });
    expect(h.values()).toEqual([0, 1, 2, 3, 4, 5]);
    expect(ctx.metrics.snapshot().extra.throttled).toBe(2);
    expect(ctx.metrics.snapshot().extra.iterators_renewed).toBe(1);
  });

  it('keeps under 5 GetRecords calls per second per shard', async () => {
    const stream = `s-${suffix()}`;
    await createStream(k.client, stream, 1);
    await putJson(
      k.client,
      stream,
      Array.from({ length: 8 }, (_, i) => ({ key: 'a', value: i })),
    );
    const dir = await tmp();
    const h = new Harness(dir);
    const { source } = await newSource(stream, dir, { limit: 1 });
    const t0 = Date.now();
    await runUntil(source, h, () => h.waitFor(8));
    // 8 calls at least 200 ms apart.
    expect(Date.now() - t0).toBeGreaterThanOrEqual(7 * 200 - 20);
  });

  it('fails clearly when the stream does not exist', async () => {
    const dir = await tmp();
    const h = new Harness(dir);
    const { source } = await newSource(`missing-${suffix()}`, dir);
    await expect(source.run(h.context())).rejects.toThrow(/not found/);
    await source.close();
  });
});
