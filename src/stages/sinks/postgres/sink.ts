/** The postgres sink at run time: see index.ts for what it does and how it fails. */
import type * as Pg from 'pg';
import type { Pool, PoolClient } from 'pg';
import type { Logger } from 'pino';
import { lazy } from '../../../runtime/lazy.ts';
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
import { urlCredentialProblem } from '../../url-credentials.ts';
import { captureRows, declaredTable } from '../sql/preview.ts';
import {
  type Column,
  type PreparedBatch,
  paramsOf,
  type Row,
  resultOf,
  SqlRows,
  statementsOf,
} from '../sql/rows.ts';
import { convertPg, type PgKind, type PgParam, pgKindOf } from './convert.ts';
import { connectionUsable, describeError, isDataError, startupHint } from './errors.ts';
import type { PostgresOptions as Options } from './index.ts';
import {
  currentSchema,
  describeTable,
  type PgColumnInfo,
  type PgTable,
  quoteIdent,
  Statements,
  tableSql,
} from './table.ts';

// Loaded when a sink builds its pool, not when the registry imports the stage (runtime/lazy.ts).
const pg = lazy<typeof Pg>('pg');

/** Most parameters one statement may bind (the protocol counts them in 16 bits). */
const MAX_PARAMS = 65_535;
const DEFAULT_TIMEOUT_MS = 10_000;
/** A new connection that gets no answer in this time fails (transient) instead of waiting for TCP. */
const CONNECT_TIMEOUT_MS = 5_000;
const SAVEPOINT = 'sluice_rows';

export class PostgresSink implements Sink {
  protected readonly opts: Options;
  private readonly log: Logger;
  private readonly metrics: StageMetrics;
  private readonly timeoutMs: number;
  private pool: Pool | undefined;
  /** host:port/database of the URL, for messages (never the credentials). */
  private target = '';
  private tableSql = '';
  /** How messages name the table, with its schema. */
  protected tableName = '';
  private columns = new Map<string, Column<PgKind>>();
  private statements: Statements | undefined;
  private readonly rows: SqlRows<PgKind, PgParam>;
  private readonly watched = new WeakSet<PoolClient>();

  constructor(opts: Options, ctx: StageContext) {
    this.opts = opts;
    this.log = ctx.log;
    this.metrics = ctx.metrics;
    this.timeoutMs = opts.timeout ?? DEFAULT_TIMEOUT_MS;
    this.rows = new SqlRows(
      {
        system: 'postgres',
        table: opts.table,
        declared: opts.columns !== undefined,
        strict: opts.strict !== false,
        convert: convertPg,
      },
      ctx,
    );
  }

  async open(): Promise<void> {
    // Before anything parses the URL: a misread one would put part of the password in messages.
    const problem = urlCredentialProblem(this.opts.url);
    if (problem) throw new Error(`postgres: ${problem}`);
    this.target = targetOf(this.opts.url);
    const pool = this.createPool();
    this.pool = pool;
    try {
      await this.resolveTable(pool);
    } catch (err) {
      this.pool = undefined;
      await pool.end().catch(() => undefined);
      throw err;
    }
  }

  /** Sessions in UTC with server-side limits just below the client's own deadline. */
  private createPool(): Pool {
    const t = this.timeoutMs;
    const pool = new (pg().Pool)({
      connectionString: this.opts.url,
      max: this.opts.pool_size ?? 4,
      connectionTimeoutMillis: Math.min(CONNECT_TIMEOUT_MS, t),
      query_timeout: t,
      statement_timeout: Math.max(1, t - 1000),
      lock_timeout: Math.max(1, t - 2000),
      // A transaction whose client vanished mid-batch must not hold its row locks for long.
      idle_in_transaction_session_timeout: Math.max(1000, 2 * t),
      options: '-c TimeZone=UTC',
      application_name: 'sluice',
      keepAlive: true,
    });
    // An idle connection that breaks is dropped by the pool; without a listener it would crash.
    pool.on('error', (err) => this.log.warn({ err: describeError(err) }, 'postgres: idle connection failed'));
    return pool;
  }

  /** Finds (or creates) the table and reads its columns; fails with what to create or fix. */
  private async resolveTable(pool: Pool): Promise<void> {
    const o = this.opts;
    let existing: Map<string, PgColumnInfo>;
    let schema: string | undefined;
    try {
      schema = o.schema ?? (await currentSchema(pool));
      existing = schema === undefined ? new Map() : await describeTable(pool, schema, o.table);
    } catch (err) {
      throw new Error(
        `postgres: cannot read the tables of ${this.target}: ${describeError(err)}${startupHint(err)}`,
      );
    }
    if (schema === undefined) {
      throw new Error(
        `postgres: no schema of the search_path exists in ${this.target}: set \`schema\`, or create the schema`,
      );
    }
    const table: PgTable = { schema, name: o.table };
    this.tableSql = tableSql(table);
    this.tableName = this.tableSql;
    if (existing.size === 0) {
      if (!o.create_table || !o.columns) {
        const create = o.columns
          ? `${this.createSql()}, or set create_table: true`
          : 'create it (or give `columns` and create_table: true)';
        throw new Error(`postgres: table ${this.tableName} does not exist in ${this.target}: ${create}`);
      }
      await this.createTable(pool);
      existing = await describeTable(pool, schema, o.table);
    }
    this.readColumns(existing);
  }

  private createSql(): string {
    const o = this.opts;
    const cols = Object.entries(o.columns ?? {}).map(([c, t]) => `${quoteIdent(c)} ${t}`);
    if (o.key) cols.push(`PRIMARY KEY (${o.key.map(quoteIdent).join(', ')})`);
    return `CREATE TABLE IF NOT EXISTS ${this.tableSql} (${cols.join(', ')})`;
  }

  private async createTable(pool: Pool): Promise<void> {
    try {
      await pool.query(this.createSql());
    } catch (err) {
      throw new Error(
        `postgres: cannot create table ${this.tableName} in ${this.target}: ${describeError(err)}${startupHint(err)}`,
      );
    }
    this.log.info({ table: this.tableName }, 'postgres table created');
  }

  protected readColumns(existing: Map<string, PgColumnInfo>): void {
    const o = this.opts;
    if (o.columns) {
      const missing = Object.keys(o.columns).filter((c) => !existing.has(c));
      if (missing.length > 0) {
        throw new Error(
          `postgres: table ${this.tableName} in ${this.target} has no column ${missing.map((m) => `'${m}'`).join(', ')}: add it (ALTER TABLE … ADD COLUMN), or remove it from \`columns\``,
        );
      }
    }
    for (const [col, info] of existing) {
      if (o.columns && !(col in o.columns)) continue;
      this.columns.set(col, { name: col, kind: pgKindOf(o.columns?.[col] ?? info.type) });
    }
    const keyColumns = o.key ?? [...existing].filter(([, i]) => i.key).map(([c]) => c);
    const badKey = keyColumns.filter((k) => !existing.has(k));
    if (badKey.length > 0) {
      throw new Error(`postgres: key column ${badKey.join(', ')} is not in table ${this.tableName}`);
    }
    const mode = o.mode ?? 'insert';
    if (mode === 'upsert' && keyColumns.length === 0) {
      throw new Error(`postgres: upsert needs \`key\` or a primary key on table ${this.tableName}`);
    }
    this.statements = new Statements(this.tableSql, mode, keyColumns);
  }

  async write(batch: SinkBatch): Promise<WriteResult> {
    const pool = this.pool;
    if (!pool) throw new StageError('postgres sink used before open()');
    const { failed, columns, rows } = this.prepare(batch);
    if (rows.length === 0) return resultOf(failed);

    const client = await this.acquire(pool);
    const rejectedBefore = failed.length;
    try {
      await client.query('BEGIN');
      for (const statement of statementsOf(rows, columns.length, MAX_PARAMS)) {
        await this.insert(client, columns, statement, failed);
      }
      await client.query('COMMIT');
    } catch (err) {
      await this.abandon(client, err);
      // Transient, or not about the rows (a dropped table, a revoked grant): the whole batch retries.
      throw new StageError(`postgres: ${describeError(err)}`, { retryable: true, cause: err });
    }
    client.release();
    this.metrics.count('rows', rows.length - (failed.length - rejectedBefore));
    return resultOf(failed);
  }

  /** The rows a batch writes, converted for their columns; the records that cannot be rows fail alone. */
  protected prepare(batch: SinkBatch): PreparedBatch<PgKind, PgParam> {
    return this.rows.prepare(batch, this.columns, this.tableName);
  }

  /** A pooled connection within the connect timeout; a failure is transient (the runtime retries). */
  private async acquire(pool: Pool): Promise<PoolClient> {
    try {
      const client = await pool.connect();
      if (!this.watched.has(client)) {
        this.watched.add(client);
        // A connection lost while checked out also fails its query (handled there); without a
        // listener its 'error' event would end the process.
        client.on('error', (err) => this.log.debug({ err: describeError(err) }, 'postgres: connection lost'));
      }
      return client;
    } catch (err) {
      throw new StageError(`postgres: cannot connect to ${this.target}: ${describeError(err)}`, {
        retryable: true,
        cause: err,
      });
    }
  }

  /** Undoes the transaction after a failure, or drops the connection when its state is unknown. */
  private async abandon(client: PoolClient, err: unknown): Promise<void> {
    if (!connectionUsable(err)) {
      client.release(true);
      return;
    }
    try {
      await client.query('ROLLBACK');
      client.release();
    } catch {
      client.release(true);
    }
  }

  /**
   * One multi-row statement under a savepoint: when the server rejects its data, only the
   * statement is undone and its halves are tried until the bad rows are alone.
   */
  private insert(
    client: PoolClient,
    columns: Column<PgKind>[],
    rows: Row<PgParam>[],
    failed: RecordFailure[],
  ): Promise<void> {
    const names = columns.map((c) => c.name);
    return this.rows.bisect(rows, failed, async (part) => {
      const sql = (this.statements as Statements).insert(names, part.length);
      await client.query(`SAVEPOINT ${SAVEPOINT}`);
      try {
        await client.query(sql, paramsOf(part));
      } catch (err) {
        if (!isDataError(err)) throw err;
        await client.query(`ROLLBACK TO SAVEPOINT ${SAVEPOINT}`);
        await client.query(`RELEASE SAVEPOINT ${SAVEPOINT}`);
        return `postgres: ${describeError(err)}`;
      }
      await client.query(`RELEASE SAVEPOINT ${SAVEPOINT}`);
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

/** host:port/database of a connection URL, for messages; never the user name or password. */
export function targetOf(url: string): string {
  try {
    const u = new URL(url);
    const db = decodeURIComponent(u.pathname.replace(/^\//, ''));
    return `${u.hostname || 'localhost'}:${u.port || '5432'}${db ? `/${db}` : ''}`;
  } catch {
    return 'the server of the URL';
  }
}

/**
 * The postgres sink with its database replaced (`sluice test`): columns come from `columns` or
 * the test's `tables`, and each row is captured as the statement would bind it, after conversion.
 */
export class PostgresPreview extends PostgresSink {
  private readonly ctx: PreviewContext;
  constructor(opts: Options, ctx: PreviewContext) {
    super(opts, ctx);
    this.ctx = ctx;
  }

  override async open(): Promise<void> {
    const declared = declaredTable('postgres', this.opts, this.ctx);
    this.tableName = this.opts.table;
    this.readColumns(declared);
  }

  override async write(batch: SinkBatch): Promise<WriteResult> {
    return captureRows(this.ctx, this.opts.table, this.prepare(batch));
  }

  override async close(): Promise<void> {}
}
