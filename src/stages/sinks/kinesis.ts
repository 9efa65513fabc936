/** `kinesis` sink: PutRecords within the API limits, retrying only failed entries. */
import { Type } from '@sinclair/typebox';
import { AwsOptions, Expr } from '../../spec/types.ts';
import { defineSink, NotImplementedError } from '../define.ts';

export const kinesisSink = defineSink({
  type: 'kinesis',
  kind: 'sink',
  description: 'Writes records to a Kinesis Data Stream with PutRecords (500 records, 5 MiB per call, 1 MiB per record).',
  options: Type.Object({
    stream: Type.String({ minLength: 1, description: 'Stream name' }),
    ...AwsOptions,
    partition_key: Expr({ description: 'CEL expression giving the partition key', examples: ['idvendedor'] }),
    ordered: Type.Optional(Type.Boolean({ default: false, description: 'Keep order per partition key across retries' })),
  }),
  batching: { defaults: { max_records: 500, max_bytes: 5 * 1024 * 1024, max_age: 200 }, limits: { max_records: 500, max_bytes: 5 * 1024 * 1024, max_record_bytes: 1024 * 1024 } },
  create() {
    throw new NotImplementedError('kinesis', 'sink');
  },
});
