/** `sns` sink: Publish / PublishBatch with attributes, subject and FIFO ids from expressions. */
import { Type } from '@sinclair/typebox';
import { AwsOptions, Expr } from '../../spec/types.ts';
import { defineSink, NotImplementedError } from '../define.ts';

export const snsSink = defineSink({
  type: 'sns',
  kind: 'sink',
  description: 'Publishes records to an SNS topic with PublishBatch (10 entries, 256 KiB per call).',
  options: Type.Object({
    topic_arn: Type.String({ minLength: 1, description: 'Topic ARN' }),
    ...AwsOptions,
    subject: Type.Optional(Expr({ description: 'CEL expression for the Subject' })),
    attributes: Type.Optional(Type.Record(Type.String(), Expr({ description: 'CEL expression for a message attribute' }))),
    group_id: Type.Optional(Expr({ description: 'FIFO topics: message group id' })),
    dedup_id: Type.Optional(Expr({ description: 'FIFO topics: deduplication id' })),
  }),
  batching: { defaults: { max_records: 10, max_bytes: 256 * 1024, max_age: 100 }, limits: { max_records: 10, max_bytes: 256 * 1024, max_record_bytes: 256 * 1024 } },
  create() {
    throw new NotImplementedError('sns', 'sink');
  },
});
