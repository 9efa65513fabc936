/**
 * `s3` sink: one object per partition per flush (the runtime buffers per partition and calls
 * `write` on `max_records`, `max_bytes` or `max_age`), ndjson or csv (optional gzip or zstd) or
 * parquet (one row group per object, a schema every record must fit), multipart
 * above a threshold. `write` resolves only once PutObject or CompleteMultipartUpload
 * succeeded, so records are acked only when durable.
 *
 * Deterministic keys: `{partition}`, `{first_position}`, `{last_position}`, `{count}` and
 * `{ext}` render the same for a replay of the same source range, so a crash between upload
 * and checkpoint overwrites the object instead of adding a duplicate. `{batch_start}`,
 * `{seq}` and `{uuid}` differ on every run.
 *
 * `open()` checks with HeadBucket that the bucket exists and the credentials may use it.
 * A record that cannot be encoded (a value nested too deep, a BigInt, a value that does not fit
 * the parquet schema) fails alone; the object holds the others.
 *
 * Transient and permanent failures: `transient` in the definition (the stage reference shows it).
 */
import type * as S3 from '@aws-sdk/client-s3';
import type { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import type * as S3Storage from '@aws-sdk/lib-storage';
import { Type } from '@sinclair/typebox';
import { lazy } from '../../runtime/lazy.ts';
import { type EncodedObject, encodeBatch, keptRecords, objectKey } from '../../runtime/objects.ts';
import type { SluiceRecord } from '../../runtime/record.ts';
import { compileTemplate } from '../../runtime/template.ts';
import { AwsOptions, Size, Template } from '../../spec/types.ts';
import { type AwsStageOptions, awsClientConfig } from '../aws/clients.ts';
import { awsErrorText, httpStatus, isTransientAwsError } from '../aws/errors.ts';
import { encodeProblem } from '../aws/put-batches.ts';
import { type CheckTarget, checkStatus, StartupCheckError } from '../aws/startup.ts';
import {
  defineSink,
  type PreviewContext,
  type RecordFailure,
  type Sink,
  type SinkBatch,
  type StageContext,
  StageError,
  type WriteResult,
} from '../define.ts';
import {
  checkObjectFormat,
  type ObjectFormatOptions,
  objectEncoding,
  objectFormatOptions,
} from './object-format.ts';

const s3 = lazy<typeof S3>('@aws-sdk/client-s3');
const s3Storage = lazy<typeof S3Storage>('@aws-sdk/lib-storage');

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
  transient:
    'Transient: network errors and timeouts, SlowDown and other throttling, 5xx and 429, and ' +
    'errors about the bucket rather than the records (NoSuchBucket, AccessDenied, expired ' +
    'credentials, KMS errors), so a bucket deleted or a policy changed mid-run is waited out. ' +
    'Permanent: EntityTooLarge, InvalidArgument, KeyTooLongError and InvalidStorageClass (the ' +
    'object is refused; the batch is split to find the records at fault), and a record that ' +
    'cannot be encoded or does not fit the parquet schema.',
  example: `
version: 1
name: s3-example
sources:
  consumption:
    type: generate
    count: 100000
    fields:
      fazenda: '["fazenda_um", "fazenda_dois"][int(rand * 2.0)]'
      data: '"2026-01-15T06:00:00Z"'
      consumo_real: 'rand * 10.0'
transforms:
  by_day:
    type: partition
    from: [consumption]
    by: 'fazenda + "/" + format_time(data, "yyyy/MM/dd")'
sinks:
  lake:
    type: s3
    from: [by_day]
    bucket: historico-consumo-fazendas
    region: us-east-1
    key: 'historico_diario/{partition}/historico_consumo_{first_position}{ext}'
    compression: gzip
    buffer: { max_bytes: 5MiB, max_records: 10000, max_age: 60s }
`,
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
    ...objectFormatOptions,
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
    checkObjectFormat(o, report);
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
    const client = new (s3().S3Client)({
      ...config,
      // Checksums only where S3 requires them: the SDK's default CRC32 trailers cost CPU per
      // byte and are not understood by every S3-compatible store.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    return new S3Sink(client, o, ctx);
  },
  preview: (o, ctx) => new S3Preview(o, ctx),
});

export interface S3SinkOptions extends AwsStageOptions, ObjectFormatOptions {
  bucket: string;
  key: string;
  multipart_threshold?: number;
  part_size?: number;
  storage_class?: string;
}

export class S3Sink implements Sink {
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly template: ReturnType<typeof compileTemplate>;
  private readonly encoding: ReturnType<typeof objectEncoding>;
  private readonly threshold: number;
  private readonly partSize: number;
  private readonly storageClass: string | undefined;
  private readonly ctx: StageContext;
  private readonly target: CheckTarget;

  constructor(client: S3Client, o: S3SinkOptions, ctx: StageContext) {
    this.client = client;
    this.bucket = o.bucket;
    const { region, endpoint } = awsClientConfig(o);
    this.target = {
      service: 's3',
      what: `bucket '${o.bucket}'`,
      region,
      endpoint,
      actions: 's3:ListBucket and s3:PutObject',
    };
    this.template = compileTemplate(o.key);
    this.encoding = objectEncoding(o, ctx.log);
    this.partSize = Math.max(o.part_size ?? 8 * MiB, MIN_PART);
    this.threshold = Math.max(o.multipart_threshold ?? 16 * MiB, this.partSize);
    this.storageClass = o.storage_class;
    this.ctx = ctx;
  }

  async open(): Promise<void> {
    const region = this.target.region;
    await checkStatus(this.target, {
      describe: (abortSignal) =>
        this.client.send(new (s3().HeadBucketCommand)({ Bucket: this.bucket }), { abortSignal }),
      notFound: (err) => httpStatus(err) === 404,
      create: `aws s3 mb s3://${this.bucket}`,
      option: 'bucket',
      explain: (err) =>
        httpStatus(err) === 301
          ? new StartupCheckError(
              `s3: bucket '${this.bucket}' is not in region ${region}; set \`region\` to the bucket's region`,
              { cause: err },
            )
          : undefined,
    });
  }

  async write(batch: SinkBatch): Promise<WriteResult> {
    if (batch.records.length === 0) return undefined;
    let records = batch.records;
    let indices: number[] = records.map((_, i) => i);
    let failed: RecordFailure[] = [];
    let encoded: EncodedObject;
    try {
      encoded = this.encode(records);
    } catch (err) {
      if (!(err instanceof RangeError || err instanceof TypeError)) throw err;
      // Rare: find the records at fault rather than encoding each one twice on every write.
      ({ records, indices, failed } = this.encodable(batch.records));
      if (records.length === 0) return { failed };
      encoded = this.encode(records);
    }
    if (encoded.rejected?.length) {
      // Records that do not fit the parquet schema fail alone; the object holds the others.
      for (const r of encoded.rejected) {
        failed.push({ index: indices[r.index], reason: `s3: record ${r.reason}`, retryable: false });
      }
      const kept = keptRecords(records, encoded);
      records = kept.records;
      indices = kept.indices.map((i) => indices[i]);
      if (records.length === 0) return { failed };
    }
    const key = objectKey(this.template, { ...batch, records }, encoded.ext);
    try {
      await this.upload(key, encoded);
    } catch (e) {
      const reason = `s3://${this.bucket}/${key}: ${awsErrorText(e)}`;
      if (!isTransientAwsError(e) || failed.length === 0) {
        // The runtime splits a batch refused for good to find the records at fault.
        throw new StageError(reason, { retryable: isTransientAwsError(e), cause: e });
      }
      for (const index of indices) failed.push({ index, reason, retryable: true });
    }
    if (failed.length < batch.records.length) {
      this.ctx.metrics.count('objects');
      this.ctx.metrics.count('object_bytes', encoded.body.length);
      this.ctx.log.debug({ key, records: records.length, bytes: encoded.body.length }, 's3 object written');
    }
    return failed.length > 0 ? { failed: failed.sort((a, b) => a.index - b.index) } : undefined;
  }

  /** The only network call of a write: one PutObject, or a multipart upload for a large object. */
  protected async upload(key: string, encoded: EncodedObject): Promise<void> {
    if (encoded.body.length >= this.threshold) await this.multipart(key, encoded);
    else await this.put(key, encoded);
  }

  private encode(records: SluiceRecord[]): EncodedObject {
    return encodeBatch(records, this.encoding);
  }

  /**
   * The records that encode, with their indices in the batch, and a failure for each that does
   * not: one value nested too deep or holding a BigInt fails alone instead of the whole object.
   */
  private encodable(all: SluiceRecord[]): {
    records: SluiceRecord[];
    indices: number[];
    failed: RecordFailure[];
  } {
    const failed: RecordFailure[] = [];
    const records: SluiceRecord[] = [];
    const indices: number[] = [];
    for (let index = 0; index < all.length; index++) {
      const problem = encodingProblem(all[index].value);
      if (problem === undefined) {
        records.push(all[index]);
        indices.push(index);
      } else failed.push({ index, reason: `s3: record cannot be encoded: ${problem}`, retryable: false });
    }
    return { records, indices, failed };
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
    await this.client.send(new (s3().PutObjectCommand)(this.params(key, encoded)));
  }

  private async multipart(key: string, encoded: EncodedObject): Promise<void> {
    const upload = new (s3Storage().Upload)({
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

/** The S3 sink with its uploads captured: keys and bodies as they would be written. */
class S3Preview extends S3Sink {
  private readonly capture: PreviewContext['capture'];
  constructor(o: S3SinkOptions, ctx: PreviewContext) {
    // The client is never used: no request leaves a preview.
    super(new (s3().S3Client)({ region: 'us-east-1' }), o, ctx);
    this.capture = ctx.capture;
  }
  override async open(): Promise<void> {}
  protected override async upload(key: string, encoded: EncodedObject): Promise<void> {
    this.capture({ kind: 'object', key, ...encoded });
  }
}

/** Why a value cannot be written as JSON (ndjson lines and csv cells both are), or undefined. */
function encodingProblem(value: unknown): string | undefined {
  try {
    JSON.stringify(value);
    return undefined;
  } catch (err) {
    return encodeProblem(err);
  }
}
