/**
 * The Kinesis source, sink and pipelines against moto; what sluice reads was put by boto3 and
 * what sluice writes is read back by boto3.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { PutRecordsCommandInput, PutRecordsCommandOutput } from '@aws-sdk/client-kinesis';
import { beforeAll, describe, expect, it } from 'vitest';
import { AckGroup } from '../../src/runtime/ack.ts';
import type { SluiceRecord } from '../../src/runtime/record.ts';
import { type KinesisSink, kinesisSink } from '../../src/stages/sinks/kinesis.ts';
import {
  createStream,
  putSales,
  readStream,
  requireMoto,
  runCli,
  runToEnd,
  stageContext,
  tempDir,
  unique,
} from './kinesis-harness.ts';

beforeAll(async () => {
  await requireMoto();
});

interface Line {
  id: number;
  idvendedor: string;
  kinesis: {
    stream: string;
    shard_id: string;
    sequence_number: string;
    partition_key: string;
    arrival_time: string;
  };
}

const parse = (lines: string[]): Line[] => lines.map((l) => JSON.parse(l) as Line);

describe('kinesis-consumer pipeline', () => {
  it('reads 10,000 records from 4 shards exactly once, then resumes with nothing re-read', async () => {
    const stream = unique('consumer');
    await createStream(stream, 4);
    await putSales(stream, 0, 10_000);
    const state = await tempDir();
    const env = { KINESIS_STREAM: stream, KINESIS_START: 'trim_horizon' };
    const args = ['--exit-idle', '3s', '--state-dir', state];

    const first = await runToEnd('pipelines/kinesis-consumer.yaml', env, args);
    const lines = parse(first.lines());
    expect(lines).toHaveLength(10_000);
    expect(new Set(lines.map((l) => l.id)).size).toBe(10_000);
    expect(new Set(lines.map((l) => l.kinesis.shard_id)).size).toBe(4);
    for (const l of lines.slice(0, 50)) {
      expect(l.kinesis.stream).toBe(stream);
      expect(l.kinesis.partition_key).toBe(l.idvendedor);
      expect(l.kinesis.sequence_number).toMatch(/^\d+$/);
      expect(Number.isNaN(Date.parse(l.kinesis.arrival_time))).toBe(false);
    }
    // Logs and metric lines stay on stderr.
    expect(first.stdout()).not.toMatch(/records\/s|level/);

    const second = await runToEnd('pipelines/kinesis-consumer.yaml', env, args);
    expect(second.lines()).toEqual([]);

    // New records only, on a third run.
    await putSales(stream, 10_000, 10_100);
    const third = await runToEnd('pipelines/kinesis-consumer.yaml', env, args);
    expect(
      parse(third.lines())
        .map((l) => l.id)
        .sort((a, b) => a - b),
    ).toEqual(Array.from({ length: 100 }, (_, i) => 10_000 + i));
  });

  it('loses nothing when killed mid-run; re-reads only what was not checkpointed', async () => {
    const stream = unique('killed');
    await createStream(stream, 4);
    await putSales(stream, 0, 10_000);
    const state = await tempDir();
    // Small reads, so the run is long enough to be killed in the middle.
    const spec = join(state, 'slow-consumer.yaml');
    await writeFile(
      spec,
      `version: 1
name: slow-consumer
sources:
  flow: { type: kinesis, stream: ${stream}, start: trim_horizon, limit: 100 }
transforms:
  annotated:
    type: enrich
    from: [flow]
    set: { kinesis: '{"shard_id": meta.shard_id, "sequence_number": meta.sequence_number}' }
sinks:
  print: { type: stdout, from: [annotated] }
runtime: { checkpoint_interval: 500ms }
`,
    );
    const args = ['--exit-idle', '3s', '--state-dir', state];
    const first = runCli(spec, {}, args);
    await first.waitForLines(3_000);
    first.child.kill('SIGKILL');
    await first.exited;
    const before = parse(first.lines());
    expect(before.length).toBeLessThan(10_000);

    const second = await runToEnd(spec, {}, args);
    const after = parse(second.lines());
    const seen = new Set([...before, ...after].map((l) => l.id));
    expect(seen.size).toBe(10_000);

    // Per shard, the second run starts inside what the first printed, never before a record it
    // had checkpointed: what repeats is the tail of the first run in that shard.
    const duplicates = after.filter((l) => before.some((b) => b.id === l.id));
    for (const shard of new Set(after.map((l) => l.kinesis.shard_id))) {
      const firstSeqs = before
        .filter((l) => l.kinesis.shard_id === shard)
        .map((l) => BigInt(l.kinesis.sequence_number));
      const dupSeqs = duplicates
        .filter((l) => l.kinesis.shard_id === shard)
        .map((l) => BigInt(l.kinesis.sequence_number));
      if (dupSeqs.length === 0) continue;
      const tail = firstSeqs.slice(firstSeqs.length - dupSeqs.length);
      expect(dupSeqs).toEqual(tail);
    }
    expect(duplicates.length).toBeLessThan(before.length);
  });
});

describe('the seeds together: consumer at latest, then the producer', () => {
  it('prints what the producer puts after the consumer started, and nothing from before', async () => {
    const stream = unique('seeds');
    await createStream(stream, 2);
    await putSales(stream, 0, 50); // before the consumer: not printed at latest
    const state = await tempDir();
    const consumer = runCli('pipelines/kinesis-consumer.yaml', { KINESIS_STREAM: stream }, [
      '--exit-idle',
      '6s',
      '--state-dir',
      state,
      '--log-level',
      'debug',
    ]);
    // Both shards have their LATEST iterators once each logged that it is being read.
    const deadline = Date.now() + 30_000;
    while ((consumer.stderr().match(/reading shard/g) ?? []).length < 2) {
      if (Date.now() > deadline)
        throw new Error(`consumer did not start:\n${consumer.stderr().slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    await new Promise((r) => setTimeout(r, 500));
    await runToEnd(
      'pipelines/kinesis-producer.yaml',
      {
        KINESIS_STREAM: stream,
        PRODUCER_RECORDS: '300',
        PRODUCER_RATE: '100000',
      },
      ['--state-dir', await tempDir()],
    );
    expect(await consumer.exited).toBe(0);
    const lines = consumer
      .lines()
      .map((l) => JSON.parse(l) as { venda: number; idvendedor: string; kinesis: Line['kinesis'] });
    expect(lines.map((l) => l.venda).sort((a, b) => a - b)).toEqual(Array.from({ length: 300 }, (_, i) => i));
    for (const l of lines) expect(l.kinesis.partition_key).toBe(l.idvendedor);
  });
});

describe('kinesis-producer pipeline', () => {
  it('puts generated records that boto3 reads back, keyed by seller', async () => {
    const stream = unique('producer');
    await createStream(stream, 2);
    const state = await tempDir();
    await runToEnd(
      'pipelines/kinesis-producer.yaml',
      {
        KINESIS_STREAM: stream,
        PRODUCER_RECORDS: '1500',
        PRODUCER_RATE: '100000',
      },
      ['--state-dir', state],
    );
    const got = await readStream(stream);
    expect(got).toHaveLength(1500);
    const values = got.map((r) => ({
      ...r,
      value: JSON.parse(r.data) as { idvendedor: string; venda: number; nome: string },
    }));
    expect(new Set(values.map((v) => v.value.venda)).size).toBe(1500);
    for (const v of values) expect(v.key).toBe(v.value.idvendedor);
    // One seller's records in one shard, in the order they were generated.
    const bySeller = new Map<string, number[]>();
    for (const v of values) bySeller.set(v.key, [...(bySeller.get(v.key) ?? []), v.value.venda]);
    for (const vendas of bySeller.values()) expect(vendas).toEqual([...vendas].sort((a, b) => a - b));
  });
});

describe('kinesis sink against moto', () => {
  it('delivers what boto3 reads back, with an oversized record and throttled entries', async () => {
    const stream = unique('sink');
    await createStream(stream, 2);
    const ctx = stageContext('out', 'sink', 'kinesis');
    const sink = kinesisSink.create({ stream, partition_key: 'string(id % 10)' }, ctx) as KinesisSink;
    // moto never throttles: take some entries out of the request and answer for them the way
    // AWS does for a shard over its limit.
    let injecting = true;
    sink.client.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName !== 'PutRecordsCommand') return next(args);
        const input = args.input as PutRecordsCommandInput;
        const all = input.Records ?? [];
        const throttled = all.map(
          (r) =>
            injecting && (JSON.parse(Buffer.from(r.Data ?? []).toString()) as { id: number }).id % 50 === 7,
        );
        const res = await next({
          ...args,
          input: { ...input, Records: all.filter((_, i) => !throttled[i]) },
        });
        const sent = [...((res.output as PutRecordsCommandOutput).Records ?? [])];
        const output = {
          ...(res.output as PutRecordsCommandOutput),
          FailedRecordCount: throttled.filter(Boolean).length,
          Records: all.map((_, i) =>
            throttled[i]
              ? {
                  ErrorCode: 'ProvisionedThroughputExceededException',
                  ErrorMessage: 'Rate exceeded for shard',
                }
              : sent.shift(),
          ),
        };
        return { ...res, output } as Awaited<ReturnType<typeof next>>;
      },
      { step: 'initialize', name: 'throttle' },
    );
    const ack = new AckGroup(600);
    const records: SluiceRecord[] = Array.from({ length: 600 }, (_, id) => ({
      value: id === 300 ? { id, pad: 'x'.repeat(1024 * 1024) } : { id },
      meta: {},
      size: 20,
      ack,
    }));
    const batch = { records, partition: undefined, startedAt: Date.now(), bytes: 12_000, seq: 0 };
    const res = await sink.write(batch);
    const failed = res?.failed ?? [];
    const throttledIds = Array.from({ length: 12 }, (_, k) => k * 50 + 7);
    expect(failed.filter((f) => f.retryable).map((f) => f.index)).toEqual(throttledIds);
    expect(failed.filter((f) => !f.retryable).map((f) => f.index)).toEqual([300]);
    // The runtime's retry: just the throttled ones.
    injecting = false;
    expect(await sink.write({ ...batch, records: throttledIds.map((i) => records[i]) })).toBeUndefined();
    await sink.close();

    const got = await readStream(stream);
    const ids = got.map((r) => (JSON.parse(r.data) as { id: number }).id).sort((a, b) => a - b);
    expect(ids).toEqual(Array.from({ length: 600 }, (_, i) => i).filter((i) => i !== 300));
    for (const r of got) expect(r.key).toBe(String((JSON.parse(r.data) as { id: number }).id % 10));
  });
});
