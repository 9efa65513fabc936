/** `s3` sink: one object per partition per flush, ndjson or csv, optional gzip, multipart when large. */
import { Type } from '@sinclair/typebox';
import { AwsOptions, Size, Template } from '../../spec/types.ts';
import { defineSink, NotImplementedError } from '../define.ts';

export const s3Sink = defineSink({
  type: 's3',
  kind: 'sink',
  description: 'Writes batches as S3 objects: one per partition per flush, never one per record unless asked.',
  options: Type.Object({
    bucket: Type.String({ minLength: 1, description: 'Bucket name' }),
    key: Template({ description: 'Object key template', examples: ['historico_diario/{partition}/historico_consumo_{batch_start}{ext}'] }),
    ...AwsOptions,
    force_path_style: Type.Optional(Type.Boolean({ default: false, description: 'Path-style addressing (moto, MinIO)' })),
    format: Type.Optional(Type.Union([Type.Literal('ndjson'), Type.Literal('csv')], { default: 'ndjson' })),
    compression: Type.Optional(Type.Union([Type.Literal('none'), Type.Literal('gzip')], { default: 'none' })),
    multipart_threshold: Type.Optional(Size({ default: '16MiB', description: 'Objects at least this large are uploaded in parts' })),
    part_size: Type.Optional(Size({ default: '8MiB', description: 'Multipart part size (≥ 5MiB)' })),
  }),
  check(o, report) {
    if (o.part_size !== undefined && o.part_size < 5 * 1024 * 1024) {
      report(['part_size'], 'aws-limit', 'S3 multipart parts must be at least 5 MiB (all but the last)');
    }
  },
  batching: { defaults: { max_records: 100_000, max_bytes: 16 * 1024 * 1024, max_age: 60_000 }, byPartition: true },
  create() {
    throw new NotImplementedError('s3', 'sink');
  },
});
