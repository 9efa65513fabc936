/**
 * `kinesis` sink: PutRecords within the API limits, returning only the failed entries so the
 * runtime retries those alone.
 *
 * `ordered: true` keeps every partition key's records in the order they arrived, which plain
 * retries cannot: after a partially failed call the runtime would resend a key's failed record
 * after later records of that key had landed, and concurrent batches may overtake each other.
 * So in ordered mode writes run one at a time, each batch is sent in waves holding at most one
 * record per key (the n-th record of every key), and a wave's retryable failures are retried
 * here, with capped backoff, until accepted, before the next wave. Many distinct keys still fill
 * each call; a single hot key degrades to one record per call, the price of its order.
 *
 * `open()` checks with DescribeStreamSummary that the stream exists and is ACTIVE (or UPDATING).
 *
 * Transient and permanent failures: `transient` in the definition (the stage reference shows it).
 */
import type { KinesisClient, PutRecordsResultEntry } from '@aws-sdk/client-kinesis';
import { Type } from '@sinclair/typebox';
import { type CompiledExpr, compile } from '../../expr/index.ts';
import type { SluiceRecord } from '../../runtime/record.ts';
import { AwsOptions, Expr } from '../../spec/types.ts';
import { awsClientConfig } from '../aws/clients.ts';
import { awsErrorName, awsErrorText, isTransientAwsError } from '../aws/errors.ts';
import { chunk, type Entry, encodeProblem, encodeValue, MiB } from '../aws/put-batches.ts';
import { kinesis } from '../aws/sdk.ts';
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
const MAX_CALL_BYTES = 5 * MiB;
/** Data plus partition key. */
const MAX_RECORD_BYTES = MiB;
const MAX_KEY_CHARS = 256;

const options = Type.Object({
  stream: Type.String({ minLength: 1, description: 'Stream name', examples: ['flow1'] }),
  ...AwsOptions,
  partition_key: Expr({
    description:
      'CEL expression giving the partition key (1 to 256 characters); records of one key stay in order in one shard',
    examples: ['idvendedor', 'meta.partition_key'],
  }),
  ordered: Type.Optional(
    Type.Boolean({
      default: false,
      description:
        'Keep order per partition key across partial failures and batches: one write at a time, at most one record per key per call, failed entries retried before the next',
    }),
  ),
});

type Options = typeof options.static;

export const kinesisSink = defineSink({
  type: 'kinesis',
  kind: 'sink',
  description:
    'Writes records to a Kinesis Data Stream with PutRecords (500 records, 5 MiB per call, 1 MiB per record). Bytes and strings are sent as they are, other values as JSON.',
  transient:
    'Transient: network errors and timeouts, entries refused with ' +
    'ProvisionedThroughputExceededException or InternalFailure, throttling (LimitExceeded, ' +
    'KMSThrottlingException), 5xx and 429, and errors about the stream rather than the records ' +
    '(ResourceNotFoundException when the stream is deleted mid-run, AccessDenied, expired ' +
    'credentials, KMS key disabled or not found). Permanent for the record alone: a value that ' +
    'cannot be encoded, a partition key out of bounds, a record over 1 MiB, and a call refused ' +
    'with ValidationException or InvalidArgumentException (halved until the refused record is ' +
    'alone).',
  example: `
version: 1
name: kinesis-sink-example
sources:
  trades:
    type: generate
    rate: 1000
    fields:
      ticker: '["VALE3", "PETR4", "ITUB4"][int(rand * 3.0)]'
      price: 'round(10.0 + rand * 50.0, 2)'
sinks:
  stream:
    type: kinesis
    from: [trades]
    stream: \${KINESIS_STREAM:-flow1}
    region: us-east-1
    partition_key: ticker
    ordered: true
`,
  options,
  batching: {
    defaults: { max_records: MAX_RECORDS, max_bytes: MAX_CALL_BYTES, max_age: 200 },
    limits: { max_records: MAX_RECORDS, max_bytes: MAX_CALL_BYTES, max_record_bytes: MAX_RECORD_BYTES },
  },
  create: (o, ctx) => new KinesisSink(o, ctx),
  preview: (o, ctx) => new KinesisPreview(o, ctx),
});

interface KinesisEntry extends Entry {
  data: Uint8Array;
  key: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class KinesisSink implements Sink {
  readonly client: KinesisClient;
  private readonly o: Options;
  private readonly ctx: StageContext;
  private readonly key: CompiledExpr;
  /** Ordered mode: the write under way; the next waits for it. */
  private serial: Promise<unknown> = Promise.resolve();
  private closed = false;
  private readonly target: CheckTarget;

  constructor(o: Options, ctx: StageContext) {
    this.o = o;
    this.ctx = ctx;
    this.key = compile(o.partition_key);
    const config = awsClientConfig(o);
    this.client = new (kinesis().KinesisClient)(config);
    this.target = {
      service: 'kinesis',
      what: `stream '${o.stream}'`,
      region: config.region,
      endpoint: config.endpoint,
      actions: 'kinesis:DescribeStreamSummary and kinesis:PutRecords',
    };
  }

  async open(): Promise<void> {
    const stream = this.o.stream;
    await checkStatus(this.target, {
      describe: (abortSignal) =>
        this.client.send(new (kinesis().DescribeStreamSummaryCommand)({ StreamName: stream }), {
          abortSignal,
        }),
      notFound: (err) => awsErrorName(err) === 'ResourceNotFoundException',
      create: `aws kinesis create-stream --stream-name ${stream} --shard-count 1`,
      option: 'stream',
      // UPDATING (resharding, retention changes) still takes writes.
      state: { of: (res) => res.StreamDescriptionSummary?.StreamStatus, accepted: ['ACTIVE', 'UPDATING'] },
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.serial.catch(() => undefined);
    this.client.destroy();
  }

  write(batch: SinkBatch): Promise<WriteResult> {
    if (!this.o.ordered) return this.writeBatch(batch);
    const run = this.serial.then(() => this.writeBatch(batch));
    this.serial = run.catch(() => undefined);
    return run;
  }

  private async writeBatch(batch: SinkBatch): Promise<WriteResult> {
    const failed: RecordFailure[] = [];
    const entries = this.prepare(batch.records, failed);
    if (this.o.ordered) await this.writeOrdered(entries, failed);
    else {
      for (const group of chunk(entries, MAX_RECORDS, MAX_CALL_BYTES)) {
        for (const [e, reason, retryable] of await this.put(group))
          failed.push({ index: e.index, reason, retryable });
      }
    }
    return failed.length > 0 ? { failed: failed.sort((a, b) => a.index - b.index) } : undefined;
  }

  /** Encodes records and evaluates keys; records that can never be accepted fail here. */
  private prepare(records: readonly SluiceRecord[], failed: RecordFailure[]): KinesisEntry[] {
    const entries: KinesisEntry[] = [];
    for (let index = 0; index < records.length; index++) {
      const r = records[index];
      let key: string;
      try {
        const k = this.key.evaluate(r.value, r.meta);
        key = typeof k === 'string' ? k : JSON.stringify(k);
      } catch (err) {
        failed.push({ index, reason: `partition_key: ${(err as Error).message}`, retryable: false });
        continue;
      }
      if (!key || [...key].length > MAX_KEY_CHARS) {
        failed.push({
          index,
          reason: `partition key must have 1 to ${MAX_KEY_CHARS} characters (got ${[...(key ?? '')].length})`,
          retryable: false,
        });
        continue;
      }
      let data: Uint8Array;
      try {
        data = encodeValue(r.value);
      } catch (err) {
        failed.push({ index, reason: `record cannot be encoded: ${encodeProblem(err)}`, retryable: false });
        continue;
      }
      const bytes = data.length + Buffer.byteLength(key);
      if (bytes > MAX_RECORD_BYTES) {
        failed.push({
          index,
          reason: `record of ${bytes} bytes (data and partition key) exceeds the Kinesis limit of ${MAX_RECORD_BYTES} bytes`,
          retryable: false,
        });
        continue;
      }
      entries.push({ index, data, key, bytes });
    }
    return entries;
  }

  /** One PutRecords call per group; returns the entries AWS did not accept. */
  protected async put(group: KinesisEntry[]): Promise<[KinesisEntry, string, boolean][]> {
    let results: PutRecordsResultEntry[];
    try {
      const res = await this.client.send(
        new (kinesis().PutRecordsCommand)({
          StreamName: this.o.stream,
          Records: group.map((e) => ({ Data: e.data, PartitionKey: e.key })),
        }),
      );
      this.ctx.metrics.count('put_records_calls');
      results = res.Records ?? [];
    } catch (err) {
      // The whole call failed: none of its entries is in the stream.
      const retryable = isTransientAwsError(err);
      if (!retryable && group.length > 1) {
        // Refused for its content: halve until the record at fault is alone, the rest go in.
        const half = Math.ceil(group.length / 2);
        return [...(await this.put(group.slice(0, half))), ...(await this.put(group.slice(half)))];
      }
      const reason = `PutRecords failed: ${awsErrorText(err)}`;
      return group.map((e) => [e, reason, retryable]);
    }
    const out: [KinesisEntry, string, boolean][] = [];
    for (let i = 0; i < group.length; i++) {
      const r = results[i];
      if (r?.SequenceNumber && !r.ErrorCode) continue;
      const reason = r?.ErrorCode
        ? `${r.ErrorCode}: ${r.ErrorMessage ?? ''}`.trim()
        : 'no result for this entry';
      if (r?.ErrorCode === 'ProvisionedThroughputExceededException')
        this.ctx.metrics.count('throttled_entries');
      // Entry codes are throttling, InternalFailure and KMS errors: all about the stream.
      out.push([group[i], reason, r?.ErrorCode ? isTransientAwsError({ name: r.ErrorCode }) : true]);
    }
    return out;
  }

  private async writeOrdered(entries: KinesisEntry[], failed: RecordFailure[]): Promise<void> {
    // waves[n] holds the n-th record of every key, in batch order.
    const waves: KinesisEntry[][] = [];
    const seen = new Map<string, number>();
    for (const e of entries) {
      const n = seen.get(e.key) ?? 0;
      seen.set(e.key, n + 1);
      if (n === waves.length) waves.push([]);
      waves[n].push(e);
    }
    const given = new Map<string, string>(); // key → why its remaining records are handed back
    for (const wave of waves) {
      let pending = wave.filter((e) => {
        const why = given.get(e.key);
        if (why === undefined) return true;
        failed.push({ index: e.index, reason: why, retryable: true });
        return false;
      });
      for (let attempt = 1; pending.length > 0; attempt++) {
        const again: [KinesisEntry, string, boolean][] = [];
        for (const group of chunk(pending, MAX_RECORDS, MAX_CALL_BYTES))
          again.push(...(await this.put(group)));
        pending = [];
        for (const [e, reason, retryable] of again) {
          if (!retryable) {
            // Never writable (goes to the error output): the key's later records go on in order.
            failed.push({ index: e.index, reason, retryable });
          } else if (this.closed) {
            // Shutting down: hand the key's remaining records back rather than reorder them.
            failed.push({ index: e.index, reason, retryable });
            given.set(e.key, `not sent: an earlier record with partition key '${e.key}' failed (${reason})`);
          } else pending.push(e);
        }
        if (pending.length === 0) break;
        this.ctx.metrics.retried(pending.length);
        if (attempt % 10 === 0) {
          this.ctx.log.warn(
            { records: pending.length, attempt, reason: again[0][1] },
            'PutRecords keeps failing; retrying in order',
          );
        }
        await sleep(Math.min(5_000, 100 * 2 ** Math.min(attempt - 1, 10)) * (0.5 + Math.random() / 2));
      }
    }
  }
}

/** The kinesis sink with PutRecords captured (`sluice test`): data and partition key per record. */
class KinesisPreview extends KinesisSink {
  private readonly capture: PreviewContext['capture'];
  constructor(o: Options, ctx: PreviewContext) {
    super(o, ctx);
    this.capture = ctx.capture;
  }
  override async open(): Promise<void> {}
  protected override async put(group: KinesisEntry[]): Promise<[KinesisEntry, string, boolean][]> {
    for (const e of group) this.capture({ kind: 'message', value: e.data, partition_key: e.key });
    return [];
  }
}
