/**
 * `kafka` sink: produce with acks=all (idempotent where the broker allows it), topic, key and
 * headers from expressions. `write` resolves only after the broker acknowledged the batch.
 *
 * Keyed records go to the partition Java clients pick for the same key (murmur2), so sluice
 * and other producers agree on where a key lives; keyless records rotate over partitions,
 * one partition per batch, which keeps produce requests large.
 *
 * `open()` asks the brokers for the topic's metadata: a missing topic fails the run at once
 * (unless `create_topic` creates it), and so do brokers that do not answer.
 *
 * Transient and permanent failures: `transient` in the definition (the stage reference shows it).
 */
import type { Producer } from '@platformatic/kafka';
import { type Static, Type } from '@sinclair/typebox';
import type { Logger } from 'pino';
import type { CompiledExpr } from '../../expr/index.ts';
import { compile } from '../../expr/index.ts';
import type { StageMetrics } from '../../runtime/metrics.ts';
import { Expr, Size } from '../../spec/types.ts';
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
  BrokersOption,
  baseClientOptions,
  clientIdFor,
  kafkaErrorMessage,
  parseBrokers,
  STARTUP_CHECK_MS,
  withDeadline,
} from '../kafka/client.ts';
import { isTransientKafkaError, kafkaErrorIds, topicNameProblem } from '../kafka/errors.ts';
import {
  checkKafkaSecurity,
  type KafkaConnectionSecurity,
  KafkaSecurityOptions,
  kafkaConnectionSecurity,
  kafkaSecurityFailure,
  noAnswerHint,
} from '../kafka/security.ts';

const options = Type.Object({
  brokers: BrokersOption,
  ...KafkaSecurityOptions,
  topic: Type.Optional(Type.String({ minLength: 1, description: 'Topic name', examples: ['petr4'] })),
  topic_expr: Type.Optional(
    Expr({ description: 'CEL expression giving the topic per record', examples: ['"quotes." + ticker'] }),
  ),
  key: Type.Optional(
    Expr({
      description: 'CEL expression giving the message key; default the record key (e.g. from a kafka source)',
      examples: ['string(id_lote)'],
    }),
  ),
  headers: Type.Optional(
    Type.Record(Type.String({ minLength: 1 }), Expr({ description: 'CEL expression for a header value' }), {
      description: 'Header name → CEL expression',
      examples: [{ source: '"sluice"', lote: 'id_lote' }],
    }),
  ),
  codec: Type.Optional(
    Type.Union([Type.Literal('json'), Type.Literal('text')], {
      default: 'json',
      description: 'json: values are written as JSON; text: string values as they are (others as JSON)',
    }),
  ),
  acks: Type.Optional(
    Type.Union([Type.Literal('all'), Type.Literal('leader'), Type.Literal('none')], {
      default: 'all',
      description: 'Which replicas must have a batch before it counts as written',
    }),
  ),
  idempotent: Type.Optional(
    Type.Boolean({
      default: true,
      description: 'Idempotent producer: broker-side de-duplication of client retries (needs acks: all)',
    }),
  ),
  compression: Type.Optional(
    Type.Union(
      [
        Type.Literal('none'),
        Type.Literal('gzip'),
        Type.Literal('snappy'),
        Type.Literal('lz4'),
        Type.Literal('zstd'),
      ],
      { default: 'none', description: 'Compression of produced batches' },
    ),
  ),
  max_message_bytes: Type.Optional(
    Size({
      default: '1MiB',
      description: 'Larger records go to the error output instead of failing the batch at the broker',
    }),
  ),
  client_id: Type.Optional(
    Type.String({ minLength: 1, description: 'Client id; default sluice-<pipeline>-<stage>' }),
  ),
  ordered: Type.Optional(
    Type.Boolean({
      default: true,
      description:
        'Keep the order of records with the same key (one batch in flight at a time); false lets max_in_flight batches overlap',
    }),
  ),
  create_topic: Type.Optional(
    Type.Object(
      {
        partitions: Type.Integer({ minimum: 1, default: 1, description: 'Partitions of the new topic' }),
        replication_factor: Type.Optional(
          Type.Integer({ minimum: 1, default: 1, description: 'Replicas of each partition' }),
        ),
      },
      {
        additionalProperties: false,
        description: 'Create `topic` at start when it does not exist (like kafka-topics.sh --create)',
        examples: [{ partitions: 3 }],
      },
    ),
  ),
});

type Options = Static<typeof options>;

export const kafkaSink = defineSink({
  type: 'kafka',
  kind: 'sink',
  description: 'Produces records to Kafka; acks them only after the broker acknowledged them.',
  transient:
    'Transient: broker not available, leader not available, not leader for the partition, request ' +
    'timed out, network exceptions, not enough replicas, throttling, and refusals about the topic ' +
    'rather than the records (unknown topic when it is deleted mid-run, topic authorization ' +
    'failed). Permanent for the record alone: a value or key that cannot be encoded, an ' +
    'expression that fails on it, a record over `max_message_bytes`, an invalid topic name from ' +
    '`topic_expr`, and MESSAGE_TOO_LARGE, RECORD_LIST_TOO_LARGE, INVALID_RECORD or ' +
    'INVALID_TIMESTAMP from the broker (the batch is halved until the record at fault is alone).',
  example: `
version: 1
name: kafka-sink-example
sources:
  quotes:
    type: generate
    rate: 100
    fields:
      ticker: '["vale3", "petr4"][int(rand * 2.0)]'
      price: 'round(10.0 + rand * 50.0, 2)'
sinks:
  topics:
    type: kafka
    from: [quotes]
    brokers: \${KAFKA_BROKERS:-127.0.0.1:9092}
    topic_expr: '"quotes." + ticker'
    key: ticker
    headers: { source: '"sluice"' }
    compression: zstd
`,
  options,
  check(opts, report) {
    checkKafkaSecurity(opts, report);
    if (!opts.topic && !opts.topic_expr) report([], 'schema-value', 'give `topic` or `topic_expr`');
    if (opts.topic && opts.topic_expr)
      report(['topic_expr'], 'schema-value', 'give `topic` or `topic_expr`, not both');
    if (opts.create_topic && !opts.topic)
      report(['create_topic'], 'schema-value', 'create_topic needs a literal `topic`');
    if (opts.idempotent === true && opts.acks !== undefined && opts.acks !== 'all') {
      report(['idempotent'], 'schema-value', 'an idempotent producer needs acks: all');
    }
  },
  // One write at a time unless `ordered: false`: a retried batch must not land after a later one.
  batching: (o) => ({
    defaults: { max_records: 1000, max_bytes: 1024 * 1024, max_age: 10 },
    ...(o.ordered === false ? {} : { maxInFlight: 1 }),
  }),
  create: (opts, ctx) => new KafkaSink(opts, ctx),
  preview: (opts, ctx) => new KafkaPreview(opts, ctx),
});

interface Outgoing {
  topic: string;
  key?: Buffer;
  value: Buffer;
  headers?: Map<Buffer, Buffer>;
  timestamp?: bigint;
}

export class KafkaSink implements Sink {
  /** The client's murmur2 (Java clients' key hash), set by open() with the producer. */
  protected hashKey: ((key: Buffer) => number) | undefined;
  private readonly opts: Options;
  private readonly log: Logger;
  private readonly metrics: StageMetrics;
  private readonly clientId: string;
  private readonly topicExpr: CompiledExpr | undefined;
  private readonly keyExpr: CompiledExpr | undefined;
  private readonly headerExprs: [Buffer, CompiledExpr][];
  private producer: Producer | undefined;
  private security: KafkaConnectionSecurity = {};
  /** Keyless records of one batch share a partition; batches rotate. */
  private rotation = 0;

  constructor(opts: Options, ctx: StageContext) {
    this.opts = opts;
    this.log = ctx.log;
    this.metrics = ctx.metrics;
    this.clientId = clientIdFor(ctx, opts.client_id);
    this.topicExpr = opts.topic_expr ? compile(opts.topic_expr) : undefined;
    this.keyExpr = opts.key ? compile(opts.key) : undefined;
    this.headerExprs = Object.entries(opts.headers ?? {}).map(([k, e]) => [
      Buffer.from(k, 'utf8'),
      compile(e),
    ]);
  }

  async open(): Promise<void> {
    const acks = this.opts.acks ?? 'all';
    const idempotent = (this.opts.idempotent ?? true) && acks === 'all';
    // The client loads here, not with the stage registry (see ../kafka/runtime.ts).
    const { ACKS, murmur2, Producer } = await import('../kafka/runtime.ts');
    this.hashKey = murmur2;
    this.security = await kafkaConnectionSecurity(this.opts, parseBrokers(this.opts.brokers));
    this.producer = new Producer({
      ...baseClientOptions(this.opts.brokers, this.clientId),
      ...this.security,
      idempotent,
      acks: ACKS[acks],
      compression: this.opts.compression ?? 'none',
    });
    const brokers = String(this.opts.brokers);
    const unanswered = () =>
      new StageError(
        `kafka: no answer from ${brokers} within ${STARTUP_CHECK_MS / 1000}s; check \`brokers\` and that Kafka is up${noAnswerHint(this.opts)}`,
        { retryable: false },
      );
    if (this.opts.create_topic && this.opts.topic) {
      try {
        await withDeadline(
          this.ensureTopic(this.opts.topic, this.opts.create_topic),
          STARTUP_CHECK_MS,
          unanswered,
        );
      } catch (err) {
        const security = kafkaSecurityFailure(err, brokers, this.opts);
        if (security) throw new StageError(security, { retryable: false, cause: err });
        throw err;
      }
    }
    // Connect now so a wrong broker address or a missing topic fails at start, not at the first batch.
    const producer = this.producer;
    const topics = this.opts.topic ? [this.opts.topic] : [];
    try {
      await withDeadline(producer.metadata({ topics }), STARTUP_CHECK_MS, unanswered);
    } catch (err) {
      if (err instanceof StageError) throw err;
      const security = kafkaSecurityFailure(err, brokers, this.opts);
      if (security) throw new StageError(security, { retryable: false, cause: err });
      const message = kafkaErrorMessage(err);
      if (kafkaErrorIds(err).includes('UNKNOWN_TOPIC_OR_PARTITION') || /unknown topic/i.test(message)) {
        const topic = this.opts.topic ?? '';
        throw new StageError(
          `kafka: topic '${topic}' does not exist on ${brokers}; create it ` +
            `(kafka-topics.sh --bootstrap-server ${brokers} --create --topic ${topic} --partitions 1), ` +
            'let the sink create it with `create_topic: { partitions: 1 }`, or fix `topic`',
          { retryable: false, cause: err },
        );
      }
      if (kafkaErrorIds(err).includes('TOPIC_AUTHORIZATION_FAILED')) {
        throw new StageError(
          `kafka: not authorized to write to topic '${this.opts.topic}' on ${brokers}: ${message}`,
          { retryable: false, cause: err },
        );
      }
      throw new StageError(`kafka: cannot reach ${brokers}: ${message}`, {
        retryable: false,
        cause: err,
      });
    }
  }

  private async ensureTopic(
    topic: string,
    spec: { partitions: number; replication_factor?: number },
  ): Promise<void> {
    const { Admin } = await import('../kafka/runtime.ts');
    const admin = new Admin({
      ...baseClientOptions(this.opts.brokers, `${this.clientId}-admin`),
      ...this.security,
    });
    try {
      const existing = await admin.listTopics();
      if (existing.includes(topic)) return;
      try {
        await admin.createTopics({
          topics: [topic],
          partitions: spec.partitions,
          replicas: spec.replication_factor ?? 1,
        });
        this.log.info({ topic, partitions: spec.partitions }, 'kafka topic created');
      } catch (err) {
        // Another producer may have created it in the meantime.
        if (!/already exists/i.test(kafkaErrorMessage(err))) throw err;
      }
      // Wait for the new partitions' leaders, or the first produce races the election.
      for (let i = 0; i < 100; i++) {
        const md = await admin.metadata({ topics: [topic], forceUpdate: true });
        const t = md.topics.get(topic);
        if (t && t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0)) return;
        await new Promise((r) => setTimeout(r, 100));
      }
    } catch (err) {
      throw new Error(`kafka: cannot create topic '${topic}': ${kafkaErrorMessage(err)}`, { cause: err });
    } finally {
      await admin.close().catch(() => undefined);
    }
  }

  async write(batch: SinkBatch): Promise<WriteResult> {
    const hashKey = this.hashKey;
    if (!hashKey) throw new StageError('kafka sink used before open()');
    const started = Date.now();
    const failed: RecordFailure[] = [];
    const messages: Indexed[] = [];
    const max = this.opts.max_message_bytes ?? 1024 * 1024;
    for (let i = 0; i < batch.records.length; i++) {
      // One record at a time: a value that cannot be encoded fails that record alone.
      try {
        const m = this.toMessage(batch.records[i]);
        if (m.value.length + (m.key?.length ?? 0) > max) {
          failed.push({
            index: i,
            reason: `kafka: record of ${m.value.length} bytes exceeds max_message_bytes`,
            retryable: false,
          });
          continue;
        }
        messages.push({ index: i, message: m });
      } catch (err) {
        failed.push({ index: i, reason: `kafka: ${encodingReason(err)}`, retryable: false });
      }
    }
    let sent = 0;
    if (messages.length > 0) {
      const sticky = this.rotation++;
      const send = (group: Indexed[]) =>
        this.produce(
          group.map((g) => g.message),
          (key) => (key ? hashKey(key) & 0x7fffffff : sticky),
        );
      try {
        await send(messages);
        sent = messages.length;
      } catch (err) {
        if (isTransientKafkaError(err)) {
          throw new StageError(`kafka: produce failed: ${kafkaErrorMessage(err)}`, {
            retryable: true,
            cause: err,
          });
        }
        sent = await this.isolate(messages, err, send, failed);
      }
    }
    this.metrics.count('messages', sent);
    this.metrics.batchTook(Date.now() - started);
    return failed.length > 0 ? { failed: failed.sort((a, b) => a.index - b.index) } : undefined;
  }

  /**
   * After the broker refused `group` for a record's content (`refusal`): halves it until the
   * records at fault are alone, which go to the error output; the others are sent. A transient
   * error on the way hands that part and everything after it back for retry, in order. Returns
   * how many were sent.
   */
  private async isolate(
    group: Indexed[],
    refusal: unknown,
    send: (group: Indexed[]) => Promise<unknown>,
    failed: RecordFailure[],
  ): Promise<number> {
    const refused = (m: Indexed, err: unknown) =>
      failed.push({
        index: m.index,
        reason: `kafka: broker refused the record: ${kafkaErrorMessage(err)}`,
        retryable: false,
      });
    if (group.length === 1) {
      refused(group[0], refusal);
      return 0;
    }
    let sent = 0;
    let transient: string | undefined;
    const half = Math.ceil(group.length / 2);
    const pending: Indexed[][] = [group.slice(0, half), group.slice(half)];
    for (let part = pending.shift(); part !== undefined; part = pending.shift()) {
      if (transient !== undefined) {
        for (const m of part) failed.push({ index: m.index, reason: transient, retryable: true });
        continue;
      }
      try {
        await send(part);
        sent += part.length;
      } catch (err) {
        if (isTransientKafkaError(err)) {
          transient = `kafka: produce failed: ${kafkaErrorMessage(err)}`;
          pending.unshift(part);
        } else if (part.length > 1) {
          const mid = Math.ceil(part.length / 2);
          pending.unshift(part.slice(0, mid), part.slice(mid));
        } else refused(part[0], err);
      }
    }
    return sent;
  }

  /** The only network call of a write: the messages, with the partition (before modulo) of each key. */
  protected async produce(messages: Outgoing[], partitioner: (key?: Buffer) => number): Promise<void> {
    const producer = this.producer;
    if (!producer) throw new StageError('kafka sink used before open()');
    await producer.send({ messages, partitioner: (_m, key) => partitioner(key) });
  }

  private toMessage(r: SinkBatch['records'][number]): Outgoing {
    const meta = r.meta;
    const topic = this.topicExpr
      ? asText(this.topicExpr.evaluate(r.value, meta), 'topic_expr')
      : (this.opts.topic as string);
    if (this.topicExpr) {
      const problem = topicNameProblem(topic);
      if (problem !== undefined) throw new Error(`topic_expr: ${problem}`);
    }
    const keyValue = this.keyExpr ? this.keyExpr.evaluate(r.value, meta) : r.key;
    const m: Outgoing = { topic, value: this.encode(r.value) };
    if (keyValue !== undefined && keyValue !== null) m.key = toBuffer(keyValue);
    if (this.headerExprs.length > 0) {
      const headers = new Map<Buffer, Buffer>();
      for (const [name, e] of this.headerExprs) {
        const v = e.evaluate(r.value, meta);
        if (v !== undefined && v !== null) headers.set(name, toBuffer(v));
      }
      m.headers = headers;
    }
    if (r.time !== undefined) m.timestamp = BigInt(Math.trunc(r.time));
    return m;
  }

  private encode(value: unknown): Buffer {
    if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    if (this.opts.codec === 'text' && typeof value === 'string') return Buffer.from(value, 'utf8');
    return Buffer.from(JSON.stringify(value) ?? 'null', 'utf8');
  }

  async close(): Promise<void> {
    const p = this.producer;
    this.producer = undefined;
    await p
      ?.close()
      .catch((err: unknown) => this.log.warn({ err: kafkaErrorMessage(err) }, 'kafka producer close failed'));
  }
}

/**
 * The kafka sink with the broker replaced (`sluice test`): messages are encoded, keyed and
 * partitioned with the client's murmur2 over the topic's partitions, and captured.
 */
class KafkaPreview extends KafkaSink {
  private readonly ctx: PreviewContext;
  private readonly partitions: number;
  constructor(opts: Options, ctx: PreviewContext) {
    super(opts, ctx);
    this.ctx = ctx;
    this.partitions = ctx.partitions ?? opts.create_topic?.partitions ?? 1;
  }
  override async open(): Promise<void> {
    const { murmur2 } = await import('../kafka/runtime.ts');
    this.hashKey = murmur2;
  }
  protected override async produce(
    messages: Outgoing[],
    partitioner: (key?: Buffer) => number,
  ): Promise<void> {
    for (const m of messages) {
      const headers: Record<string, string> = {};
      for (const [k, v] of m.headers ?? []) headers[k.toString('utf8')] = v.toString('utf8');
      this.ctx.capture({
        kind: 'message',
        topic: m.topic,
        value: m.value,
        ...(m.key ? { key: m.key.toString('utf8'), partition: partitioner(m.key) % this.partitions } : {}),
        ...(m.headers ? { headers } : {}),
      });
    }
  }
  override async close(): Promise<void> {}
}

/** A message and its record's index in the sink batch. */
interface Indexed {
  index: number;
  message: Outgoing;
}

function encodingReason(err: unknown): string {
  if (err instanceof RangeError && /call stack/i.test(err.message))
    return 'record cannot be encoded: value nested too deep for JSON';
  if (err instanceof TypeError && /BigInt|circular/i.test(err.message))
    return `record cannot be encoded: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}

function asText(v: unknown, what: string): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'bigint') return String(v);
  throw new Error(`${what} gave ${v === null ? 'null' : typeof v}, not a string`);
}

function toBuffer(v: unknown): Buffer {
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  if (typeof v === 'string') return Buffer.from(v, 'utf8');
  if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean')
    return Buffer.from(String(v), 'utf8');
  return Buffer.from(JSON.stringify(v), 'utf8');
}
