/**
 * `sns` sink: publishes each record as one SNS message. Batches go out with PublishBatch (at
 * most 10 entries and 256 KiB per call; a lone record with Publish). Entries SNS refuses come
 * back as per-record failures, so only those are retried; a refusal that retrying cannot fix
 * (SenderFault, an expression error) goes to the error output at once.
 *
 * `open()` checks with GetTopicAttributes that the topic exists and the credentials may use it.
 *
 * Transient and permanent failures: `transient` in the definition (the stage reference shows it).
 */
import type { MessageAttributeValue, PublishBatchRequestEntry, SNSClient } from '@aws-sdk/client-sns';
import { Type } from '@sinclair/typebox';
import { type CompiledExpr, compile } from '../../expr/index.ts';
import type { SluiceRecord } from '../../runtime/record.ts';
import { AwsOptions, Expr } from '../../spec/types.ts';
import { type AwsStageOptions, awsClientConfig } from '../aws/clients.ts';
import { awsErrorName, awsErrorText, entryCodeTransient, isTransientAwsError } from '../aws/errors.ts';
import { encodeProblem } from '../aws/put-batches.ts';
import { sns } from '../aws/sdk.ts';
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

/** arn:<partition>:sns:<region>:<account>:<name>, the shape SNS accepts for TopicArn. */
const TOPIC_ARN = /^arn:[a-z-]+:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$/;
const MAX_ENTRIES = 10;
const MAX_BYTES = 256 * 1024;

export const snsSink = defineSink({
  type: 'sns',
  kind: 'sink',
  description:
    'Publishes records to an SNS topic with PublishBatch (10 entries, 256 KiB per call); subject, attributes and FIFO ids from expressions.',
  transient:
    'Transient: network errors and timeouts, throttling (Throttled, KMSThrottling), ' +
    'InternalError, 5xx and 429, and errors about the topic rather than the records (NotFound ' +
    'when the topic is deleted mid-run, AuthorizationError, expired credentials, KMS key disabled ' +
    'or access denied). Permanent for the record alone: a value that cannot be encoded, an ' +
    'expression that fails on it, a message over 256 KiB, entries refused with InvalidParameter ' +
    'or another sender fault, and a call refused for its content (halved until the refused record ' +
    'is alone).',
  example: `
version: 1
name: sns-sink-example
sources:
  consumption:
    type: generate
    count: 100
    fields:
      cod_cliente: 'string(i % 2 + 1)'
      consumo_real: 'rand * 10.0'
sinks:
  topic:
    type: sns
    from: [consumption]
    topic_arn: \${SNS_TOPIC_ARN:-arn:aws:sns:us-east-1:123456789012:historico-consumo}
    region: us-east-1
    subject: '"consumo " + cod_cliente'
    attributes:
      cod_cliente: cod_cliente
`,
  options: Type.Object({
    topic_arn: Type.String({
      minLength: 1,
      description: 'Topic ARN (a name ending in .fifo is a FIFO topic and needs group_id)',
      examples: ['arn:aws:sns:us-east-1:123456789012:consumo'],
    }),
    ...AwsOptions,
    subject: Type.Optional(
      Expr({
        description: 'CEL expression for the Subject (ASCII, at most 100 characters)',
        examples: ['"consumo " + id_lote'],
      }),
    ),
    attributes: Type.Optional(
      Type.Record(
        Type.String({ minLength: 1 }),
        Expr({ description: 'CEL expression for a message attribute' }),
        {
          description:
            'Message attributes by name. Strings become String, numbers Number, lists String.Array, bytes Binary; null leaves the attribute out',
          examples: [{ cod_cliente: 'cod_cliente' }],
        },
      ),
    ),
    group_id: Type.Optional(Expr({ description: 'FIFO topics: message group id', examples: ['id_lote'] })),
    dedup_id: Type.Optional(
      Expr({
        description:
          'FIFO topics: deduplication id; where it evaluates to null the topic must have content-based deduplication',
        examples: ['id_treated_data'],
      }),
    ),
  }),
  check(o, report) {
    const fifo = o.topic_arn.endsWith('.fifo');
    if (fifo && !o.group_id)
      report(['group_id'], 'aws-limit', 'FIFO topics need a message group id: set group_id');
    if (!fifo && (o.group_id || o.dedup_id)) {
      report(
        [o.group_id ? 'group_id' : 'dedup_id'],
        'schema-value',
        'group_id and dedup_id apply to FIFO topics (.fifo) only',
        'warning',
      );
    }
    for (const name of Object.keys(o.attributes ?? {})) {
      if (!/^[A-Za-z0-9_.-]{1,256}$/.test(name) || name.startsWith('AWS.') || name.startsWith('Amazon.')) {
        report(['attributes', name], 'aws-limit', `message attribute name '${name}' is not allowed by SNS`);
      }
    }
  },
  batching: {
    defaults: { max_records: MAX_ENTRIES, max_bytes: MAX_BYTES, max_age: 100 },
    limits: { max_records: MAX_ENTRIES, max_bytes: MAX_BYTES, max_record_bytes: MAX_BYTES },
  },
  create(o, ctx) {
    return new SnsSink(new (sns().SNSClient)(awsClientConfig(o)), o, ctx);
  },
  preview: (o, ctx) => new SnsPreview(o, ctx),
});

export interface SnsSinkOptions extends AwsStageOptions {
  topic_arn: string;
  subject?: string;
  attributes?: Record<string, string>;
  group_id?: string;
  dedup_id?: string;
}

interface Entry {
  index: number;
  bytes: number;
  entry: PublishBatchRequestEntry;
}

export class SnsSink implements Sink {
  private readonly client: SNSClient;
  private readonly topic: string;
  private readonly subject: CompiledExpr | undefined;
  private readonly attributes: [string, CompiledExpr][];
  private readonly groupId: CompiledExpr | undefined;
  private readonly dedupId: CompiledExpr | undefined;
  private readonly ctx: StageContext;
  private readonly target: CheckTarget;

  constructor(client: SNSClient, o: SnsSinkOptions, ctx: StageContext) {
    this.client = client;
    this.topic = o.topic_arn;
    const { region, endpoint } = awsClientConfig(o);
    this.target = {
      service: 'sns',
      what: `topic '${o.topic_arn}'`,
      region,
      endpoint,
      actions: 'sns:GetTopicAttributes and sns:Publish',
    };
    this.subject = o.subject ? compile(o.subject) : undefined;
    this.attributes = Object.entries(o.attributes ?? {}).map(([k, v]) => [k, compile(v)]);
    this.groupId = o.group_id ? compile(o.group_id) : undefined;
    this.dedupId = o.dedup_id ? compile(o.dedup_id) : undefined;
    this.ctx = ctx;
  }

  async open(): Promise<void> {
    const t = this.target;
    if (!TOPIC_ARN.test(this.topic)) {
      throw new StartupCheckError(
        `sns: '${this.topic}' is not a topic ARN; fix \`topic_arn\` (arn:aws:sns:<region>:<account>:<name>)`,
      );
    }
    const topicName = this.topic.split(':').pop() ?? this.topic;
    await checkStatus(t, {
      describe: (abortSignal) =>
        this.client.send(new (sns().GetTopicAttributesCommand)({ TopicArn: this.topic }), { abortSignal }),
      notFound: (err) => ['NotFound', 'NotFoundException'].includes(awsErrorName(err)),
      create: `aws sns create-topic --name ${topicName}`,
      option: 'topic_arn',
      explain: (err) =>
        ['InvalidParameter', 'InvalidParameterException'].includes(awsErrorName(err))
          ? new StartupCheckError(
              `sns: '${this.topic}' is not a valid topic ARN (${awsErrorText(err)}); ` +
                'fix `topic_arn` (arn:aws:sns:<region>:<account>:<name>)',
              { cause: err },
            )
          : undefined,
    });
  }

  async write(batch: SinkBatch): Promise<WriteResult> {
    const failed: RecordFailure[] = [];
    const entries: Entry[] = [];
    batch.records.forEach((r, index) => {
      // One record at a time: a value that cannot be encoded or an expression that fails on it
      // fails that record alone.
      try {
        entries.push(this.entry(r, index));
      } catch (e) {
        failed.push({ index, reason: `sns: ${encodeProblem(e)}`, retryable: false });
      }
    });

    let requestError: unknown;
    let published = 0;
    for (const chunk of chunks(entries)) {
      const outcome = await this.sendIsolating(chunk, failed);
      published += outcome.published;
      requestError ??= outcome.error;
    }
    if (published > 0) {
      this.ctx.metrics.count('messages_published', published);
    }
    // Nothing went out because the topic or the network failed: one transient error for the
    // batch. Refusals of content stay per record, where they name the records at fault.
    if (
      requestError !== undefined &&
      isTransientAwsError(requestError) &&
      published === 0 &&
      entries.length === batch.records.length &&
      failed.every((f) => f.retryable)
    ) {
      throw new StageError(`sns publish to ${this.topic}: ${awsErrorText(requestError)}`, {
        retryable: true,
        cause: requestError,
      });
    }
    return failed.length > 0 ? { failed } : undefined;
  }

  /**
   * Sends a chunk; a request refused for its content is halved until the entry at fault is
   * alone, so the others still go out. Returns how many were published and the last request
   * error, and adds every entry not published to `failed`.
   */
  private async sendIsolating(
    chunk: Entry[],
    failed: RecordFailure[],
  ): Promise<{ published: number; error?: unknown }> {
    try {
      return { published: await this.send(chunk, failed) };
    } catch (e) {
      const retryable = isTransientAwsError(e);
      if (!retryable && chunk.length > 1) {
        const half = Math.ceil(chunk.length / 2);
        const a = await this.sendIsolating(chunk.slice(0, half), failed);
        const b = await this.sendIsolating(chunk.slice(half), failed);
        return { published: a.published + b.published, error: b.error ?? a.error };
      }
      const reason = `sns: ${awsErrorText(e)}`;
      for (const c of chunk) failed.push({ index: c.index, reason, retryable });
      return { published: 0, error: e };
    }
  }

  /** Sends one chunk; returns how many entries SNS accepted and adds the refused ones to `failed`. */
  protected async send(chunk: Entry[], failed: RecordFailure[]): Promise<number> {
    this.ctx.metrics.count('publish_requests');
    if (chunk.length === 1) {
      const { entry } = chunk[0];
      await this.client.send(
        new (sns().PublishCommand)({
          TopicArn: this.topic,
          Message: entry.Message,
          Subject: entry.Subject,
          MessageAttributes: entry.MessageAttributes,
          MessageGroupId: entry.MessageGroupId,
          MessageDeduplicationId: entry.MessageDeduplicationId,
        }),
      );
      return 1;
    }
    const out = await this.client.send(
      new (sns().PublishBatchCommand)({
        TopicArn: this.topic,
        PublishBatchRequestEntries: chunk.map((c) => c.entry),
      }),
    );
    const byId = new Map(chunk.map((c) => [c.entry.Id, c.index]));
    const reported = new Set<string | undefined>();
    for (const f of out.Failed ?? []) {
      const index = byId.get(f.Id);
      if (index === undefined) continue;
      reported.add(f.Id);
      failed.push({
        index,
        reason: `sns ${f.Code ?? 'error'}: ${f.Message ?? ''}`.trim(),
        // KMS and authorization codes are sender faults about the topic, not the message.
        retryable: (f.Code ? entryCodeTransient(f.Code) : undefined) ?? f.SenderFault !== true,
      });
    }
    if (!out.Successful) return chunk.length - reported.size;
    // An entry SNS lists neither as published nor as failed is not known to be published: retry it.
    for (const s of out.Successful) reported.add(s.Id);
    for (const c of chunk) {
      if (!reported.has(c.entry.Id)) {
        failed.push({
          index: c.index,
          reason: 'sns did not report this entry as published',
          retryable: true,
        });
      }
    }
    return out.Successful.length;
  }

  private entry(r: SluiceRecord, index: number): Entry {
    const message = typeof r.value === 'string' ? r.value : JSON.stringify(r.value);
    if (message === undefined || message.length === 0) throw new Error('empty message: SNS needs a body');
    let bytes = Buffer.byteLength(message);
    const entry: PublishBatchRequestEntry = { Id: String(index), Message: message };
    if (this.subject) {
      const s = this.subject.evaluate(r.value, r.meta);
      if (s !== null && s !== undefined) {
        const subject = String(s);
        if (subject.length === 0 || subject.length > 100 || !/^[\x20-\x7e]+$/.test(subject)) {
          throw new Error('subject must be 1 to 100 printable ASCII characters');
        }
        entry.Subject = subject;
      }
    }
    if (this.attributes.length > 0) {
      const attrs: Record<string, MessageAttributeValue> = {};
      for (const [name, expr] of this.attributes) {
        const a = attribute(expr.evaluate(r.value, r.meta));
        if (!a) continue;
        attrs[name] = a;
        bytes += Buffer.byteLength(name) + Buffer.byteLength(a.DataType ?? '');
        bytes += a.BinaryValue ? a.BinaryValue.length : Buffer.byteLength(a.StringValue ?? '');
      }
      if (Object.keys(attrs).length > 10) throw new Error('SNS allows at most 10 message attributes');
      entry.MessageAttributes = attrs;
    }
    if (this.groupId)
      entry.MessageGroupId = requiredString(this.groupId.evaluate(r.value, r.meta), 'group_id');
    if (this.dedupId) {
      const d = this.dedupId.evaluate(r.value, r.meta);
      if (d !== null && d !== undefined && d !== '') entry.MessageDeduplicationId = String(d);
    }
    if (bytes > MAX_BYTES) throw new Error(`message of ${bytes} bytes exceeds SNS's 256 KiB`);
    return { index, bytes, entry };
  }

  async close(): Promise<void> {
    this.client.destroy();
  }
}

/** Up to 10 entries and 256 KiB per request, in record order. */
function* chunks(entries: Entry[]): Generator<Entry[]> {
  let chunk: Entry[] = [];
  let bytes = 0;
  for (const e of entries) {
    if (chunk.length === MAX_ENTRIES || (chunk.length > 0 && bytes + e.bytes > MAX_BYTES)) {
      yield chunk;
      chunk = [];
      bytes = 0;
    }
    chunk.push(e);
    bytes += e.bytes;
  }
  if (chunk.length > 0) yield chunk;
}

function attribute(v: unknown): MessageAttributeValue | undefined {
  if (v === null || v === undefined) return undefined;
  if (typeof v === 'string') return { DataType: 'String', StringValue: v };
  if (typeof v === 'number' || typeof v === 'bigint') return { DataType: 'Number', StringValue: String(v) };
  if (typeof v === 'boolean') return { DataType: 'String', StringValue: String(v) };
  if (v instanceof Uint8Array) return { DataType: 'Binary', BinaryValue: v };
  if (Array.isArray(v)) return { DataType: 'String.Array', StringValue: JSON.stringify(v) };
  return { DataType: 'String', StringValue: JSON.stringify(v) };
}

function requiredString(v: unknown, what: string): string {
  if (v === null || v === undefined || v === '') throw new Error(`${what} evaluated to nothing`);
  return String(v);
}

/** The sns sink with Publish captured (`sluice test`): message, subject and attributes per record. */
class SnsPreview extends SnsSink {
  private readonly capture: PreviewContext['capture'];
  constructor(o: SnsSinkOptions, ctx: PreviewContext) {
    // The client is never used: no request leaves a preview.
    super(new (sns().SNSClient)({ region: 'us-east-1' }), o, ctx);
    this.capture = ctx.capture;
  }
  override async open(): Promise<void> {}
  protected override async send(chunk: Entry[], _failed: RecordFailure[]): Promise<number> {
    for (const { entry } of chunk) {
      this.capture({
        kind: 'message',
        value: Buffer.from(entry.Message ?? '', 'utf8'),
        ...(entry.Subject !== undefined ? { subject: entry.Subject } : {}),
        ...(entry.MessageAttributes ? { attributes: { ...entry.MessageAttributes } } : {}),
      });
    }
    return chunk.length;
  }
}
