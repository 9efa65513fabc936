// Kinesis scale-out against moto: records/s read from one 8-shard stream by 1, 2 and 3
// `sluice run` processes sharing a DynamoDB lease table, with each process's CPU, next to a
// bare @aws-sdk/client-kinesis loop in plain JS (one process, every shard at once, GetRecords
// back to back) on the same stream in the same run: moto's own ceiling on this machine.
//
//   scripts/services.sh up
//   node_modules/.bin/node bench/kinesis-scale.bench.ts [records]
//
// Each run reads the whole stream from TRIM_HORIZON under a fresh lease table and ends when
// every record was printed once; records/s = records / (last record − first record). CPU is
// user+system time per process from /proc, over the whole run.

import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  GetRecordsCommand,
  GetShardIteratorCommand,
  KinesisClient,
  ListShardsCommand,
} from '@aws-sdk/client-kinesis';
import { NodeHttpHandler } from '@smithy/node-http-handler';

process.env.AWS_ENDPOINT_URL ??= 'http://127.0.0.1:5000';
process.env.AWS_REGION ??= 'us-east-1';
process.env.AWS_DEFAULT_REGION ??= process.env.AWS_REGION;
process.env.AWS_ACCESS_KEY_ID ??= 'test';
process.env.AWS_SECRET_ACCESS_KEY ??= 'test';

const total = Number(process.argv[2] ?? 40_000);
const stream = `bench-scale-${Math.random().toString(36).slice(2, 8)}`;
const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-scale-'));
const ROOT = resolve(import.meta.dirname, '..');
const TICK = 100; // clock ticks per second (/proc stat units)

execFileSync(
  'python3',
  [
    '-c',
    `import boto3, json, sys
a = json.load(sys.stdin)
c = boto3.client("kinesis")
c.create_stream(StreamName=a["s"], ShardCount=8)
c.get_waiter("stream_exists").wait(StreamName=a["s"], WaiterConfig={"Delay": 0.2})
for i in range(0, a["n"], 500):
    recs = [{"Data": json.dumps({"id": n, "nome": "Ana", "valor": n * 1.5}).encode(), "PartitionKey": str(n)}
            for n in range(i, min(i + 500, a["n"]))]
    assert c.put_records(StreamName=a["s"], Records=recs)["FailedRecordCount"] == 0`,
  ],
  { input: JSON.stringify({ s: stream, n: total }), stdio: ['pipe', 'inherit', 'inherit'] },
);

function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICK; // utime, stime
}

async function sluice(processes: number): Promise<{ rate: number; cpu: number[] }> {
  const table = `bench-leases-${processes}-${Math.random().toString(36).slice(2, 8)}`;
  const spec = join(dir, `scale-${processes}.yaml`);
  writeFileSync(
    spec,
    `version: 1
name: bench-scale
sources:
  src:
    type: kinesis
    stream: ${stream}
    start: trim_horizon
    limit: 10000
    checkpoint: { dynamodb: { table: ${table}, lease_duration: 3s } }
sinks:
  out: { type: stdout, from: [src] }
`,
  );
  const seen = new Set<number>();
  let first = 0;
  let last = 0;
  const children = Array.from({ length: processes }, (_, i) => {
    const child = spawn(
      join(ROOT, 'node_modules/.bin/node'),
      ['src/cli.ts', 'run', spec, '--no-tui', '--state-dir', join(dir, `s${processes}-${i}`)],
      {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'ignore'],
      },
    );
    let partial = '';
    child.stdout.on('data', (d: Buffer) => {
      const lines = (partial + d.toString()).split('\n');
      partial = lines.pop() ?? '';
      first ||= Date.now();
      for (const l of lines) seen.add((JSON.parse(l) as { id: number }).id);
      last = Date.now();
    });
    return child;
  });
  while (seen.size < total) await new Promise((r) => setTimeout(r, 100));
  const cpu = children.map((c) => cpuSeconds(c.pid as number));
  await Promise.all(
    children.map(
      (c) =>
        new Promise((r) => {
          c.on('exit', r);
          c.kill('SIGTERM');
        }),
    ),
  );
  return { rate: total / ((last - first) / 1000), cpu };
}

/** The baseline: the bare client, one loop per shard, GetRecords back to back until a call returns nothing. */
async function bare(): Promise<number> {
  const client = new KinesisClient({
    endpoint: process.env.AWS_ENDPOINT_URL,
    region: process.env.AWS_REGION,
    requestHandler: new NodeHttpHandler(),
  });
  const shards = (await client.send(new ListShardsCommand({ StreamName: stream }))).Shards ?? [];
  let n = 0;
  const t0 = Date.now();
  await Promise.all(
    shards.map(async (s) => {
      let it = (
        await client.send(
          new GetShardIteratorCommand({
            StreamName: stream,
            ShardId: s.ShardId,
            ShardIteratorType: 'TRIM_HORIZON',
          }),
        )
      ).ShardIterator;
      while (it) {
        const r = await client.send(new GetRecordsCommand({ ShardIterator: it, Limit: 10000 }));
        const recs = r.Records ?? [];
        for (const rec of recs) JSON.parse(Buffer.from(rec.Data ?? []).toString('utf8'));
        n += recs.length;
        if (recs.length === 0) break;
        it = r.NextShardIterator;
      }
    }),
  );
  client.destroy();
  if (n !== total) throw new Error(`bare loop read ${n} of ${total}`);
  return total / ((Date.now() - t0) / 1000);
}

const baseline = await bare();
console.log(`bare @aws-sdk loop, 1 process, 8 shards at once: ${Math.round(baseline)} records/s`);
for (const p of [1, 2, 3]) {
  const { rate, cpu } = await sluice(p);
  console.log(
    `sluice, ${p} process${p > 1 ? 'es' : ''}: ${Math.round(rate)} records/s (${(rate / baseline).toFixed(2)}× the bare loop); CPU s per process: ${cpu.map((c) => c.toFixed(1)).join(', ')}`,
  );
}
console.log(
  `${total} records, stream ${stream}; moto serves every call from one Python process: it is the limit here`,
);
