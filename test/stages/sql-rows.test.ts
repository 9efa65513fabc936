/**
 * What the mysql and postgres sinks share (src/stages/sinks/sql/): records → rows with failures
 * per record, the halving of a rejected statement, and the conversion messages each sink gives.
 */
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { AckGroup } from '../../src/runtime/ack.ts';
import { MetricsRegistry } from '../../src/runtime/metrics.ts';
import type { SinkBatch } from '../../src/stages/define.ts';
import { convert as convertMysql } from '../../src/stages/sinks/mysql/convert.ts';
import { convertPg } from '../../src/stages/sinks/postgres/convert.ts';
import { ConversionError, type Kind, type SqlParam } from '../../src/stages/sinks/sql/convert.ts';
import { type Column, type Row, resultOf, SqlRows, statementsOf } from '../../src/stages/sinks/sql/rows.ts';

function batchOf(values: unknown[]): SinkBatch {
  const ack = new AckGroup(values.length);
  const records = values.map((value) => ({ value, meta: {}, size: 0, ack }));
  return { records, partition: undefined, startedAt: 0, bytes: 0, seq: 0 };
}

function rowsFor(system: string, declared = false) {
  const metrics = new MetricsRegistry('test').stage('t', 'sink', system);
  const rows = new SqlRows<Kind, SqlParam>(
    { system, table: 't', declared, strict: true, convert: convertMysql },
    { log: pino({ level: 'silent' }), metrics },
  );
  return { rows, metrics };
}

const table = new Map<string, Column<Kind>>([
  ['id', { name: 'id', kind: 'integer' }],
  ['name', { name: 'name', kind: 'text' }],
  ['at', { name: 'at', kind: 'datetime' }],
]);

describe('SQL sinks: records → rows', () => {
  it('fails the records that cannot be rows alone, each with its reason, and keeps table order', () => {
    const { rows, metrics } = rowsFor('postgres');
    const prepared = rows.prepare(
      batchOf([{ name: 'a', id: 1 }, 'text', { other: 1 }, { id: 1.5 }, { id: 2, extra: true }]),
      table,
      'public.t',
    );
    expect(prepared.columns.map((c) => c.name)).toEqual(['id', 'name']);
    expect(prepared.rows).toEqual([
      { index: 0, params: [1, 'a'] },
      { index: 4, params: [2, null] },
    ]);
    expect(resultOf(prepared.failed)?.failed).toEqual([
      { index: 1, reason: 'postgres: record value is not an object', retryable: false },
      {
        index: 2,
        reason: 'postgres: no field of the record is a column of table public.t',
        retryable: false,
      },
      { index: 3, reason: "postgres: column 'id': 1.5 is not an integer", retryable: false },
    ]);
    expect(metrics.extra.get('rows_rejected')).toBe(3);
  });

  it('with `columns` declared, every row fills every column', () => {
    const { rows } = rowsFor('mysql', true);
    const prepared = rows.prepare(batchOf([{ id: 1 }]), table, 't');
    expect(prepared.columns.map((c) => c.name)).toEqual(['id', 'name', 'at']);
    expect(prepared.rows).toEqual([{ index: 0, params: [1, null, null] }]);
    expect(resultOf(prepared.failed)).toBeUndefined();
  });

  it('halves a rejected statement until the bad rows are alone', async () => {
    const { rows, metrics } = rowsFor('mysql');
    const all: Row<SqlParam>[] = Array.from({ length: 8 }, (_, i) => ({ index: i, params: [i] }));
    const written: number[] = [];
    const failed: Parameters<typeof resultOf>[0] = [];
    await rows.bisect(all, failed, async (part) => {
      const bad = part.find((r) => r.index === 2 || r.index === 5);
      if (bad) return `mysql: row ${bad.index} rejected`;
      written.push(...part.map((r) => r.index));
      return undefined;
    });
    expect(written).toEqual([0, 1, 3, 4, 6, 7]);
    expect(failed.map((f) => [f.index, f.reason])).toEqual([
      [2, 'mysql: row 2 rejected'],
      [5, 'mysql: row 5 rejected'],
    ]);
    expect(metrics.extra.get('bisections')).toBe(5);
  });

  it('cuts rows into statements within the parameter limit', () => {
    const all = Array.from({ length: 7 }, (_, i) => ({ index: i, params: [i, i] }));
    expect(statementsOf(all, 2, 6).map((s) => s.map((r) => r.index))).toEqual([[0, 1, 2], [3, 4, 5], [6]]);
    // A row wider than the limit still goes, alone.
    expect(statementsOf(all.slice(0, 2), 2, 1)).toHaveLength(2);
  });
});

describe('SQL sinks: a time beyond four-digit years', () => {
  const far = new Date(Date.UTC(10_000, 0, 1));
  const message = (f: () => unknown): string => {
    try {
      f();
    } catch (err) {
      expect(err).toBeInstanceOf(ConversionError);
      return (err as Error).message;
    }
    throw new Error('expected a ConversionError');
  };

  it('names MySQL in the mysql sink and the sink’s own limit in the postgres sink', () => {
    expect(message(() => convertMysql(far, 'datetime'))).toBe(
      '+010000-01-01T00:00:00.000Z is out of the range of MySQL times',
    );
    const pg = message(() => convertPg(far, 'datetime', true));
    expect(pg).toBe(
      '+010000-01-01T00:00:00.000Z is out of the range of times the postgres sink writes (years 0000 to 9999)',
    );
    expect(pg).not.toMatch(/mysql/i);
  });
});
