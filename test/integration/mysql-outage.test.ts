/**
 * A 60 s MariaDB outage, waited out: two pipelines (a low and a high rate) write to the real
 * server through a relay that the test cuts off and brings back. Nothing may go to error outputs
 * or dead letters, every record must be in the table afterwards, the records each sink holds must
 * stay under its bound the whole time (asserted on the counter), the sources must stop reading
 * while the sink cannot write, and the sink must show itself as retrying with the reason.
 */
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Pipeline, type RunResult } from '../../src/runtime/engine.ts';
import type { StageSnapshot } from '../../src/runtime/metrics.ts';
import { validateText } from '../../src/spec/validate.ts';
import { tempDir } from '../runtime/helpers.ts';
import { requireMysql, sql, suffix } from './mysql-harness.ts';
import { mysqlConfig } from './services.ts';
import { TcpProxy } from './tcp-proxy.ts';

const OUTAGE_MS = 60_000;
const tables: string[] = [];
let proxy: TcpProxy;

beforeAll(async () => {
  await requireMysql();
  const db = mysqlConfig();
  proxy = new TcpProxy(db.host, db.port);
  await proxy.start();
});

afterAll(async () => {
  await proxy?.stop();
  for (const t of tables) await sql(`DROP TABLE IF EXISTS \`${t}\``);
});

interface Load {
  name: string;
  table: string;
  count: number;
  bound: number;
  pipeline: Pipeline;
  logs: Record<string, unknown>[];
  done: Promise<RunResult>;
}

function start(rate: number, count: number, bound: number): Load {
  const db = mysqlConfig();
  const table = `outage_${rate}_${suffix()}`;
  tables.push(table);
  const auth = db.password
    ? `${encodeURIComponent(db.user)}:${encodeURIComponent(db.password)}`
    : encodeURIComponent(db.user);
  const url = `mysql://${auth}@127.0.0.1:${proxy.port}/${db.database}`;
  const yaml = `
version: 1
name: outage-${rate}
runtime: { batch_size: 100 }
sources:
  gen: { type: generate, count: ${count}, rate: ${rate}, fields: { id: 'i', lote: '"L" + string(i)', peso: 'double(i) / 4.0' } }
sinks:
  warehouse:
    type: mysql
    from: [gen]
    url: \${MYSQL_URL}
    table: ${table}
    mode: upsert
    key: [id]
    create_table: true
    columns: { id: BIGINT, lote: VARCHAR(64), peso: DOUBLE }
    buffer: { max_records: 500, max_age: 100ms, max_total_records: ${bound} }
    retry: { backoff: 100ms, max_backoff: 2s }
`;
  const { spec, diagnostics } = validateText(`outage-${rate}.yaml`, yaml, { MYSQL_URL: url });
  if (!spec) throw new Error(diagnostics.map((d) => `${d.line}:${d.column} ${d.message}`).join('\n'));
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      for (const line of String(chunk).split('\n')) if (line) logs.push(JSON.parse(line));
      cb();
    },
  });
  const pipeline = new Pipeline(spec, { stateDir: tempDir(), log: pino({ level: 'warn' }, sink) });
  return { name: `${rate}/s`, table, count, bound, pipeline, logs, done: pipeline.run() };
}

const stage = (l: Load, name: string): StageSnapshot => {
  const s = l.pipeline.metrics.snapshot().stages.find((x) => x.name === name);
  if (!s) throw new Error(`no stage ${name}`);
  return s;
};

async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('a 60 s MySQL outage', () => {
  it('is waited out at a low and a high rate: every record lands, none is diverted, held records stay bounded', async () => {
    const loads = [start(400, 4_000, 2_000), start(4_000, 40_000, 5_000)];
    await waitFor(() => loads.every((l) => stage(l, 'warehouse').recordsOut >= 1_000), 30_000, 'first rows');

    await proxy.refuse();
    const cutAt = Date.now();
    const peakHeld = loads.map(() => 0);
    const producedAt = new Map<number, number[]>();
    const retryingSeen = loads.map(() => false);
    while (Date.now() - cutAt < OUTAGE_MS) {
      loads.forEach((l, i) => {
        const s = stage(l, 'warehouse');
        peakHeld[i] = Math.max(peakHeld[i], s.held);
        if (s.health.state === 'retrying') retryingSeen[i] = true;
      });
      const second = Math.floor((Date.now() - cutAt) / 1000);
      if (!producedAt.has(second))
        producedAt.set(
          second,
          loads.map((l) => stage(l, 'gen').recordsOut),
        );
      await new Promise((r) => setTimeout(r, 100));
    }
    // Just before the end of the outage: the sink says it is retrying, why, and for how long.
    for (const l of loads) {
      const h = stage(l, 'warehouse').health;
      expect(h.state, l.name).toBe('retrying');
      expect(h.reason, l.name).toMatch(/ECONNREFUSED|connect|connection/i);
      expect(Date.now() - (h.since ?? 0), l.name).toBeGreaterThan(OUTAGE_MS - 10_000);
    }
    await proxy.heal();

    const results = await Promise.all(loads.map((l) => l.done));
    for (const [i, l] of loads.entries()) {
      const r = results[i];
      expect(r.ok, `${l.name}: ${r.error}`).toBe(true);
      expect(r.errorRecords, l.name).toBe(0);
      expect(r.deadLettered, l.name).toBe(0);
      expect(r.unacked, l.name).toBe(0);
      const [[count, distinct]] = await sql(`SELECT COUNT(*), COUNT(DISTINCT id) FROM \`${l.table}\``);
      expect(Number(count), l.name).toBe(l.count);
      expect(Number(distinct), l.name).toBe(l.count);
      // Bounded: by the sink's own counter, and by our samples of it.
      const s = stage(l, 'warehouse');
      expect(s.heldPeak, l.name).toBeLessThanOrEqual(l.bound);
      expect(peakHeld[i], l.name).toBeLessThanOrEqual(l.bound);
      expect(s.errors, l.name).toBe(0);
      expect(s.retries, l.name).toBeGreaterThan(0);
      expect(s.health.state, l.name).toBe('ok');
      expect(retryingSeen[i], l.name).toBe(true);
      // The source stopped reading: nothing produced in the second half of the outage.
      const at30 = producedAt.get(30)?.[i];
      const at58 = producedAt.get(58)?.[i];
      expect(at30, l.name).toBeDefined();
      expect(at58, l.name).toBe(at30);
      expect(at30 as number, l.name).toBeLessThan(l.count);
      // One WARN every few seconds while retrying, not one per attempt.
      const warns = l.logs.filter((x) => String(x.msg).includes('is retrying'));
      expect(warns.length, l.name).toBeGreaterThanOrEqual(5);
      expect(warns.length, l.name).toBeLessThanOrEqual(OUTAGE_MS / 5000 + 3);
      expect(warns.at(-1), l.name).toMatchObject({ stage: 'warehouse' });
      expect(Number(warns.at(-1)?.retried_records), l.name).toBeGreaterThan(0);
      console.log(
        `mysql outage ${OUTAGE_MS / 1000}s at ${l.name}: ${l.count} rows after it, held peak ${s.heldPeak} (bound ${l.bound}), source paused at ${at30} records, ${s.retries} record retries, ${warns.length} WARN lines`,
      );
    }
  }, 180_000);
});
