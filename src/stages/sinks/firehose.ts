/** `firehose` sink: PutRecordBatch within its limits, retrying only failed entries. */
import { Type } from '@sinclair/typebox';
import { AwsOptions } from '../../spec/types.ts';
import { defineSink, NotImplementedError } from '../define.ts';

export const firehoseSink = defineSink({
  type: 'firehose',
  kind: 'sink',
  description: 'Writes records to a Firehose delivery stream with PutRecordBatch (500 records, 4 MiB per call).',
  options: Type.Object({
    delivery_stream: Type.String({ minLength: 1, description: 'Delivery stream name' }),
    ...AwsOptions,
    newline: Type.Optional(Type.Boolean({ default: true, description: 'End each record with a newline so S3 objects are ndjson' })),
  }),
  batching: { defaults: { max_records: 500, max_bytes: 4 * 1024 * 1024, max_age: 200 }, limits: { max_records: 500, max_bytes: 4 * 1024 * 1024, max_record_bytes: 1000 * 1024 } },
  create() {
    throw new NotImplementedError('firehose', 'sink');
  },
});
