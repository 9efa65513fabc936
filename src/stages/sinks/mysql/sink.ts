/** The mysql sink at run time: see index.ts for what it does and how it fails. */
import type { Pool, PoolConnection } from 'mysql2/promise';
import type { Logger } from 'pino';
import type { StageMetrics } from '../../../runtime/metrics.ts';
import {
  type PreviewContext,
  type RecordFailure,
  type Sink,
  type SinkBatch,
  type StageContext,
  StageError,
  type WriteResult,
} from '../../define.ts';
import { tlsFailure } from '../../tls.ts';
import { urlCredentialProblem } from '../../url-credentials.ts';
import { createPool, mysqlTls, targetOf, withDeadline } from './connection.ts';
import { ConversionError, convert, type Kind, kindOf, type SqlParam } from './convert.ts';
import { describeError, isDataError, type MysqlError, startupHint, TRANSIENT_CODES } from './errors.ts';
import { IgnoredFields } from './ignored-fields.ts';
import type { MysqlOptions as Options } from './index.ts';
import { Statements } from './statement.ts';
import {
  type ColumnInfo,
  candidateTables,
  currentDatabase,
  describeTable,
  displayTable,
  quoteName,
  type TableRef,
  tableSql,
} from './table.ts';

/** Most placeholders one prepared statement may carry. */
const MAX_PLACEHOLDERS = 65_535;
const DEFAULT_TIMEOUT_MS = 10_000;

export interface Column {
  name: string;
  kind: Kind;
}

/** One record's statement parameters, in column order, and its index in the batch. */
export interface Row {
  index: number;
  params: SqlParam[];
}

interface Candidate {
  index: number;
  value: Record<string, unknown>;
}

export class MysqlSink implements Sink {
  protected readonly opts: Options;
  private readonly log: Logger;
  private readonly metrics: StageMetrics;
  private readonly timeoutMs: number;
  private pool: Pool | undefined;
  /** host:port of the URL, for messages (never the credentials). */
  private target = '';
  /** Why the last new connection was dropped: its certificate did not name the host. */
  private identityError: Error | undefined;
  private table: TableRef;
  private tableSql = '';
  /** How messages name the table, with its database. */
  protected tableName = '';
  /** Table columns by name, in table order (only those we write when `columns` is given). */
  private columns = new Map<string, Column>();
  private keyColumns: string[] = [];
  private statements: Statements | undefined;
  private ignored: IgnoredFields;

  constructor(opts: Options, ctx: StageContext) {
    this.opts = opts;
    this.log = ctx.log;
    this.metrics = ctx.metrics;
    this.timeoutMs = opts.timeout ?? DEFAULT_TIMEOUT_MS;
    this.table = { database: opts.database, name: opts.table };
    this.ignored = new IgnoredFields(ctx.log, opts.table);
  }

  async open(): Promise<void> {
    // Before anything parses the URL: a misread one would put part of the password in messages.
    const problem = urlCredentialProblem(this.opts.url);
    if (problem) throw new Error(`mysql: ${problem}`);
    this.target = targetOf(this.opts.url);
    const pool = createPool(this.opts, {
      target: this.target,
      lockWaitSeconds: Math.max(1, Math.floor(this.timeoutMs / 1000) - 2),
      log: this.log,
      ssl: await mysqlTls(this.opts.tls),
      identityFailed: (err) => {
        this.identityError = err;
        this.log.error({ err: err.message, target: this.target }, 'mysql: server certificate refused');
      },
    });
    this.pool = pool;
    try {
      await this.resolveTable(pool);
    } catch (err) {
      this.pool = undefined;
      await pool.end().catch(() => undefined);
      throw err;
    }
  }

  /** Finds (or creates) the table and reads its columns; fails with what to create or fix. */
  private async resolveTable(pool: Pool): Promise<void> {
    const o = this.opts;
    let urlDatabase: string | undefined;
    let candidates = candidateTables(o.table, o.database);
    const found: { ref: TableRef; columns: Map<string, ColumnInfo> }[] = [];
    try {
      urlDatabase = await currentDatabase(pool);
      // Without a database in the URL only a table with an explicit database can be meant.
      if (urlDatabase === undefined) candidates = candidates.filter((c) => c.database !== undefined);
      for (const ref of candidates) {
        const columns = await describeTable(pool, ref);
        if (columns.size > 0) found.push({ ref, columns });
      }
    } catch (err) {
      const tls = this.opts.tls ? tlsFailure(this.identityError ?? err) : undefined;
      if (tls) throw new Error(`mysql: TLS to ${this.target} failed: ${tls}`, { cause: err });
      throw new Error(
        `mysql: cannot read the tables of ${this.target}: ${describeError(err)}${startupHint(err)}`,
      );
    }
    if (candidates.length === 0) {
      throw new Error(
        `mysql: the URL for ${this.target} names no database: add it to the URL (…/database) or set \`database\``,
      );
    }
    const names = candidates.map((c) => displayTable(c, urlDatabase));
    if (found.length > 1) {
      throw new Error(
        `mysql: table ${o.table} could be ${names.join(' or ')}, and both exist on ${this.target}: set \`database\` and give \`table\` the name within it`,
      );
    }
    let existing = found[0]?.columns;
    this.table = found[0]?.ref ?? candidates[0];
    if (!existing) {
      if (!o.create_table || !o.columns) {
        const hint = o.columns
          ? 'create it, or set create_table: true to create it from `columns`'
          : 'create it (or give `columns` and create_table: true)';
        throw new Error(`mysql: table ${names.join(' or ')} does not exist on ${this.target}: ${hint}`);
      }
      if (candidates.length > 1) {
        throw new Error(
          `mysql: table ${o.table} could be ${names.join(' or ')}; to create it set \`database\` and give \`table\` the name within it`,
        );
      }
      this.prepareTable(urlDatabase);
      await this.createTable();
      existing = await describeTable(pool, this.table);
    }
    this.prepareTable(urlDatabase);
    if (this.table.legacy) {
      this.log.warn(
        { table: this.tableName },
        'mysql: `table` with a dot is read as database.table; set `database` instead',
      );
    }
    this.readColumns(existing);
  }

  private prepareTable(urlDatabase: string | undefined): void {
    this.tableSql = tableSql(this.table);
    this.tableName = displayTable(this.table, urlDatabase);
  }

  protected readColumns(existing: Map<string, ColumnInfo>): void {
    const o = this.opts;
    if (o.columns) {
      const missing = Object.keys(o.columns).filter((c) => !existing.has(c));
      if (missing.length > 0) {
        throw new Error(
          `mysql: table ${this.tableName} on ${this.target} has no column ${missing.map((m) => `'${m}'`).join(', ')}: add it, or remove it from \`columns\``,
        );
      }
    }
    const wanted = o.columns ? new Set(Object.keys(o.columns)) : undefined;
    for (const [col, info] of existing) {
      if (wanted && !wanted.has(col)) continue;
      this.columns.set(col, { name: col, kind: kindOf(o.columns?.[col] ?? info.type) });
    }
    this.keyColumns = o.key ?? [...existing].filter(([, i]) => i.key).map(([c]) => c);
    const badKey = this.keyColumns.filter((k) => !existing.has(k));
    if (badKey.length > 0) {
      throw new Error(`mysql: key column ${badKey.join(', ')} is not in table ${this.tableName}`);
    }
    if ((o.mode ?? 'insert') === 'upsert' && this.keyColumns.length === 0) {
      throw new Error(`mysql: upsert needs \`key\` or a primary key on table ${this.tableName}`);
    }
    this.statements = new Statements(this.tableSql, o.mode ?? 'insert', this.keyColumns);
  }

  private async createTable(): Promise<void> {
    const o = this.opts;
    const cols = Object.entries(o.columns ?? {}).map(([c, t]) => `${quoteName(c)} ${t}`);
    if (o.key) cols.push(`PRIMARY KEY (${o.key.map(quoteName).join(', ')})`);
    const sql = `CREATE TABLE IF NOT EXISTS ${this.tableSql} (${cols.join(', ')})`;
    try {
      await (this.pool as Pool).query(sql);
    } catch (err) {
      throw new Error(
        `mysql: cannot create table ${this.tableName} on ${this.target}: ${describeError(err)}${startupHint(err)}`,
      );
    }
    this.log.info({ table: this.tableName }, 'mysql table created');
  }

  async write(batch: SinkBatch): Promise<WriteResult> {
    const pool = this.pool;
    if (!pool) throw new StageError('mysql sink used before open()');
    const started = Date.now();
    const { failed, columns, rows } = this.prepare(batch);
    if (rows.length === 0) return failed.length > 0 ? { failed: byIndex(failed) } : undefined;

    const conn = await this.acquire(pool);
    const rejectedBefore = failed.length;
    try {
      await this.timed(conn.beginTransaction(), 'BEGIN');
      const perStatement = Math.max(1, Math.floor(MAX_PLACEHOLDERS / columns.length));
      for (let at = 0; at < rows.length; at += perStatement) {
        await this.insert(conn, columns, rows.slice(at, at + perStatement), failed);
      }
      await this.timed(conn.commit(), 'COMMIT');
    } catch (err) {
      await this.abandon(conn, err);
      if (err instanceof StageError) throw err;
      // Transient, or not about the rows (a dropped table, a revoked grant): the whole batch retries.
      throw new StageError(`mysql: ${describeError(err)}`, { retryable: true, cause: err });
    }
    conn.release();
    this.metrics.count('rows', rows.length - (failed.length - rejectedBefore));
    this.metrics.batchTook(Date.now() - started);
    return failed.length > 0 ? { failed: byIndex(failed) } : undefined;
  }

  /** The rows a batch writes, converted for their columns; the records that cannot be rows fail alone. */
  protected prepare(batch: SinkBatch): { failed: RecordFailure[]; columns: Column[]; rows: Row[] } {
    const failed: RecordFailure[] = [];
    const candidates = this.objectsOf(batch, failed);
    const columns = this.columnsOf(candidates, failed);
    const rows = this.rowsOf(candidates, columns, failed);
    return { failed, columns, rows };
  }

  /** The records whose value is an object; the others fail alone. */
  private objectsOf(batch: SinkBatch, failed: RecordFailure[]): Candidate[] {
    const out: Candidate[] = [];
    for (let i = 0; i < batch.records.length; i++) {
      const v = batch.records[i].value;
      if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) {
        this.reject(failed, i, 'mysql: record value is not an object');
        continue;
      }
      out.push({ index: i, value: v as Record<string, unknown> });
    }
    return out;
  }

  /**
   * The columns a batch writes: all declared ones, or the table's columns any record has, in
   * table order. Without `columns`, a record with no field that is a column fails alone (and is
   * removed from `candidates`).
   */
  private columnsOf(candidates: Candidate[], failed: RecordFailure[]): Column[] {
    if (this.opts.columns) return [...this.columns.values()];
    const present = new Set<string>();
    let kept = 0;
    for (const c of candidates) {
      let matched = 0;
      const ignored: string[] = [];
      for (const k of Object.keys(c.value)) {
        if (this.columns.has(k)) {
          matched++;
          present.add(k);
        } else ignored.push(k);
      }
      if (ignored.length > 0) this.ignored.note(ignored);
      if (matched === 0) {
        this.reject(failed, c.index, `mysql: no field of the record is a column of table ${this.tableName}`);
        continue;
      }
      candidates[kept++] = c;
    }
    candidates.length = kept;
    return [...this.columns.values()].filter((c) => present.has(c.name));
  }

  /** Statement parameters per record; a record with a value that does not fit its column fails alone. */
  private rowsOf(candidates: Candidate[], columns: Column[], failed: RecordFailure[]): Row[] {
    const strict = this.opts.strict !== false;
    const rows: Row[] = [];
    for (const { index, value } of candidates) {
      const params: SqlParam[] = new Array(columns.length);
      let c = 0;
      try {
        for (; c < columns.length; c++) {
          const name = columns[c].name;
          params[c] = convert(Object.hasOwn(value, name) ? value[name] : undefined, columns[c].kind, strict);
        }
      } catch (err) {
        this.reject(failed, index, `mysql: column '${columns[c].name}': ${conversionReason(err)}`);
        continue;
      }
      rows.push({ index, params });
    }
    return rows;
  }

  private reject(failed: RecordFailure[], index: number, reason: string): void {
    failed.push({ index, reason, retryable: false });
    this.metrics.count('rows_rejected');
  }

  /** A pooled connection within `timeout`; a failure is transient (the runtime retries). */
  private async acquire(pool: Pool): Promise<PoolConnection> {
    const pending = pool.getConnection();
    try {
      return await this.timed(pending, 'a connection');
    } catch (err) {
      // Comes too late for this write: back to the pool when it arrives.
      pending.then(
        (c) => c.release(),
        () => undefined,
      );
      throw new StageError(`mysql: cannot connect to ${this.target}: ${describeError(err)}`, {
        retryable: true,
        cause: err,
      });
    }
  }

  /** Undoes the transaction after a failure, or drops the connection when its state is unknown. */
  private async abandon(conn: PoolConnection, err: unknown): Promise<void> {
    const e = err as MysqlError;
    // A lost, timed-out or killed connection cannot roll back; the server does when it goes.
    if (e.fatal === true || (e.code !== undefined && TRANSIENT_CODES.has(e.code))) {
      conn.destroy();
      return;
    }
    try {
      await this.timed(conn.rollback(), 'ROLLBACK');
      conn.release();
    } catch {
      conn.destroy();
    }
  }

  /** `work`, or a transient timeout error after `timeout` (the caller then drops the connection). */
  private timed<T>(work: Promise<T>, what: string): Promise<T> {
    return withDeadline(
      work,
      this.timeoutMs,
      `no answer from ${this.target} to ${what} in ${this.timeoutMs} ms`,
    );
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
      const sql = (this.statements as Statements).insert(
        columns.map((c) => c.name),
        rows.length,
      );
      await this.timed(conn.execute(sql, params), 'INSERT');
    } catch (err) {
      const e = err as MysqlError;
      if (!isDataError(e)) throw err;
      if (rows.length === 1) {
        this.reject(failed, rows[0].index, `mysql: ${describeError(e)}`);
        return;
      }
      this.metrics.count('bisections');
      const half = Math.ceil(rows.length / 2);
      await this.insert(conn, columns, rows.slice(0, half), failed);
      await this.insert(conn, columns, rows.slice(half), failed);
    }
  }

  async close(): Promise<void> {
    this.ignored.flush();
    const pool = this.pool;
    this.pool = undefined;
    await pool?.end().catch(() => undefined);
  }
}

function conversionReason(err: unknown): string {
  if (err instanceof ConversionError) return err.message;
  // Anything else a value can throw while being read (a getter, a proxy): still this record's.
  return `value cannot be converted: ${err instanceof Error ? err.message : String(err)}`;
}

function byIndex(failed: RecordFailure[]): RecordFailure[] {
  return failed.sort((a, b) => a.index - b.index);
}

/**
 * The mysql sink with its database replaced (`sluice test`): columns come from `columns` or the
 * test's `tables`, and each row is captured as the statement would bind it, after conversion.
 */
export class MysqlPreview extends MysqlSink {
  private readonly ctx: PreviewContext;
  constructor(opts: Options, ctx: PreviewContext) {
    super(opts, ctx);
    this.ctx = ctx;
  }

  override async open(): Promise<void> {
    const o = this.opts;
    const declared = o.columns ?? this.ctx.tables?.[o.table];
    if (!declared) {
      throw new Error(
        `mysql: the columns of table ${o.table} are unknown without a database: give \`columns\` in the spec or \`tables: { ${o.table}: { column: TYPE } }\` in the test`,
      );
    }
    const key = new Set(o.key ?? []);
    this.tableName = o.table;
    this.readColumns(new Map(Object.entries(declared).map(([c, type]) => [c, { type, key: key.has(c) }])));
  }

  override async write(batch: SinkBatch): Promise<WriteResult> {
    const { failed, columns, rows } = this.prepare(batch);
    for (const r of rows) {
      const row: Record<string, unknown> = {};
      for (let c = 0; c < columns.length; c++) {
        const p = r.params[c];
        row[columns[c].name] = Buffer.isBuffer(p) ? p.toString('utf8') : p;
      }
      this.ctx.capture({ kind: 'row', table: this.opts.table, row });
    }
    return failed.length > 0 ? { failed: byIndex(failed) } : undefined;
  }

  override async close(): Promise<void> {}
}
