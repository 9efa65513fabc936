/**
 * Shared by the Kinesis and Firehose integration tests: boto3 (a client that is not ours) to
 * create streams, put and read back, and the CLI run as a child process with its stdout kept.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import pino from 'pino';
import { MetricsRegistry } from '../../src/runtime/metrics.ts';
import type { StageContext, StageKind } from '../../src/stages/define.ts';
import {
  awsCredentials,
  awsEndpoint,
  awsRegion,
  requireService,
  runPython,
  uniqueSuffix,
} from './services.ts';

export const ROOT = resolve(import.meta.dirname, '../..');

/** What every AWS client here (ours, boto3, the CLI) sees. */
export const awsEnv: Record<string, string> = {
  AWS_ENDPOINT_URL: awsEndpoint(),
  AWS_REGION: awsRegion(),
  AWS_DEFAULT_REGION: awsRegion(),
  AWS_ACCESS_KEY_ID: awsCredentials().accessKeyId,
  AWS_SECRET_ACCESS_KEY: awsCredentials().secretAccessKey,
};
Object.assign(process.env, awsEnv);

export const requireMoto = () => requireService('moto');
export const unique = (prefix: string) => `${prefix}-${uniqueSuffix()}`;
export const tempDir = () => mkdtemp(join(tmpdir(), 'sluice-kinesis-it-'));

/** Runs boto3 code with `arg` bound (JSON from stdin); whatever it assigns to `out` comes back. */
export async function boto3<T>(code: string, arg: unknown = null): Promise<T> {
  const script = `import boto3, json, sys, time, base64\narg = json.load(sys.stdin)\nout = None\n${code}\nprint(json.dumps(out, default=str))\n`;
  const stdout = await runPython(script, arg, { timeoutMs: 300_000 });
  return JSON.parse(stdout) as T;
}

export function createStream(name: string, shards: number): Promise<null> {
  return boto3(
    `c = boto3.client("kinesis")
c.create_stream(StreamName=arg["n"], ShardCount=arg["s"])
c.get_waiter("stream_exists").wait(StreamName=arg["n"], WaiterConfig={"Delay": 0.2})`,
    { n: name, s: shards },
  );
}

/**
 * Puts records `{id, idvendedor, nome}` for ids [from, to) with put_records, 500 a call, one call
 * at a time, keyed by idvendedor.
 */
export function putSales(stream: string, from: number, to: number): Promise<null> {
  return boto3(
    `c = boto3.client("kinesis")
names = ["Ana", "Bia", "Caio", "Davi", "Eva"]
ids = list(range(arg["from"], arg["to"]))
for i in range(0, len(ids), 500):
    recs = [{"Data": json.dumps({"id": n, "idvendedor": str(900 + n % 97), "nome": names[n % 5]}).encode(),
             "PartitionKey": str(900 + n % 97)} for n in ids[i:i + 500]]
    r = c.put_records(StreamName=arg["s"], Records=recs)
    assert r["FailedRecordCount"] == 0, r`,
    { s: stream, from, to },
  );
}

export interface StreamRecord {
  shard: string;
  seq: string;
  key: string;
  data: string;
}

/** Every record of the stream, shard by shard, read with boto3's own loop. */
export function readStream(stream: string): Promise<StreamRecord[]> {
  return boto3(
    `c = boto3.client("kinesis")
out = []
for sh in c.list_shards(StreamName=arg)["Shards"]:
    it = c.get_shard_iterator(StreamName=arg, ShardId=sh["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    while it:
        r = c.get_records(ShardIterator=it, Limit=10000)
        for x in r["Records"]:
            out.append({"shard": sh["ShardId"], "seq": x["SequenceNumber"], "key": x["PartitionKey"],
                        "data": x["Data"].decode("utf-8", "replace")})
        if not r["Records"]:
            break
        it = r.get("NextShardIterator")`,
    stream,
  );
}

export interface CliRun {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Complete stdout lines so far. */
  lines(): string[];
  exited: Promise<number | string>;
  /** Resolves once stdout has `n` lines; rejects if the process exits first or after `ms`. */
  waitForLines(n: number, ms?: number): Promise<void>;
}

/** Starts `sluice run <spec> --no-tui …` with the AWS environment plus `env`. */
export function runCli(spec: string, env: Record<string, string>, args: string[] = []): CliRun {
  const child = spawn(
    resolve(ROOT, 'node_modules/.bin/node'),
    ['src/cli.ts', 'run', spec, '--no-tui', ...args],
    {
      cwd: ROOT,
      env: { ...process.env, ...awsEnv, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  let err = '';
  let lineCount = 0;
  const listeners = new Set<() => void>();
  child.stdout?.on('data', (d: Buffer) => {
    const s = d.toString();
    out += s;
    for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) === 10) lineCount++;
    for (const l of listeners) l();
  });
  child.stderr?.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const exited = new Promise<number | string>((r) =>
    child.on('exit', (code, signal) => r(code ?? signal ?? -1)),
  );
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    lines: () => out.split('\n').filter((l) => l !== ''),
    exited,
    waitForLines(n, ms = 60_000) {
      return new Promise((res, rej) => {
        const check = () => {
          if (lineCount < n) return;
          done();
          res();
        };
        const timer = setTimeout(() => {
          done();
          rej(new Error(`waited ${ms} ms for ${n} lines, got ${lineCount}:\n${err.slice(-2000)}`));
        }, ms);
        const done = () => {
          clearTimeout(timer);
          listeners.delete(check);
        };
        listeners.add(check);
        exited.then(() => {
          if (lineCount >= n) return;
          done();
          rej(new Error(`process exited with ${lineCount} of ${n} lines:\n${err.slice(-2000)}`));
        });
        check();
      });
    },
  };
}

/** Runs the CLI to its end; fails with its stderr unless it exits 0. */
export async function runToEnd(
  spec: string,
  env: Record<string, string>,
  args: string[] = [],
): Promise<CliRun> {
  const run = runCli(spec, env, args);
  const code = await run.exited;
  if (code !== 0) throw new Error(`sluice exited with ${code}:\n${run.stderr().slice(-3000)}`);
  return run;
}

export function stageContext(name: string, kind: StageKind, type: string): StageContext {
  const metrics = new MetricsRegistry('t').stage(name, kind, type);
  return { name, pipeline: 'test', log: pino({ level: 'silent' }), metrics, stateDir: tmpdir() };
}
