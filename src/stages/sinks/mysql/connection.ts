/** The mysql sink's connection pool, and the deadline that keeps an outage from hanging a write. */
import type * as Mysql from 'mysql2/promise';
import type { Pool, SslOptions } from 'mysql2/promise';
import type { Logger } from 'pino';
import { lazy } from '../../../runtime/lazy.ts';
import { loadTls, type TlsOptions } from '../../tls.ts';
import type { MysqlError } from './errors.ts';
import type { MysqlOptions } from './index.ts';

// Loaded when a sink builds its pool, not when the registry imports the stage (runtime/lazy.ts).
const mysql = lazy<typeof Mysql>('mysql2/promise');

/** A new connection that gets no answer in this time fails (transient) instead of waiting for TCP. */
export const CONNECT_TIMEOUT_MS = 5_000;

export interface PoolSetup {
  /** host:port for messages. */
  target: string;
  /** The session's innodb_lock_wait_timeout, below the client's statement deadline. */
  lockWaitSeconds: number;
  log: Logger;
  /** TLS settings, read by `mysqlTls`; absent for a plain connection. */
  ssl?: SslOptions;
  /** Called with the reason when a new connection's certificate does not name an IP host. */
  identityFailed?: (err: Error) => void;
}

/** A pool whose sessions run in UTC, strict SQL mode (unless `strict: false`) and bounded lock waits. */
export function createPool(o: MysqlOptions, setup: PoolSetup): Pool {
  let pool: Pool;
  try {
    pool = mysql().createPool({
      uri: o.url,
      connectionLimit: o.pool_size ?? 4,
      waitForConnections: true,
      connectTimeout: CONNECT_TIMEOUT_MS,
      supportBigNumbers: true,
      bigNumberStrings: true,
      enableKeepAlive: true,
      keepAliveInitialDelay: 10_000,
      maxPreparedStatements: 256,
      // The sink's INSERTs are whole SQL text (literal.ts); mysql2 would scan each, megabytes
      // long, for `?` placeholders that are not there.
      queryFormat: (sql: string, values: unknown) =>
        Array.isArray(values) && values.length === 0 ? sql : mysql().format(sql, values as never),
      ...(setup.ssl ? { ssl: setup.ssl } : {}),
    });
  } catch (err) {
    // The driver's message may quote the URL; ours names only the part that is wrong.
    const what = err instanceof URIError ? 'a malformed percent-escape' : 'a syntax error';
    throw new Error(
      `mysql: the URL for ${setup.target} has ${what}: mysql://user:password@host:port/database`,
    );
  }
  // Lock waits end (as a transient error) before the client gives up on the statement, so an
  // abandoned statement does not hold locks that its own retry then waits for.
  const lockWait = `innodb_lock_wait_timeout = ${setup.lockWaitSeconds}`;
  // Strict mode turns truncation into errors; UTC makes TIMESTAMP columns match our conversions.
  const session =
    o.strict === false
      ? `SET time_zone = '+00:00', ${lockWait}`
      : `SET time_zone = '+00:00', ${lockWait}, sql_mode = CONCAT_WS(',', NULLIF(@@sql_mode, ''), 'STRICT_ALL_TABLES')`;
  const ipHost = ipToVerify(o.url, setup.ssl);
  pool.pool.on('connection', (conn) => {
    const problem =
      ipHost === undefined ? undefined : ipIdentityProblem(conn as unknown as { stream?: unknown }, ipHost);
    if (problem) {
      setup.identityFailed?.(problem);
      conn.destroy();
      return;
    }
    conn.query(session, (err: Error | null) => {
      if (err) setup.log.warn({ err: err.message }, 'mysql session setup failed');
    });
  });
  return pool;
}

/**
 * `work`, or after `ms` an error the sink treats as a lost connection (transient). mysql2 has no
 * deadline for a pool acquire or a PREPARE, and a statement on a connection whose peer vanished
 * would wait for TCP to give up, which takes minutes.
 */
export async function withDeadline<T>(work: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const err: MysqlError = new Error(message);
      err.code = 'PROTOCOL_SEQUENCE_TIMEOUT';
      reject(err);
    }, ms);
  });
  // The work may still fail after the deadline won; the caller has moved on by then.
  work.catch(() => undefined);
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** mysql2's TLS settings for the sink's `tls` option: files read now, verification on by default. */
export async function mysqlTls(tls: boolean | TlsOptions | undefined): Promise<SslOptions | undefined> {
  if (tls === undefined || tls === false) return undefined;
  const block = tls === true ? {} : tls;
  const t = await loadTls(block, 'mysql');
  const ssl: SslOptions = {
    rejectUnauthorized: t.rejectUnauthorized !== false,
    // mysql2 checks the name only when asked; MySQL's VERIFY_IDENTITY is the safe default.
    verifyIdentity: block.verify_identity !== false && block.insecure_skip_verify !== true,
  };
  if (t.ca !== undefined) ssl.ca = t.ca as string;
  if (t.cert !== undefined) ssl.cert = t.cert as string;
  if (t.key !== undefined) ssl.key = t.key as string;
  return ssl;
}

/**
 * The URL's host when it is an IP address that verification must check. mysql2 checks the
 * certificate's names only for a host name (it sends no SNI for an address, and then accepts any
 * name), so the pool checks each new connection to an address itself.
 */
function ipToVerify(url: string, ssl: SslOptions | undefined): string | undefined {
  if (!ssl?.verifyIdentity) return undefined;
  try {
    const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
    return process.getBuiltinModule('node:net').isIP(host) ? host : undefined;
  } catch {
    return undefined;
  }
}

function ipIdentityProblem(conn: { stream?: unknown }, host: string): Error | undefined {
  const stream = conn.stream;
  // node:tls is fetched here rather than imported: every start imports this file (through the
  // stage registry), and loading TLS costs ~8 ms that only a MySQL sink with TLS needs.
  const tls = process.getBuiltinModule('node:tls');
  if (!(stream instanceof tls.TLSSocket)) return undefined;
  return tls.checkServerIdentity(host, stream.getPeerCertificate());
}

/** host:port of a connection URL, for messages; never the user name or password. */
export function targetOf(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname || 'localhost'}:${u.port || '3306'}`;
  } catch {
    return 'the server of the URL';
  }
}
