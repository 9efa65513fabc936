/**
 * `postgres` sink: multi-row inserts per batch in one transaction; insert, insert_ignore
 * (ON CONFLICT DO NOTHING) or upsert (ON CONFLICT (key) DO UPDATE), the mysql sink's contract on
 * PostgreSQL through node-postgres (`pg`).
 *
 * Values always travel as bound parameters of the extended protocol and every identifier is
 * quoted as one name, so no field name or value can change the SQL. Statements are not named
 * (server-side cached): their text changes with the row count of each batch, and node-postgres
 * never forgets a named statement on a connection.
 *
 * Failures of one record stay with that record; the rest of its batch is written:
 * - a value that cannot go into its column (the mysql sink's strict rules, see convert.ts) fails
 *   its record with the column's name, before anything is sent;
 * - a record that is not an object, or (without `columns`) has no field that is a column;
 * - a row the server rejects for its data (SQLSTATE classes 22 and 23 and a few more, see
 *   errors.ts): every statement runs under a savepoint, so the failed statement is rolled back
 *   alone and bisected in the same transaction until the bad rows are alone; the good rows commit.
 *
 * Transient, or not about the rows (a dropped table, a revoked grant), the whole batch is retried
 * by the runtime with backoff and nothing goes to the error output; errors.ts lists the SQLSTATEs.
 * During an outage a write fails within `timeout` (the client gives up on a silent connection,
 * the server's statement_timeout and lock_timeout end work it can no longer report), and a
 * transaction abandoned by a lost client is ended by idle_in_transaction_session_timeout.
 * Problems found at start (an unreachable server, bad credentials, a missing table or column)
 * fail `open()` with host:port, database and table, never the URL's credentials.
 */
import { type Static, Type } from '@sinclair/typebox';
import { EnvSecret } from '../../../spec/types.ts';
import { defineSink } from '../../define.ts';
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
import { PostgresPreview, PostgresSink } from './sink.ts';

export { connectionUsable, isDataError, TRANSIENT_STATES } from './errors.ts';
export { PostgresSink } from './sink.ts';
export { quoteIdent } from './table.ts';

const options = Type.Object({
  url: EnvSecret({
    description:
      'Connection URL postgres://user[:password]@host:port/database[?sslmode=require], from the environment: ${POSTGRES_URL}. Percent-encode the user name and password (@ as %40, # as %23, / as %2F, ? as %3F, % as %25)',
    examples: ['${POSTGRES_URL}'],
  }),
  schema: Type.Optional(
    Type.String({
      minLength: 1,
      description:
        'Schema of the table; default the connection’s current schema (the first of its search_path)',
      examples: ['public'],
    }),
  ),
  table: Type.String({
    minLength: 1,
    description:
      'Table name, one identifier with its case kept (a `.` is part of the name; use `schema` for the schema)',
    examples: ['historico_consumo'],
  }),
  mode: modeOption(
    'insert: a duplicate key is a rejected row; insert_ignore: rows that conflict with an existing row are skipped (ON CONFLICT DO NOTHING); upsert: they update the non-key columns (ON CONFLICT (key) DO UPDATE), which needs a unique index or primary key on exactly `key`',
  ),
  key: keyOption(
    'Key columns: the primary key of a created table, the conflict target of upsert, and the columns it leaves alone; default the table’s primary key',
  ),
  columns: columnsOption('^[A-Za-z][A-Za-z0-9_ (),\\[\\]]*$', [
    { id: 'text', peso_medio: 'double precision', data: 'timestamptz', tags: 'text[]' },
  ]),
  create_table: createTableOption(),
  pool_size: poolSizeOption(),
  timeout: timeoutOption(
    'Longest wait for a connection or for one statement; past it the connection is dropped and the batch retried. The session’s statement_timeout and lock_timeout are set just below it',
  ),
  strict: strictOption(
    'Strict conversions: a value that does not fit is a rejected record, never rounded or re-typed. A non-integral number or text into an integer column, text that is not a number into numeric/real/double, an object or array into a text column, anything but true/false, 0/1 or boolean text into a boolean column fail their record. false: values go to the server as they are and objects become JSON text in any column',
  ),
});

export type PostgresOptions = Static<typeof options>;

export const postgresSink = defineSink({
  type: 'postgres',
  kind: 'sink',
  description:
    'Writes records as rows of a PostgreSQL table, one transaction per batch; rows the database rejects and values that do not fit their column go to the error output with the reason, outages are waited out.',
  transient:
    'Transient (the whole batch is retried and nothing goes to the error output): connection ' +
    'refused, reset or lost (SQLSTATE class 08); too many connections, out of memory or disk ' +
    '(class 53); shutdown, crash or recovery (57P01-57P03); statement_timeout and the client ' +
    'deadline (`timeout`); serialization failures and deadlocks (40001, 40P01); lock_timeout ' +
    '(55P03); a read-only standby during a failover (25006); DNS failures; and every other error ' +
    'that is not about a row (a dropped table or column, a revoked grant), which an operator ' +
    'fixes while the sink waits. Permanent for the record alone: a value that cannot go into its ' +
    'column, a record that is not an object or has no field that is a column, and a row the ' +
    'server rejects for its data (class 22: too long, out of range, invalid text for its type; ' +
    'class 23: NOT NULL, foreign key, unique, check; 54000 index row too large; P0001 raised by ' +
    'a trigger); the other rows of the batch are written.',
  example: `
version: 1
name: postgres-example
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
    type: postgres
    from: [keyed]
    url: \${POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/sluice}
    table: historico_consumo
    mode: upsert
    key: [id_treated_data]
    create_table: true
    columns:
      id_treated_data: uuid
      id_lote: text
      data: date
      consumo_real: double precision
  rejected: { type: file, from: [warehouse.errors], dir: ./errors, path: 'warehouse_{first_position}{ext}' }
`,
  options,
  check(opts, report) {
    const urlProblem = urlCredentialProblem(opts.url);
    if (urlProblem) report(['url'], 'schema-value', `postgres: ${urlProblem}`);
    checkColumns(opts, report);
  },
  batching: SQL_BATCHING,
  create: (opts, ctx) => new PostgresSink(opts, ctx),
  preview: (opts, ctx) => new PostgresPreview(opts, ctx),
});
