/**
 * How the postgres sink reads the errors of node-postgres and the server, by SQLSTATE class.
 *
 * - About a row (`isDataError`): class 22 (data exception: a value too long, out of range, not
 *   valid text for its type, an invalid JSON or time), class 23 (integrity constraint: NOT NULL,
 *   foreign key, unique, check, exclusion), 21000 (an upsert touching the same key twice in one
 *   statement; rows written alone pass), 54000 (a row too large for an index) and P0001 (RAISE
 *   from a trigger that checks the row). The statement is rolled back to its savepoint and
 *   bisected until the row is alone; it fails permanently, the other rows commit.
 * - Transient, named in TRANSIENT_STATES: class 08 (connection), 53 (too many connections, out
 *   of memory or disk), 57P01-57P05 (shutdown, crash, still starting), 57014 (statement_timeout),
 *   40001/40P01 (serialization failure, deadlock), 55P03 (lock_timeout), 25006 (a read-only
 *   standby during a failover), class 58 (I/O); and socket errors without a SQLSTATE (refused,
 *   reset, DNS, the client's own query_timeout). The runtime retries the batch with backoff.
 * - Anything else (a dropped table or column 42P01/42703, a revoked grant 42501, a bad password
 *   28P01): not about the rows and not known to pass by itself, but an operator can fix it while
 *   the sink waits. It is retried like a transient error, never sent to the error output.
 */

export interface PgError extends Error {
  /** SQLSTATE from the server, or a Node socket error code (ECONNREFUSED …). */
  code?: string;
  detail?: string;
  column?: string;
  constraint?: string;
}

const SQLSTATE = /^[0-9A-Z]{5}$/;

/** SQLSTATE codes (5 characters) or classes (2) that mean "not now": the statement did not happen. */
export const TRANSIENT_STATES: ReadonlyMap<string, string> = new Map([
  ['08', 'connection exception'],
  ['53', 'insufficient resources (too many connections, memory, disk)'],
  ['58', 'system error (I/O)'],
  ['57P01', 'administrator shutdown'],
  ['57P02', 'crash shutdown'],
  ['57P03', 'cannot connect now (starting up or in recovery)'],
  ['57P04', 'database dropped'],
  ['57P05', 'idle session timeout'],
  ['57014', 'statement timeout or cancel'],
  ['40001', 'serialization failure'],
  ['40P01', 'deadlock'],
  ['55P03', 'lock not available (lock_timeout)'],
  ['25006', 'read-only transaction (a standby, e.g. during a failover)'],
]);

const DATA_STATES = new Set(['21000', '54000', 'P0001']);
const DATA_CLASSES = new Set(['22', '23']);

function sqlstate(err: unknown): string | undefined {
  const code = (err as PgError | undefined)?.code;
  return typeof code === 'string' && SQLSTATE.test(code) ? code : undefined;
}

export function isDataError(err: unknown): boolean {
  const s = sqlstate(err);
  return s !== undefined && (DATA_CLASSES.has(s.slice(0, 2)) || DATA_STATES.has(s));
}

/**
 * Whether the connection can still be used after `err` (a ROLLBACK is worth sending): the server
 * answered with a SQLSTATE that does not end the session. Socket errors, client timeouts and
 * connection or shutdown states leave it in an unknown state: it is dropped.
 */
export function connectionUsable(err: unknown): boolean {
  const s = sqlstate(err);
  if (s === undefined) return false;
  return !(s.startsWith('08') || (s.startsWith('57P') && s !== '57P05') || s.startsWith('58'));
}

/** The server's message with its detail (which names the key or value at fault), else the driver's. */
export function describeError(err: unknown): string {
  const e = err as PgError;
  const message = e?.message || e?.code || String(err);
  const withState = sqlstate(e) ? `${message} (SQLSTATE ${e.code})` : message;
  return e?.detail ? `${withState}: ${e.detail}` : withState;
}

/** A hint for start-up errors an operator fixes on the server; empty when there is none to give. */
export function startupHint(err: unknown): string {
  const e = err as PgError;
  switch (e?.code) {
    case '28P01':
    case '28000':
      return ': check the user and password of the URL and pg_hba.conf';
    case '3D000':
      return ': create the database, or fix the database of the URL';
    case '42501':
      return ': grant the user USAGE on the schema and SELECT, INSERT (and UPDATE for upsert) on the table';
    case 'ECONNREFUSED':
    case 'ETIMEDOUT':
    case 'EHOSTUNREACH':
      return ': is the server running, and is the host and port of the URL right?';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return ': the host name of the URL does not resolve';
  }
  return '';
}
