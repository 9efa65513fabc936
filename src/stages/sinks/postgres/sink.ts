/** The postgres sink at run time: see index.ts for what it does and how it fails. */
import pg, { type Pool, type PoolClient } from 'pg';
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
import { urlCredentialProblem } from '../../url-credentials.ts';
import { ConversionError } from '../mysql/convert.ts';
import { IgnoredFields } from '../mysql/ignored-fields.ts';
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

/** Most parameters one statement may bind (the protocol counts them in 16 bits). */
const MAX_PARAMS = 65_535;
const DEFAULT_TIMEOUT_MS = 10_000;
/** A new connection that gets no answer in this time fails (transient) instead of waiting for TCP. */
const CONNECT_TIMEOUT_MS = 5_000;
const SAVEPOINT = 'sluice_rows';

interface Column {
  name: string;
  kind: PgKind;
}

interface Row {
  index: number;
  params: PgParam[];
}

interface Candidate {
  index: number;
  value: Record<string, unknown>;
}

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
  private columns = new Map<string, Column>();
  private statements: Statements | undefined;
  private readonly ignored: IgnoredFields;
  private readonly watched = new WeakSet<PoolClient>();

  constructor(opts: Options, ctx: StageContext) {
    this.opts = opts;
    this.log = ctx.log;
    this.metrics = ctx.metrics;
    this.timeoutMs = opts.timeout ?? DEFAULT_TIMEOUT_MS;
    this.ignored = new IgnoredFields(ctx.log, opts.table, undefined, undefined, 'postgres');
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
    const pool = new pg.Pool({
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
    if (rows.length === 0) return failed.length > 0 ? { failed: byIndex(failed) } : undefined;

    const client = await this.acquire(pool);
    const rejectedBefore = failed.length;
    try {
      await client.query('BEGIN');
      const perStatement = Math.max(1, Math.floor(MAX_PARAMS / columns.length));
      for (let at = 0; at < rows.length; at += perStatement) {
        await this.insert(client, columns, rows.slice(at, at + perStatement), failed);
      }
      await client.query('COMMIT');
    } catch (err) {
      await this.abandon(client, err);
      // Transient, or not about the rows (a dropped table, a revoked grant): the whole batch retries.
      throw new StageError(`postgres: ${describeError(err)}`, { retryable: true, cause: err });
    }
    client.release();
    this.metrics.count('rows', rows.length - (failed.length - rejectedBefore));
    return failed.length > 0 ? { failed: byIndex(failed) } : undefined;
  }

  /** The rows a batch writes, converted for their columns; the records that cannot be rows fail alone. */
  protected prepare(batch: SinkBatch): { failed: RecordFailure[]; columns: Column[]; rows: Row[] } {
    const failed: RecordFailure[] = [];
    const candidates: Candidate[] = [];
    for (let i = 0; i < batch.records.length; i++) {
      const v = batch.records[i].value;
      if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) {
        this.reject(failed, i, 'postgres: record value is not an object');
        continue;
      }
      candidates.push({ index: i, value: v as Record<string, unknown> });
    }
    const columns = this.columnsOf(candidates, failed);
    return { failed, columns, rows: this.rowsOf(candidates, columns, failed) };
  }

  /**
   * All declared columns, or the table's columns any record has, in table order. Without
   * `columns`, a record with no field that is a column fails alone (and leaves `candidates`).
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
        this.reject(
          failed,
          c.index,
          `postgres: no field of the record is a column of table ${this.tableName}`,
        );
        continue;
      }
      candidates[kept++] = c;
    }
    candidates.length = kept;
    return [...this.columns.values()].filter((c) => present.has(c.name));
  }

  private rowsOf(candidates: Candidate[], columns: Column[], failed: RecordFailure[]): Row[] {
    const strict = this.opts.strict !== false;
    const rows: Row[] = [];
    for (const { index, value } of candidates) {
      const params: PgParam[] = new Array(columns.length);
      let c = 0;
      try {
        for (; c < columns.length; c++) {
          const name = columns[c].name;
          params[c] = convertPg(
            Object.hasOwn(value, name) ? value[name] : undefined,
            columns[c].kind,
            strict,
          );
        }
      } catch (err) {
        this.reject(failed, index, `postgres: column '${columns[c].name}': ${conversionReason(err)}`);
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
  private async insert(
    client: PoolClient,
    columns: Column[],
    rows: Row[],
    failed: RecordFailure[],
  ): Promise<void> {
    const params: PgParam[] = [];
    for (const r of rows) for (const p of r.params) params.push(p);
    const sql = (this.statements as Statements).insert(
      columns.map((c) => c.name),
      rows.length,
    );
    await client.query(`SAVEPOINT ${SAVEPOINT}`);
    try {
      await client.query(sql, params);
    } catch (err) {
      if (!isDataError(err)) throw err;
      await client.query(`ROLLBACK TO SAVEPOINT ${SAVEPOINT}`);
      await client.query(`RELEASE SAVEPOINT ${SAVEPOINT}`);
      if (rows.length === 1) {
        this.reject(failed, rows[0].index, `postgres: ${describeError(err)}`);
        return;
      }
      this.metrics.count('bisections');
      const half = Math.ceil(rows.length / 2);
      await this.insert(client, columns, rows.slice(0, half), failed);
      await this.insert(client, columns, rows.slice(half), failed);
      return;
    }
    await client.query(`RELEASE SAVEPOINT ${SAVEPOINT}`);
  }

  async close(): Promise<void> {
    this.ignored.flush();
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

function conversionReason(err: unknown): string {
  if (err instanceof ConversionError) return err.message;
  // Anything else a value can throw while being read (a getter, a proxy): still this record's.
  return `value cannot be converted: ${err instanceof Error ? err.message : String(err)}`;
}

function byIndex(failed: RecordFailure[]): RecordFailure[] {
  return failed.sort((a, b) => a.index - b.index);
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
    const o = this.opts;
    const declared = o.columns ?? this.ctx.tables?.[o.table];
    if (!declared) {
      throw new Error(
        `postgres: the columns of table ${o.table} are unknown without a database: give \`columns\` in the spec or \`tables: { ${o.table}: { column: TYPE } }\` in the test`,
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
