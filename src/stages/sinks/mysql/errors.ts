/**
 * How the mysql sink reads the errors of the driver and the server.
 *
 * Three classes:
 * - transient, named below: the server or the network is unavailable, busy or failing over.
 *   The batch did not happen; the connection is dropped (its state is unknown) and the runtime
 *   retries the batch with backoff.
 * - about a row (DATA_ERRNO): the server rejects the values of one row. The batch is bisected
 *   until the row is alone; it fails permanently, the other rows commit.
 * - anything else (a dropped table or column, a revoked grant, a full disk): not about the
 *   rows, and not known to pass by itself, but an operator can fix it while the sink waits.
 *   It is retried like a transient error (shown as retrying with the server's message), never
 *   sent to the error output, so fixing the cause resumes the pipeline with nothing lost.
 */

export interface MysqlError extends Error {
  errno?: number;
  code?: string;
  sqlMessage?: string;
  fatal?: boolean;
}

/** Server error numbers that mean "not now": the statement or transaction did not happen. */
export const TRANSIENT_ERRNO: ReadonlyMap<number, string> = new Map([
  [1040, 'too many connections'],
  [1053, 'server shutdown in progress'],
  [1077, 'normal shutdown'],
  [1079, 'shutdown complete'],
  [1080, 'forcing close of thread (shutdown)'],
  [1152, 'aborted connection'],
  [1158, 'network read error'],
  [1159, 'network read timeout'],
  [1160, 'network write error'],
  [1161, 'network write timeout'],
  [1184, 'aborted new connection'],
  [1203, 'too many connections for the user'],
  [1205, 'lock wait timeout'],
  [1213, 'deadlock'],
  [1290, 'server is read-only (--read-only, e.g. during a failover)'],
  [1317, 'query interrupted'],
  [1637, 'too many active transactions'],
  [1792, 'read-only transaction'],
  [1836, 'server is in read-only mode'],
  [1927, 'connection killed (MariaDB)'],
  [1969, 'statement timeout (MariaDB max_statement_time)'],
  [2002, 'cannot connect (socket)'],
  [2003, 'cannot connect'],
  [2005, 'unknown host'],
  [2006, 'server has gone away'],
  [2013, 'lost connection during query'],
  [3024, 'statement timeout (MySQL max_execution_time)'],
  [4031, 'disconnected by the server (inactivity)'],
]);

/** Driver and socket error codes that mean the connection or the network failed. */
export const TRANSIENT_CODES: ReadonlyMap<string, string> = new Map([
  ['PROTOCOL_CONNECTION_LOST', 'connection lost'],
  ['PROTOCOL_SEQUENCE_TIMEOUT', 'no answer in time'],
  ['ECONNRESET', 'connection reset'],
  ['ECONNREFUSED', 'connection refused'],
  ['ECONNABORTED', 'connection aborted'],
  ['ETIMEDOUT', 'connect timeout'],
  ['EPIPE', 'broken pipe'],
  ['EHOSTUNREACH', 'host unreachable'],
  ['ENETUNREACH', 'network unreachable'],
  ['ENETDOWN', 'network down'],
  ['ENOTFOUND', 'DNS: host not found'],
  ['EAI_AGAIN', 'DNS: temporary failure'],
]);

/** Server error numbers about the values of a row: bisect to find the rows, which fail for good. */
export const DATA_ERRNO: ReadonlySet<number> = new Set([
  1048, // column cannot be null
  1062, // duplicate entry
  1263, // NULL into a NOT NULL column (multi-row insert)
  1264, // out of range
  1265, // data truncated
  1292, // incorrect datetime/double value
  1300, // invalid character string
  1364, // field has no default and no value
  1366, // incorrect integer/decimal/string value
  1367, // illegal value for the type
  1406, // data too long
  1411, // incorrect value for function
  1416, // cannot get geometry object from the data
  1441, // datetime function overflow
  1451, // foreign key: parent row
  1452, // foreign key: child row
  1586, // duplicate entry for a named key
  1644, // SIGNAL raised by a trigger that checks the row
  1690, // value out of range
  1918, // illegal value when converting (MariaDB)
  3140, // invalid JSON text (MySQL)
  3146, // invalid type for JSON (MySQL)
  3156, // invalid JSON value for CAST (MySQL)
  3819, // check constraint (MySQL)
  4025, // check constraint, e.g. JSON_VALID of a JSON column (MariaDB)
]);

export function isTransient(e: MysqlError): boolean {
  return (
    (e.errno !== undefined && TRANSIENT_ERRNO.has(e.errno)) ||
    (e.code !== undefined && TRANSIENT_CODES.has(e.code))
  );
}

export function isDataError(e: MysqlError): boolean {
  return e.errno !== undefined && DATA_ERRNO.has(e.errno) && !isTransient(e);
}

/** The server's message when there is one, else the driver's. */
export function describeError(err: unknown): string {
  const e = err as MysqlError;
  // A failed connect to a name with several addresses is an AggregateError with no message.
  return e.sqlMessage || e.message || e.code || String(err);
}

/** A hint for start-up errors an operator fixes on the server; empty when there is none to give. */
export function startupHint(err: unknown): string {
  const e = err as MysqlError;
  switch (e.errno) {
    case 1044:
    case 1045:
      return ': check the user and password of the URL and the user’s grants';
    case 1049:
      return ': create the database, or fix the database of the URL';
    case 1142:
    case 1143:
      return ': grant the user SELECT and INSERT (and UPDATE for upsert) on the table';
  }
  if (e.code === 'ECONNREFUSED' || e.code === 'ETIMEDOUT' || e.code === 'EHOSTUNREACH') {
    return ': is the server running, and is the host and port of the URL right?';
  }
  if (e.code === 'ENOTFOUND' || e.code === 'EAI_AGAIN') return ': the host name of the URL does not resolve';
  return '';
}
