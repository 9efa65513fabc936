/**
 * The mysql sink with several batches in flight (max_in_flight, one pooled connection each), fed
 * by the Kafka source, when one batch in the middle keeps failing: later batches commit around
 * it, the group's committed offset stays below it, and a stop then a restart lose nothing.
 * The failure is real: a row lock held by another session, so the batch's statement waits out
 * its lock wait timeout (a transient error) again and again.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Pipeline } from '../../src/runtime/engine.ts';
import { validateText } from '../../src/spec/validate.ts';
import {
  BROKERS,
  committedOffsets,
  createTopic,
  deleteTopic,
  produceInBatches,
  requireKafka,
  suffix,
  until,
} from './kafka-harness.ts';
import { MYSQL_URL, requireMysql, sql } from './mysql-harness.ts';

const COUNT = 4000;
/** Sink batches hold at most this many records, so the blocked one starts past BLOCKED - BATCH. */
const BATCH = 250;
const BLOCKED = 1500;

const id = suffix();
const topic = `pipelined-${id}`;
const table = `pipelined_${id}`;
const group = `pipelined-${id}`;

beforeAll(async () => {
  await requireKafka();
  await requireMysql();
  await createTopic(topic, 1);
  await sql(`CREATE TABLE \`${table}\` (id INT PRIMARY KEY, n INT NOT NULL)`);
  // One partition: the message of id i is at offset i.
  await produceInBatches(
    topic,
    Array.from({ length: COUNT }, (_, i) => JSON.stringify({ id: i, n: i })),
    1000,
  );
});

afterAll(async () => {
  await deleteTopic(topic);
  await sql(`DROP TABLE IF EXISTS \`${table}\``);
});

const spec = `
version: 1
name: pipelined-${id}
runtime: { shutdown_timeout: 3s }
sources:
  readings:
    type: kafka
    brokers: ${BROKERS}
    topics: [${topic}]
    group: ${group}
    start: earliest
    max_batch: ${BATCH}
    commit_interval: 100ms
sinks:
  warehouse:
    type: mysql
    from: [readings]
    url: ${MYSQL_URL}
    table: ${table}
    mode: upsert
    key: [id]
    pool_size: 4
    max_in_flight: 4
    # A lock wait ends after 1 s (timeout - 2 s): the blocked batch fails transiently and is retried.
    timeout: 3s
    retry: { backoff: 100ms, max_backoff: 500ms }
    buffer: { max_records: ${BATCH}, max_age: 50ms }
`;

function pipeline(): Pipeline {
  const { spec: parsed, diagnostics } = validateText('pipelined.yaml', spec, {});
  if (!parsed) throw new Error(diagnostics.map((d) => d.message).join('; '));
  return new Pipeline(parsed, {
    stateDir: mkdtempSync(join(tmpdir(), 'sluice-pipelined-')),
    log: pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }),
  });
}

const committed = async (): Promise<number> => (await committedOffsets(group, topic)).get(0) ?? 0;
const count = async (where: string): Promise<number> =>
  Number((await sql(`SELECT COUNT(*) FROM \`${table}\` WHERE ${where}`))[0][0]);

describe('mysql sink: pipelined batches under a failure in the middle', () => {
  it('later batches commit around a failing one, the offset stays below it, a restart writes it', async () => {
    // Another session holds the lock on the key of record BLOCKED until it rolls back.
    const locker = await mysql.createConnection(MYSQL_URL);
    await locker.query('SET SESSION innodb_lock_wait_timeout = 1');
    await locker.beginTransaction();
    await locker.query(`INSERT INTO \`${table}\` (id, n) VALUES (${BLOCKED}, -1)`);
    try {
      const first = pipeline();
      const run = first.run();
      // Every batch but the blocked one lands, the last ones included: they did not wait for it.
      await until(
        async () => (await count(`id >= ${BLOCKED}`)) >= COUNT - BLOCKED - BATCH,
        60_000,
        'later batches',
      );
      expect(await count(`id = ${COUNT - 1}`)).toBe(1);
      expect(await count(`id = ${BLOCKED}`)).toBe(0);
      // It fails (its lock wait times out) and is retried, never sent to the error output.
      const sink = () => first.metrics.snapshot().stages.find((s) => s.name === 'warehouse');
      await until(() => (sink()?.retries ?? 0) > 0, 30_000, 'a retry of the blocked batch');
      expect(sink()?.errors).toBe(0);

      // The earlier batches are committed to the group; nothing at or past the blocked record is.
      await until(
        async () => (await committed()) > BLOCKED - BATCH,
        30_000,
        'offsets of the earlier batches',
      );
      expect(await committed()).toBeLessThanOrEqual(BLOCKED);

      // Stopped while the batch still fails: it is never acked, and the offset stays where it was.
      first.stop('test: crash while a batch fails');
      const result = await run;
      expect(result.unacked).toBeGreaterThan(0);
      expect(await committed()).toBeLessThanOrEqual(BLOCKED);
    } finally {
      await locker.rollback();
      await locker.end();
    }

    // Restarted with the lock gone: the group reads again from below the blocked record.
    const second = pipeline();
    const run = second.run();
    await until(async () => (await count('TRUE')) === COUNT, 60_000, 'every row');
    await until(async () => (await committed()) === COUNT, 30_000, 'the offset at the end');
    second.stop('test: done');
    expect((await run).ok).toBe(true);
    expect(await sql(`SELECT COUNT(*), SUM(n = id), SUM(n) FROM \`${table}\``)).toEqual([
      [String(COUNT), String(COUNT), String((COUNT * (COUNT - 1)) / 2)],
    ]);
  }, 180_000);
});
