/** `kafka` source: a consumer group member committing only contiguous acked offsets. */
import { Type } from '@sinclair/typebox';
import { defineSource, NotImplementedError } from '../define.ts';

export const kafkaSource = defineSource({
  type: 'kafka',
  kind: 'source',
  description: 'Consumes Kafka topics in a consumer group; commits offsets only up to what the sinks made durable.',
  options: Type.Object({
    brokers: Type.Union([Type.String({ minLength: 1 }), Type.Array(Type.String({ minLength: 1 }), { minItems: 1 })], {
      description: 'Bootstrap brokers, host:port, comma-separated or a list',
      examples: ['127.0.0.1:9092'],
    }),
    topics: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'Topics to read' })),
    topic_pattern: Type.Optional(Type.String({ description: 'Regular expression of topics to read' })),
    group: Type.String({ minLength: 1, description: 'Consumer group id' }),
    client_id: Type.Optional(Type.String()),
    start: Type.Optional(Type.Union([Type.Literal('earliest'), Type.Literal('latest')], { default: 'latest', description: 'Where a new group starts' })),
    codec: Type.Optional(Type.Union([Type.Literal('json'), Type.Literal('text'), Type.Literal('binary')], { default: 'json' })),
    max_batch: Type.Optional(Type.Integer({ minimum: 1, default: 500, description: 'Records per emitted batch' })),
  }),
  create() {
    throw new NotImplementedError('kafka', 'source');
  },
});
