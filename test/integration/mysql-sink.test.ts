/**
 * The mysql sink against MariaDB, through the stage contract; rows are read back with the
 * mariadb CLI.
 */
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MysqlSink, mysqlSink } from '../../src/stages/sinks/mysql/index.ts';
import { batchOf, MYSQL_URL, requireMysql, sinkContext, sql, suffix } from './mysql-harness.ts';

const tables: string[] = [];
const sinks: MysqlSink[] = [];

beforeAll(async () => {
  await requireMysql();
});

afterAll(async () => {
  for (const s of sinks) await s.close();
  for (const t of tables) await sql(`DROP TABLE IF EXISTS \`${t}\``);
});

const FEEDLOT_COLUMNS = {
  id_treated_data: 'VARCHAR(255)',
  id_curral: 'VARCHAR(255)',
  id_raca: 'VARCHAR(255)',
  id_lote: 'VARCHAR(255)',
  peso_entrada: 'FLOAT',
  peso_medio: 'FLOAT',
  quantidade_animais: 'INT',
  dia_confinamento: 'INT',
  consumo_real: 'FLOAT',
  consumo_meta: 'FLOAT',
  data: 'DATETIME',
  cod_cliente: 'VARCHAR(255)',
  row_ts: 'DATETIME',
};

async function openSink(options: Record<string, unknown>): Promise<MysqlSink> {
  const sink = mysqlSink.create({ url: MYSQL_URL, ...options } as never, sinkContext()) as MysqlSink;
  sinks.push(sink);
  await sink.open();
  return sink;
}

function table(prefix: string): string {
  const t = `${prefix}_${suffix()}`;
  tables.push(t);
  return t;
}

const row = (i: number, extra: Record<string, unknown> = {}) => ({
  id_treated_data: `id-${i}`,
  id_curral: `c${i % 7}`,
  id_raca: 'nelore',
  id_lote: `lote-${i % 3}`,
  peso_entrada: 300 + i,
  peso_medio: 410.5,
  quantidade_animais: 100 + i,
  dia_confinamento: 30,
  consumo_real: 12.25,
  consumo_meta: 1026.25,
  data: '2024-03-20T10:30:45.000Z',
  cod_cliente: '1',
  row_ts: '2024-03-20T13:00:00Z',
  fazenda: 'fazenda_um',
  ...extra,
});

describe('mysql sink', () => {
  it('creates the table from columns with the key as primary key, and converts types', async () => {
    const t = table('hc');
    const sink = await openSink({
      table: t,
      columns: FEEDLOT_COLUMNS,
      key: ['id_treated_data'],
      create_table: true,
      mode: 'upsert',
    });
    const result = await sink.write(batchOf([row(1), row(2, { peso_medio: null })]));
    expect(result).toBeUndefined();
    const cols = await sql(
      `SELECT COLUMN_NAME, COLUMN_TYPE, COLUMN_KEY FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '${t}' ORDER BY ORDINAL_POSITION`,
    );
    expect(cols.map((c) => c[0])).toEqual(Object.keys(FEEDLOT_COLUMNS));
    expect(cols.find((c) => c[0] === 'id_treated_data')?.[2]).toBe('PRI');
    expect(cols.find((c) => c[0] === 'data')?.[1]).toBe('datetime');
    const rows = await sql(
      `SELECT id_treated_data, peso_medio, quantidade_animais, data, row_ts FROM \`${t}\` ORDER BY id_treated_data`,
    );
    expect(rows).toEqual([
      ['id-1', '410.5', '101', '2024-03-20 10:30:45', '2024-03-20 13:00:00'],
      ['id-2', 'NULL', '102', '2024-03-20 10:30:45', '2024-03-20 13:00:00'],
    ]);
  });

  it('upsert: a redelivered record updates its row instead of adding one', async () => {
    const t = table('up');
    const sink = await openSink({
      table: t,
      columns: FEEDLOT_COLUMNS,
      key: ['id_treated_data'],
      create_table: true,
      mode: 'upsert',
    });
    await sink.write(batchOf([row(1), row(2)]));
    await sink.write(batchOf([row(2, { consumo_real: 99 }), row(3), row(3, { consumo_real: 7 })]));
    const rows = await sql(`SELECT id_treated_data, consumo_real FROM \`${t}\` ORDER BY id_treated_data`);
    expect(rows).toEqual([
      ['id-1', '12.25'],
      ['id-2', '99'],
      ['id-3', '7'],
    ]);
  });

  it('insert_ignore skips existing keys; insert rejects them as rows with the DB message', async () => {
    const t = table('ins');
    await sql(`CREATE TABLE \`${t}\` (id INT PRIMARY KEY, name VARCHAR(20))`);
    const ignore = await openSink({ table: t, mode: 'insert_ignore' });
    await ignore.write(batchOf([{ id: 1, name: 'a' }]));
    expect(
      await ignore.write(
        batchOf([
          { id: 1, name: 'changed' },
          { id: 2, name: 'b' },
        ]),
      ),
    ).toBeUndefined();
    const insert = await openSink({ table: t, mode: 'insert' });
    const res = await insert.write(
      batchOf([
        { id: 3, name: 'c' },
        { id: 2, name: 'dup' },
      ]),
    );
    expect(res?.failed).toEqual([
      { index: 1, reason: expect.stringMatching(/Duplicate entry '2'/), retryable: false },
    ]);
    expect(await sql(`SELECT id, name FROM \`${t}\` ORDER BY id`)).toEqual([
      ['1', 'a'],
      ['2', 'b'],
      ['3', 'c'],
    ]);
  });

  it('bisects a rejected batch: only the bad rows come back with the reason, the rest commits', async () => {
    const t = table('bad');
    await sql(`CREATE TABLE \`${t}\` (id INT PRIMARY KEY, name VARCHAR(5) NOT NULL, n INT)`);
    const sink = await openSink({ table: t, mode: 'upsert', key: ['id'] });
    const values = Array.from({ length: 200 }, (_, i) => ({ id: i, name: `r${i}`, n: i }));
    values[17] = { id: 17, name: 'much too long', n: 17 };
    values[123] = { id: 123, name: null as unknown as string, n: 123 };
    values[199] = { id: 199, name: 'ok', n: 'not a number' as unknown as number };
    const res = await sink.write(batchOf(values));
    expect(res?.failed.map((f) => f.index)).toEqual([17, 123, 199]);
    expect(res?.failed[0].reason).toMatch(/Data too long for column 'name'/);
    expect(res?.failed[1].reason).toMatch(/Column 'name' cannot be null/);
    expect(res?.failed[2].reason).toMatch(/Incorrect integer value/);
    expect(res?.failed.every((f) => f.retryable === false)).toBe(true);
    expect(await sql(`SELECT COUNT(*), SUM(id) FROM \`${t}\``)).toEqual([
      ['197', String((199 * 200) / 2 - 17 - 123 - 199)],
    ]);
  });

  it('stores field names and values with quotes, backticks and semicolons verbatim', async () => {
    const t = table('q');
    const nasty = 'we`ird\'; DROP TABLE x; --"col';
    const sink = await openSink({
      table: t,
      create_table: true,
      columns: { id: 'INT', [nasty]: 'VARCHAR(255)', 'plain; name': 'TEXT' },
      key: ['id'],
      mode: 'upsert',
    });
    const value = 'Robert\'); DROP TABLE students;-- `tick` "dq" \\ back';
    await sink.write(batchOf([{ id: 1, [nasty]: value, 'plain; name': "';`" }]));
    const cols = await sql(
      `SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '${t}' ORDER BY ORDINAL_POSITION`,
    );
    expect(cols.map((c) => c[0])).toEqual(['id', nasty, 'plain; name']);
    const escaped = nasty.replace(/`/g, '``');
    const rows = await sql(`SELECT \`${escaped}\`, \`plain; name\` FROM \`${t}\``);
    expect(rows).toEqual([[value, "';`"]]);
  });

  it('without columns writes the fields the table has and ignores the others', async () => {
    const t = table('auto');
    await sql(`CREATE TABLE \`${t}\` (id INT PRIMARY KEY, at DATETIME(3), doc JSON, flag TINYINT)`);
    const sink = await openSink({ table: t, mode: 'upsert' });
    await sink.write(
      batchOf([
        { id: 1, at: '2024-03-20T10:30:45.123-03:00', doc: { a: [1, 'x'] }, flag: true, extra: 'ignored' },
        { id: 2 },
      ]),
    );
    expect(await sql(`SELECT id, at, doc, flag FROM \`${t}\` ORDER BY id`)).toEqual([
      ['1', '2024-03-20 13:30:45.123', '{"a":[1,"x"]}', '1'],
      ['2', 'NULL', 'NULL', 'NULL'],
    ]);
  });

  it('fails clearly at open when the table or a column is missing', async () => {
    const missing = `nope_${suffix()}`;
    await expect(openSink({ table: missing })).rejects.toThrow(`table ${missing} does not exist`);
    const t = table('cols');
    await sql(`CREATE TABLE \`${t}\` (id INT PRIMARY KEY)`);
    await expect(openSink({ table: t, columns: { id: 'INT', other: 'INT' } })).rejects.toThrow(
      "has no column 'other'",
    );
  });

  it('throws a retryable error when the connection is lost mid-batch, and a retry then commits', async () => {
    const t = table('lost');
    await sql(`CREATE TABLE \`${t}\` (id INT PRIMARY KEY)`);
    const sink = await openSink({ table: t, mode: 'upsert', pool_size: 1 });
    // Another session holds the lock on id 5, so the sink's insert waits inside its transaction.
    const holder = await mysql.createConnection(MYSQL_URL);
    await holder.beginTransaction();
    await holder.execute(`INSERT INTO \`${t}\` (id) VALUES (5)`);
    const pending = sink.write(batchOf([{ id: 4 }, { id: 5 }, { id: 6 }])).then(
      () => undefined,
      (err: unknown) => err,
    );
    let victim: string | undefined;
    for (let i = 0; i < 100 && !victim; i++) {
      await new Promise((r) => setTimeout(r, 50));
      const rows = await sql(
        `SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE 'INSERT INTO \`${t}\`%'`,
      );
      victim = rows[0]?.[0];
    }
    expect(victim).toBeDefined();
    await sql(`KILL ${victim}`);
    const error = await pending;
    expect(error).toBeInstanceOf(Error);
    expect((error as { retryable?: boolean }).retryable).toBe(true);
    await holder.rollback();
    await holder.end();
    // What the runtime does next: the same batch again, on a fresh connection.
    expect(await sink.write(batchOf([{ id: 4 }, { id: 5 }, { id: 6 }]))).toBeUndefined();
    expect(await sql(`SELECT GROUP_CONCAT(id ORDER BY id) FROM \`${t}\``)).toEqual([['4,5,6']]);
  });
});
