/**
 * SNS against moto: the sink publishes (read back from an SQS subscription with boto3), the
 * source receives what moto delivers over HTTP, and the seed-004 pipelines run end to end as
 * child processes, with what lands in S3 read back by boto3.
 *
 * moto signs deliveries with a certificate at an unreachable sns.<region>.amazonaws.com URL
 * (and leaves Subject out of the string it signs), so runs fed by moto turn verification off;
 * the run with verification on is fed by this test acting as SNS, with its own key and a
 * certificate served over HTTPS that the child process trusts through NODE_EXTRA_CA_CERTS.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SLUICE_NAMESPACE } from '../../src/expr/index.ts';
import { AckGroup } from '../../src/runtime/ack.ts';
import type { RecordInit, SluiceRecord } from '../../src/runtime/record.ts';
import type { SinkBatch, SourceContext } from '../../src/stages/define.ts';
import { snsSink } from '../../src/stages/sinks/sns.ts';
import { SnsHttpSource } from '../../src/stages/sources/sns.ts';
import { makeCert, signed } from '../stages/sns-fixtures.ts';
import { boto3, freePort, REGION, requireMoto, runCli, stageContext, unique } from './sns-harness.ts';

const dirs: string[] = [];
beforeAll(requireMoto);
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'sluice-sns-'));
  dirs.push(d);
  return d;
};

async function topic(name: string, attributes: Record<string, string> = {}): Promise<string> {
  return boto3<string>(
    'out = boto3.client("sns").create_topic(Name=arg["n"], Attributes=arg["a"])["TopicArn"]',
    { n: name, a: attributes },
  );
}

/** A queue subscribed to the topic (envelope delivery, so Subject and attributes show). */
async function queueFor(topicArn: string): Promise<string> {
  return boto3<string>(
    `
sqs = boto3.client("sqs")
url = sqs.create_queue(QueueName=arg["q"])["QueueUrl"]
qarn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
boto3.client("sns").subscribe(TopicArn=arg["t"], Protocol="sqs", Endpoint=qarn)
out = url
`,
    { q: unique('q'), t: topicArn },
  );
}

interface Delivered {
  Message: string;
  Subject?: string;
  MessageAttributes?: Record<string, { Type: string; Value: string }>;
}

async function drain(queueUrl: string, expected: number): Promise<Delivered[]> {
  return boto3<Delivered[]>(
    `
import time
sqs = boto3.client("sqs")
out = []
deadline = time.time() + 20
while len(out) < arg["n"] and time.time() < deadline:
    r = sqs.receive_message(QueueUrl=arg["u"], MaxNumberOfMessages=10, WaitTimeSeconds=1)
    for m in r.get("Messages", []):
        out.append(json.loads(m["Body"]))
        sqs.delete_message(QueueUrl=arg["u"], ReceiptHandle=m["ReceiptHandle"])
`,
    { u: queueUrl, n: expected },
  );
}

function batchOf(values: unknown[]): SinkBatch {
  const ack = new AckGroup(values.length);
  const records: SluiceRecord[] = values.map((value, i) => ({ value, meta: { n: i }, size: 10, ack }));
  return { records, partition: undefined, startedAt: Date.now(), bytes: 10 * values.length, seq: 0 };
}

describe('sns sink', () => {
  it('publishes every record once, in batches of at most 10, with subject and typed attributes', async () => {
    const arn = await topic(unique('sink'));
    const queue = await queueFor(arn);
    const ctx = stageContext('out', 'sink', 'sns');
    const sink = snsSink.create(
      {
        topic_arn: arn,
        subject: '"consumo " + id_lote',
        attributes: { cod_cliente: 'cod_cliente', peso: 'peso_medio', ausente: 'coalesce(record.nada)' },
      } as never,
      ctx,
    );
    const values = Array.from({ length: 25 }, (_, i) => ({
      id_lote: `L${i}`,
      cod_cliente: String((i % 2) + 1),
      peso_medio: 400 + i,
    }));
    expect(await sink.write(batchOf(values))).toBeUndefined();
    expect(ctx.metrics.extra.get('publish_requests')).toBe(3);
    expect(ctx.metrics.extra.get('messages_published')).toBe(25);
    const got = await drain(queue, 25);
    expect(got).toHaveLength(25);
    const byLote = new Map(got.map((m) => [(JSON.parse(m.Message) as { id_lote: string }).id_lote, m]));
    expect([...byLote.keys()].sort()).toEqual(values.map((v) => v.id_lote).sort());
    const m7 = byLote.get('L7')!;
    expect(m7.Subject).toBe('consumo L7');
    expect(m7.MessageAttributes).toEqual({
      cod_cliente: { Type: 'String', Value: '2' },
      peso: { Type: 'Number', Value: '407' },
    });
    await sink.close?.();
  });

  it('splits a batch at 256 KiB per request', async () => {
    const arn = await topic(unique('big'));
    const queue = await queueFor(arn);
    const ctx = stageContext('out', 'sink', 'sns');
    const sink = snsSink.create({ topic_arn: arn } as never, ctx);
    const values = Array.from({ length: 3 }, (_, i) => ({ i, pad: 'x'.repeat(100 * 1024) }));
    expect(await sink.write(batchOf(values))).toBeUndefined();
    expect(ctx.metrics.extra.get('publish_requests')).toBe(2);
    expect(await drain(queue, 3)).toHaveLength(3);
    await sink.close?.();
  });

  it('returns only the refused entries, marked not retryable when SNS blames the sender', async () => {
    // A FIFO topic without content-based deduplication refuses entries without a dedup id.
    const arn = await topic(`${unique('fifo')}.fifo`, {
      FifoTopic: 'true',
      ContentBasedDeduplication: 'false',
    });
    const ctx = stageContext('out', 'sink', 'sns');
    const sink = snsSink.create(
      { topic_arn: arn, group_id: 'id_lote', dedup_id: 'coalesce(record.d)' } as never,
      ctx,
    );
    const values = Array.from({ length: 6 }, (_, i) =>
      i % 3 === 0 ? { id_lote: 'L', i } : { id_lote: 'L', i, d: `d${i}` },
    );
    const result = await sink.write(batchOf(values));
    expect(result?.failed.map((f) => f.index).sort()).toEqual([0, 3]);
    expect(result?.failed.every((f) => !f.retryable)).toBe(true);
    expect(ctx.metrics.extra.get('messages_published')).toBe(4);
    await sink.close?.();
  });

  it('sends records whose expressions fail to the error output and publishes the rest', async () => {
    const arn = await topic(unique('expr'));
    const queue = await queueFor(arn);
    const ctx = stageContext('out', 'sink', 'sns');
    const sink = snsSink.create({ topic_arn: arn, subject: '"lote " + id_lote' } as never, ctx);
    const result = await sink.write(batchOf([{ id_lote: 'A' }, { other: 1 }, { id_lote: 'C' }]));
    expect(result?.failed).toHaveLength(1);
    expect(result?.failed[0]).toMatchObject({ index: 1, retryable: false });
    expect((await drain(queue, 2)).map((m) => m.Subject).sort()).toEqual(['lote A', 'lote C']);
    await sink.close?.();
  });
});

describe('sns source with moto delivering', () => {
  it('subscribes itself, receives what moto publishes, and refuses other topics', async () => {
    const arn = await topic(unique('src'));
    const other = await topic(unique('other'));
    const port = await freePort();
    const endpoint = `http://127.0.0.1:${port}/sns`;
    const ctx = stageContext('in', 'source', 'sns');
    const source = new SnsHttpSource(
      { listen: { port, path: '/sns' }, topic_arn: arn, verify: false, subscribe: endpoint, region: REGION },
      ctx,
    );
    const got: RecordInit[] = [];
    const abort = new AbortController();
    const sc: SourceContext = {
      signal: abort.signal,
      async emit(records, onAck) {
        got.push(...records);
        setTimeout(() => onAck?.(), 10);
      },
      async fail() {
        throw new Error('unexpected');
      },
      checkpoints: { load: async () => undefined, commit() {}, flush: async () => {} },
    };
    const running = source.run(sc);
    await source.listening;
    // The source subscribed itself to `arn`; subscribe it to `other` by hand to see the 403.
    const subs = await boto3<string[]>(
      `
sns = boto3.client("sns")
sns.subscribe(TopicArn=arg["o"], Protocol="http", Endpoint=arg["e"])
for i in range(5):
    sns.publish(TopicArn=arg["t"], Message=json.dumps({"n": i}), Subject="consumo")
sns.publish(TopicArn=arg["o"], Message=json.dumps({"n": 99}))
out = [s["Endpoint"] for s in sns.list_subscriptions_by_topic(TopicArn=arg["t"])["Subscriptions"]]
`,
      { t: arn, o: other, e: endpoint },
    );
    expect(subs).toEqual([endpoint]);
    expect(got.map((r) => r.value)).toEqual([0, 1, 2, 3, 4].map((n) => ({ n })));
    expect(got[0].meta).toMatchObject({ topic_arn: arn, subject: 'consumo' });
    expect(typeof got[0].meta?.message_id).toBe('string');
    expect(ctx.metrics.extra.get('rejected')).toBe(1);
    abort.abort();
    await running;
    await source.close();
  });
  it('fails to start when the subscription cannot be made, releasing its port', async () => {
    const port = await freePort();
    const missing = `arn:aws:sns:${REGION}:123456789012:${unique('missing')}`;
    const source = new SnsHttpSource(
      {
        listen: { port, path: '/sns' },
        topic_arn: missing,
        verify: false,
        subscribe: `http://127.0.0.1:${port}/sns`,
      },
      stageContext('in', 'source', 'sns'),
    );
    const sc: SourceContext = {
      signal: new AbortController().signal,
      emit: async () => {},
      fail: async () => {},
      checkpoints: { load: async () => undefined, commit() {}, flush: async () => {} },
    };
    await expect(source.run(sc)).rejects.toThrow(/not exist|not found/i);
    expect(await freePortIs(port)).toBe(true);
  });
});

function freePortIs(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = createNetServer();
    s.once('error', () => res(false));
    s.listen(port, '127.0.0.1', () => s.close(() => res(true)));
  });
}

interface LakeRow {
  key: string;
  row: Record<string, unknown>;
  expected_id: string;
}

/** Every row under historico_diario/, with the id Python's uuid5 derives for it. */
function readLake(bucket: string): Promise<LakeRow[]> {
  return boto3<LakeRow[]>(
    `
import uuid
s3 = boto3.client("s3")
ns = uuid.UUID(arg["ns"])
out = []
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=arg["b"], Prefix="historico_diario/"):
    for o in page.get("Contents", []):
        body = s3.get_object(Bucket=arg["b"], Key=o["Key"])["Body"].read().decode("utf-8")
        for line in body.splitlines():
            r = json.loads(line)
            name = r["cod_cliente"] + "|" + r["id_lote"] + "|" + r["data"]
            out.append({"key": o["Key"], "row": r, "expected_id": str(uuid.uuid5(ns, name))})
`,
    { b: bucket, ns: SLUICE_NAMESPACE },
  );
}

function feedlotMessage(i: number): Record<string, unknown> {
  const day = 20 + (i % 3);
  return {
    id_curral: `C${(i % 40) + 1}`,
    id_raca: ['nelore', 'angus'][i % 2],
    id_lote: `L${i}`,
    peso_entrada: 300 + (i % 50),
    peso_medio: 410.5 + (i % 30),
    quantidade_animais: 20 + (i % 100),
    dia_confinamento: 1 + (i % 110),
    consumo_real: 980.25 + i,
    data: `2024-03-${day} 10:${String(i % 60).padStart(2, '0')}:00`,
    cod_cliente: String((i % 2) + 1),
  };
}

/** Checks the lake holds each message exactly once, enriched, under the seed's key layout. */
function checkLake(rows: LakeRow[], messages: Record<string, unknown>[]): void {
  expect(rows).toHaveLength(messages.length);
  expect(new Set(rows.map((r) => r.row.id_lote)).size).toBe(messages.length);
  const sent = new Map(messages.map((m) => [m.id_lote, m]));
  for (const { key, row, expected_id } of rows) {
    const m = sent.get(row.id_lote)!;
    expect(m, String(row.id_lote)).toBeDefined();
    for (const [k, v] of Object.entries(m)) expect(row[k]).toEqual(v);
    const fazenda = m.cod_cliente === '1' ? 'fazenda_um' : 'fazenda_dois';
    expect(row.fazenda).toBe(fazenda);
    expect(row.id_treated_data).toBe(expected_id);
    expect(row.consumo_meta as number).toBeCloseTo(
      (m.peso_medio as number) * 0.025 * (m.quantidade_animais as number),
      6,
    );
    expect(typeof row.row_ts).toBe('string');
    const [y, mo, d] = String(m.data).slice(0, 10).split('-');
    expect(key).toMatch(
      new RegExp(`^historico_diario/${fazenda}/${y}/${mo}/${d}/historico_consumo_[0-9a-f-]{36}\\.ndjson$`),
    );
  }
}

describe('feedlot-to-lake pipeline', () => {
  it('lands every message moto delivers in S3 exactly once, deduplicated, in few objects', async () => {
    const bucket = unique('lake');
    const arn = await topic(unique('consumo'));
    await boto3('boto3.client("s3").create_bucket(Bucket=arg)', bucket);
    const port = await freePort();
    const lake = runCli(
      'pipelines/feedlot-to-lake.yaml',
      {
        SNS_TOPIC_ARN: arn,
        SNS_LISTEN_PORT: String(port),
        SNS_VERIFY: 'false',
        SNS_SUBSCRIBE_URL: `http://127.0.0.1:${port}/sns`,
        S3_BUCKET: bucket,
        LAKE_MAX_AGE: '300ms',
      },
      ['--exit-idle', '4s', '--state-dir', join(tempDir(), 'state')],
    );
    await lake.waitFor('subscribed to sns topic');
    const messages = Array.from({ length: 150 }, (_, i) => feedlotMessage(i));
    // 16 publishers at once, and 10 messages published twice (new MessageId, same content).
    await boto3(
      `
from concurrent.futures import ThreadPoolExecutor
sns = boto3.client("sns")
bodies = [json.dumps(m) for m in arg["m"]] + [json.dumps(m) for m in arg["m"][:10]]
with ThreadPoolExecutor(16) as pool:
    list(pool.map(lambda b: sns.publish(TopicArn=arg["t"], Message=b), bodies))
`,
      { t: arn, m: messages },
    );
    expect(await lake.exited, lake.stderr()).toBe(0);
    const rows = await readLake(bucket);
    checkLake(rows, messages);
    const objects = new Set(rows.map((r) => r.key)).size;
    expect(objects).toBeLessThan(messages.length / 2);
    expect(lake.stderr()).toMatch(/unique\s+transform\s+dedup\s+160\s+150\s+0\s+0\s+10\b/);
  });

  it('runs with the sns-producer pipeline publishing through moto', async () => {
    const bucket = unique('lake');
    const arn = await topic(unique('consumo'));
    await boto3('boto3.client("s3").create_bucket(Bucket=arg)', bucket);
    const port = await freePort();
    const lake = runCli(
      'pipelines/feedlot-to-lake.yaml',
      {
        SNS_TOPIC_ARN: arn,
        SNS_LISTEN_PORT: String(port),
        SNS_VERIFY: 'false',
        SNS_SUBSCRIBE_URL: `http://127.0.0.1:${port}/sns`,
        S3_BUCKET: bucket,
        LAKE_MAX_AGE: '200ms',
      },
      ['--exit-idle', '4s', '--state-dir', join(tempDir(), 'state')],
    );
    await lake.waitFor('subscribed to sns topic');
    const producer = runCli(
      'pipelines/sns-producer.yaml',
      { SNS_TOPIC_ARN: arn, PRODUCER_RECORDS: '40', PRODUCER_RATE: '1000' },
      ['--exit-idle', '1s', '--state-dir', join(tempDir(), 'state')],
    );
    expect(await producer.exited, producer.stderr()).toBe(0);
    expect(producer.stderr()).toMatch(/topic\s+sink\s+sns\s+40\s+40\s+0/);
    expect(await lake.exited, lake.stderr()).toBe(0);
    const rows = await readLake(bucket);
    expect(rows).toHaveLength(40);
    expect(new Set(rows.map((r) => r.row.id_treated_data)).size).toBe(40);
    for (const r of rows) expect(r.row.id_treated_data).toBe(r.expected_id);
  });

  it('verifies signatures end to end: certificate over HTTPS from an allowed host, forgeries refused', async () => {
    const bucket = unique('lake');
    await boto3('boto3.client("s3").create_bucket(Bucket=arg)', bucket);
    const arn = `arn:aws:sns:${REGION}:123456789012:${unique('signed')}`;
    const signing = makeCert();
    const attacker = makeCert();
    const tls = makeCert({ cn: '127.0.0.1', san: 'IP:127.0.0.1' });
    const dir = tempDir();
    writeFileSync(join(dir, 'ca.pem'), tls.cert);
    let certFetches = 0;
    const certServer: Server = createServer({ key: tls.key, cert: tls.cert }, (req, res) => {
      if (req.url === '/SimpleNotificationService-test.pem') {
        certFetches++;
        res.end(signing.cert);
      } else {
        res.statusCode = 404;
        res.end();
      }
    });
    await new Promise<void>((r) => certServer.listen(0, '127.0.0.1', r));
    const certPort = (certServer.address() as AddressInfo).port;
    const certUrl = `https://127.0.0.1:${certPort}/SimpleNotificationService-test.pem`;
    try {
      const port = await freePort();
      const lake = runCli(
        'pipelines/feedlot-to-lake.yaml',
        {
          SNS_TOPIC_ARN: arn,
          SNS_LISTEN_PORT: String(port),
          SNS_CERT_HOST: `127.0.0.1:${certPort}`,
          NODE_EXTRA_CA_CERTS: join(dir, 'ca.pem'),
          S3_BUCKET: bucket,
          LAKE_MAX_AGE: '200ms',
        },
        ['--exit-idle', '3s', '--state-dir', join(dir, 'state')],
      );
      await lake.waitFor('sns endpoint listening');
      const url = `http://127.0.0.1:${port}/sns`;
      const send = (m: unknown) =>
        fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'text/plain; charset=UTF-8' },
          body: JSON.stringify(m),
        });
      const messages = Array.from({ length: 30 }, (_, i) => feedlotMessage(1000 + i));
      const good = await Promise.all(
        messages.map((m, i) =>
          send(
            signed(
              signing.key,
              { TopicArn: arn, Message: JSON.stringify(m), Subject: i % 2 ? 'consumo' : undefined },
              i % 3 === 0 ? '1' : '2',
              certUrl,
            ),
          ),
        ),
      );
      expect(good.map((r) => r.status)).toEqual(messages.map(() => 200));
      const forged = signed(
        attacker.key,
        { TopicArn: arn, Message: JSON.stringify(feedlotMessage(5000)) },
        '2',
        certUrl,
      );
      const tampered = {
        ...signed(
          signing.key,
          { TopicArn: arn, Message: JSON.stringify(feedlotMessage(5001)) },
          '2',
          certUrl,
        ),
      };
      tampered.Message = JSON.stringify(feedlotMessage(5002));
      const otherTopic = signed(
        signing.key,
        { TopicArn: `${arn}-x`, Message: JSON.stringify(feedlotMessage(5003)) },
        '2',
        certUrl,
      );
      const elsewhere = signed(
        attacker.key,
        { TopicArn: arn, Message: JSON.stringify(feedlotMessage(5004)) },
        '2',
        'https://sns.us-east-1.amazonaws.com.evil.example/x.pem',
      );
      for (const bad of [forged, tampered, otherTopic, elsewhere, { ...forged, Signature: undefined }]) {
        expect((await send(bad)).status).toBe(403);
      }
      expect(await lake.exited, lake.stderr()).toBe(0);
      checkLake(await readLake(bucket), messages);
      expect(certFetches).toBe(1);
      expect(lake.stderr()).toMatch(/consumption\s+source\s+sns\s+-\s+30\s+5\b/);
    } finally {
      await new Promise<void>((r) => certServer.close(() => r()));
    }
  });
});
