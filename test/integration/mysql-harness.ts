/**
 * Helpers for the MySQL integration tests: MariaDB from scripts/services.sh, read back with
 * the `mariadb` command-line client (not sluice's driver), and SinkBatch builders.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import pino from 'pino';
import { AckGroup } from '../../src/runtime/ack.ts';
import { MetricsRegistry } from '../../src/runtime/metrics.ts';
import type { SluiceRecord } from '../../src/runtime/record.ts';
import type { SinkBatch, StageContext } from '../../src/stages/define.ts';
import { mysqlUrl, requireService } from './services.ts';

const run = promisify(execFile);

export const MYSQL_URL = mysqlUrl();

export const suffix = (): string => randomBytes(4).toString('hex');

function cliArgs(): string[] {
  const u = new URL(MYSQL_URL);
  const args = ['-h', u.hostname, '-P', u.port || '3306', '-u', decodeURIComponent(u.username || 'root')];
  if (u.password) args.push(`-p${decodeURIComponent(u.password)}`);
  const db = u.pathname.replace(/^\//, '');
  if (db) args.push('-D', db);
  return args;
}

/** Runs SQL with the mariadb CLI; returns rows as arrays of strings (tab-separated, raw). */
export async function sql(statement: string): Promise<string[][]> {
  const { stdout } = await run(
    'mariadb',
    [...cliArgs(), '--batch', '--raw', '--skip-column-names', '-e', statement],
    {
      maxBuffer: 256 * 1024 * 1024,
    },
  );
  return stdout
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => l.split('\t'));
}

/** Fails (never skips) when MariaDB is down, with the hint to start it. */
export async function requireMysql(): Promise<void> {
  await requireService('mysql');
}

export function sinkContext(name = 'warehouse'): StageContext {
  return {
    name,
    pipeline: 'test',
    log: pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }),
    metrics: new MetricsRegistry('test').stage(name, 'sink', 'mysql'),
    stateDir: '.sluice-test',
  };
}

let seq = 0;
export function batchOf(values: unknown[]): SinkBatch {
  const ack = new AckGroup(values.length);
  const records: SluiceRecord[] = values.map((value) => ({ value, meta: {}, size: 0, ack }));
  return { records, partition: undefined, startedAt: Date.now(), bytes: 0, seq: seq++ };
}
