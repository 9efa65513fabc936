/**
 * `mysql` sink: multi-row inserts per batch in one transaction; insert, insert_ignore or upsert.
 *
 * Values always travel as prepared-statement parameters and identifiers are quoted with
 * backticks, so no field name or value can change the SQL. A statement the database rejects
 * for its data (too long, NOT NULL, bad date, duplicate key) is bisected inside the same
 * transaction: InnoDB undoes only the failed statement, so the good rows still commit and
 * only the bad ones come back with the database's message. Connection loss, deadlocks and
 * lock wait timeouts fail the whole batch as retryable; the runtime retries with backoff.
 */
import { type Static, Type } from '@sinclair/typebox';
import mysql, { type Pool, type PoolConnection } from 'mysql2/promise';
import type { Logger } from 'pino';
import type { StageMetrics } from '../../runtime/metrics.ts';
import { EnvSecret } from '../../spec/types.ts';
import {
  defineSink,
  type RecordFailure,
  type Sink,
  type SinkBatch,
  type StageContext,
  StageError,
  type WriteResult,
} from '../define.ts';

const options = Type.Object({
  url: EnvSecret({
    description:
      'Connection URL mysql://user[:password]@host:port/database, from the environment: ${MYSQL_URL}',
    examples: ['${MYSQL_URL}'],
  }),
  table: Type.String({
    minLength: 1,
    description: 'Table name (`database.table` to name another database than the URL’s)',
    examples: ['historico_consumo'],
  }),
  mode: Type.Optional(
    Type.Union([Type.Literal('insert'), Type.Literal('insert_ignore'), Type.Literal('upsert')], {
      default: 'insert',
      description:
        'insert: a duplicate key is a rejected row; insert_ignore: rows whose key exists are skipped; upsert: they update the non-key columns (ON DUPLICATE KEY UPDATE)',
    }),
  ),
  key: Type.Optional(
    Type.Array(Type.String({ minLength: 1 }), {
      minItems: 1,
      description:
        'Key columns: the primary key of a created table, and the columns upsert leaves alone; default the table’s primary key',
      examples: [['id_treated_data']],
    }),
  ),
  columns: Type.Optional(
    Type.Record(
      Type.String({ minLength: 1 }),
      Type.String({ minLength: 1, pattern: '^[A-Za-z][A-Za-z0-9_ (),]*$' }),
      {
        description:
          'Column name → SQL type; each takes the record field of the same name. Absent: every record field that is a column of the table (others are ignored with a warning)',
        examples: [{ id: 'VARCHAR(255)', peso_medio: 'FLOAT', data: 'DATETIME' }],
      },
    ),
  ),
  create_table: Type.Optional(
    Type.Boolean({
      default: false,
      description: 'Create the table from `columns` (primary key `key`) when it does not exist',
    }),
  ),
  pool_size: Type.Optional(
    Type.Integer({ minimum: 1, maximum: 64, default: 4, description: 'Connections in the pool' }),
  ),
  strict: Type.Optional(
    Type.Boolean({
      default: true,
      description:
        'Run sessions in strict SQL mode, so a value that does not fit is a rejected row, not silently truncated',
    }),
  ),
});

type Options = Static<typeof options>;

/** MySQL error numbers that mean "try again": the batch as a whole did not happen. */
const TRANSIENT_ERRNO = new Set([
  1040, // too many connections
  1053, // server shutdown
  1205, // lock wait timeout
  1213, // deadlock
  1317, // query interrupted
  1927, // connection killed (MariaDB)
  2002,
  2003,
  2006, // server has gone away
  2013, // lost connection during query
  4031, // disconnected by the server (inactivity)
]);
const TRANSIENT_CODES = new Set([
  'PROTOCOL_CONNECTION_LOST',
  'PROTOCOL_SEQUENCE_TIMEOUT',
  'ECONNRESET',
  'ECONNREFUSED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);
/** Errors about the rows themselves: bisect to find them. */
const DATA_ERRNO = new Set([
  1048, // column cannot be null
  1062, // duplicate entry
  1264, // out of range
  1265, // data truncated
  1292, // incorrect datetime/double value
  1366, // incorrect integer/string value
  1406, // data too long
  1411, // incorrect value for function
  1451, // foreign key: parent row
  1452, // foreign key: child row
  1690, // value out of range
  3819, // check constraint (MySQL)
  4025, // check constraint (MariaDB)
  4078, // illegal value for JSON
  3140, // invalid JSON text
]);

/** Most placeholders one prepared statement may carry. */
const MAX_PLACEHOLDERS = 65_535;

export const mysqlSink = defineSink({
  type: 'mysql',
  kind: 'sink',
  description:
    'Writes records as rows of a MySQL/MariaDB table, one transaction per batch; rows the database rejects go to the error output with its message.',
  options,
  check(opts, report) {
    if (opts.create_table && !opts.columns) {
      report(
        ['create_table'],
        'schema-value',
        'create_table needs `columns` (name → SQL type) to create the table from',
      );
    }
    if (opts.columns && opts.key) {
      for (const [i, k] of opts.key.entries()) {
        if (!(k in opts.columns))
          report(['key', i], 'schema-value', `key column '${k}' is not in \`columns\``);
      }
    }
  },
  batching: { defaults: { max_records: 1000, max_bytes: 4 * 1024 * 1024, max_age: 200 } },
  create: (opts, ctx) => new MysqlSink(opts, ctx),
});

type Kind = 'datetime' | 'date' | 'time' | 'number' | 'json' | 'binary' | 'text';

interface Column {
  name: string;
  kind: Kind;
}

type SqlParam = string | number | Buffer | null;

/** One record's statement parameters, in column order, and its index in the batch. */
interface Row {
  index: number;
  params: SqlParam[];
}

interface MysqlError extends Error {
  errno?: number;
  code?: string;
  sqlMessage?: string;
  fatal?: boolean;
}

export class MysqlSink implements Sink {
  private readonly opts: Options;
  private readonly log: Logger;
  private readonly metrics: StageMetrics;
  private pool: Pool | undefined;
  private tableSql = '';
  /** Table columns by name, in table order (only those we write when `columns` is given). */
  private columns = new Map<string, Column>();
  private keyColumns: string[] = [];
  private readonly ignoredFields = new Set<string>();

  constructor(opts: Options, ctx: StageContext) {
    this.opts = opts;
    this.log = ctx.log;
    this.metrics = ctx.metrics;
  }

  async open(): Promise<void> {
    const o = this.opts;
    const pool = mysql.createPool({
      uri: o.url,
      connectionLimit: o.pool_size ?? 4,
      waitForConnections: true,
      connectTimeout: 10_000,
      supportBigNumbers: true,
      bigNumberStrings: true,
      enableKeepAlive: true,
      maxPreparedStatements: 256,
    });
    pool.pool.on('connection', (conn) => {
      // Strict mode turns truncation into errors; UTC makes TIMESTAMP columns match our conversions.
      const sql =
        o.strict === false
          ? "SET time_zone = '+00:00'"
          : "SET time_zone = '+00:00', sql_mode = CONCAT_WS(',', NULLIF(@@sql_mode, ''), 'STRICT_ALL_TABLES')";
      conn.query(sql, (err: Error | null) => {
        if (err) this.log.warn({ err: err.message }, 'mysql session setup failed');
      });
    });
    this.pool = pool;
    const [db, name] = splitTable(o.table);
    this.tableSql = db ? `${mysql.escapeId(db)}.${mysql.escapeId(name)}` : mysql.escapeId(name);
    let existing: Map<string, { type: string; key: boolean }>;
    try {
      existing = await this.describe(db, name);
    } catch (err) {
      throw new Error(`mysql: cannot read the table definition: ${describeError(err)}`);
    }
    if (existing.size === 0) {
      if (!o.create_table || !o.columns) {
        throw new Error(
          `mysql: table ${o.table} does not exist${o.columns ? '; set create_table: true to create it from `columns`' : ''}`,
        );
      }
      await this.createTable();
      existing = await this.describe(db, name);
    }
    if (o.columns) {
      const missing = Object.keys(o.columns).filter((c) => !existing.has(c));
      if (missing.length > 0) {
        throw new Error(`mysql: table ${o.table} has no column ${missing.map((m) => `'${m}'`).join(', ')}`);
      }
    }
    const wanted = o.columns ? new Set(Object.keys(o.columns)) : undefined;
    for (const [col, info] of existing) {
      if (wanted && !wanted.has(col)) continue;
      this.columns.set(col, { name: col, kind: kindOf(o.columns?.[col] ?? info.type) });
    }
    this.keyColumns = o.key ?? [...existing].filter(([, i]) => i.key).map(([c]) => c);
    const badKey = this.keyColumns.filter((k) => !existing.has(k));
    if (badKey.length > 0)
      throw new Error(`mysql: key column ${badKey.join(', ')} is not in table ${o.table}`);
    if ((o.mode ?? 'insert') === 'upsert' && this.keyColumns.length === 0) {
      throw new Error(`mysql: upsert needs \`key\` or a primary key on table ${o.table}`);
    }
  }

  private async describe(
    db: string | undefined,
    name: string,
  ): Promise<Map<string, { type: string; key: boolean }>> {
    const pool = this.pool as Pool;
    const [rows] = await pool.execute(
      `SELECT COLUMN_NAME AS name, DATA_TYPE AS type, COLUMN_KEY AS ckey FROM information_schema.COLUMNS
       WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`,
      [db ?? null, name],
    );
    const out = new Map<string, { type: string; key: boolean }>();
    for (const r of rows as { name: string; type: string; ckey: string }[]) {
      out.set(r.name, { type: r.type, key: r.ckey === 'PRI' });
    }
    return out;
  }

  private async createTable(): Promise<void> {
    const o = this.opts;
    const cols = Object.entries(o.columns ?? {}).map(([c, t]) => `${mysql.escapeId(c)} ${t}`);
    if (o.key) cols.push(`PRIMARY KEY (${o.key.map((k) => mysql.escapeId(k)).join(', ')})`);
    const sql = `CREATE TABLE IF NOT EXISTS ${this.tableSql} (${cols.join(', ')})`;
    await (this.pool as Pool).query(sql);
    this.log.info({ table: o.table }, 'mysql table created');
  }

  async write(batch: SinkBatch): Promise<WriteResult> {
    const pool = this.pool;
    if (!pool) throw new StageError('mysql sink used before open()');
    const started = Date.now();
    const failed: RecordFailure[] = [];
    const objects: { index: number; value: Record<string, unknown> }[] = [];
    for (let i = 0; i < batch.records.length; i++) {
      const v = batch.records[i].value;
      if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) {
        failed.push({ index: i, reason: 'mysql: record value is not an object', retryable: false });
        continue;
      }
      objects.push({ index: i, value: v as Record<string, unknown> });
    }
    if (objects.length === 0) return failed.length > 0 ? { failed } : undefined;
    const columns = this.columnsOf(objects);
    const rows: Row[] = new Array(objects.length);
    for (let r = 0; r < objects.length; r++) {
      const value = objects[r].value;
      const params: SqlParam[] = new Array(columns.length);
      for (let c = 0; c < columns.length; c++) {
        const name = columns[c].name;
        params[c] = convert(Object.hasOwn(value, name) ? value[name] : undefined, columns[c].kind);
      }
      rows[r] = { index: objects[r].index, params };
    }
    if (rows.length === 0) return failed.length > 0 ? { failed } : undefined;

    let conn: PoolConnection;
    try {
      conn = await pool.getConnection();
    } catch (err) {
      throw new StageError(`mysql: cannot connect: ${describeError(err)}`, { retryable: true, cause: err });
    }
    const rejectedBefore = failed.length;
    let broken = false;
    try {
      await conn.beginTransaction();
      const perStatement = Math.max(1, Math.floor(MAX_PLACEHOLDERS / columns.length));
      for (let at = 0; at < rows.length; at += perStatement) {
        await this.insert(conn, columns, rows.slice(at, at + perStatement), failed);
      }
      await conn.commit();
    } catch (err) {
      const e = err as MysqlError;
      broken = isTransient(e) || e.fatal === true;
      await conn.rollback().catch(() => {
        broken = true;
      });
      if (err instanceof StageError) throw err;
      // Transient, or not about the rows (a dropped table, a revoked grant): the whole batch retries.
      throw new StageError(`mysql: ${describeError(err)}`, { retryable: true, cause: err });
    } finally {
      if (broken) conn.destroy();
      else conn.release();
    }
    this.metrics.count('rows', rows.length - (failed.length - rejectedBefore));
    this.metrics.batchTook(Date.now() - started);
    return failed.length > 0 ? { failed: failed.sort((a, b) => a.index - b.index) } : undefined;
  }

  /** One multi-row statement; when the data is rejected, halves until the bad rows are alone. */
  private async insert(
    conn: PoolConnection,
    columns: Column[],
    rows: Row[],
    failed: RecordFailure[],
  ): Promise<void> {
    const params: SqlParam[] = [];
    for (const r of rows) for (const p of r.params) params.push(p);
    try {
      await conn.execute(this.statement(columns, rows.length), params);
    } catch (err) {
      const e = err as MysqlError;
      if (isTransient(e) || !isDataError(e)) throw err;
      if (rows.length === 1) {
        failed.push({ index: rows[0].index, reason: `mysql: ${describeError(e)}`, retryable: false });
        this.metrics.count('rows_rejected');
        return;
      }
      this.metrics.count('bisections');
      const half = Math.ceil(rows.length / 2);
      await this.insert(conn, columns, rows.slice(0, half), failed);
      await this.insert(conn, columns, rows.slice(half), failed);
    }
  }

  private readonly statements = new Map<string, string>();

  private statement(columns: Column[], rowCount: number): string {
    const cacheKey = `${rowCount}|${columns.map((c) => c.name).join('\u0000')}`;
    const cached = this.statements.get(cacheKey);
    if (cached) return cached;
    const mode = this.opts.mode ?? 'insert';
    const names = columns.map((c) => mysql.escapeId(c.name));
    const tuple = `(${columns.map(() => '?').join(',')})`;
    let sql = `INSERT INTO ${this.tableSql} (${names.join(',')}) VALUES ${new Array(rowCount).fill(tuple).join(',')}`;
    if (mode === 'upsert') {
      const keys = new Set(this.keyColumns);
      const update = columns.filter((c) => !keys.has(c.name)).map((c) => mysql.escapeId(c.name));
      // With nothing but key columns an upsert is an insert that skips existing keys.
      const set = update.length > 0 ? update.map((n) => `${n}=VALUES(${n})`) : [`${names[0]}=${names[0]}`];
      sql += ` ON DUPLICATE KEY UPDATE ${set.join(',')}`;
    } else if (mode === 'insert_ignore') {
      // Not INSERT IGNORE: that would also truncate too-long values and turn NULLs into defaults.
      sql += ` ON DUPLICATE KEY UPDATE ${names[0]}=${names[0]}`;
    }
    if (this.statements.size > 64) this.statements.clear();
    this.statements.set(cacheKey, sql);
    return sql;
  }

  /** The columns a batch writes: all declared ones, or the table's columns any record has, in table order. */
  private columnsOf(objects: { value: Record<string, unknown> }[]): Column[] {
    if (this.opts.columns) return [...this.columns.values()];
    const present = new Set<string>();
    for (const { value } of objects) {
      for (const k of Object.keys(value)) {
        if (present.has(k)) continue;
        if (this.columns.has(k)) present.add(k);
        else if (!this.ignoredFields.has(k)) {
          this.ignoredFields.add(k);
          this.log.warn(
            { field: k, table: this.opts.table },
            'mysql: record field has no column in the table; ignored',
          );
        }
      }
    }
    const cols = [...this.columns.values()].filter((c) => present.has(c.name));
    if (cols.length === 0) {
      throw new StageError('mysql: no record field matches a column of the table', { retryable: false });
    }
    return cols;
  }

  async close(): Promise<void> {
    const pool = this.pool;
    this.pool = undefined;
    await pool?.end().catch(() => undefined);
  }
}

function splitTable(table: string): [string | undefined, string] {
  const dot = table.indexOf('.');
  return dot > 0 ? [table.slice(0, dot), table.slice(dot + 1)] : [undefined, table];
}

/** Conversion class of a SQL type (`VARCHAR(255)`, `datetime`, `DECIMAL(10,2)` ...). */
export function kindOf(sqlType: string): Kind {
  const t = sqlType.trim().toLowerCase().replace(/\(.*$/, '').split(/\s+/)[0];
  if (t === 'datetime' || t === 'timestamp') return 'datetime';
  if (t === 'date') return 'date';
  if (t === 'time') return 'time';
  if (t === 'json') return 'json';
  if (
    /^(tiny|small|medium|big)?int(eger)?$|^(decimal|numeric|float|double|real|bit|year|bool|boolean)$/.test(t)
  ) {
    return 'number';
  }
  if (/blob$|binary$/.test(t)) return 'binary';
  return 'text';
}

const ISO_WITH_ZONE = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/i;
const ISO_LOCAL_T = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/;

/** A record field's value as a statement parameter for a column of the given kind. */
export function convert(v: unknown, kind: Kind): SqlParam {
  if (v === undefined || v === null) return null;
  switch (kind) {
    case 'datetime':
    case 'date':
      if (v instanceof Date) return formatDate(v, kind);
      if (typeof v === 'number') return formatDate(new Date(v), kind);
      if (typeof v === 'string') {
        if (ISO_WITH_ZONE.test(v)) {
          const d = new Date(v);
          if (!Number.isNaN(d.getTime())) return formatDate(d, kind);
        }
        // A zone-less ISO time is taken as written (the DB reads 'YYYY-MM-DD HH:MM:SS').
        if (ISO_LOCAL_T.test(v)) return v.replace('T', ' ');
        return v;
      }
      return String(v);
    case 'number':
      if (typeof v === 'boolean') return v ? 1 : 0;
      if (typeof v === 'bigint') return v.toString();
      if (typeof v === 'number' || typeof v === 'string') return v;
      return JSON.stringify(v);
    case 'json':
      return JSON.stringify(v);
    case 'binary':
      if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
      return typeof v === 'string' ? v : JSON.stringify(v);
    default:
      if (typeof v === 'string') return v;
      if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
      if (v instanceof Date) return v.toISOString();
      if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
      return JSON.stringify(v);
  }
}

function formatDate(d: Date, kind: 'datetime' | 'date'): string {
  const iso = d.toISOString(); // 2024-03-20T10:30:45.123Z
  return kind === 'date' ? iso.slice(0, 10) : `${iso.slice(0, 10)} ${iso.slice(11, 23)}`;
}

function isTransient(e: MysqlError): boolean {
  return (
    (e.errno !== undefined && TRANSIENT_ERRNO.has(e.errno)) ||
    (e.code !== undefined && TRANSIENT_CODES.has(e.code))
  );
}

function isDataError(e: MysqlError): boolean {
  return e.errno !== undefined && DATA_ERRNO.has(e.errno);
}

function describeError(err: unknown): string {
  const e = err as MysqlError;
  return e.sqlMessage ?? e.message ?? String(err);
}
