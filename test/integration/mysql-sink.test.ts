/**
 * The mysql sink against MariaDB, through the stage contract; rows are read back with the
 * mariadb CLI.
 */
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MysqlSink, mysqlSink, quoteName } from '../../src/stages/sinks/mysql/index.ts';
import { batchOf, MYSQL_URL, requireMysql, sinkContext, sql, suffix } from './mysql-harness.ts';
import { mysqlConfig } from './services.ts';
import { TcpProxy } from './tcp-proxy.ts';

const tables: string[] = [];
const sinks: MysqlSink[] = [];

beforeAll(async () => {
  await requireMysql();
});

afterAll(async () => {
  for (const s of sinks) await s.close();
  for (const t of tables) await sql(`DROP TABLE IF EXISTS ${quoteName(t)}`);
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
    // Caught before the server sees it (strict conversions), with the column's name.
    expect(res?.failed[2].reason).toBe("mysql: column 'n': 'not a number' is not an integer");
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
    const db = mysqlConfig().database;
    await expect(openSink({ table: missing })).rejects.toThrow(
      `table \`${db}\`.\`${missing}\` does not exist on ${mysqlConfig().host}:${mysqlConfig().port}: create it`,
    );
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

/** An object nested `depth` levels deep, built without recursion. */
function deep(depth: number): Record<string, unknown> {
  const root: Record<string, unknown> = {};
  let at = root;
  for (let i = 0; i < depth; i++) {
    const next: Record<string, unknown> = {};
    at.a = next;
    at = next;
  }
  return root;
}

describe('mysql sink: a record that cannot be written fails alone', () => {
  it('3,000 records with one nested 100,000 deep: 2,999 rows and one failure naming the column', async () => {
    const t = table('poison');
    await sql(`CREATE TABLE \`${t}\` (id INT PRIMARY KEY, doc JSON, n INT)`);
    const sink = await openSink({ table: t, mode: 'upsert' });
    const values = Array.from({ length: 3000 }, (_, i) => ({ id: i, doc: { i, tags: ['a'] }, n: i }));
    values[1234] = { id: 1234, doc: deep(100_000) as never, n: 1234 };
    const res = await sink.write(batchOf(values));
    expect(res?.failed).toEqual([
      {
        index: 1234,
        reason: "mysql: column 'doc': value cannot be encoded as JSON: nesting too deep",
        retryable: false,
      },
    ]);
    expect(
      await sql(
        `SELECT COUNT(*), SUM(id = 1234), MAX(CAST(JSON_VALUE(doc, '$.i') AS UNSIGNED)) FROM \`${t}\``,
      ),
    ).toEqual([['2999', '0', '2999']]);
  });

  it('strict: 1.5 into an INT fails that record; an object into a VARCHAR too; booleans are 0/1', async () => {
    const t = table('strict');
    await sql(
      `CREATE TABLE \`${t}\` (id INT PRIMARY KEY, n INT, price DECIMAL(10,2), name VARCHAR(50), ok TINYINT)`,
    );
    const sink = await openSink({ table: t, mode: 'upsert' });
    const res = await sink.write(
      batchOf([
        { id: 1, n: 10, price: '12.50', name: 'a', ok: true },
        { id: 2, n: 1.5, price: 1, name: 'b', ok: false },
        { id: 3, n: 3, price: 2, name: { first: 'c' }, ok: 1 },
        { id: 4, n: '4', price: 'abc', name: 'd', ok: 0 },
        { id: 5, n: '5', price: 3.25, name: 'e', ok: 0 },
      ]),
    );
    expect(res?.failed).toEqual([
      { index: 1, reason: "mysql: column 'n': 1.5 is not an integer", retryable: false },
      {
        index: 2,
        reason: expect.stringMatching(/^mysql: column 'name': an object does not fit/),
        retryable: false,
      },
      { index: 3, reason: "mysql: column 'price': 'abc' is not a number", retryable: false },
    ]);
    expect(await sql(`SELECT id, n, price, name, ok FROM \`${t}\` ORDER BY id`)).toEqual([
      ['1', '10', '12.50', 'a', '1'],
      ['5', '5', '3.25', 'e', '0'],
    ]);
  });

  it('strict: false lets the server round as before', async () => {
    const t = table('lenient');
    await sql(`CREATE TABLE \`${t}\` (id INT PRIMARY KEY, n INT, name TEXT)`);
    const sink = await openSink({ table: t, mode: 'upsert', strict: false });
    expect(await sink.write(batchOf([{ id: 1, n: 1.5, name: { a: 1 } }]))).toBeUndefined();
    expect(await sql(`SELECT n, name FROM \`${t}\``)).toEqual([['2', '{"a":1}']]);
  });

  it('without columns, a record with no field that is a column fails alone', async () => {
    const t = table('nomatch');
    await sql(`CREATE TABLE \`${t}\` (id INT PRIMARY KEY, name VARCHAR(20))`);
    const sink = await openSink({ table: t, mode: 'upsert' });
    const res = await sink.write(
      batchOf([{ id: 1, name: 'a' }, { other: 1, more: 2 }, 'not an object', { id: 2 }]),
    );
    expect(res?.failed.map((f) => [f.index, f.retryable])).toEqual([
      [1, false],
      [2, false],
    ]);
    expect(res?.failed[0].reason).toMatch(/no field of the record is a column of table `[^`]+`\.`nomatch_/);
    expect(await sql(`SELECT id, name FROM \`${t}\` ORDER BY id`)).toEqual([
      ['1', 'a'],
      ['2', 'NULL'],
    ]);
  });
});

describe('mysql sink: identifiers with dots, backticks and spaces', () => {
  const db = mysqlConfig().database;

  it('round-trips a table and a column named with a dot, a backtick and a space', async () => {
    const t = table('my.t`able x');
    const col = 'a.b` c';
    const sink = await openSink({
      database: db,
      table: t,
      create_table: true,
      columns: { id: 'INT', [col]: 'VARCHAR(50)', 'doc.json': 'JSON' },
      key: ['id'],
      mode: 'upsert',
    });
    expect(await sink.write(batchOf([{ id: 1, [col]: 'one', 'doc.json': { k: 'v' } }]))).toBeUndefined();
    expect(
      await sink.write(
        batchOf([
          { id: 1, [col]: 'uno', 'doc.json': [1] },
          { id: 2, [col]: 'two' },
        ]),
      ),
    ).toBeUndefined();
    // The table really is one name in the URL's database, and the mariadb client reads it back.
    expect(
      await sql(
        `SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '${t.replaceAll("'", "''")}'`,
      ),
    ).toEqual([['1']]);
    expect(
      await sql(
        `SELECT id, ${quoteName(col)}, ${quoteName('doc.json')} FROM ${quoteName(db)}.${quoteName(t)} ORDER BY id`,
      ),
    ).toEqual([
      ['1', 'uno', '[1]'],
      ['2', 'two', 'NULL'],
    ]);
    // Without `columns` the same names are found in the table and written.
    const auto = await openSink({ table: t, mode: 'upsert' });
    expect(await auto.write(batchOf([{ id: 3, [col]: 'three', 'doc.json': { n: 3 } }]))).toBeUndefined();
    expect(await sql(`SELECT ${quoteName('doc.json')} FROM ${quoteName(t)} WHERE id = 3`)).toEqual([
      ['{"n":3}'],
    ]);
  });

  it('`database` names the database; a dotted table without it still means database.table when unambiguous', async () => {
    const t = table('legacy');
    await sql(`CREATE TABLE \`${t}\` (id INT PRIMARY KEY)`);
    const explicit = await openSink({ database: db, table: t, mode: 'upsert' });
    expect(await explicit.write(batchOf([{ id: 1 }]))).toBeUndefined();
    const legacy = await openSink({ table: `${db}.${t}`, mode: 'upsert' });
    expect(await legacy.write(batchOf([{ id: 2 }]))).toBeUndefined();
    expect(await sql(`SELECT GROUP_CONCAT(id ORDER BY id) FROM \`${t}\``)).toEqual([['1,2']]);
    // Both readings exist: ambiguous, and open says how to resolve it.
    const literal = `${db}.${t}`;
    tables.push(literal);
    await sql(`CREATE TABLE ${quoteName(literal)} (id INT PRIMARY KEY)`);
    await expect(openSink({ table: `${db}.${t}`, mode: 'upsert' })).rejects.toThrow(
      /both exist .*set `database`/,
    );
    // Creating needs to know which is meant.
    await expect(
      openSink({ table: `${db}.new_${suffix()}`, create_table: true, columns: { id: 'INT' }, key: ['id'] }),
    ).rejects.toThrow(/to create it set `database`/);
    // With `database` the dotted name is one table.
    const dotted = await openSink({ database: db, table: literal, mode: 'upsert' });
    expect(await dotted.write(batchOf([{ id: 9 }]))).toBeUndefined();
    expect(await sql(`SELECT id FROM ${quoteName(literal)}`)).toEqual([['9']]);
  });
});

describe('mysql sink: start-up failures name what to fix, never the credentials', () => {
  it('an unreachable server: the message names host:port', async () => {
    const url = 'mysql://app:hunter2@127.0.0.1:1/fazendas';
    const sink = mysqlSink.create({ url, table: 't' } as never, sinkContext()) as MysqlSink;
    const started = Date.now();
    const err = (await sink.open().catch((e: unknown) => e)) as Error;
    expect(Date.now() - started).toBeLessThan(6000);
    expect(err.message).toMatch(
      /^mysql: cannot read the tables of 127\.0\.0\.1:1: .*ECONNREFUSED.*is the server running/,
    );
    expect(err.message).not.toContain('hunter2');
  });

  it('a password with an unencoded # fails before any connection, without printing it', async () => {
    const { host, port, database } = mysqlConfig();
    const url = `mysql://root:p@ss#1@${host}:${port}/${database}`;
    const sink = mysqlSink.create({ url, table: 't' } as never, sinkContext()) as MysqlSink;
    const err = (await sink.open().catch((e: unknown) => e)) as Error;
    expect(err.message).toMatch(/percent-encode/);
    expect(err.message).not.toMatch(/p@ss|ss#1/);
  });

  it('a missing database in the URL is named with what to create', async () => {
    const { host, port } = mysqlConfig();
    const base = new URL(MYSQL_URL);
    base.pathname = `/nodb_${suffix()}`;
    const sink = mysqlSink.create({ url: base.toString(), table: 't' } as never, sinkContext()) as MysqlSink;
    const err = (await sink.open().catch((e: unknown) => e)) as Error;
    expect(err.message).toMatch(
      new RegExp(
        `^mysql: cannot read the tables of ${host}:${port}: Unknown database 'nodb_\\w+': create the database`,
      ),
    );
  });
});

describe('mysql sink: failures that are not about a row are retried, not dead-lettered', () => {
  it('a dropped table is a retryable batch error; once recreated the same batch commits', async () => {
    const t = table('dropped');
    await sql(`CREATE TABLE \`${t}\` (id INT PRIMARY KEY)`);
    const sink = await openSink({ table: t, mode: 'upsert' });
    await sql(`DROP TABLE \`${t}\``);
    const err = await sink.write(batchOf([{ id: 1 }, { id: 2 }])).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ name: 'StageError', retryable: true });
    expect((err as Error).message).toMatch(/doesn't exist/);
    await sql(`CREATE TABLE \`${t}\` (id INT PRIMARY KEY)`);
    expect(await sink.write(batchOf([{ id: 1 }, { id: 2 }]))).toBeUndefined();
    expect(await sql(`SELECT COUNT(*) FROM \`${t}\``)).toEqual([['2']]);
  });
});

describe('mysql sink: an outage fails writes within seconds, as retryable', () => {
  it('a frozen server, then a refused port, then the server back', async () => {
    const t = table('outage');
    await sql(`CREATE TABLE \`${t}\` (id INT PRIMARY KEY)`);
    const { host, port } = mysqlConfig();
    const proxy = new TcpProxy(host, port);
    await proxy.start();
    try {
      const url = new URL(MYSQL_URL);
      url.host = `127.0.0.1:${proxy.port}`;
      const sink = await openSink({
        url: url.toString(),
        table: t,
        mode: 'upsert',
        pool_size: 1,
        timeout: 2000,
      });
      expect(await sink.write(batchOf([{ id: 1 }]))).toBeUndefined();

      const failure = async (ids: number[]) => {
        const started = Date.now();
        const err = await sink.write(batchOf(ids.map((id) => ({ id })))).then(
          () => undefined,
          (e: unknown) => e,
        );
        return {
          err: err as { name?: string; retryable?: boolean; message?: string },
          ms: Date.now() - started,
        };
      };

      // Frozen: the pooled connection is open but nothing answers.
      proxy.blackhole();
      const frozen = await failure([2]);
      expect(frozen.err).toMatchObject({ name: 'StageError', retryable: true });
      expect(frozen.err.message).toMatch(/no answer from 127\.0\.0\.1:\d+/);
      expect(frozen.ms).toBeLessThan(4000);
      // Still frozen, and the next write needs a new connection: it gives up just as fast.
      const frozenAgain = await failure([2]);
      expect(frozenAgain.err).toMatchObject({ name: 'StageError', retryable: true });
      expect(frozenAgain.err.message).toMatch(/cannot connect to 127\.0\.0\.1:\d+/);
      expect(frozenAgain.ms).toBeLessThan(4000);

      // Down: the port refuses.
      await proxy.refuse();
      const down = await failure([2]);
      expect(down.err).toMatchObject({ name: 'StageError', retryable: true });
      expect(down.err.message).toMatch(/cannot connect to 127\.0\.0\.1:\d+: .*ECONNREFUSED/);
      expect(down.ms).toBeLessThan(4000);

      // Back: the retried batch commits on a fresh connection.
      await proxy.heal();
      let result: unknown = 'not yet';
      for (let i = 0; i < 20 && result !== undefined; i++) {
        result = await sink.write(batchOf([{ id: 2 }, { id: 3 }])).catch((e: unknown) => e);
      }
      expect(result).toBeUndefined();
      expect(await sql(`SELECT GROUP_CONCAT(id ORDER BY id) FROM \`${t}\``)).toEqual([['1,2,3']]);
    } finally {
      await proxy.stop();
    }
  });
});

describe('mysql sink: rows travel as SQL text, in statements sized by bytes', () => {
  const awkward = [
    "it's",
    'back\\slash and \\% and \\\\',
    'ends with a backslash\\',
    'nul\u0000byte, newline\n, tab\t, ctrl-z\u001a',
    '"double" `tick` ? placeholder ?? and ?',
    'ção, 中文, emoji 😀',
    "REPLACE('x', 'y', 'z')",
    '',
  ];
  const hex = (s: string) => Buffer.from(s, 'utf8').toString('hex').toUpperCase();

  it('every text comes back byte for byte, whatever the session’s backslash mode', async () => {
    const t = table('lit');
    const sink = await openSink({
      table: t,
      create_table: true,
      columns: { id: 'INT', v: 'TEXT', doc: 'JSON', b: 'VARBINARY(16)' },
      key: ['id'],
      mode: 'upsert',
    });
    const values = awkward.map((v, id) => ({ id, v, doc: { v }, b: new Uint8Array([0, 92, 39, id]) }));
    expect(await sink.write(batchOf(values))).toBeUndefined();
    const rows = await sql(`SELECT id, HEX(v), JSON_VALUE(doc, '$.v') = v, HEX(b) FROM \`${t}\` ORDER BY id`);
    expect(rows).toEqual(
      awkward.map((v, id) => [
        String(id),
        hex(v),
        '1',
        `005C27${id.toString(16).padStart(2, '0').toUpperCase()}`,
      ]),
    );

    // The same literals mean the same text to a session that reads backslashes as characters.
    const { literalOf } = await import('../../src/stages/sinks/mysql/literal.ts');
    const conn = await mysql.createConnection(MYSQL_URL);
    try {
      for (const mode of ["''", "'NO_BACKSLASH_ESCAPES'"]) {
        await conn.query(`SET SESSION sql_mode = ${mode}`);
        const [out] = await conn.query(`SELECT ${awkward.map((v) => `HEX(${literalOf(v)})`).join(', ')}`);
        expect(Object.values((out as Record<string, string>[])[0]), mode).toEqual(awkward.map(hex));
      }
    } finally {
      await conn.end();
    }
  });

  it('a batch larger than max_allowed_packet goes in several statements; a row larger than it fails alone', async () => {
    const t = table('packet');
    await sql(`CREATE TABLE \`${t}\` (id INT PRIMARY KEY, doc LONGTEXT)`);
    const [[packet]] = await sql('SELECT @@max_allowed_packet');
    const maxPacket = Number(packet);
    const mib = 1024 * 1024;
    // Two MiB more than one statement may hold, in rows of 1 MiB; and one row alone too large.
    const count = Math.ceil(maxPacket / mib) + 2;
    const values: { id: number; doc: string }[] = Array.from({ length: count }, (_, id) => ({
      id,
      doc: String.fromCharCode(97 + (id % 26)).repeat(mib),
    }));
    values.push({ id: count, doc: 'x'.repeat(maxPacket) });
    const ctx = sinkContext();
    const sink = mysqlSink.create({ url: MYSQL_URL, table: t, mode: 'upsert' } as never, ctx) as MysqlSink;
    sinks.push(sink);
    await sink.open();
    const res = await sink.write(batchOf(values));
    expect(res?.failed).toEqual([
      {
        index: count,
        reason: expect.stringMatching(
          /^mysql: the row is \d+ bytes of SQL, more than one statement to .* may hold \(max_allowed_packet \d+\)$/,
        ),
        retryable: false,
      },
    ]);
    expect(ctx.metrics.extra.get('statements')).toBeGreaterThanOrEqual(2);
    expect(
      await sql(`SELECT COUNT(*), SUM(LENGTH(doc)), COUNT(DISTINCT LEFT(doc, 1)) FROM \`${t}\``),
    ).toEqual([[String(count), String(count * mib), String(Math.min(count, 26))]]);
  });
});
