/**
 * Helpers for the Kafka integration tests: the broker from scripts/services.sh, topics with a
 * random suffix, and clients that are not sluice's own (kcat, Kafka's ConsumerGroupCommand)
 * to write input and to read back committed group offsets.
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { Admin, Producer } from '@platformatic/kafka';
import pino from 'pino';
import type { CheckpointScope } from '../../src/runtime/checkpoint.ts';
import { MetricsRegistry } from '../../src/runtime/metrics.ts';
import type { RecordInit } from '../../src/runtime/record.ts';
import type { SourceContext, StageContext } from '../../src/stages/define.ts';
import { kafkaBrokers, kafkaLibs, requireService } from './services.ts';

const run = promisify(execFile);

export const BROKERS = kafkaBrokers();

export const suffix = (): string => randomBytes(4).toString('hex');

/** Fails (never skips) when the broker is down, with the hint to start it. */
export async function requireKafka(): Promise<void> {
  await requireService('kafka');
}

export async function createTopic(name: string, partitions: number): Promise<void> {
  const admin = new Admin({ clientId: 'sluice-test', bootstrapBrokers: BROKERS.split(',') });
  try {
    await admin.createTopics({ topics: [name], partitions, replicas: 1 });
    // Wait until every partition has a leader, or the first produce races the election.
    for (let i = 0; i < 50; i++) {
      const md = await admin.metadata({ topics: [name], forceUpdate: true });
      const t = md.topics.get(name);
      if (t && t.partitionsCount === partitions && t.partitions.every((p) => p.leader >= 0)) return;
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await admin.close();
  }
}

export async function deleteTopic(name: string): Promise<void> {
  const admin = new Admin({ clientId: 'sluice-test', bootstrapBrokers: BROKERS.split(',') });
  try {
    await admin.deleteTopics({ topics: [name] });
  } catch {
    // best effort
  } finally {
    await admin.close();
  }
}

/** Produces lines `key<TAB>value` with kcat (librdkafka), partitioned by key. */
export async function kcatProduce(topic: string, lines: string[]): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const p = spawn(
      'kcat',
      ['-P', '-b', BROKERS, '-t', topic, '-K', '\t', '-z', 'lz4', '-X', 'linger.ms=20'],
      {
        stdio: ['pipe', 'ignore', 'pipe'],
      },
    );
    let err = '';
    p.stderr.on('data', (d) => {
      err += d;
    });
    p.on('error', reject);
    p.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`kcat -P exited ${code}: ${err}`))));
    p.stdin.end(`${lines.join('\n')}\n`);
  });
}

/** Produces values in record batches of `perBatch` messages (one request each), to control batch sizes. */
export async function produceInBatches(topic: string, values: string[], perBatch: number): Promise<void> {
  const producer = new Producer({
    clientId: 'sluice-test',
    bootstrapBrokers: BROKERS.split(','),
    acks: 1,
    idempotent: false,
  });
  try {
    for (let at = 0; at < values.length; at += perBatch) {
      await producer.send({
        messages: values.slice(at, at + perBatch).map((v) => ({ topic, value: Buffer.from(v) })),
      });
    }
  } finally {
    await producer.close();
  }
}

/** Reads a whole topic with kcat: one JSON object per message with key, payload, partition, offset, headers. */
export async function kcatConsume(
  topic: string,
): Promise<{ key: string | null; payload: string; partition: number; offset: number; headers: string[] }[]> {
  const { stdout } = await run('kcat', ['-C', '-b', BROKERS, '-t', topic, '-e', '-q', '-J'], {
    maxBuffer: 256 * 1024 * 1024,
  });
  return stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l));
}

/** End offset (high watermark) per partition, from kcat's -Q. */
export async function endOffsets(topic: string, partitions: number): Promise<number[]> {
  const out: number[] = [];
  for (let p = 0; p < partitions; p++) {
    // -1 is "end" in kcat's query syntax.
    const { stdout } = await run('kcat', ['-Q', '-b', BROKERS, '-t', `${topic}:${p}:-1`]);
    const m = /offset (\d+)/.exec(stdout);
    out.push(m ? Number(m[1]) : Number.NaN);
  }
  return out;
}

/** Committed group offsets per partition, from Kafka's own ConsumerGroupCommand. */
export async function committedOffsets(group: string, topic: string): Promise<Map<number, number>> {
  const libs = kafkaLibs();
  const { stdout } = await run(
    'java',
    [
      '-Xmx128m',
      '-Dorg.slf4j.simpleLogger.defaultLogLevel=error',
      '-cp',
      `${libs}/*`,
      'org.apache.kafka.tools.consumer.group.ConsumerGroupCommand',
      '--bootstrap-server',
      BROKERS,
      '--describe',
      '--group',
      group,
    ],
    { maxBuffer: 16 * 1024 * 1024 },
  );
  const out = new Map<number, number>();
  for (const line of stdout.split('\n')) {
    const cols = line.trim().split(/\s+/);
    // GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG ...
    if (cols[1] === topic && /^\d+$/.test(cols[2]) && /^\d+$/.test(cols[3]))
      out.set(Number(cols[2]), Number(cols[3]));
  }
  return out;
}

export function stageContext(name = 'in'): StageContext {
  return {
    name,
    pipeline: 'test',
    log: pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }),
    metrics: new MetricsRegistry('test').stage(name, 'source', 'kafka'),
    stateDir: '.sluice-test',
  };
}

const nullScope: CheckpointScope = {
  load: async () => undefined,
  commit: () => undefined,
  flush: async () => undefined,
};

/** A SourceContext that collects batches; the test decides when to ack them. */
export class CollectingContext {
  readonly abort = new AbortController();
  readonly batches: { records: RecordInit[]; ack: (e?: Error) => void; acked: boolean }[] = [];
  readonly failures: { input: RecordInit; reason: string }[] = [];
  autoAck = true;

  get ctx(): SourceContext {
    return {
      signal: this.abort.signal,
      checkpoints: nullScope,
      emit: async (records, onAck) => {
        const b = { records, ack: (e?: Error) => onAck?.(e), acked: false };
        this.batches.push(b);
        if (this.autoAck) {
          b.acked = true;
          queueMicrotask(() => b.ack());
        }
      },
      fail: async (input, reason, onAck) => {
        this.failures.push({ input, reason });
        queueMicrotask(() => onAck?.());
      },
    };
  }

  get records(): RecordInit[] {
    return this.batches.flatMap((b) => b.records);
  }

  ackAll(): void {
    for (const b of this.batches) {
      if (!b.acked) {
        b.acked = true;
        b.ack();
      }
    }
  }
}

export async function until(
  cond: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface SluiceRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** A `sluice run` child process (the real CLI, under the project's Node). */
export class SluiceProcess {
  readonly child: ReturnType<typeof spawn>;
  stdout = '';
  stderr = '';
  readonly done: Promise<SluiceRun>;

  constructor(pipeline: string, env: Record<string, string>, args: string[] = []) {
    this.child = spawn('node_modules/.bin/node', ['src/cli.ts', 'run', pipeline, '--no-tui', ...args], {
      env: { ...process.env, SLUICE_LOG_LEVEL: 'info', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.stdout?.on('data', (d) => {
      this.stdout += d;
    });
    this.child.stderr?.on('data', (d) => {
      this.stderr += d;
    });
    this.done = new Promise((resolve) => {
      this.child.on('close', (code, signal) =>
        resolve({ code, signal, stdout: this.stdout, stderr: this.stderr }),
      );
    });
  }

  /** Structured log lines (pino JSON) from stderr. */
  logs(): Record<string, unknown>[] {
    return this.stderr
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => {
        try {
          return JSON.parse(l) as Record<string, unknown>;
        } catch {
          return {};
        }
      });
  }

  kill(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }
}

export function runSluice(pipeline: string, env: Record<string, string>, args: string[]): Promise<SluiceRun> {
  return new SluiceProcess(pipeline, env, args).done;
}
