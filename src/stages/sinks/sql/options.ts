/**
 * The options the SQL sinks (mysql, postgres) share: the same names, types and defaults in both,
 * so a spec moves from one database to the other by changing `type` and `url`. Where the
 * databases differ (what upsert means, which types a column takes) each sink gives its own words.
 */
import { Type } from '@sinclair/typebox';
import { Duration } from '../../../spec/types.ts';
import type { CheckReport } from '../../define.ts';

export function modeOption(description: string) {
  return Type.Optional(
    Type.Union([Type.Literal('insert'), Type.Literal('insert_ignore'), Type.Literal('upsert')], {
      default: 'insert',
      description,
    }),
  );
}

export function keyOption(description: string) {
  return Type.Optional(
    Type.Array(Type.String({ minLength: 1 }), {
      minItems: 1,
      description,
      examples: [['id_treated_data']],
    }),
  );
}

/** `typePattern`: what a SQL type may look like in this database's spelling. */
export function columnsOption(typePattern: string, examples: Record<string, string>[]) {
  return Type.Optional(
    Type.Record(Type.String({ minLength: 1 }), Type.String({ minLength: 1, pattern: typePattern }), {
      description:
        'Column name → SQL type; each takes the record field of the same name. Absent: every record field that is a column of the table (others are ignored, with a warning at most once a minute)',
      examples,
    }),
  );
}

export function createTableOption() {
  return Type.Optional(
    Type.Boolean({
      default: false,
      description: 'Create the table from `columns` (primary key `key`) when it does not exist',
    }),
  );
}

export function poolSizeOption() {
  return Type.Optional(
    Type.Integer({ minimum: 1, maximum: 64, default: 4, description: 'Connections in the pool' }),
  );
}

export function timeoutOption(description: string) {
  return Type.Optional(Duration({ default: '10s', description }));
}

export function strictOption(description: string) {
  return Type.Optional(Type.Boolean({ default: true, description }));
}

/** What one transaction of a SQL sink writes at most, unless the spec says otherwise. */
export const SQL_BATCHING = { defaults: { max_records: 1000, max_bytes: 4 * 1024 * 1024, max_age: 200 } };

/** What the schema cannot say about `columns`, `key` and `create_table` together. */
export function checkColumns(
  opts: { columns?: Record<string, string>; key?: string[]; create_table?: boolean },
  report: CheckReport,
): void {
  if (opts.create_table && !opts.columns) {
    report(
      ['create_table'],
      'schema-value',
      'create_table needs `columns` (name → SQL type) to create the table from',
    );
  }
  if (opts.columns && opts.key) {
    for (const [i, k] of opts.key.entries()) {
      if (!(k in opts.columns)) report(['key', i], 'schema-value', `key column '${k}' is not in \`columns\``);
    }
  }
}
