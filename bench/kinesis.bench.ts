// Kinesis source throughput against moto: records/s from a 4-shard stream through sluice (the
// kinesis source, JSON decoding, a file sink writing ndjson) next to the seeds' boto3 read loop
// (get_shard_iterator + get_records until empty, json.loads, one line per record to a file),
// run over every shard one after the other, on the same stream in the same run.
//
//   scripts/services.sh up
//   node bench/kinesis.bench.ts [records] [rounds]
//
// Environment: AWS_ENDPOINT_URL (default http://127.0.0.1:5000), AWS_REGION (us-east-1).
// Note: the boto3 loop calls GetRecords back to back; sluice keeps to AWS's 5 calls per second
// per shard (200 ms between calls), which moto does not require, so sluice pays for manners.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Pipeline } from '../src/runtime/engine.ts';
import { validateText } from '../src/spec/validate.ts';

process.env.AWS_ENDPOINT_URL ??= 'http://127.0.0.1:5000';
process.env.AWS_REGION ??= 'us-east-1';
process.env.AWS_DEFAULT_REGION ??= process.env.AWS_REGION;
process.env.AWS_ACCESS_KEY_ID ??= 'test';
process.env.AWS_SECRET_ACCESS_KEY ??= 'test';

const total = Number(process.argv[2] ?? 40_000);
const rounds = Number(process.argv[3] ?? 2);
const stream = `bench-kinesis-${Math.random().toString(36).slice(2, 8)}`;
const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-kinesis-'));

function python(code: string, arg: unknown): string {
  return execFileSync('python3', ['-c', code], {
    input: JSON.stringify(arg),
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
}

// Setup (not timed): the stream and its records, put by boto3.
python(
  `import boto3, json, sys
a = json.load(sys.stdin)
c = boto3.client("kinesis")
c.create_stream(StreamName=a["s"], ShardCount=4)
c.get_waiter("stream_exists").wait(StreamName=a["s"], WaiterConfig={"Delay": 0.2})
names = ["Ana", "Bia", "Caio", "Davi", "Eva"]
for i in range(0, a["n"], 500):
    recs = [{"Data": json.dumps({"id": n, "idvendedor": str(900 + n % 97), "nome": names[n % 5], "valor": n * 1.5}).encode(),
             "PartitionKey": str(n)} for n in range(i, min(i + 500, a["n"]))]
    assert c.put_records(StreamName=a["s"], Records=recs)["FailedRecordCount"] == 0`,
  { s: stream, n: total },
);

async function sluiceRun(round: number): Promise<number> {
  const spec = `version: 1
name: bench-kinesis-${round}
sources:
  flow: { type: kinesis, stream: ${stream}, start: trim_horizon, limit: 10000 }
sinks:
  out:
    type: file
    from: [flow]
    dir: ${join(dir, `sluice-${round}`)}
    path: 'part-{first_position}{ext}'
    buffer: { max_records: 10000, max_age: 100ms }
`;
  const { spec: pipelineSpec, diagnostics } = validateText('bench.yaml', spec);
  if (!pipelineSpec) throw new Error(diagnostics.map((d) => d.message).join('\n'));
  const pipeline = new Pipeline(pipelineSpec, {
    stateDir: join(dir, `state-${round}`),
    log: pino({ level: 'warn' }),
  });
  const t0 = performance.now();
  const running = pipeline.run();
  const out = () => pipeline.metrics.snapshot().stages.find((s) => s.name === 'out')?.recordsOut ?? 0;
  while (out() < total) await new Promise((r) => setTimeout(r, 5));
  const seconds = (performance.now() - t0) / 1000;
  pipeline.stop('bench done');
  await running;
  return total / seconds;
}

function boto3Run(round: number): number {
  const out = python(
    `import boto3, json, sys, time
a = json.load(sys.stdin)
c = boto3.client("kinesis")
n = 0
t0 = time.perf_counter()
with open(a["f"], "w") as f:
    for sh in c.list_shards(StreamName=a["s"])["Shards"]:
        it = c.get_shard_iterator(StreamName=a["s"], ShardId=sh["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while it is not None:
            r = c.get_records(ShardIterator=it, Limit=10000)
            if not r["Records"]:
                break
            for x in r["Records"]:
                f.write(json.dumps(json.loads(x["Data"])) + "\\n")
                n += 1
            it = r["NextShardIterator"]
print(json.dumps({"n": n, "s": time.perf_counter() - t0}))`,
    { s: stream, f: join(dir, `boto3-${round}.ndjson`) },
  );
  const { n, s } = JSON.parse(out) as { n: number; s: number };
  if (n !== total) throw new Error(`boto3 read ${n} of ${total}`);
  return n / s;
}

const ours: number[] = [];
const theirs: number[] = [];
for (let r = 0; r < rounds; r++) {
  ours.push(await sluiceRun(r));
  theirs.push(boto3Run(r));
}
rmSync(dir, { recursive: true, force: true });
const best = (xs: number[]) => Math.max(...xs);
const fmt = (n: number) => `${Math.round(n).toLocaleString('en-US')} records/s`;
console.log(
  `kinesis → file, ${total} records in 4 shards on moto (${process.env.AWS_ENDPOINT_URL}), best of ${rounds}`,
);
console.log(`  sluice (kinesis source → file sink)   ${fmt(best(ours))}   runs: ${ours.map(fmt).join(', ')}`);
console.log(
  `  boto3 seed loop (all shards, serial)  ${fmt(best(theirs))}   runs: ${theirs.map(fmt).join(', ')}`,
);
console.log(`  ratio sluice / boto3                  ${(best(ours) / best(theirs)).toFixed(2)}x`);
