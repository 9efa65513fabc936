// Kafka records/s consumed by sluice against a bare client loop, in the same run, from the
// same topic on the broker of scripts/services.sh.
//
//   node bench/kafka.bench.ts                       200,000 records of ~200 bytes
//   BENCH_RECORDS=1000000 node bench/kafka.bench.ts
//
// sluice: the engine running `kafka source → stdout sink` (sample so small it prints one
// line: a null sink that still acks), offsets committed to the group as acks come in.
// source only: the kafka source through the stage contract, every batch acked at once (no
// engine, no channels), to show where the time goes.
// baseline: @platformatic/kafka's consumer stream read in a for-await loop, JSON.parse per
// value, no commits: the least a consumer can do.
// Each consumer is a new group reading the topic from the beginning.
// The last line is one JSON object with the figures.

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Admin, Consumer, Producer } from '@platformatic/kafka';
import pino from 'pino';
import { Pipeline } from '../src/runtime/engine.ts';
import { MetricsRegistry } from '../src/runtime/metrics.ts';
import { validateText } from '../src/spec/validate.ts';
import type { SourceContext } from '../src/stages/define.ts';
import { type KafkaSource, kafkaSource } from '../src/stages/sources/kafka.ts';

const RECORDS = Number(process.env.BENCH_RECORDS ?? 200_000);
const BROKERS = process.env.KAFKA_BROKERS ?? '127.0.0.1:9092';
const PARTITIONS = 3;
const id = randomBytes(4).toString('hex');
const topic = `bench-kafka-${id}`;
const log = pino({ level: 'silent' });

async function prepare(): Promise<void> {
  const admin = new Admin({ clientId: 'bench', bootstrapBrokers: BROKERS.split(',') });
  try {
    await admin.listTopics();
  } catch (err) {
    throw new Error(
      `Kafka at ${BROKERS} is not reachable (${(err as Error).message}): run scripts/services.sh up`,
    );
  }
  await admin.createTopics({ topics: [topic], partitions: PARTITIONS, replicas: 1 });
  await new Promise((r) => setTimeout(r, 500));
  await admin.close();
  const producer = new Producer({
    clientId: 'bench',
    bootstrapBrokers: BROKERS.split(','),
    idempotent: false,
    acks: 1,
  });
  const chunk = 5_000;
  for (let at = 0; at < RECORDS; at += chunk) {
    const messages = [];
    for (let i = at; i < Math.min(RECORDS, at + chunk); i++) {
      const value = {
        id_lote: `L${i}`,
        id_curral: `C${i % 40}`,
        id_raca: 'nelore',
        peso_medio: 400 + (i % 150),
        quantidade_animais: 20 + (i % 120),
        consumo_real: 12.5,
        data: '2024-03-20 10:30:45',
        cod_cliente: String((i % 2) + 1),
      };
      messages.push({ topic, key: Buffer.from(`L${i}`), value: Buffer.from(JSON.stringify(value)) });
    }
    await producer.send({ messages });
  }
  await producer.close();
}

async function sluiceEngine(): Promise<number> {
  const yaml = `
version: 1
name: bench-kafka
sources:
  in:
    type: kafka
    brokers: ${BROKERS}
    topics: [${topic}]
    group: bench-sluice-${id}
    start: earliest
    max_batch: 1000
sinks:
  nothing:
    type: stdout
    from: [in]
    sample: 0.000000001
    buffer: { max_records: 2000, max_age: 5ms }
`;
  const { spec, diagnostics } = validateText('bench-kafka.yaml', yaml, {});
  if (!spec) throw new Error(diagnostics.map((d) => d.message).join('; '));
  const stateDir = mkdtempSync(join(tmpdir(), 'bench-kafka-'));
  const pipeline = new Pipeline(spec, { stateDir, log });
  const t0 = performance.now();
  const done = pipeline.run();
  const sink = () => pipeline.metrics.snapshot().stages.find((s) => s.name === 'nothing');
  while ((sink()?.recordsOut ?? 0) < RECORDS) await new Promise((r) => setTimeout(r, 2));
  const ms = performance.now() - t0;
  pipeline.stop('benchmark done');
  await done;
  rmSync(stateDir, { recursive: true, force: true });
  return ms;
}

async function sourceOnly(): Promise<number> {
  const metrics = new MetricsRegistry('bench').stage('in', 'source', 'kafka');
  const source = kafkaSource.create(
    {
      brokers: BROKERS,
      topics: [topic],
      group: `bench-source-${id}`,
      start: 'earliest',
      codec: 'json',
      max_batch: 1000,
    } as never,
    { name: 'in', pipeline: 'bench', log, metrics, stateDir: tmpdir() },
  ) as KafkaSource;
  const abort = new AbortController();
  let seen = 0;
  let finished: () => void = () => undefined;
  const all = new Promise<void>((r) => {
    finished = r;
  });
  const ctx: SourceContext = {
    signal: abort.signal,
    checkpoints: { load: async () => undefined, commit: () => undefined, flush: async () => undefined },
    emit: async (records, onAck) => {
      seen += records.length;
      onAck?.();
      if (seen >= RECORDS) finished();
    },
    fail: async (_input, _reason, onAck) => {
      onAck?.();
    },
  };
  const t0 = performance.now();
  const running = source.run(ctx);
  await all;
  const ms = performance.now() - t0;
  abort.abort();
  await running;
  await source.close();
  return ms;
}

async function baseline(): Promise<number> {
  const consumer = new Consumer({
    clientId: 'bench-baseline',
    groupId: `bench-baseline-${id}`,
    bootstrapBrokers: BROKERS.split(','),
    autocommit: false,
    maxWaitTime: 500,
  });
  const t0 = performance.now();
  const stream = await consumer.consume({ topics: [topic], mode: 'earliest', autocommit: false });
  let n = 0;
  let sum = 0;
  for await (const m of stream) {
    const v = JSON.parse((m.value as Buffer).toString('utf8')) as { quantidade_animais: number };
    sum += v.quantidade_animais;
    if (++n >= RECORDS) break;
  }
  const ms = performance.now() - t0;
  if (sum === 0) throw new Error('nothing read');
  await stream.close();
  await consumer.close(true);
  return ms;
}

await prepare();
const rps = (ms: number) => Math.round((RECORDS / ms) * 1000);
// Warm the JIT and the broker's page cache with one pass of each, then measure.
await baseline();
const baseMs = await baseline();
const sourceMs = await sourceOnly();
const engineMs = await sluiceEngine();

const admin = new Admin({ clientId: 'bench', bootstrapBrokers: BROKERS.split(',') });
await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
await admin.close();

console.log(`records                     ${RECORDS} (${PARTITIONS} partitions, ~200 B JSON)`);
console.log(`baseline (bare client loop) ${rps(baseMs).toLocaleString('en')} records/s`);
console.log(
  `kafka source, contract only ${rps(sourceMs).toLocaleString('en')} records/s  ratio ${(baseMs / sourceMs).toFixed(2)}`,
);
console.log(
  `sluice kafka → null sink    ${rps(engineMs).toLocaleString('en')} records/s  ratio ${(baseMs / engineMs).toFixed(2)}`,
);
console.log(
  JSON.stringify({
    records: RECORDS,
    baseline_rps: rps(baseMs),
    source_rps: rps(sourceMs),
    sluice_rps: rps(engineMs),
    ratio: Number((baseMs / engineMs).toFixed(3)),
  }),
);
process.exit(0);
