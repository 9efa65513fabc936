/**
 * Drives Kinesis stages through the stage contract: an in-process kinesalite server, a stage
 * context, and a source context that collects what a source emits and acks it on demand.
 */

import { mkdtemp } from 'node:fs/promises';
import type { Server } from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CreateStreamCommand,
  DescribeStreamSummaryCommand,
  KinesisClient,
  ListShardsCommand,
  PutRecordsCommand,
  type Shard,
} from '@aws-sdk/client-kinesis';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import pino from 'pino';
import { BufferedScope, FileCheckpointStore } from '../../src/runtime/checkpoint.ts';
import { MetricsRegistry } from '../../src/runtime/metrics.ts';
import type { RecordInit } from '../../src/runtime/record.ts';
import type { SourceContext, StageContext, StageKind } from '../../src/stages/define.ts';

// The stages use the SDK's default credential chain; kinesalite and moto accept any key.
process.env.AWS_ACCESS_KEY_ID ??= 'test';
process.env.AWS_SECRET_ACCESS_KEY ??= 'test';
process.env.AWS_REGION ??= 'us-east-1';

const require = createRequire(import.meta.url);
const kinesalite = require('kinesalite') as (opts: Record<string, unknown>) => Server;

export interface Kinesalite {
  endpoint: string;
  client: KinesisClient;
  close(): Promise<void>;
}

/** Starts kinesalite on a free port, with stream state changes taking effect at once. */
export async function startKinesalite(): Promise<Kinesalite> {
  const server = kinesalite({ createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 100 });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as { port: number };
  const endpoint = `http://127.0.0.1:${port}`;
  const client = kinesisClient(endpoint);
  return {
    endpoint,
    client,
    close: async () => {
      client.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export function kinesisClient(endpoint: string): KinesisClient {
  return new KinesisClient({
    region: 'us-east-1',
    endpoint,
    requestHandler: new NodeHttpHandler(),
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
  });
}

export async function createStream(client: KinesisClient, name: string, shards: number): Promise<Shard[]> {
  await client.send(new CreateStreamCommand({ StreamName: name, ShardCount: shards }));
  for (let i = 0; i < 100; i++) {
    const d = await client.send(new DescribeStreamSummaryCommand({ StreamName: name }));
    if (d.StreamDescriptionSummary?.StreamStatus === 'ACTIVE') break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return (await client.send(new ListShardsCommand({ StreamName: name }))).Shards ?? [];
}

export async function putJson(
  client: KinesisClient,
  stream: string,
  records: { key: string; value: unknown }[],
): Promise<void> {
  for (let i = 0; i < records.length; i += 500) {
    const res = await client.send(
      new PutRecordsCommand({
        StreamName: stream,
        Records: records.slice(i, i + 500).map((r) => ({
          PartitionKey: r.key,
          Data: r.value instanceof Uint8Array ? r.value : Buffer.from(JSON.stringify(r.value)),
        })),
      }),
    );
    if (res.FailedRecordCount) throw new Error(`${res.FailedRecordCount} records failed`);
  }
}

export const suffix = () => Math.random().toString(36).slice(2, 8);

export async function stageContext(
  name: string,
  kind: StageKind,
  type: string,
  stateDir?: string,
): Promise<StageContext> {
  const dir = stateDir ?? (await mkdtemp(join(tmpdir(), 'sluice-kinesis-')));
  const metrics = new MetricsRegistry('t').stage(name, kind, type);
  return { name, pipeline: 'test', log: pino({ level: 'silent' }), metrics, stateDir: dir };
}

export interface Emitted {
  record: RecordInit;
  /** Set for inputs routed to the error output. */
  reason?: string;
}

type AckFn = (error?: Error) => void;

/**
 * A source context over a real file checkpoint store. Batches are acked at once unless
 * `autoAck` is false; then `ackAll()` / `pending` let a test decide.
 */
export class Harness {
  readonly emitted: Emitted[] = [];
  readonly pending: { records: Emitted[]; ack: AckFn }[] = [];
  readonly store: FileCheckpointStore;
  readonly scope: BufferedScope;
  readonly abort = new AbortController();
  autoAck: boolean;
  private waiters: { n: number; resolve: () => void }[] = [];

  constructor(stateDir: string, source = 'src', autoAck = true) {
    this.store = new FileCheckpointStore(stateDir, 'test');
    this.scope = new BufferedScope(this.store, source);
    this.autoAck = autoAck;
  }

  context(): SourceContext {
    return {
      signal: this.abort.signal,
      checkpoints: this.scope,
      emit: async (records, onAck) =>
        this.take(
          records.map((record) => ({ record })),
          onAck,
        ),
      fail: async (record, reason, onAck) => this.take([{ record, reason }], onAck),
    };
  }

  private take(items: Emitted[], onAck?: AckFn): void {
    this.emitted.push(...items);
    const ack = onAck ?? (() => {});
    if (this.autoAck) queueMicrotask(() => ack());
    else this.pending.push({ records: items, ack });
    this.waiters = this.waiters.filter((w) => {
      if (this.emitted.length < w.n) return true;
      w.resolve();
      return false;
    });
  }

  ackAll(error?: Error): void {
    for (const p of this.pending.splice(0)) p.ack(error);
  }

  /** Resolves once `n` records (and error inputs) were emitted; fails after `ms`. */
  waitFor(n: number, ms = 15_000): Promise<void> {
    if (this.emitted.length >= n) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`waited for ${n} records, got ${this.emitted.length}`)),
        ms,
      );
      this.waiters.push({
        n,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }

  values(): unknown[] {
    return this.emitted.filter((e) => !e.reason).map((e) => e.record.value);
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
