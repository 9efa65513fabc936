/** `mysql` sink: multi-row inserts per batch in one transaction; insert, insert_ignore or upsert. */
import { Type } from '@sinclair/typebox';
import { EnvSecret } from '../../spec/types.ts';
import { defineSink, NotImplementedError } from '../define.ts';

export const mysqlSink = defineSink({
  type: 'mysql',
  kind: 'sink',
  description: 'Writes records as rows of a MySQL/MariaDB table, one transaction per batch; bad rows go to the error output.',
  options: Type.Object({
    url: EnvSecret({ description: 'Connection URL, from the environment: ${MYSQL_URL}', examples: ['${MYSQL_URL}'] }),
    table: Type.String({ minLength: 1, description: 'Table name' }),
    mode: Type.Optional(Type.Union([Type.Literal('insert'), Type.Literal('insert_ignore'), Type.Literal('upsert')], { default: 'insert' })),
    key: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'Key columns (upsert)' })),
    columns: Type.Optional(
      Type.Record(Type.String(), Type.String({ minLength: 1 }), { description: 'Column name → SQL type; all record fields when absent' }),
    ),
    create_table: Type.Optional(Type.Boolean({ default: false, description: 'Create the table from `columns` when missing' })),
    pool_size: Type.Optional(Type.Integer({ minimum: 1, maximum: 64, default: 4 })),
  }),
  batching: { defaults: { max_records: 1000, max_bytes: 4 * 1024 * 1024, max_age: 200 } },
  create() {
    throw new NotImplementedError('mysql', 'sink');
  },
});
