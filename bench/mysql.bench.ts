// Rows/s into MariaDB: pipelines/feedlot-kafka-mysql.yaml reading a Kafka topic, against a
// mysql2 multi-row insert loop writing the same rows, in the same run, on the services of
// scripts/services.sh.
//
//   node bench/mysql.bench.ts                        100,000 feedlot records
//   BENCH_RECORDS=500000 node bench/mysql.bench.ts
//   BENCH_BATCH=5000 node bench/mysql.bench.ts       rows per transaction on both sides
//                                                    (default: the pipeline's buffer, 1000)
//
// sluice: the engine runs the pipeline in this process (Kafka group join, JSON decode,
// enrich with CEL, dedup, upsert in batches of 1000, one transaction each, offsets committed
// after each COMMIT); the clock runs from start until the sink has written every row.
// baseline: the same topic read with the bare @platformatic/kafka consumer (its own group),
// JSON.parse per message, enriched in plain JavaScript (uuid v5 from node:crypto's SHA-1, no
// sluice code), written with mysql2's bulk form `INSERT … VALUES ? ON DUPLICATE KEY UPDATE …`
// (rows as nested arrays, escaped by the driver into one text statement: less client CPU than
// binding 13,000 parameters with execute) in the same batches and transactions, offsets
// committed after each COMMIT: no expressions, no acks, one connection, one batch at a time.
// Each side writes its own new table. Besides rows/s, each side's process CPU per row (user +
// system, µs) is printed: on a loaded machine it moves less than the wall clock. The last line is
// one JSON object with the figures.

import { hash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Admin, Consumer, type Message, Producer } from '@platformatic/kafka';
import mysql from 'mysql2/promise';
import pino from 'pino';
import { Pipeline } from '../src/runtime/engine.ts';
import { validateText } from '../src/spec/validate.ts';

const RECORDS = Number(process.env.BENCH_RECORDS ?? 100_000);
const BROKERS = process.env.KAFKA_BROKERS ?? '127.0.0.1:9092';
const MYSQL_URL = process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/fazendas';
/** Rows per transaction on both sides; the pipeline's own buffer unless BENCH_BATCH says. */
const BATCH = Number(process.env.BENCH_BATCH ?? 1000);
const id = randomBytes(4).toString('hex');
const topic = `bench-feedlot-${id}`;
const sluiceTable = `bench_sluice_${id}`;
const baselineTable = `bench_baseline_${id}`;
const PIPELINE = new URL('../pipelines/feedlot-kafka-mysql.yaml', import.meta.url).pathname;

const COLUMNS: [string, string][] = [
  ['id_treated_data', 'VARCHAR(255)'],
  ['id_curral', 'VARCHAR(255)'],
  ['id_raca', 'VARCHAR(255)'],
  ['id_lote', 'VARCHAR(255)'],
  ['peso_entrada', 'FLOAT'],
  ['peso_medio', 'FLOAT'],
  ['quantidade_animais', 'INT'],
  ['dia_confinamento', 'INT'],
  ['consumo_real', 'FLOAT'],
  ['consumo_meta', 'FLOAT'],
  ['data', 'DATETIME'],
  ['cod_cliente', 'VARCHAR(255)'],
  ['row_ts', 'DATETIME'],
];

interface Consumption {
  id_curral: string;
  id_raca: string;
  id_lote: string;
  peso_entrada: number;
  peso_medio: number;
  quantidade_animais: number;
  dia_confinamento: number;
  consumo_real: number;
  data: string;
  cod_cliente: string;
}

function reading(i: number): Consumption {
  const d = new Date(Date.UTC(2024, 2, 20) + i * 1000).toISOString();
  return {
    id_curral: `C${(i % 40) + 1}`,
    id_raca: ['nelore', 'angus', 'brahman', 'senepol'][i % 4],
    id_lote: `L${i}`,
    peso_entrada: 280 + (i % 80),
    peso_medio: 400 + (i % 150),
    quantidade_animais: 20 + (i % 120),
    dia_confinamento: 1 + (i % 110),
    consumo_real: 10 + (i % 7),
    data: `${d.slice(0, 10)} ${d.slice(11, 19)}`,
    cod_cliente: String((i % 2) + 1),
  };
}

const rows = Array.from({ length: RECORDS }, (_, i) => reading(i));

const NAMESPACE = Buffer.from('dcd8fece294342bda2003d9bc10fdc51', 'hex');

/** RFC 9562 version 5 UUID in the sluice namespace, written out with node:crypto. */
function uuidV5(name: string): string {
  const h = hash('sha1', Buffer.concat([NAMESPACE, Buffer.from(name, 'utf8')]), 'hex');
  const v = ((Number.parseInt(h[16], 16) & 0x3) | 0x8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${v}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

async function prepare(): Promise<void> {
  const admin = new Admin({ clientId: 'bench', bootstrapBrokers: BROKERS.split(',') });
  try {
    await admin.listTopics();
  } catch (err) {
    throw new Error(
      `Kafka at ${BROKERS} is not reachable (${(err as Error).message}): run scripts/services.sh up`,
    );
  }
  await admin.createTopics({ topics: [topic], partitions: 3, replicas: 1 });
  await new Promise((r) => setTimeout(r, 500));
  await admin.close();
  const producer = new Producer({
    clientId: 'bench',
    bootstrapBrokers: BROKERS.split(','),
    idempotent: false,
    acks: 1,
  });
  for (let at = 0; at < RECORDS; at += 5000) {
    await producer.send({
      messages: rows.slice(at, at + 5000).map((r) => ({
        topic,
        key: Buffer.from(r.id_lote),
        value: Buffer.from(JSON.stringify(r)),
      })),
    });
  }
  await producer.close();
}

interface Side {
  ms: number;
  /** µs of process CPU per row. */
  cpu: number;
}

async function sluice(): Promise<Side> {
  const { spec, diagnostics } = validateText(PIPELINE, readFileSync(PIPELINE, 'utf8'), {
    KAFKA_BROKERS: BROKERS,
    KAFKA_TOPIC: topic,
    KAFKA_GROUP: `bench-${id}`,
    MYSQL_URL,
    MYSQL_TABLE: sluiceTable,
    ERRORS_DIR: join(tmpdir(), `bench-errors-${id}`),
  });
  if (!spec) throw new Error(diagnostics.map((d) => d.message).join('; '));
  const warehouse = spec.stages.find((s) => s.name === 'warehouse');
  if (!warehouse) throw new Error(`${PIPELINE} has no sink named warehouse`);
  warehouse.buffer.max_records = BATCH;
  const stateDir = mkdtempSync(join(tmpdir(), 'bench-mysql-'));
  const pipeline = new Pipeline(spec, { stateDir, log: pino({ level: 'silent' }) });
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const done = pipeline.run();
  const sink = () => pipeline.metrics.snapshot().stages.find((s) => s.name === 'warehouse');
  while ((sink()?.recordsOut ?? 0) + (sink()?.errors ?? 0) < RECORDS)
    await new Promise((r) => setTimeout(r, 5));
  const ms = performance.now() - t0;
  const cpu = cpuPerRow(cpu0);
  pipeline.stop('benchmark done');
  const result = await done;
  rmSync(stateDir, { recursive: true, force: true });
  if (!result.ok) throw new Error(`pipeline failed: ${result.error}`);
  if ((sink()?.errors ?? 0) > 0) throw new Error(`${sink()?.errors} rows rejected`);
  return { ms, cpu };
}

async function baseline(): Promise<Side> {
  const conn = await mysql.createConnection(MYSQL_URL);
  const names = COLUMNS.map(([c]) => mysql.escapeId(c));
  await conn.query(
    `CREATE TABLE ${mysql.escapeId(baselineTable)} (${COLUMNS.map(([c, t]) => `${mysql.escapeId(c)} ${t}`).join(', ')}, PRIMARY KEY (id_treated_data))`,
  );
  const update = names
    .slice(1)
    .map((n) => `${n}=VALUES(${n})`)
    .join(',');
  const consumer = new Consumer({
    clientId: 'bench-baseline',
    groupId: `bench-baseline-${id}`,
    bootstrapBrokers: BROKERS.split(','),
    autocommit: false,
    maxWaitTime: 100,
  });
  const sql = `INSERT INTO ${mysql.escapeId(baselineTable)} (${names.join(',')}) VALUES ? ON DUPLICATE KEY UPDATE ${update}`;
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const stream = await consumer.consume({ topics: [topic], mode: 'earliest', autocommit: false });
  let batch: Message<Buffer, Buffer, Buffer, Buffer>[] = [];
  let written = 0;
  const flush = async () => {
    const values: (string | number)[][] = [];
    const now = new Date().toISOString().replace('T', ' ').slice(0, 23);
    for (const m of batch) {
      const r = JSON.parse(m.value.toString('utf8')) as Consumption;
      values.push([
        uuidV5(`${r.cod_cliente}|${r.id_lote}|${r.data}`),
        r.id_curral,
        r.id_raca,
        r.id_lote,
        r.peso_entrada,
        r.peso_medio,
        r.quantidade_animais,
        r.dia_confinamento,
        r.consumo_real,
        Math.round(r.peso_medio * 0.025 * r.quantidade_animais * 1000) / 1000,
        r.data,
        r.cod_cliente,
        now,
      ]);
    }
    await conn.beginTransaction();
    await conn.query(sql, [values]);
    await conn.commit();
    // Offsets move only once the rows are committed, as the sluice pipeline does: one commit
    // of the highest offset per partition.
    const top = new Map<number, bigint>();
    for (const m of batch) if ((top.get(m.partition) ?? -1n) < m.offset) top.set(m.partition, m.offset);
    await consumer.commit({
      offsets: [...top].map(([partition, offset]) => ({
        topic,
        partition,
        offset: offset + 1n,
        leaderEpoch: -1,
      })),
    });
    written += batch.length;
    batch = [];
  };
  for await (const m of stream as AsyncIterable<Message<Buffer, Buffer, Buffer, Buffer>>) {
    batch.push(m);
    if (batch.length >= BATCH || written + batch.length >= RECORDS) await flush();
    if (written >= RECORDS) break;
  }
  const ms = performance.now() - t0;
  const cpu = cpuPerRow(cpu0);
  await stream.close();
  await consumer.close(true);
  await conn.end();
  return { ms, cpu };
}

/** Process CPU (user + system) per row since `from`, µs. */
function cpuPerRow(from: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(from);
  return (used.user + used.system) / RECORDS;
}

async function count(table: string): Promise<number> {
  const conn = await mysql.createConnection(MYSQL_URL);
  const [r] = await conn.query(`SELECT COUNT(*) AS n FROM ${mysql.escapeId(table)}`);
  await conn.end();
  return Number((r as { n: number }[])[0].n);
}

async function cleanup(): Promise<void> {
  const conn = await mysql.createConnection(MYSQL_URL);
  for (const t of [sluiceTable, baselineTable]) await conn.query(`DROP TABLE IF EXISTS ${mysql.escapeId(t)}`);
  await conn.end();
  const admin = new Admin({ clientId: 'bench', bootstrapBrokers: BROKERS.split(',') });
  await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
  await admin.close();
}

await prepare();
const rps = (ms: number) => Math.round((RECORDS / ms) * 1000);
let base: Side = { ms: 0, cpu: 0 };
let ours: Side = { ms: 0, cpu: 0 };
try {
  base = await baseline();
  ours = await sluice();
  const [a, b] = [await count(sluiceTable), await count(baselineTable)];
  if (a !== RECORDS || b !== RECORDS)
    throw new Error(`row counts differ: sluice ${a}, baseline ${b}, want ${RECORDS}`);
} finally {
  await cleanup();
}
console.log(`rows                             ${RECORDS} (13 columns, upsert, batches of ${BATCH})`);
console.log(
  `baseline (kafka client + mysql2) ${rps(base.ms).toLocaleString('en')} rows/s  ${base.cpu.toFixed(1)} µs CPU/row`,
);
console.log(
  `sluice kafka → mysql             ${rps(ours.ms).toLocaleString('en')} rows/s  ${ours.cpu.toFixed(1)} µs CPU/row  ratio ${(base.ms / ours.ms).toFixed(2)}`,
);
console.log(
  JSON.stringify({
    rows: RECORDS,
    baseline_rps: rps(base.ms),
    sluice_rps: rps(ours.ms),
    ratio: Number((base.ms / ours.ms).toFixed(3)),
    baseline_cpu_us_per_row: Number(base.cpu.toFixed(2)),
    sluice_cpu_us_per_row: Number(ours.cpu.toFixed(2)),
  }),
);
process.exit(0);
