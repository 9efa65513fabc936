/**
 * `kinesis` source: reads every shard of a Kinesis Data Stream, children only after their
 * parents are drained, de-aggregating KPL records, checkpointing per shard.
 *
 * Positions (checkpoints and `record.position`): a sequence number `seq` means the Kinesis record
 * `seq` and everything before it is done; `seq:n` means user records 0..n of the KPL aggregate
 * `seq` are done (the last user record of an aggregate is stored as plain `seq`); `SHARD_END`
 * means a closed shard was read to its end and everything in it acked, so its children may start.
 *
 * This file is the definition (options, checks, decode); the reading is in kinesis/reader.ts,
 * the balancing of shard leases between processes in kinesis/leases.ts.
 */
import { Type } from '@sinclair/typebox';
import { clock } from '../../expr/clock.ts';
import { inputLimits, LimitOptions } from '../../runtime/limits.ts';
import type { RecordInit } from '../../runtime/record.ts';
import { AwsOptions, Duration } from '../../spec/types.ts';
import { deaggregate } from '../aws/kpl.ts';
import { defineSource } from '../define.ts';
import { decodeData } from './kinesis/decode.ts';
import { KinesisSource } from './kinesis/reader.ts';

export { KinesisSource } from './kinesis/reader.ts';

const options = Type.Object({
  stream: Type.String({ minLength: 1, description: 'Stream name', examples: ['flow1'] }),
  ...AwsOptions,
  start: Type.Optional(
    Type.Union([Type.Literal('latest'), Type.Literal('trim_horizon'), Type.Literal('at_timestamp')], {
      default: 'latest',
      description: 'Where a shard without a checkpoint starts; a stored checkpoint always wins',
    }),
  ),
  start_timestamp: Type.Optional(
    Type.String({
      format: 'date-time',
      description: 'With start: at_timestamp, the arrival time to start from',
      examples: ['2026-01-31T00:00:00Z'],
    }),
  ),
  limit: Type.Optional(
    Type.Integer({ minimum: 1, maximum: 10000, default: 1000, description: 'GetRecords Limit per call' }),
  ),
  poll_interval: Type.Optional(
    Duration({
      default: '200ms',
      description: 'Least time between GetRecords calls on a busy shard (≥ 200ms keeps under 5 calls/s)',
    }),
  ),
  idle_interval: Type.Optional(
    Duration({ default: '1s', description: 'Wait between calls on a shard that returned nothing' }),
  ),
  shard_refresh: Type.Optional(
    Duration({ default: '10s', description: 'How often the shard list is refreshed (resharding)' }),
  ),
  codec: Type.Optional(
    Type.Union([Type.Literal('json'), Type.Literal('text'), Type.Literal('binary')], {
      default: 'json',
      description:
        'How record data is decoded: json (a value), text (a UTF-8 string) or binary (bytes); data that fails goes to the error output',
    }),
  ),
  ...LimitOptions,
  checkpoint: Type.Optional(
    Type.Object(
      {
        dynamodb: Type.Optional(
          Type.Object(
            {
              table: Type.String({
                minLength: 1,
                description: 'Lease table, created when missing; one item per shard',
                examples: ['sluice-checkpoints'],
              }),
              lease_duration: Type.Optional(
                Duration({
                  default: '30s',
                  description: 'A lease not renewed for this long may be taken by another process',
                }),
              ),
            },
            {
              additionalProperties: false,
              description:
                'Keep checkpoints in a DynamoDB lease table, so several processes share the shards of one stream',
            },
          ),
        ),
      },
      {
        additionalProperties: false,
        description:
          'Where shard checkpoints live: the pipeline state file by default, or a DynamoDB lease table shared by several processes',
      },
    ),
  ),
});

export type Options = typeof options.static;

export const kinesisSource = defineSource({
  type: 'kinesis',
  kind: 'source',
  description:
    'Reads a Kinesis Data Stream: every shard, parents before children, KPL de-aggregation, per-shard checkpoints.',
  // Shard ids repeat from stream to stream: positions belong to one stream in one place.
  identity: ['stream', 'region', 'endpoint', 'checkpoint'],
  meta: [
    { name: 'stream', type: 'string', description: 'Stream name' },
    { name: 'shard_id', type: 'string', description: 'Shard the record was read from' },
    {
      name: 'sequence_number',
      type: 'string',
      description: 'Sequence number of the record in its shard (of the aggregate, for KPL records)',
    },
    { name: 'partition_key', type: 'string', description: 'Partition key the producer gave the record' },
    {
      name: 'arrival_time',
      type: 'string',
      description: 'When Kinesis received the record (ApproximateArrivalTimestamp), ISO 8601',
    },
    {
      name: 'sub_sequence_number',
      type: 'int',
      description: 'Index of the record within its KPL aggregate; only on de-aggregated records',
    },
    {
      name: 'explicit_hash_key',
      type: 'string',
      description: 'Explicit hash key of a KPL user record, when its producer set one',
    },
  ],
  example: `
version: 1
name: kinesis-example
sources:
  flow:
    type: kinesis
    stream: \${KINESIS_STREAM:-flow1}
    region: us-east-1
    start: trim_horizon
    codec: json
transforms:
  annotated:
    type: enrich
    from: [flow]
    set:
      shard: 'meta.shard_id'
      sequence_number: 'meta.sequence_number'
sinks:
  print: { type: stdout, from: [annotated] }
`,
  options,
  check(o, report) {
    if (o.poll_interval !== undefined && o.poll_interval < 200) {
      report(
        ['poll_interval'],
        'aws-limit',
        'GetRecords allows 5 calls per second per shard: poll_interval must be 200ms or more',
      );
    }
    if (o.start === 'at_timestamp' && !o.start_timestamp) {
      report(['start_timestamp'], 'schema-value', 'start: at_timestamp needs start_timestamp');
    }
  },
  create: (o, ctx) => new KinesisSource(o, ctx),
  decode(o, raw) {
    const good: RecordInit[] = [];
    const bad: { input: RecordInit; reason: string }[] = [];
    for (const r of raw) {
      // A record as GetRecords would return it: KPL aggregates are unpacked as `run` does.
      const shard = String(r.meta?.shard_id ?? 'shardId-000000000000');
      const seq = String(r.meta?.sequence_number ?? String(r.index + 1).padStart(20, '0'));
      const arrival = new Date(clock().now()).toISOString();
      const base = { stream: o.stream, shard_id: shard, sequence_number: seq, arrival_time: arrival };
      const users = deaggregate(r.data);
      if (users === undefined) {
        const meta = { ...base, partition_key: r.key, ...r.meta };
        decodeData(
          o.codec ?? 'json',
          inputLimits(o),
          r.data,
          meta,
          r.key,
          clock().now(),
          `${shard}:${seq}`,
          good,
          bad,
        );
        continue;
      }
      users.forEach((u, i) => {
        const meta: Record<string, unknown> = {
          ...base,
          sub_sequence_number: i,
          partition_key: u.partitionKey,
          ...r.meta,
        };
        if (u.explicitHashKey !== undefined) meta.explicit_hash_key = u.explicitHashKey;
        const pos = i === users.length - 1 ? seq : `${seq}:${i}`;
        decodeData(
          o.codec ?? 'json',
          inputLimits(o),
          u.data,
          meta,
          u.partitionKey,
          clock().now(),
          `${shard}:${pos}`,
          good,
          bad,
        );
      });
    }
    return { records: good, failed: bad };
  },
});
