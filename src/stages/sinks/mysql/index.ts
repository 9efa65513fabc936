/**
 * `mysql` sink: multi-row inserts per batch in one transaction; insert, insert_ignore or upsert.
 * A batch goes in as few statements as the server's max_allowed_packet allows (read at start);
 * a row too large for any statement fails alone. With `max_in_flight` (default 4, at most
 * `pool_size`) several batches are written at once, each on its own pooled connection; a source's
 * position moves only past batches that committed.
 *
 * Values travel as SQL literals that mean the same in every sql_mode (literal.ts) and every
 * identifier is quoted as one name, so no field name or value can change the SQL.
 *
 * Failures of one record stay with that record; the rest of its batch is written:
 * - a value that cannot go into its column (see convert.ts: with `strict`, 1.5 into an INT, an
 *   object into a text column, a value JSON cannot encode) fails its record with the column's
 *   name, before anything is sent;
 * - a record that is not an object, or (without `columns`) has no field that is a column;
 * - a row the database rejects for its data (too long, NOT NULL, bad date, duplicate key, check
 *   constraint): the statement is bisected inside the same transaction; InnoDB undoes only the
 *   failed statement, so the good rows still commit and the bad ones come back with the
 *   database's message.
 *
 * Transient and permanent failures: `transient` in the definition; the full list is in errors.ts.
 *
 * During an outage a write fails within `timeout` (a new connection within 5 s) instead of
 * hanging: the runtime does the retrying. Problems found at start (an unreachable server, bad
 * credentials, a missing table or column) fail `open()` with the host:port, database and table,
 * never the URL's credentials.
 */
import { type Static, Type } from '@sinclair/typebox';
import { EnvSecret } from '../../../spec/types.ts';
import { defineSink } from '../../define.ts';
import { checkTls, MysqlTlsObject } from '../../tls.ts';
import { urlCredentialProblem } from '../../url-credentials.ts';
import {
  checkColumns,
  columnsOption,
  createTableOption,
  keyOption,
  modeOption,
  poolSizeOption,
  SQL_BATCHING,
  strictOption,
  timeoutOption,
} from '../sql/options.ts';
import { MysqlPreview, MysqlSink } from './sink.ts';
import { candidateTables } from './table.ts';

export { IgnoredFields } from '../sql/ignored-fields.ts';
export { targetOf, withDeadline } from './connection.ts';
export { ConversionError, convert, kindOf } from './convert.ts';
export { DATA_ERRNO, isDataError, isTransient, TRANSIENT_CODES, TRANSIENT_ERRNO } from './errors.ts';
export { MysqlSink } from './sink.ts';
export { candidateTables, quoteName, tableSql } from './table.ts';

const options = Type.Object({
  url: EnvSecret({
    description:
      'Connection URL mysql://user[:password]@host:port/database, from the environment: ${MYSQL_URL}. Percent-encode the user name and password (@ as %40, # as %23, / as %2F, ? as %3F, % as %25)',
    examples: ['${MYSQL_URL}'],
  }),
  tls: Type.Optional(
    Type.Union([Type.Boolean(), MysqlTlsObject], {
      description:
        'TLS to the server, required when given: true to trust the system CAs, or a block: ca_file or ca (PEM text), cert_file or cert and key_file or key (key only as ${VAR}) for a client certificate, verify_identity (default true: the certificate must name the URL’s host), insecure_skip_verify (default false)',
      examples: [true, { ca_file: '/etc/ssl/mysql/ca.pem' }],
    }),
  ),
  database: Type.Optional(
    Type.String({
      minLength: 1,
      description: 'Database of the table; default the URL’s database',
      examples: ['fazendas'],
    }),
  ),
  table: Type.String({
    minLength: 1,
    description:
      'Table name, one identifier (a `.` is part of the name; use `database` for another database than the URL’s). Without `database`, `db.t` still means table `t` of database `db` when no table named `db.t` exists',
    examples: ['historico_consumo'],
  }),
  mode: modeOption(
    'insert: a duplicate key is a rejected row; insert_ignore: rows whose key exists are skipped; upsert: they update the non-key columns (ON DUPLICATE KEY UPDATE)',
  ),
  key: keyOption(
    'Key columns: the primary key of a created table, and the columns upsert leaves alone; default the table’s primary key',
  ),
  columns: columnsOption('^[A-Za-z][A-Za-z0-9_ (),]*$', [
    { id: 'VARCHAR(255)', peso_medio: 'FLOAT', data: 'DATETIME' },
  ]),
  create_table: createTableOption(),
  pool_size: poolSizeOption(),
  timeout: timeoutOption(
    'Longest wait for a connection from the pool or for one statement; past it the connection is dropped and the batch retried. Lock waits of the session are capped just below it',
  ),
  strict: strictOption(
    'Strict SQL mode and strict conversions: a value that does not fit is a rejected record, never rounded, truncated or re-typed. A non-integral number or text into an integer column (TINYINT…BIGINT, BIT, YEAR), text that is not a number into a DECIMAL/FLOAT/DOUBLE column, an object or array into a non-JSON column, a boolean or object into a time column fail their record; true/false are 1/0. false: the server’s non-strict mode (it rounds and truncates) and objects become JSON text in any column',
  ),
});

export type MysqlOptions = Static<typeof options>;

export const mysqlSink = defineSink({
  type: 'mysql',
  kind: 'sink',
  description:
    'Writes records as rows of a MySQL/MariaDB table, one transaction per batch; rows the database rejects and values that do not fit their column go to the error output with the reason, outages are waited out.',
  transient:
    'Transient (the whole batch is retried and nothing goes to the error output): connection ' +
    'refused, reset, lost or killed; connect and statement timeouts (`timeout`); DNS failures; ' +
    'too many connections; server shutdown; lock wait timeouts and deadlocks; a read-only server ' +
    '(--read-only or super_read_only during a failover, errors 1290, 1792, 1836); and every other ' +
    'error that is not about a row (a dropped table or column, a revoked grant, a full disk), ' +
    'which an operator fixes while the sink waits. Permanent for the record alone: a value that ' +
    'cannot go into its column, a record that is not an object or has no field that is a column, ' +
    'and a row the database rejects for its data (too long, NOT NULL, bad date, duplicate key, ' +
    'check constraint); the other rows of the batch are written.',
  example: `
version: 1
name: mysql-example
sources:
  consumption:
    type: generate
    count: 1000
    fields:
      id_lote: 'string(i % 100)'
      data: '"2026-01-15"'
      consumo_real: 'rand * 10.0'
transforms:
  keyed:
    type: enrich
    from: [consumption]
    set:
      id_treated_data: 'uuid_v5(id_lote + "|" + data)'
sinks:
  warehouse:
    type: mysql
    from: [keyed]
    url: \${MYSQL_URL:-mysql://root@127.0.0.1:3306/fazendas}
    table: historico_consumo
    mode: upsert
    key: [id_treated_data]
    create_table: true
    columns:
      id_treated_data: VARCHAR(64)
      id_lote: VARCHAR(32)
      data: DATE
      consumo_real: DOUBLE
  rejected: { type: file, from: [warehouse.errors], dir: ./errors, path: 'warehouse_{first_position}{ext}' }
`,
  options,
  check(opts, report) {
    const urlProblem = urlCredentialProblem(opts.url);
    if (urlProblem) report(['url'], 'schema-value', `mysql: ${urlProblem}`);
    if (typeof opts.tls === 'object') checkTls(opts.tls, report, ['tls']);
    checkColumns(opts, report);
    if (opts.database === undefined && candidateTables(opts.table, undefined).length > 1) {
      // The value may come from the environment: the message does not repeat it. A warning, as
      // specs from before `database` existed still run when the table exists.
      report(
        ['table'],
        'schema-value',
        opts.create_table
          ? 'a dot in `table` reads as database.table only when no table of that whole name exists, and cannot be created without `database`: set `database` and give `table` the name within it'
          : 'a dot in `table` reads as database.table only when no table of that whole name exists: set `database` and give `table` the name within it',
        'warning',
      );
    }
  },
  // A write holds a pooled connection from BEGIN to COMMIT: more writes at once than
  // connections would only wait for one (and time out waiting).
  batching: (opts) => ({ ...SQL_BATCHING, maxInFlight: opts.pool_size ?? 4 }),
  create: (opts, ctx) => new MysqlSink(opts, ctx),
  preview: (opts, ctx) => new MysqlPreview(opts, ctx),
});
