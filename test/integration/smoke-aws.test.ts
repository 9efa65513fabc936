/**
 * moto answers real AWS clients: boto3 (not sluice's SDK) drives Kinesis, S3 and SNS over HTTP.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireService, runPython, uniqueSuffix } from './services.ts';

// Each test probes first, so a missing service fails it (with a hint) instead of skipping it.
describe('moto with boto3', () => {
  it('Kinesis: 10 records put into a 2-shard stream come back from every shard (TRIM_HORIZON)', async () => {
    await requireService('moto');
    const stream = `smoke-${uniqueSuffix()}`;
    // Explicit hash keys in each half of the hash range, so both shards get records.
    const records = Array.from({ length: 10 }, (_, i) => ({
      data: `record-${i}`,
      key: `pk-${i}`,
      hash: i % 2 === 0 ? '1' : String(2n ** 127n + 1n),
    }));
    const out = await runPython(
      `
import json, sys, boto3
args = json.load(sys.stdin)
k = boto3.client('kinesis')
name = args['stream']
k.create_stream(StreamName=name, ShardCount=2)
k.get_waiter('stream_exists').wait(StreamName=name, WaiterConfig={'Delay': 0.2, 'MaxAttempts': 50})
put = []
for r in args['records']:
    res = k.put_record(StreamName=name, Data=r['data'].encode(), PartitionKey=r['key'],
                       ExplicitHashKey=r['hash'])
    put.append({'data': r['data'], 'shard': res['ShardId'], 'seq': res['SequenceNumber']})
got = {}
for shard in k.list_shards(StreamName=name)['Shards']:
    sid = shard['ShardId']
    it = k.get_shard_iterator(StreamName=name, ShardId=sid, ShardIteratorType='TRIM_HORIZON')['ShardIterator']
    got[sid] = []
    for _ in range(10):
        res = k.get_records(ShardIterator=it, Limit=100)
        got[sid] += [x['Data'].decode() for x in res['Records']]
        it = res.get('NextShardIterator')
        if not res['Records'] or not it:
            break
k.delete_stream(StreamName=name)
print(json.dumps({'put': put, 'got': got}))
`,
      { stream, records },
    );
    const { put, got } = JSON.parse(out) as {
      put: { data: string; shard: string; seq: string }[];
      got: Record<string, string[]>;
    };
    expect(Object.keys(got)).toHaveLength(2);
    for (const [shard, data] of Object.entries(got)) {
      // Every shard returns exactly what was put into it, in order.
      expect(data.length).toBeGreaterThan(0);
      expect(data).toEqual(put.filter((p) => p.shard === shard).map((p) => p.data));
    }
    expect(
      Object.values(got)
        .flat()
        .sort((a, b) => Number(a.split('-')[1]) - Number(b.split('-')[1])),
    ).toEqual(records.map((r) => r.data));
  });

  it('S3: a bucket round-trips an object byte for byte', async () => {
    await requireService('moto');
    const bucket = `smoke-${uniqueSuffix()}`;
    const body = `fazenda;hectares\nBoa Vista;1234.5\nSão João;99\n`;
    const out = await runPython(
      `
import json, sys, boto3
from botocore.config import Config
args = json.load(sys.stdin)
s3 = boto3.client('s3', config=Config(s3={'addressing_style': 'path'}))
s3.create_bucket(Bucket=args['bucket'])
s3.put_object(Bucket=args['bucket'], Key='in/farms.csv', Body=args['body'].encode(), ContentType='text/csv')
obj = s3.get_object(Bucket=args['bucket'], Key='in/farms.csv')
keys = [o['Key'] for o in s3.list_objects_v2(Bucket=args['bucket'])['Contents']]
print(json.dumps({'body': obj['Body'].read().decode(), 'type': obj['ContentType'],
                  'length': obj['ContentLength'], 'keys': keys}))
`,
      { bucket, body },
    );
    const got = JSON.parse(out) as { body: string; type: string; length: number; keys: string[] };
    expect(got.body).toBe(body);
    expect(got.length).toBe(Buffer.byteLength(body));
    expect(got.type).toBe('text/csv');
    expect(got.keys).toEqual(['in/farms.csv']);
  });

  describe('SNS over HTTP', () => {
    let server: Server;
    let port = 0;
    const received: { path: string; headers: Record<string, unknown>; body: string }[] = [];
    let arrived: () => void = () => undefined;

    beforeAll(async () => {
      server = createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          received.push({
            path: req.url ?? '',
            headers: req.headers,
            body: Buffer.concat(chunks).toString(),
          });
          res.writeHead(200).end();
          arrived();
        });
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      port = (server.address() as AddressInfo).port;
    });

    afterAll(async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });

    it('publish reaches a subscribed HTTP endpoint as a Notification envelope', async () => {
      await requireService('moto');
      const topic = `smoke-${uniqueSuffix()}`;
      const message = JSON.stringify({ fazenda: 'Boa Vista', cabecas: 42, at: new Date().toISOString() });
      const notification = new Promise<void>((resolve) => {
        arrived = () => {
          if (received.some((r) => r.body.includes('"Notification"'))) resolve();
        };
      });
      const out = await runPython(
        `
import json, sys, boto3
args = json.load(sys.stdin)
sns = boto3.client('sns')
arn = sns.create_topic(Name=args['topic'])['TopicArn']
sub = sns.subscribe(TopicArn=arn, Protocol='http', Endpoint=args['endpoint'], ReturnSubscriptionArn=True)
res = sns.publish(TopicArn=arn, Message=args['message'], Subject='smoke')
print(json.dumps({'arn': arn, 'subscription': sub['SubscriptionArn'], 'messageId': res['MessageId']}))
`,
        { topic, message, endpoint: `http://127.0.0.1:${port}/sns/${topic}` },
      );
      const { arn, subscription, messageId } = JSON.parse(out) as {
        arn: string;
        subscription: string;
        messageId: string;
      };
      expect(subscription.startsWith(`${arn}:`)).toBe(true);

      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        notification,
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error('no SNS notification arrived in 10 s')), 10_000);
        }),
      ]).finally(() => clearTimeout(timer));

      const delivery = received.find((r) => r.body.includes('"Notification"'))!;
      expect(delivery.path).toBe(`/sns/${topic}`);
      const envelope = JSON.parse(delivery.body) as Record<string, unknown>;
      expect(envelope.Type).toBe('Notification');
      expect(envelope.Message).toBe(message);
      expect(envelope.MessageId).toBe(messageId);
      expect(envelope.TopicArn).toBe(arn);
      expect(envelope.Subject).toBe('smoke');
      expect(typeof envelope.Signature).toBe('string');
    });
  });
});
