/** `kafka` sink: produce with acks=all, key and headers from expressions. */
import { Type } from '@sinclair/typebox';
import { Expr } from '../../spec/types.ts';
import { defineSink, NotImplementedError } from '../define.ts';

export const kafkaSink = defineSink({
  type: 'kafka',
  kind: 'sink',
  description: 'Produces records to Kafka; acks them only after the broker acknowledged them.',
  options: Type.Object({
    brokers: Type.Union([Type.String({ minLength: 1 }), Type.Array(Type.String({ minLength: 1 }), { minItems: 1 })]),
    topic: Type.Optional(Type.String({ minLength: 1, description: 'Topic name' })),
    topic_expr: Type.Optional(Expr({ description: 'CEL expression giving the topic per record' })),
    key: Type.Optional(Expr({ description: 'CEL expression giving the message key' })),
    headers: Type.Optional(Type.Record(Type.String(), Expr({ description: 'CEL expression for a header value' }))),
    acks: Type.Optional(Type.Union([Type.Literal('all'), Type.Literal('leader'), Type.Literal('none')], { default: 'all' })),
    idempotent: Type.Optional(Type.Boolean({ default: true })),
    client_id: Type.Optional(Type.String()),
  }),
  batching: { defaults: { max_records: 1000, max_bytes: 1024 * 1024, max_age: 10 } },
  create() {
    throw new NotImplementedError('kafka', 'sink');
  },
});
