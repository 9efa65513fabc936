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
import { captureRows, declaredTable } from '../sql/preview.ts';
import { type Column, type EncodedBatch, type PreparedBatch, resultOf, SqlRows } from '../sql/rows.ts';
import { createPool, mysqlTls, targetOf, withDeadline } from './connection.ts';
import { convert, type Kind, kindOf, type SqlParam } from './convert.ts';
import { describeError, isDataError, type MysqlError, startupHint, TRANSIENT_CODES } from './errors.ts';
import type { MysqlOptions as Options } from './index.ts';
import { valuesOf } from './literal.ts';
import { type Frame, insertOf, rowBytes, Statements, statementsBySize, type TextRow } from './statement.ts';
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

const DEFAULT_TIMEOUT_MS = 10_000;
/** Room in a packet for what is not statement text (the command byte; generous). */
const PACKET_SLACK = 1024;
/** max_allowed_packet of a server that does not say (MySQL's and MariaDB's default before 8.0). */
const DEFAULT_MAX_PACKET = 4 * 1024 * 1024;

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
  private columns = new Map<string, Column<Kind>>();
  private keyColumns: string[] = [];
  private statements: Statements | undefined;
  /** The server's max_allowed_packet, read at open: no statement is larger. */
  private maxPacket = DEFAULT_MAX_PACKET;
  private readonly rows: SqlRows<Kind, SqlParam>;

  constructor(opts: Options, ctx: StageContext) {
    this.opts = opts;
    this.log = ctx.log;
    this.metrics = ctx.metrics;
    this.timeoutMs = opts.timeout ?? DEFAULT_TIMEOUT_MS;
    this.table = { database: opts.database, name: opts.table };
    this.rows = new SqlRows(
      {
        system: 'mysql',
        table: opts.table,
        declared: opts.columns !== undefined,
        strict: opts.strict !== false,
        convert,
      },
      ctx,
    );
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
      this.maxPacket = await maxAllowedPacket(pool, this.target);
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
    const { failed, columns, rows } = this.encode(batch);
    const frame = (this.statements as Statements).frame(columns.map((c) => c.name));
    const { statements, tooLarge } = statementsBySize(rows, frame.bytes, this.maxPacket - PACKET_SLACK);
    for (const r of tooLarge) {
      const reason = `mysql: the row is ${r.bytes} bytes of SQL, more than one statement to ${this.target} may hold (max_allowed_packet ${this.maxPacket})`;
      this.rows.reject(failed, r.index, reason);
    }
    if (statements.length === 0) return resultOf(failed);

    const conn = await this.acquire(pool);
    const rejectedBefore = failed.length;
    try {
      await this.timed(conn.beginTransaction(), 'BEGIN');
      for (const statement of statements) await this.insert(conn, frame, statement, failed);
      await this.timed(conn.commit(), 'COMMIT');
    } catch (err) {
      await this.abandon(conn, err);
      if (err instanceof StageError) throw err;
      // Transient, or not about the rows (a dropped table, a revoked grant): the whole batch retries.
      throw new StageError(`mysql: ${describeError(err)}`, { retryable: true, cause: err });
    }
    conn.release();
    this.metrics.count('rows', rows.length - tooLarge.length - (failed.length - rejectedBefore));
    return resultOf(failed);
  }

  /** The rows a batch writes, converted for their columns; the records that cannot be rows fail alone. */
  protected prepare(batch: SinkBatch): PreparedBatch<Kind, SqlParam> {
    return this.rows.prepare(batch, this.columns, this.tableName);
  }

  /** As `prepare`, each row as the SQL text of its tuple. */
  private encode(batch: SinkBatch): EncodedBatch<Kind, TextRow> {
    return this.rows.encode(batch, this.columns, this.tableName, textRow);
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
  private insert(
    conn: PoolConnection,
    frame: Frame,
    rows: TextRow[],
    failed: RecordFailure[],
  ): Promise<void> {
    return this.rows.bisect(rows, failed, async (part) => {
      this.metrics.count('statements');
      try {
        await this.timed(conn.query(insertOf(frame, part)), 'INSERT');
      } catch (err) {
        const e = err as MysqlError;
        if (!isDataError(e)) throw err;
        // InnoDB has undone the failed statement alone; the transaction goes on.
        return `mysql: ${describeError(e)}`;
      }
      return undefined;
    });
  }

  async close(): Promise<void> {
    this.rows.close();
    const pool = this.pool;
    this.pool = undefined;
    await pool?.end().catch(() => undefined);
  }
}

/** A row's SQL text and its size, made as soon as its values are converted. */
function textRow(index: number, params: readonly SqlParam[]): TextRow {
  const text = valuesOf(params);
  return { index, text, bytes: rowBytes(text) };
}

/** The server's max_allowed_packet: the most bytes one statement may have. */
async function maxAllowedPacket(pool: Pool, target: string): Promise<number> {
  let value: number;
  try {
    const [rows] = await pool.query('SELECT @@max_allowed_packet AS max_packet');
    value = Number((rows as { max_packet?: unknown }[])[0]?.max_packet);
  } catch (err) {
    throw new Error(`mysql: cannot read max_allowed_packet of ${target}: ${describeError(err)}`);
  }
  return Number.isSafeInteger(value) && value > PACKET_SLACK ? value : DEFAULT_MAX_PACKET;
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
    const declared = declaredTable('mysql', this.opts, this.ctx);
    this.tableName = this.opts.table;
    this.readColumns(declared);
  }

  override async write(batch: SinkBatch): Promise<WriteResult> {
    return captureRows(this.ctx, this.opts.table, this.prepare(batch));
  }

  override async close(): Promise<void> {}
}
