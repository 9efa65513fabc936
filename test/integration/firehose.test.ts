/**
 * The Firehose sink and the kinesis-to-firehose pipeline against moto: moto's Firehose writes
 * one S3 object per PutRecordBatch call, and boto3 reads the objects back.
 */
import type { PutRecordBatchCommandInput, PutRecordBatchCommandOutput } from '@aws-sdk/client-firehose';
import { beforeAll, describe, expect, it } from 'vitest';
import { AckGroup } from '../../src/runtime/ack.ts';
import type { SluiceRecord } from '../../src/runtime/record.ts';
import { type FirehoseSink, firehoseSink } from '../../src/stages/sinks/firehose.ts';
import {
  boto3,
  createStream,
  putSales,
  requireMoto,
  runToEnd,
  stageContext,
  tempDir,
  unique,
} from './kinesis-harness.ts';

beforeAll(async () => {
  await requireMoto();
});

/** A bucket and a DirectPut delivery stream writing into it. */
async function deliveryStream(): Promise<{ name: string; bucket: string }> {
  const name = unique('fh');
  const bucket = unique('fh-bucket');
  await boto3(
    `boto3.client("s3").create_bucket(Bucket=arg["b"])
boto3.client("firehose").create_delivery_stream(
    DeliveryStreamName=arg["n"], DeliveryStreamType="DirectPut",
    ExtendedS3DestinationConfiguration={"RoleARN": "arn:aws:iam::123456789012:role/firehose",
                                        "BucketARN": "arn:aws:s3:::" + arg["b"], "Prefix": "flow1/"})`,
    { n: name, b: bucket },
  );
  return { name, bucket };
}

/** The bytes of every object in the bucket, concatenated in key order. */
function bucketText(bucket: string): Promise<{ objects: number; text: string }> {
  return boto3(
    `s3 = boto3.client("s3")
keys = sorted(o["Key"] for p in s3.get_paginator("list_objects_v2").paginate(Bucket=arg) for o in p.get("Contents", []))
out = {"objects": len(keys), "text": "".join(s3.get_object(Bucket=arg, Key=k)["Body"].read().decode() for k in keys)}`,
    bucket,
  );
}

describe('kinesis-to-firehose pipeline', () => {
  it('delivers every record of the stream to S3 as ndjson, bytes untouched', async () => {
    const stream = unique('to-firehose');
    await createStream(stream, 4);
    await putSales(stream, 0, 2_000);
    const { name, bucket } = await deliveryStream();
    const state = await tempDir();
    await runToEnd(
      'pipelines/kinesis-to-firehose.yaml',
      { KINESIS_STREAM: stream, KINESIS_START: 'trim_horizon', FIREHOSE_STREAM: name },
      ['--exit-idle', '3s', '--state-dir', state],
    );
    const { objects, text } = await bucketText(bucket);
    expect(objects).toBeGreaterThan(0);
    const lines = text.split('\n');
    expect(lines.pop()).toBe('');
    expect(lines).toHaveLength(2_000);
    // Exactly what boto3 put (json.dumps spacing included): the data went through as bytes.
    expect(lines[0]).toMatch(/^\{"id": \d+, "idvendedor": "\d+", "nome": "\w+"\}$/);
    const ids = lines.map((l) => (JSON.parse(l) as { id: number }).id).sort((a, b) => a - b);
    expect(ids).toEqual(Array.from({ length: 2_000 }, (_, i) => i));
  });
});

describe('firehose sink against moto', () => {
  it('returns only the failed entries: an oversized record for good, a throttled one for retry', async () => {
    const { name, bucket } = await deliveryStream();
    const ctx = stageContext('delivery', 'sink', 'firehose');
    const sink = firehoseSink.create({ delivery_stream: name }, ctx) as FirehoseSink;
    // moto never fails an entry: take some out of the request and answer for them the way
    // Firehose does when it is over its throughput.
    let injecting = true;
    sink.client.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName !== 'PutRecordBatchCommand') return next(args);
        const input = args.input as PutRecordBatchCommandInput;
        const all = input.Records ?? [];
        const failing = all.map(
          (r) =>
            injecting &&
            Buffer.from(r.Data ?? [])
              .toString()
              .includes('"n":"fail"'),
        );
        const res = await next({ ...args, input: { ...input, Records: all.filter((_, i) => !failing[i]) } });
        const sent = [...((res.output as PutRecordBatchCommandOutput).RequestResponses ?? [])];
        const output = {
          ...(res.output as PutRecordBatchCommandOutput),
          FailedPutCount: failing.filter(Boolean).length,
          RequestResponses: all.map((_, i) =>
            failing[i]
              ? { ErrorCode: 'ServiceUnavailableException', ErrorMessage: 'Slow down.' }
              : sent.shift(),
          ),
        };
        return { ...res, output } as Awaited<ReturnType<typeof next>>;
      },
      { step: 'initialize', name: 'fail-some' },
    );
    const values: unknown[] = [
      { i: 0 },
      'plain text line\n',
      { i: 2, n: 'fail' },
      { i: 3, pad: 'x'.repeat(1000 * 1024) },
      Buffer.from('raw bytes'),
      ...Array.from({ length: 600 }, (_, k) => ({ i: 5 + k })),
    ];
    const ack = new AckGroup(values.length);
    const records: SluiceRecord[] = values.map((value) => ({ value, meta: {}, size: 10, ack }));
    const batch = { records, partition: undefined, startedAt: Date.now(), bytes: 0, seq: 0 };
    const res = await sink.write(batch);
    expect(res?.failed.map((f) => [f.index, f.retryable])).toEqual([
      [2, true],
      [3, false],
    ]);
    expect(res?.failed[0].reason).toMatch(/ServiceUnavailable/);
    expect(res?.failed[1].reason).toMatch(/exceeds the Firehose limit/);
    injecting = false;
    expect(await sink.write({ ...batch, records: [records[2]] })).toBeUndefined();
    // 605 records: two calls (500 is the limit), then the retry.
    expect(ctx.metrics.snapshot().extra.put_record_batch_calls).toBe(3);
    await sink.close();

    const { text } = await bucketText(bucket);
    const lines = text.split('\n').filter((l) => l !== '');
    expect(lines).toHaveLength(values.length - 1);
    expect(lines).toContain('plain text line');
    expect(lines).toContain('raw bytes');
    expect(lines).toContain('{"i":2,"n":"fail"}');
    expect(lines.filter((l) => l.startsWith('{"i":')).length).toBe(602);
  });
});
