/**
 * `s3` sink: one object per partition per flush (the runtime buffers per partition and calls
 * `write` on `max_records`, `max_bytes` or `max_age`), ndjson or csv, optional gzip, multipart
 * above a threshold. `write` resolves only once PutObject or CompleteMultipartUpload
 * succeeded, so records are acked only when durable.
 *
 * Deterministic keys: `{partition}`, `{first_position}`, `{last_position}`, `{count}` and
 * `{ext}` render the same for a replay of the same source range, so a crash between upload
 * and checkpoint overwrites the object instead of adding a duplicate. `{batch_start}`,
 * `{seq}` and `{uuid}` differ on every run.
 */
import { PutObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { Type } from '@sinclair/typebox';
import { type EncodedObject, encodeBatch, objectKey } from '../../runtime/objects.ts';
import { compileTemplate } from '../../runtime/template.ts';
import { AwsOptions, Size, Template } from '../../spec/types.ts';
import { awsClientConfig } from '../aws/clients.ts';
import { defineSink, type Sink, type SinkBatch, type StageContext, StageError } from '../define.ts';

const MiB = 1024 * 1024;
/** S3's floor for every part but the last. */
const MIN_PART = 5 * MiB;

export const s3Sink = defineSink({
  type: 's3',
  kind: 'sink',
  description:
    'Writes batches as S3 objects: one per partition per flush, never one per record unless asked. ' +
    'Keys built only from {partition}, {first_position}, {last_position}, {count} and {ext} are deterministic: ' +
    'a replay after a crash overwrites the same object.',
  options: Type.Object({
    bucket: Type.String({
      minLength: 1,
      description: 'Bucket name',
      examples: ['historico-consumo-fazendas'],
    }),
    key: Template({
      description:
        'Object key template. Deterministic across replays with {partition}, {first_position}, {last_position}, {count}, {ext}; ' +
        '{batch_start}, {seq} and {uuid} change on every run',
      examples: ['historico_diario/{partition}/historico_consumo_{first_position}{ext}'],
    }),
    ...AwsOptions,
    force_path_style: Type.Optional(
      Type.Boolean({
        description: 'Path-style addressing (moto, MinIO); on when a custom endpoint is set, unless false',
      }),
    ),
    format: Type.Optional(
      Type.Union([Type.Literal('ndjson'), Type.Literal('csv')], {
        default: 'ndjson',
        description:
          'ndjson: one JSON value per line; csv: a header with the union of field names, then one row per record',
      }),
    ),
    compression: Type.Optional(
      Type.Union([Type.Literal('none'), Type.Literal('gzip')], {
        default: 'none',
        description: 'gzip adds `.gz` to {ext} and sets Content-Encoding: gzip',
      }),
    ),
    multipart_threshold: Type.Optional(
      Size({
        default: '16MiB',
        description: 'Objects at least this large are uploaded in parts',
        examples: ['64MiB'],
      }),
    ),
    part_size: Type.Optional(Size({ default: '8MiB', description: 'Multipart part size (≥ 5MiB)' })),
    storage_class: Type.Optional(
      Type.String({
        description: 'S3 storage class of the objects',
        examples: ['STANDARD_IA', 'INTELLIGENT_TIERING'],
      }),
    ),
  }),
  check(o, report) {
    if (o.part_size !== undefined && o.part_size < MIN_PART) {
      report(['part_size'], 'aws-limit', 'S3 multipart parts must be at least 5 MiB (all but the last)');
    }
    if (o.multipart_threshold !== undefined && o.multipart_threshold > 5 * 1024 * MiB) {
      report(
        ['multipart_threshold'],
        'aws-limit',
        'a single PutObject is limited to 5 GiB; lower multipart_threshold',
      );
    }
  },
  batching: {
    defaults: { max_records: 100_000, max_bytes: 16 * MiB, max_age: 60_000 },
    byPartition: true,
  },
  create(o, ctx) {
    const custom = (o.endpoint ?? process.env.AWS_ENDPOINT_URL) !== undefined;
    const config = awsClientConfig(o, { forcePathStyle: o.force_path_style ?? custom });
    const client = new S3Client({
      ...config,
      // Checksums only where S3 requires them: the SDK's default CRC32 trailers cost CPU per
      // byte and are not understood by every S3-compatible store.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    return new S3Sink(client, o, ctx);
  },
});

export interface S3SinkOptions {
  bucket: string;
  key: string;
  format?: 'ndjson' | 'csv';
  compression?: 'none' | 'gzip';
  multipart_threshold?: number;
  part_size?: number;
  storage_class?: string;
}

/** Errors where a retry sends the same bytes to the same refusal. */
const PERMANENT = new Set(['EntityTooLarge', 'InvalidArgument', 'KeyTooLongError', 'InvalidStorageClass']);

export class S3Sink implements Sink {
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly template: ReturnType<typeof compileTemplate>;
  private readonly format: 'ndjson' | 'csv';
  private readonly compression: 'none' | 'gzip';
  private readonly threshold: number;
  private readonly partSize: number;
  private readonly storageClass: string | undefined;
  private readonly ctx: StageContext;

  constructor(client: S3Client, o: S3SinkOptions, ctx: StageContext) {
    this.client = client;
    this.bucket = o.bucket;
    this.template = compileTemplate(o.key);
    this.format = o.format ?? 'ndjson';
    this.compression = o.compression ?? 'none';
    this.partSize = Math.max(o.part_size ?? 8 * MiB, MIN_PART);
    this.threshold = Math.max(o.multipart_threshold ?? 16 * MiB, this.partSize);
    this.storageClass = o.storage_class;
    this.ctx = ctx;
  }

  async write(batch: SinkBatch): Promise<undefined> {
    if (batch.records.length === 0) return undefined;
    const encoded = encodeBatch(batch.records, { format: this.format, compression: this.compression });
    const key = objectKey(this.template, batch, encoded.ext);
    try {
      if (encoded.body.length >= this.threshold) await this.multipart(key, encoded);
      else await this.put(key, encoded);
    } catch (e) {
      const name = e instanceof S3ServiceException ? e.name : (e as Error).name;
      throw new StageError(`s3://${this.bucket}/${key}: ${(e as Error).message}`, {
        retryable: !PERMANENT.has(name),
        cause: e,
      });
    }
    this.ctx.metrics.count('objects');
    this.ctx.metrics.count('object_bytes', encoded.body.length);
    this.ctx.log.debug(
      { key, records: batch.records.length, bytes: encoded.body.length },
      's3 object written',
    );
    return undefined;
  }

  private params(key: string, encoded: EncodedObject) {
    return {
      Bucket: this.bucket,
      Key: key,
      Body: encoded.body,
      ContentType: encoded.contentType,
      ContentEncoding: encoded.contentEncoding,
      StorageClass: this.storageClass as PutObjectCommand['input']['StorageClass'],
    };
  }

  private async put(key: string, encoded: EncodedObject): Promise<void> {
    await this.client.send(new PutObjectCommand(this.params(key, encoded)));
  }

  private async multipart(key: string, encoded: EncodedObject): Promise<void> {
    const upload = new Upload({
      client: this.client,
      params: this.params(key, encoded),
      partSize: this.partSize,
      queueSize: 4,
      // A failed upload must not leave parts behind that the bucket bills for.
      leavePartsOnError: false,
    });
    await upload.done();
    this.ctx.metrics.count('multipart_uploads');
  }

  async close(): Promise<void> {
    this.client.destroy();
  }
}
