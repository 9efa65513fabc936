/**
 * Start-up checks and failure classification of the AWS and Kafka sinks against moto and the
 * Kafka broker: a missing target fails `open()` at once with a message naming it, an unreachable
 * endpoint too, within a bounded time; a record that cannot be encoded fails alone while the
 * rest of its batch is written (read back with clients that are not sluice's own); errors about
 * the destination in the middle of a run are transient. Every name is unique to the run, so
 * nothing here resets moto or touches other tests' resources.
 */
import { writeFile } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { InvalidArgumentException as FirehoseInvalidArgument } from '@aws-sdk/client-firehose';
import { InvalidArgumentException as KinesisInvalidArgument } from '@aws-sdk/client-kinesis';
import { SNSClient, InvalidParameterException as SnsInvalidParameter } from '@aws-sdk/client-sns';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AckGroup } from '../../src/runtime/ack.ts';
import type { SluiceRecord } from '../../src/runtime/record.ts';
import { awsClientConfig } from '../../src/stages/aws/clients.ts';
import { CHECK_TIMEOUT_MS } from '../../src/stages/aws/startup.ts';
import type { RecordFailure, Sink, SinkBatch, StageContext, StageKind } from '../../src/stages/define.ts';
import { type FirehoseSink, firehoseSink } from '../../src/stages/sinks/firehose.ts';
import { kafkaSink } from '../../src/stages/sinks/kafka.ts';
import { type KinesisSink, kinesisSink } from '../../src/stages/sinks/kinesis.ts';
import { s3Sink } from '../../src/stages/sinks/s3.ts';
import { SnsSink, snsSink } from '../../src/stages/sinks/sns.ts';
import { kafkaSource } from '../../src/stages/sources/kafka.ts';
import { kinesisSource } from '../../src/stages/sources/kinesis.ts';
import {
  BROKERS,
  CollectingContext,
  createTopic,
  deleteTopic,
  kcatConsume,
  requireKafka,
  suffix,
} from './kafka-harness.ts';
import {
  boto3,
  createStream,
  readStream,
  requireMoto,
  runCli,
  stageContext,
  tempDir,
  unique,
} from './kinesis-harness.ts';
import { awsRegion } from './services.ts';

const REGION = awsRegion();
const ACCOUNT = '123456789012';
/** A start-up check that needs longer than this is not "at once". */
const AT_ONCE_MS = 10_000;

beforeAll(async () => {
  await requireMoto();
  await requireKafka();
});

const topicsToDelete: string[] = [];
afterAll(async () => {
  for (const t of topicsToDelete) await deleteTopic(t);
});

function ctx(kind: StageKind, type: string): StageContext {
  return stageContext('target', kind, type);
}

/** A port nothing listens on: taken from the OS, then released. */
function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** open() must reject within AT_ONCE_MS; returns the message. */
async function openFails(sink: Sink): Promise<string> {
  const started = Date.now();
  try {
    await sink.open?.();
  } catch (err) {
    expect(Date.now() - started).toBeLessThan(AT_ONCE_MS);
    return (err as Error).message;
  } finally {
    await sink.close?.();
  }
  throw new Error('open() resolved for a target that does not exist');
}

async function opens(sink: Sink): Promise<void> {
  try {
    await sink.open?.();
  } finally {
    await sink.close?.();
  }
}

// ------------------------------------------------------------------ targets made with boto3

function createBucket(bucket: string): Promise<null> {
  return boto3('boto3.client("s3").create_bucket(Bucket=arg)', bucket);
}

/** A bucket and a DirectPut delivery stream writing into it (moto writes one object per call). */
async function createDeliveryStream(name: string, bucket: string): Promise<void> {
  await boto3(
    `boto3.client("s3").create_bucket(Bucket=arg["b"])
boto3.client("firehose").create_delivery_stream(
    DeliveryStreamName=arg["n"], DeliveryStreamType="DirectPut",
    ExtendedS3DestinationConfiguration={"RoleARN": "arn:aws:iam::123456789012:role/firehose",
                                        "BucketARN": "arn:aws:s3:::" + arg["b"]})`,
    { n: name, b: bucket },
  );
}

function createSnsTopic(name: string): Promise<string> {
  return boto3<string>('out = boto3.client("sns").create_topic(Name=arg)["TopicArn"]', name);
}

/** A queue subscribed to the topic with raw delivery: each message body is what was published. */
function queueFor(topicArn: string): Promise<string> {
  return boto3<string>(
    `sqs = boto3.client("sqs")
url = sqs.create_queue(QueueName=arg["q"])["QueueUrl"]
qarn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
boto3.client("sns").subscribe(TopicArn=arg["t"], Protocol="sqs", Endpoint=qarn,
                              Attributes={"RawMessageDelivery": "true"})
out = url`,
    { q: unique('startup-q'), t: topicArn },
  );
}

/** Message bodies in the queue: waits for `expected`, then a little longer for any extra. */
function drainQueue(url: string, expected: number): Promise<string[]> {
  return boto3<string[]>(
    `import time
sqs = boto3.client("sqs")
out = []
deadline = time.time() + 20
quiet = 0
while time.time() < deadline and (len(out) < arg["n"] or quiet < 2):
    r = sqs.receive_message(QueueUrl=arg["u"], MaxNumberOfMessages=10, WaitTimeSeconds=1)
    ms = r.get("Messages", [])
    quiet = 0 if ms else quiet + 1
    for m in ms:
        out.append(m["Body"])
        sqs.delete_message(QueueUrl=arg["u"], ReceiptHandle=m["ReceiptHandle"])`,
    { u: url, n: expected },
  );
}

/** Every object body of the bucket, in key order. */
function bucketBodies(bucket: string): Promise<string[]> {
  return boto3<string[]>(
    `s3 = boto3.client("s3")
keys = sorted(o["Key"] for p in s3.get_paginator("list_objects_v2").paginate(Bucket=arg) for o in p.get("Contents", []))
out = [s3.get_object(Bucket=arg, Key=k)["Body"].read().decode() for k in keys]`,
    bucket,
  );
}

// ------------------------------------------------------------------ records

/** A value JSON.stringify cannot encode: it overflows the stack (RangeError). */
function nestedDeep(depth: number): unknown {
  let v: unknown = 'bottom';
  for (let i = 0; i < depth; i++) v = { v };
  return v;
}

/** a, a value nested 100,000 deep, b, a value holding a BigInt, c. */
const GOOD = [{ id: 'a' }, { id: 'b' }, { id: 'c' }];
function mixedBatch(): SinkBatch {
  const values: unknown[] = [
    GOOD[0],
    { id: 'deep', v: nestedDeep(100_000) },
    GOOD[1],
    { id: 'big', n: 1n },
    GOOD[2],
  ];
  const ack = new AckGroup(values.length);
  const records: SluiceRecord[] = values.map((value, i) => ({
    value,
    meta: {},
    position: `p-${i}`,
    size: 20,
    ack,
  }));
  return { records, partition: undefined, startedAt: Date.now(), bytes: 100, seq: 0 };
}

function expectOnlyUnencodableFailed(failed: RecordFailure[] | undefined): void {
  expect(failed?.map((f) => [f.index, f.retryable])).toEqual([
    [1, false],
    [3, false],
  ]);
  expect(failed?.[0].reason).toMatch(/nested too deep/);
  expect(failed?.[1].reason).toMatch(/BigInt/);
}

const written = (texts: string[]) =>
  texts.map((t) => (JSON.parse(t) as { id: string }).id).sort((a, b) => a.localeCompare(b));

// ------------------------------------------------------------------ tests

describe('start-up checks: a missing target fails open() at once, naming it and saying what to create', () => {
  it('s3: a missing bucket', async () => {
    const bucket = unique('startup-missing');
    const message = await openFails(s3Sink.create({ bucket, key: 'k{ext}' }, ctx('sink', 's3')));
    expect(message).toBe(
      `s3: bucket '${bucket}' does not exist in region ${REGION}; create it (aws s3 mb s3://${bucket}) or fix \`bucket\``,
    );
  });

  it('kinesis: a missing stream', async () => {
    const stream = unique('startup-missing');
    const message = await openFails(
      kinesisSink.create({ stream, partition_key: 'id' }, ctx('sink', 'kinesis')),
    );
    expect(message).toContain(`kinesis: stream '${stream}' does not exist in region ${REGION}`);
    expect(message).toContain(`aws kinesis create-stream --stream-name ${stream}`);
  });

  it('firehose: a missing delivery stream', async () => {
    const name = unique('startup-missing');
    const message = await openFails(firehoseSink.create({ delivery_stream: name }, ctx('sink', 'firehose')));
    expect(message).toContain(`firehose: delivery stream '${name}' does not exist in region ${REGION}`);
    expect(message).toContain(`create-delivery-stream --delivery-stream-name ${name}`);
  });

  it('sns: a missing topic, and a topic_arn that is no ARN', async () => {
    const name = unique('startup-missing');
    const arn = `arn:aws:sns:${REGION}:${ACCOUNT}:${name}`;
    const message = await openFails(snsSink.create({ topic_arn: arn }, ctx('sink', 'sns')));
    expect(message).toContain(`sns: topic '${arn}' does not exist in region ${REGION}`);
    expect(message).toContain(`aws sns create-topic --name ${name}`);
    const bad = await openFails(snsSink.create({ topic_arn: name }, ctx('sink', 'sns')));
    expect(bad).toContain(`sns: '${name}' is not a topic ARN`);
  });

  it('kafka: a missing topic, unless the sink creates it', async () => {
    const topic = `startup-missing-${suffix()}`;
    const message = await openFails(kafkaSink.create({ brokers: BROKERS, topic }, ctx('sink', 'kafka')));
    expect(message).toContain(`kafka: topic '${topic}' does not exist on ${BROKERS}`);
    expect(message).toContain(`--create --topic ${topic}`);
    // Checking must not have created it (the broker auto-creates topics on request).
    await openFails(kafkaSink.create({ brokers: BROKERS, topic }, ctx('sink', 'kafka')));

    topicsToDelete.push(topic);
    await opens(
      kafkaSink.create({ brokers: BROKERS, topic, create_topic: { partitions: 2 } }, ctx('sink', 'kafka')),
    );
    await opens(kafkaSink.create({ brokers: BROKERS, topic }, ctx('sink', 'kafka')));
  });

  it('existing targets open', async () => {
    const bucket = unique('startup-ok');
    await createBucket(bucket);
    await opens(s3Sink.create({ bucket, key: 'k{ext}' }, ctx('sink', 's3')));

    const stream = unique('startup-ok');
    await createStream(stream, 1);
    await opens(kinesisSink.create({ stream, partition_key: 'id' }, ctx('sink', 'kinesis')));

    const delivery = unique('startup-ok');
    await createDeliveryStream(delivery, unique('startup-ok-fh'));
    await opens(firehoseSink.create({ delivery_stream: delivery }, ctx('sink', 'firehose')));

    const arn = await createSnsTopic(unique('startup-ok'));
    await opens(snsSink.create({ topic_arn: arn }, ctx('sink', 'sns')));

    const topic = `startup-ok-${suffix()}`;
    topicsToDelete.push(topic);
    await createTopic(topic, 1);
    await opens(kafkaSink.create({ brokers: BROKERS, topic }, ctx('sink', 'kafka')));
  });

  it('an endpoint that refuses connections fails at once, naming the endpoint', async () => {
    const endpoint = `http://127.0.0.1:${await closedPort()}`;
    const aws = { endpoint, region: REGION };
    const sinks: Sink[] = [
      s3Sink.create({ bucket: 'any', key: 'k', ...aws }, ctx('sink', 's3')),
      kinesisSink.create({ stream: 'any', partition_key: 'id', ...aws }, ctx('sink', 'kinesis')),
      firehoseSink.create({ delivery_stream: 'any', ...aws }, ctx('sink', 'firehose')),
      snsSink.create({ topic_arn: `arn:aws:sns:${REGION}:${ACCOUNT}:any`, ...aws }, ctx('sink', 'sns')),
    ];
    for (const sink of sinks) {
      const message = await openFails(sink);
      expect(message).toMatch(new RegExp(`^(s3|kinesis|firehose|sns): cannot reach ${endpoint} `));
      expect(message).toContain('ECONNREFUSED');
    }
    const brokers = `127.0.0.1:${await closedPort()}`;
    const message = await openFails(kafkaSink.create({ brokers, topic: 'any' }, ctx('sink', 'kafka')));
    expect(message).toContain(`kafka: cannot reach ${brokers}: `);
  });
});

describe('start-up checks against an endpoint that accepts connections and never answers', () => {
  const sockets = new Set<Socket>();
  const silent = createServer((socket) => sockets.add(socket));
  beforeAll(() => new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve)));
  afterAll(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((resolve) => silent.close(() => resolve()));
  });

  it('gives up within the check deadline, whatever the clients retry, and names the endpoint', async () => {
    const { port } = silent.address() as { port: number };
    const endpoint = `http://127.0.0.1:${port}`;
    const aws = { endpoint, region: REGION };
    const sinks: Sink[] = [
      s3Sink.create({ bucket: 'any', key: 'k', ...aws }, ctx('sink', 's3')),
      kinesisSink.create({ stream: 'any', partition_key: 'id', ...aws }, ctx('sink', 'kinesis')),
      firehoseSink.create({ delivery_stream: 'any', ...aws }, ctx('sink', 'firehose')),
      snsSink.create({ topic_arn: `arn:aws:sns:${REGION}:${ACCOUNT}:any`, ...aws }, ctx('sink', 'sns')),
      kafkaSink.create({ brokers: `127.0.0.1:${port}`, topic: 'any' }, ctx('sink', 'kafka')),
    ];
    const started = Date.now();
    const messages = await Promise.all(
      sinks.map((sink) =>
        sink.open?.().then(
          () => 'opened',
          (err: Error) => err.message,
        ),
      ),
    );
    // The SDK alone would wait out a 60 s request timeout three times, the Kafka client 30 s six times.
    expect(Date.now() - started).toBeLessThan(CHECK_TIMEOUT_MS + 5_000);
    for (const m of messages.slice(0, 4)) expect(m).toContain(`no answer from ${endpoint} within 15s`);
    expect(messages[4]).toContain(`kafka: no answer from 127.0.0.1:${port} within 15s`);
    for (const sink of sinks) await sink.close?.();
  }, 40_000);

  it('the kinesis and kafka sources give up within the check deadline too', async () => {
    const { port } = silent.address() as { port: number };
    const kinesis = kinesisSource.create(
      { stream: 'any', endpoint: `http://127.0.0.1:${port}`, region: REGION },
      ctx('source', 'kinesis'),
    );
    const kafka = kafkaSource.create(
      { brokers: `127.0.0.1:${port}`, topics: ['any'], group: `startup-${suffix()}` },
      ctx('source', 'kafka'),
    );
    const started = Date.now();
    const messages = await Promise.all(
      [kinesis, kafka].map((source) =>
        source.run(new CollectingContext().ctx).then(
          () => 'returned',
          (err: Error) => err.message,
        ),
      ),
    );
    expect(Date.now() - started).toBeLessThan(CHECK_TIMEOUT_MS + 5_000);
    expect(messages[0]).toContain(`kinesis: no answer from http://127.0.0.1:${port} within 15s`);
    expect(messages[0]).toContain("stream 'any'");
    expect(messages[1]).toContain(`at 127.0.0.1:${port}: no answer within 15s`);
    await kinesis.close?.();
    await kafka.close?.();
  }, 40_000);
});

describe('sluice run with a missing target', () => {
  it('exits non-zero at start, naming the bucket, instead of retrying forever', async () => {
    const bucket = unique('startup-cli');
    const dir = await tempDir();
    const spec = join(dir, 'missing-bucket.yaml');
    await writeFile(
      spec,
      `version: 1
name: missing-bucket
sources:
  gen: { type: generate, count: 10, fields: { id: 'i' } }
sinks:
  lake: { type: s3, from: [gen], bucket: ${bucket}, key: 'x/{first_position}{ext}' }
`,
    );
    const started = Date.now();
    const run = runCli(spec, {}, ['--state-dir', dir]);
    const code = await run.exited;
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(code).not.toBe(0);
    expect(run.stderr()).toContain(`s3: bucket '${bucket}' does not exist in region ${REGION}`);
  }, 60_000);
});

describe('start-up checks of the sources that read streams and topics', () => {
  it('kinesis source: a missing stream fails at once, naming it', async () => {
    const stream = unique('startup-missing');
    const source = kinesisSource.create({ stream }, ctx('source', 'kinesis'));
    const collecting = new CollectingContext();
    const started = Date.now();
    await expect(source.run(collecting.ctx)).rejects.toThrow(stream);
    expect(Date.now() - started).toBeLessThan(AT_ONCE_MS);
    await source.close?.();
  });

  it('kafka source: a missing topic fails at once, naming it', async () => {
    const topic = `startup-missing-${suffix()}`;
    const source = kafkaSource.create(
      { brokers: BROKERS, topics: [topic], group: `startup-${suffix()}` },
      ctx('source', 'kafka'),
    );
    const collecting = new CollectingContext();
    const started = Date.now();
    await expect(source.run(collecting.ctx)).rejects.toThrow(`'${topic}'`);
    expect(Date.now() - started).toBeLessThan(AT_ONCE_MS);
    await source.close?.();
  });
});

describe('a record that cannot be encoded fails alone; the rest of its batch is written', () => {
  it('s3: the object holds the other records', async () => {
    const bucket = unique('startup-enc');
    await createBucket(bucket);
    const sink = s3Sink.create({ bucket, key: 'lake/{first_position}{ext}' }, ctx('sink', 's3'));
    await sink.open?.();
    const result = await sink.write(mixedBatch());
    await sink.close?.();
    expectOnlyUnencodableFailed(result?.failed);
    const bodies = await bucketBodies(bucket);
    expect(bodies).toHaveLength(1);
    expect(written(bodies[0].trimEnd().split('\n'))).toEqual(['a', 'b', 'c']);
  });

  it('kinesis: the stream holds the other records', async () => {
    const stream = unique('startup-enc');
    await createStream(stream, 1);
    const sink = kinesisSink.create({ stream, partition_key: 'id' }, ctx('sink', 'kinesis'));
    await sink.open?.();
    const result = await sink.write(mixedBatch());
    await sink.close?.();
    expectOnlyUnencodableFailed(result?.failed);
    expect(written((await readStream(stream)).map((r) => r.data))).toEqual(['a', 'b', 'c']);
  });

  it('firehose: the delivered objects hold the other records', async () => {
    const name = unique('startup-enc');
    const bucket = unique('startup-enc-fh');
    await createDeliveryStream(name, bucket);
    const sink = firehoseSink.create({ delivery_stream: name }, ctx('sink', 'firehose'));
    await sink.open?.();
    const result = await sink.write(mixedBatch());
    await sink.close?.();
    expectOnlyUnencodableFailed(result?.failed);
    const lines = (await bucketBodies(bucket)).join('').trimEnd().split('\n');
    expect(written(lines)).toEqual(['a', 'b', 'c']);
  });

  it('sns: a subscribed queue receives the other records', async () => {
    const arn = await createSnsTopic(unique('startup-enc'));
    const queue = await queueFor(arn);
    const sink = snsSink.create({ topic_arn: arn }, ctx('sink', 'sns'));
    await sink.open?.();
    const result = await sink.write(mixedBatch());
    await sink.close?.();
    expectOnlyUnencodableFailed(result?.failed);
    expect(written(await drainQueue(queue, 3))).toEqual(['a', 'b', 'c']);
  });

  it('kafka: the topic holds the other records (read back with kcat)', async () => {
    const topic = `startup-enc-${suffix()}`;
    topicsToDelete.push(topic);
    await createTopic(topic, 1);
    const sink = kafkaSink.create({ brokers: BROKERS, topic }, ctx('sink', 'kafka'));
    await sink.open?.();
    const result = await sink.write(mixedBatch());
    await sink.close?.();
    expectOnlyUnencodableFailed(result?.failed);
    expect(written((await kcatConsume(topic)).map((m) => m.payload))).toEqual(['a', 'b', 'c']);
  });
});

describe('errors about the destination in the middle of a run are transient, not dead letters', () => {
  const plainBatch = (): SinkBatch => {
    const ack = new AckGroup(2);
    const records: SluiceRecord[] = GOOD.slice(0, 2).map((value, i) => ({
      value,
      meta: {},
      position: `q-${i}`,
      size: 10,
      ack,
    }));
    return { records, partition: undefined, startedAt: Date.now(), bytes: 20, seq: 0 };
  };

  /** Every record failed, and each may be retried (a throw counts as the whole batch failing). */
  async function allTransient(sink: Sink, pattern: RegExp): Promise<void> {
    let failures: { reason: string; retryable: boolean }[];
    try {
      failures = (await sink.write(plainBatch()))?.failed ?? [];
    } catch (err) {
      const e = err as Error & { retryable?: boolean };
      failures = [0, 1].map(() => ({ reason: e.message, retryable: e.retryable !== false }));
    }
    expect(failures).toHaveLength(2);
    for (const f of failures) {
      expect(f.retryable).toBe(true);
      expect(f.reason).toMatch(pattern);
    }
  }

  it('s3: the bucket deleted after start', async () => {
    const bucket = unique('startup-gone');
    await createBucket(bucket);
    const sink = s3Sink.create({ bucket, key: 'k/{first_position}{ext}' }, ctx('sink', 's3'));
    await sink.open?.();
    await boto3('boto3.client("s3").delete_bucket(Bucket=arg)', bucket);
    await allTransient(sink, /NoSuchBucket/);
    await sink.close?.();
  });

  it('kinesis: the stream deleted after start', async () => {
    const stream = unique('startup-gone');
    await createStream(stream, 1);
    const sink = kinesisSink.create({ stream, partition_key: 'id' }, ctx('sink', 'kinesis'));
    await sink.open?.();
    await boto3('boto3.client("kinesis").delete_stream(StreamName=arg)', stream);
    await allTransient(sink, /ResourceNotFound/);
    await sink.close?.();
  });

  it('firehose: the delivery stream deleted after start', async () => {
    const name = unique('startup-gone');
    await createDeliveryStream(name, unique('startup-gone-fh'));
    const sink = firehoseSink.create({ delivery_stream: name }, ctx('sink', 'firehose'));
    await sink.open?.();
    await boto3('boto3.client("firehose").delete_delivery_stream(DeliveryStreamName=arg)', name);
    await allTransient(sink, /ResourceNotFound/);
    await sink.close?.();
  });

  it('sns: the topic deleted after start', async () => {
    const arn = await createSnsTopic(unique('startup-gone'));
    const sink = snsSink.create({ topic_arn: arn }, ctx('sink', 'sns'));
    await sink.open?.();
    await boto3('boto3.client("sns").delete_topic(TopicArn=arg)', arn);
    await allTransient(sink, /NotFound/);
    await sink.close?.();
  });
});

describe("a batch refused for one record's content is halved until that record is alone", () => {
  const values = () => [
    ...Array.from({ length: 6 }, (_, i) => ({ id: `r${i}` })),
    { id: 'poison' },
    ...Array.from({ length: 5 }, (_, i) => ({ id: `r${i + 6}` })),
  ];
  const batchOf = (vs: unknown[]): SinkBatch => {
    const ack = new AckGroup(vs.length);
    const records: SluiceRecord[] = vs.map((value, i) => ({
      value,
      meta: {},
      position: `h-${i}`,
      size: 10,
      ack,
    }));
    return { records, partition: undefined, startedAt: Date.now(), bytes: 10 * vs.length, seq: 0 };
  };
  const expected = Array.from({ length: 11 }, (_, i) => `r${i}`).sort((a, b) => a.localeCompare(b));

  it('kafka: the broker refuses a message over its max.message.bytes (MESSAGE_TOO_LARGE); the others are written', async () => {
    const topic = `startup-large-${suffix()}`;
    topicsToDelete.push(topic);
    await createTopic(topic, 1);
    // The sink's own limit is raised above the broker's (1 MiB by default) so the broker decides.
    const sink = kafkaSink.create(
      { brokers: BROKERS, topic, max_message_bytes: 8 * 1024 * 1024, compression: 'none' },
      ctx('sink', 'kafka'),
    );
    await sink.open?.();
    const vs: unknown[] = values();
    vs[6] = { id: 'poison', pad: 'x'.repeat(2 * 1024 * 1024) };
    const result = await sink.write(batchOf(vs));
    await sink.close?.();
    expect(result?.failed.map((f) => [f.index, f.retryable])).toEqual([[6, false]]);
    expect(result?.failed[0].reason).toMatch(/larger than the max message size/i);
    expect(written((await kcatConsume(topic)).map((m) => m.payload))).toEqual(expected);
  });

  /**
   * Makes the real client refuse any call that carries the poison record, the way AWS refuses
   * a request for its content (moto never does), before the request leaves.
   */
  function refusePoison(
    client: { middlewareStack: { add: (mw: never, opts: { step: 'initialize'; name: string }) => void } },
    refusal: () => Error,
  ): void {
    const mw = (next: (args: { input: unknown }) => Promise<unknown>) => async (args: { input: unknown }) => {
      if (
        JSON.stringify(args.input, (_k, v) =>
          v instanceof Uint8Array ? Buffer.from(v).toString() : v,
        ).includes('poison')
      )
        throw refusal();
      return next(args);
    };
    client.middlewareStack.add(mw as never, { step: 'initialize', name: 'refuse-poison' });
  }

  it('kinesis: PutRecords refused with InvalidArgumentException', async () => {
    const stream = unique('startup-refused');
    await createStream(stream, 1);
    const sink = kinesisSink.create({ stream, partition_key: 'id' }, ctx('sink', 'kinesis')) as KinesisSink;
    refusePoison(
      sink.client as never,
      () => new KinesisInvalidArgument({ message: 'refused', $metadata: {} }),
    );
    await sink.open();
    const result = await sink.write(batchOf(values()));
    await sink.close();
    expect(result?.failed.map((f) => [f.index, f.retryable])).toEqual([[6, false]]);
    expect(result?.failed[0].reason).toMatch(/InvalidArgumentException/);
    expect(written((await readStream(stream)).map((r) => r.data))).toEqual(expected);
  });

  it('firehose: PutRecordBatch refused with InvalidArgumentException', async () => {
    const name = unique('startup-refused');
    const bucket = unique('startup-refused-fh');
    await createDeliveryStream(name, bucket);
    const sink = firehoseSink.create({ delivery_stream: name }, ctx('sink', 'firehose')) as FirehoseSink;
    refusePoison(
      sink.client as never,
      () => new FirehoseInvalidArgument({ message: 'refused', $metadata: {} }),
    );
    await sink.open();
    const result = await sink.write(batchOf(values()));
    await sink.close();
    expect(result?.failed.map((f) => [f.index, f.retryable])).toEqual([[6, false]]);
    expect(written((await bucketBodies(bucket)).join('').trimEnd().split('\n'))).toEqual(expected);
  });

  it('sns: PublishBatch refused with InvalidParameterException', async () => {
    const arn = await createSnsTopic(unique('startup-refused'));
    const queue = await queueFor(arn);
    const client = new SNSClient(awsClientConfig({}));
    refusePoison(client as never, () => new SnsInvalidParameter({ message: 'refused', $metadata: {} }));
    const sink = new SnsSink(client, { topic_arn: arn }, ctx('sink', 'sns'));
    await sink.open();
    const result = await sink.write(batchOf(values()));
    await sink.close();
    expect(result?.failed.map((f) => [f.index, f.retryable])).toEqual([[6, false]]);
    expect(written(await drainQueue(queue, 11))).toEqual(expected);
  });
});
