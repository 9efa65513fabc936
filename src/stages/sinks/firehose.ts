/**
 * `firehose` sink: PutRecordBatch within its limits, returning only the failed entries for retry.
 *
 * `open()` checks with DescribeDeliveryStream that the delivery stream exists and is ACTIVE.
 *
 * Transient and permanent failures: `transient` in the definition (the stage reference shows it).
 */
import type { FirehoseClient, PutRecordBatchResponseEntry } from '@aws-sdk/client-firehose';
import { Type } from '@sinclair/typebox';
import { AwsOptions } from '../../spec/types.ts';
import { awsClientConfig } from '../aws/clients.ts';
import { awsErrorName, awsErrorText, isTransientAwsError } from '../aws/errors.ts';
import { chunk, type Entry, encodeProblem, encodeValue, MiB } from '../aws/put-batches.ts';
import { firehose } from '../aws/sdk.ts';
import { type CheckTarget, checkStatus } from '../aws/startup.ts';
import {
  defineSink,
  type PreviewContext,
  type RecordFailure,
  type Sink,
  type SinkBatch,
  type StageContext,
  type WriteResult,
} from '../define.ts';

const MAX_RECORDS = 500;
const MAX_CALL_BYTES = 4 * MiB;
const MAX_RECORD_BYTES = 1000 * 1024;

const options = Type.Object({
  delivery_stream: Type.String({
    minLength: 1,
    description: 'Delivery stream name',
    examples: ['flow1-to-s3'],
  }),
  ...AwsOptions,
  newline: Type.Optional(
    Type.Boolean({
      default: true,
      description:
        'End each record with a newline so the objects Firehose writes are ndjson (Firehose concatenates records as they are)',
    }),
  ),
});

type Options = typeof options.static;

export const firehoseSink = defineSink({
  type: 'firehose',
  kind: 'sink',
  description:
    'Writes records to a Firehose delivery stream with PutRecordBatch (500 records, 4 MiB per call, 1000 KiB per record). Bytes and strings are sent as they are, other values as JSON.',
  transient:
    'Transient: network errors and timeouts, entries refused with ServiceUnavailableException or ' +
    'InternalFailure, throttling (LimitExceeded, KMSThrottlingException), 5xx and 429, and errors ' +
    'about the delivery stream rather than the records (ResourceNotFoundException when it is ' +
    'deleted mid-run, ResourceInUseException, AccessDenied, expired credentials, KMS key disabled ' +
    'or not found). Permanent for the record alone: a value that cannot be encoded, a record over ' +
    '1000 KiB, and a call refused with ValidationException or InvalidArgumentException (halved ' +
    'until the refused record is alone).',
  example: `
version: 1
name: firehose-example
sources:
  flow:
    type: kinesis
    stream: flow1
    region: us-east-1
sinks:
  delivery:
    type: firehose
    from: [flow]
    delivery_stream: \${FIREHOSE_STREAM:-flow-to-lake}
    region: us-east-1
    newline: true
`,
  options,
  batching: {
    defaults: { max_records: MAX_RECORDS, max_bytes: MAX_CALL_BYTES, max_age: 200 },
    limits: { max_records: MAX_RECORDS, max_bytes: MAX_CALL_BYTES, max_record_bytes: MAX_RECORD_BYTES },
  },
  create: (o, ctx) => new FirehoseSink(o, ctx),
  preview: (o, ctx) => new FirehosePreview(o, ctx),
});

interface FirehoseEntry extends Entry {
  data: Uint8Array;
}

const NEWLINE = 0x0a;

export class FirehoseSink implements Sink {
  readonly client: FirehoseClient;
  private readonly o: Options;
  private readonly ctx: StageContext;
  private readonly target: CheckTarget;

  constructor(o: Options, ctx: StageContext) {
    this.o = o;
    this.ctx = ctx;
    const config = awsClientConfig(o);
    this.client = new (firehose().FirehoseClient)(config);
    this.target = {
      service: 'firehose',
      what: `delivery stream '${o.delivery_stream}'`,
      region: config.region,
      endpoint: config.endpoint,
      actions: 'firehose:DescribeDeliveryStream and firehose:PutRecordBatch',
    };
  }

  async open(): Promise<void> {
    const name = this.o.delivery_stream;
    await checkStatus(this.target, {
      describe: (abortSignal) =>
        this.client.send(new (firehose().DescribeDeliveryStreamCommand)({ DeliveryStreamName: name }), {
          abortSignal,
        }),
      notFound: (err) => awsErrorName(err) === 'ResourceNotFoundException',
      create: `aws firehose create-delivery-stream --delivery-stream-name ${name} …`,
      option: 'delivery_stream',
      state: { of: (res) => res.DeliveryStreamDescription?.DeliveryStreamStatus, accepted: ['ACTIVE'] },
    });
  }

  async close(): Promise<void> {
    this.client.destroy();
  }

  async write(batch: SinkBatch): Promise<WriteResult> {
    const failed: RecordFailure[] = [];
    const newline = this.o.newline ?? true;
    const entries: FirehoseEntry[] = [];
    batch.records.forEach((r, index) => {
      let data: Uint8Array;
      try {
        data = encodeValue(r.value);
      } catch (err) {
        failed.push({ index, reason: `record cannot be encoded: ${encodeProblem(err)}`, retryable: false });
        return;
      }
      if (newline && data[data.length - 1] !== NEWLINE) {
        const withNl = new Uint8Array(data.length + 1);
        withNl.set(data);
        withNl[data.length] = NEWLINE;
        data = withNl;
      }
      if (data.length > MAX_RECORD_BYTES) {
        failed.push({
          index,
          reason: `record of ${data.length} bytes exceeds the Firehose limit of ${MAX_RECORD_BYTES} bytes`,
          retryable: false,
        });
        return;
      }
      entries.push({ index, data, bytes: data.length });
    });
    for (const group of chunk(entries, MAX_RECORDS, MAX_CALL_BYTES)) failed.push(...(await this.put(group)));
    return failed.length > 0 ? { failed: failed.sort((a, b) => a.index - b.index) } : undefined;
  }

  protected async put(group: FirehoseEntry[]): Promise<RecordFailure[]> {
    let results: PutRecordBatchResponseEntry[];
    try {
      const res = await this.client.send(
        new (firehose().PutRecordBatchCommand)({
          DeliveryStreamName: this.o.delivery_stream,
          Records: group.map((e) => ({ Data: e.data })),
        }),
      );
      this.ctx.metrics.count('put_record_batch_calls');
      results = res.RequestResponses ?? [];
    } catch (err) {
      const retryable = isTransientAwsError(err);
      if (!retryable && group.length > 1) {
        // Refused for its content: halve until the record at fault is alone, the rest go in.
        const half = Math.ceil(group.length / 2);
        return [...(await this.put(group.slice(0, half))), ...(await this.put(group.slice(half)))];
      }
      const reason = `PutRecordBatch failed: ${awsErrorText(err)}`;
      return group.map((e) => ({ index: e.index, reason, retryable }));
    }
    const out: RecordFailure[] = [];
    for (let i = 0; i < group.length; i++) {
      const r = results[i];
      if (r?.RecordId && !r.ErrorCode) continue;
      const reason = r?.ErrorCode
        ? `${r.ErrorCode}: ${r.ErrorMessage ?? ''}`.trim()
        : 'no result for this entry';
      if (r?.ErrorCode === 'ServiceUnavailableException') this.ctx.metrics.count('throttled_entries');
      // Entry codes are ServiceUnavailable, InternalFailure and KMS errors: all about the stream.
      out.push({
        index: group[i].index,
        reason,
        retryable: r?.ErrorCode ? isTransientAwsError({ name: r.ErrorCode }) : true,
      });
    }
    return out;
  }
}

/** The firehose sink with PutRecordBatch captured (`sluice test`): the bytes of each record. */
class FirehosePreview extends FirehoseSink {
  private readonly capture: PreviewContext['capture'];
  constructor(o: Options, ctx: PreviewContext) {
    super(o, ctx);
    this.capture = ctx.capture;
  }
  override async open(): Promise<void> {}
  protected override async put(group: FirehoseEntry[]): Promise<RecordFailure[]> {
    for (const e of group) this.capture({ kind: 'message', value: e.data });
    return [];
  }
}
