/**
 * `kinesis` source: reads every shard of a Kinesis Data Stream, children only after their
 * parents are drained, de-aggregating KPL records, checkpointing per shard.
 */
import { Type } from '@sinclair/typebox';
import { AwsOptions, Duration } from '../../spec/types.ts';
import { defineSource, NotImplementedError } from '../define.ts';

export const kinesisSource = defineSource({
  type: 'kinesis',
  kind: 'source',
  description: 'Reads a Kinesis Data Stream: every shard, parents before children, KPL de-aggregation, per-shard checkpoints.',
  options: Type.Object({
    stream: Type.String({ minLength: 1, description: 'Stream name', examples: ['flow1'] }),
    ...AwsOptions,
    start: Type.Optional(
      Type.Union([Type.Literal('latest'), Type.Literal('trim_horizon'), Type.Literal('at_timestamp')], {
        default: 'latest',
        description: 'Where a shard without a checkpoint starts; a stored checkpoint always wins',
      }),
    ),
    start_timestamp: Type.Optional(Type.String({ format: 'date-time', description: 'With start: at_timestamp' })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 10000, default: 1000, description: 'GetRecords Limit per call' })),
    poll_interval: Type.Optional(Duration({ default: '200ms', description: 'Wait between GetRecords calls on a busy shard (≥ 200ms keeps under 5 calls/s)' })),
    idle_interval: Type.Optional(Duration({ default: '1s', description: 'Wait between calls on a shard that returned nothing' })),
    shard_refresh: Type.Optional(Duration({ default: '10s', description: 'How often the shard list is refreshed' })),
    codec: Type.Optional(Type.Union([Type.Literal('json'), Type.Literal('text'), Type.Literal('binary')], { default: 'json', description: 'How record data is decoded' })),
    checkpoint: Type.Optional(
      Type.Object(
        { dynamodb: Type.Optional(Type.Object({ table: Type.String({ minLength: 1 }) }, { additionalProperties: false })) },
        { additionalProperties: false, description: 'Where shard checkpoints live: the local state file by default, or a DynamoDB table' },
      ),
    ),
  }),
  check(o, report) {
    if (o.poll_interval !== undefined && o.poll_interval < 200) {
      report(['poll_interval'], 'aws-limit', 'GetRecords allows 5 calls per second per shard: poll_interval must be 200ms or more');
    }
  },
  create() {
    throw new NotImplementedError('kinesis', 'source');
  },
});
