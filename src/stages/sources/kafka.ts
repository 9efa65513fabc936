/**
 * `kafka` source: a consumer group member committing only contiguous acked offsets.
 *
 * Offsets go to Kafka's group offsets (not the local checkpoint file), so every member of a
 * group and any other tool sees the same positions. A partition's commit is the offset after
 * the highest record below which every record is acked; nothing is committed on receipt.
 *
 * Rebalances follow the eager protocol: before (re)joining, the member stops fetching, waits
 * (bounded) for its in-flight records to be acked, commits, and forgets its positions; after
 * the join it starts each assigned partition from the group's committed offset (or `start`
 * for a partition the group never committed). Records fetched for an older generation are
 * dropped unseen: the partition's new owner reads them again from the committed offset.
 */
import type { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import type { Message, MessagesStream } from '@platformatic/kafka';
import { type Static, Type } from '@sinclair/typebox';
import type { Logger } from 'pino';
import { clock } from '../../expr/clock.ts';
import { ContiguousTracker } from '../../runtime/ack.ts';
import {
  decodeJson,
  excerpt,
  type InputLimits,
  inputLimits,
  LimitOptions,
  tooLargeReason,
} from '../../runtime/limits.ts';
import type { StageMetrics } from '../../runtime/metrics.ts';
import type { RecordInit } from '../../runtime/record.ts';
import { Duration, Size } from '../../spec/types.ts';
import { defineSource, type Source, type SourceContext, type StageContext } from '../define.ts';
import {
  type BaseClientOptions,
  BrokersOption,
  baseClientOptions,
  clientIdFor,
  kafkaErrorMessage,
  parseBrokers,
  STARTUP_CHECK_MS,
  sleep,
  withDeadline,
} from '../kafka/client.ts';
import { kafkaErrorIds } from '../kafka/errors.ts';
import type { FetchTrackingConsumer } from '../kafka/runtime.ts';
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
  topics: Type.Optional(
    Type.Array(Type.String({ minLength: 1 }), {
      minItems: 1,
      description: 'Topics to read',
      examples: [['vale3']],
    }),
  ),
  topic_pattern: Type.Optional(
    Type.String({
      minLength: 1,
      description:
        'Regular expression over topic names, resolved when the source starts (instead of `topics`)',
      examples: ['^orders\\.'],
    }),
  ),
  group: Type.String({
    minLength: 1,
    description: 'Consumer group id',
    examples: ['feedlot-loader'],
  }),
  client_id: Type.Optional(
    Type.String({ minLength: 1, description: 'Client id; default sluice-<pipeline>-<stage>' }),
  ),
  start: Type.Optional(
    Type.Union([Type.Literal('earliest'), Type.Literal('latest')], {
      default: 'latest',
      description:
        'Where a partition starts when the group has no committed offset for it (`--from-beginning` is earliest)',
    }),
  ),
  codec: Type.Optional(
    Type.Union([Type.Literal('json'), Type.Literal('text'), Type.Literal('binary')], {
      default: 'json',
      description:
        'How message values are decoded: JSON (bad JSON goes to the error output), UTF-8 text, or raw bytes',
    }),
  ),
  max_batch: Type.Optional(
    Type.Integer({ minimum: 1, default: 500, description: 'Records per emitted batch' }),
  ),
  commit_interval: Type.Optional(
    Duration({
      default: '200ms',
      description:
        'Acked offsets are committed at most this long after the ack (fewer re-reads after a crash vs. fewer commits)',
    }),
  ),
  session_timeout: Type.Optional(
    Duration({
      default: '10s',
      description:
        'A member silent this long leaves the group (bounds how long a crashed member holds partitions)',
    }),
  ),
  heartbeat_interval: Type.Optional(Duration({ default: '1s', description: 'Group heartbeat interval' })),
  group_instance_id: Type.Optional(
    Type.String({
      minLength: 1,
      description:
        'Static group membership: a member restarted with the same id gets its partitions back at once, without a rebalance or waiting out session_timeout (a member that does not come back holds its partitions until then). `auto` is <host>/<pipeline>/<source>; processes sharing a host need ids of their own',
      examples: ['auto', '${HOSTNAME}-consumer-1'],
    }),
  ),
  drain_timeout: Type.Optional(
    Duration({
      default: '15s',
      description:
        'On a rebalance, how long to wait for in-flight records to be acked before giving up their partitions',
    }),
  ),
  fetch_max_bytes: Type.Optional(
    Size({ default: '8MiB', description: 'Largest fetch response; with max_buffered it bounds memory' }),
  ),
  fetch_max_wait: Type.Optional(
    Duration({ default: '500ms', description: 'Longest a fetch waits on the broker for new records' }),
  ),
  ...LimitOptions,
  max_buffered: Type.Optional(
    Type.Integer({
      minimum: 1,
      default: 2000,
      description:
        'Records read ahead of the pipeline; past this the consumer stops fetching (backpressure). One fetch more may wait beside them: Kafka returns whole producer batches',
    }),
  ),
});

type Options = Static<typeof options>;

export const kafkaSource = defineSource({
  type: 'kafka',
  kind: 'source',
  description:
    'Consumes Kafka topics in a consumer group; commits group offsets only up to what the sinks made durable.',
  meta: [
    { name: 'topic', type: 'string', description: 'Topic the message was read from' },
    { name: 'partition', type: 'int', description: 'Partition of the message' },
    { name: 'offset', type: 'int', description: 'Offset of the message in its partition' },
    {
      name: 'key',
      type: 'string or null',
      description: 'Message key as UTF-8 text, null when it has none (also the record key)',
    },
    { name: 'headers', type: 'map(string, string)', description: 'Message headers, values as UTF-8 text' },
    {
      name: 'timestamp',
      type: 'int',
      description: 'Message timestamp, epoch milliseconds (also the record time)',
    },
  ],
  example: `
version: 1
name: kafka-example
sources:
  quotes:
    type: kafka
    brokers: \${KAFKA_BROKERS:-127.0.0.1:9092}
    topics: [vale3, petr4]
    group: quotes-printer
    start: earliest
transforms:
  located:
    type: enrich
    from: [quotes]
    set:
      ticker: 'meta.topic'
      at: 'string(meta.partition) + "/" + string(meta.offset)'
sinks:
  print: { type: stdout, from: [located] }
`,
  options,
  check(opts, report) {
    checkKafkaSecurity(opts, report);
    if (!opts.topics && !opts.topic_pattern) report([], 'schema-value', 'give `topics` or `topic_pattern`');
    if (opts.topics && opts.topic_pattern)
      report(['topic_pattern'], 'schema-value', 'give `topics` or `topic_pattern`, not both');
    if (opts.topic_pattern) {
      try {
        new RegExp(opts.topic_pattern);
      } catch (err) {
        report(['topic_pattern'], 'schema-value', `not a regular expression: ${(err as Error).message}`);
      }
    }
  },
  create: (opts, ctx) => new KafkaSource(opts, ctx),
  decode(opts, raw) {
    const records: RecordInit[] = [];
    const failed: { input: RecordInit; reason: string }[] = [];
    const limits = inputLimits(opts);
    for (const r of raw) {
      // A payload as the consumer would hand it over: offsets count from 0 unless meta says.
      const m: Decodable = {
        topic: String(r.meta?.topic ?? opts.topics?.[0] ?? 'topic'),
        partition: Number(r.meta?.partition ?? 0),
        offset: BigInt(Number(r.meta?.offset ?? r.index)),
        timestamp: BigInt(Number(r.meta?.timestamp ?? clock().now())),
        key: r.key === undefined ? null : Buffer.from(r.key, 'utf8'),
        value: Buffer.from(r.data),
        headerEntries: Object.entries(r.headers ?? {}).map(([k, v]) => [Buffer.from(k), Buffer.from(v)]),
      };
      const decoded = decode(m, opts.codec ?? 'json', limits);
      if (decoded.error !== undefined) failed.push({ input: decoded.record, reason: decoded.error });
      else records.push(decoded.record);
    }
    return { records, failed };
  },
});

const EMPTY_USER_DATA = Buffer.alloc(0);
const LAG_EVERY_MS = 2_000;

/** One assigned partition in one group generation. */
interface PartitionState {
  topic: string;
  partition: number;
  key: string;
  generation: number;
  /** Created at the first record: its base is that record's offset (the commit before anything is acked). */
  tracker: ContiguousTracker<bigint> | undefined;
  /** Last offset committed to the group (next offset to read). */
  committed: bigint | undefined;
}

type Consumed = Message<Buffer, Buffer, Buffer, Buffer>;

/** What every client of the source shares: brokers, timeouts, TLS and SASL. */
type ClientBase = BaseClientOptions & KafkaConnectionSecurity;

export class KafkaSource implements Source {
  private readonly opts: Options;
  private readonly log: Logger;
  private readonly metrics: StageMetrics;
  private readonly clientId: string;
  private consumer: FetchTrackingConsumer | undefined;
  private stream: MessagesStream<Buffer, Buffer, Buffer, Buffer> | undefined;
  private topics: string[] = [];
  /** Partitions of the current generation; empty while rebalancing. */
  private owned = new Map<string, PartitionState>();
  private generation = -1;
  /** False from "about to rejoin" until the new assignment is set up. */
  private ready = false;
  private revoking = false;
  private wake: (() => void) | undefined;
  private commitChain: Promise<void> = Promise.resolve();
  private readonly inflightWaiters = new Set<() => void>();
  private failure: Error | undefined;
  private closed = false;
  private commitTimer: NodeJS.Timeout | undefined;
  private readonly limits: InputLimits;
  private readonly groupInstanceId: string | undefined;

  constructor(opts: Options, ctx: StageContext) {
    this.opts = opts;
    this.limits = inputLimits(opts);
    this.log = ctx.log;
    this.metrics = ctx.metrics;
    this.clientId = clientIdFor(ctx, opts.client_id);
    const instance = opts.group_instance_id;
    this.groupInstanceId = instance === 'auto' ? `${hostname()}/${ctx.pipeline}/${ctx.name}` : instance;
  }

  /** Partitions this member owns in the current generation, as `topic/partition`. */
  get assigned(): string[] {
    return [...this.owned.values()].map((s) => `${s.topic}/${s.partition}`);
  }

  /** Records fetched but not yet handed to the pipeline (bounded by max_buffered plus one fetch). */
  get buffered(): number {
    return this.stream?.readableLength ?? 0;
  }

  async run(ctx: SourceContext): Promise<void> {
    const o = this.opts;
    const sessionTimeout = o.session_timeout ?? 10_000;
    const drainTimeout = o.drain_timeout ?? 15_000;
    const base: ClientBase = {
      ...baseClientOptions(o.brokers, this.clientId),
      ...(await kafkaConnectionSecurity(o, parseBrokers(o.brokers))),
    };
    // The client loads here, not with the stage registry (see ../kafka/runtime.ts).
    const { FetchTrackingConsumer } = await import('../kafka/runtime.ts');
    try {
      this.topics = await this.resolveTopics(base);
    } catch (err) {
      throw new Error(kafkaSecurityFailure(err, String(o.brokers), o) ?? kafkaErrorMessage(err), {
        cause: err,
      });
    }
    const consumer = new FetchTrackingConsumer({
      ...base,
      groupId: o.group,
      ...(this.groupInstanceId ? { groupInstanceId: this.groupInstanceId } : {}),
      autocommit: false,
      sessionTimeout,
      heartbeatInterval: Math.min(o.heartbeat_interval ?? 1_000, sessionTimeout),
      // Long enough for every member to drain before the coordinator gives up on it.
      rebalanceTimeout: Math.max(sessionTimeout, drainTimeout + 15_000),
      maxWaitTime: o.fetch_max_wait ?? 500,
      maxBytes: o.fetch_max_bytes ?? 8 * 1024 * 1024,
      highWaterMark: o.max_buffered ?? 2000,
      protocolsMetadata: () => this.beforeJoin(),
    });
    this.consumer = consumer;
    consumer.on('consumer:group:join', (payload) => {
      void this.afterJoin(payload.generationId ?? consumer.generationId, payload.assignments ?? []);
    });
    // A failed rejoin leaves the member without a group: fatal for this run.
    (consumer as unknown as EventEmitter).on('error', (err: Error) => {
      this.failure ??= err;
      this.poke();
    });

    let stream: MessagesStream<Buffer, Buffer, Buffer, Buffer>;
    try {
      // Bounded: brokers that accept connections but never answer would hold the start for ever.
      await withDeadline(
        consumer.metadata({ topics: this.topics }),
        STARTUP_CHECK_MS,
        () => new Error(`no answer within ${STARTUP_CHECK_MS / 1000}s${noAnswerHint(o)}`),
      );
      stream = await consumer.consume({
        topics: this.topics,
        mode: 'committed',
        fallbackMode: o.start ?? 'latest',
        autocommit: false,
      });
    } catch (err) {
      await consumer.close(true).catch(() => undefined);
      const security = kafkaSecurityFailure(err, String(o.brokers), o);
      if (security) throw new Error(security, { cause: err });
      const message = kafkaErrorMessage(err);
      if (/unknown topic/i.test(message) || kafkaErrorIds(err).includes('UNKNOWN_TOPIC_OR_PARTITION')) {
        throw new Error(
          `kafka: topic ${this.topics.map((t) => `'${t}'`).join(', ')} does not exist (${message})`,
        );
      }
      throw new Error(`kafka: cannot join group '${o.group}' at ${String(o.brokers)}: ${message}`);
    }
    this.stream = stream;
    stream.on('error', (err: Error) => {
      this.failure ??= err;
      this.poke();
    });
    stream.on('readable', () => this.poke());

    const onAbort = (): void => this.poke();
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    const lagTimer = setInterval(() => void this.updateLag(), LAG_EVERY_MS);
    try {
      await this.readLoop(ctx);
    } finally {
      clearInterval(lagTimer);
      ctx.signal.removeEventListener('abort', onAbort);
      // Stop fetching; the runtime now waits for acks, then calls close() which commits.
      if (!stream.destroyed) stream.pause();
    }
    if (this.failure && !ctx.signal.aborted) {
      throw new Error(`kafka consumer failed: ${kafkaErrorMessage(this.failure)}`, { cause: this.failure });
    }
  }

  private async readLoop(ctx: SourceContext): Promise<void> {
    const max = this.opts.max_batch ?? 500;
    const stream = this.stream;
    if (!stream) return;
    while (!ctx.signal.aborted && !this.failure) {
      if (!this.ready) {
        await this.waitForPoke(ctx.signal);
        continue;
      }
      const batch: Consumed[] = [];
      while (batch.length < max) {
        const m = stream.read() as Consumed | null;
        if (m === null) break;
        batch.push(m);
      }
      if (batch.length === 0) {
        await this.waitForPoke(ctx.signal);
        continue;
      }
      await this.emitBatch(ctx, batch);
    }
  }

  /** Turns messages of the current generation into records; one ack per batch. */
  private async emitBatch(ctx: SourceContext, batch: Consumed[]): Promise<void> {
    const codec = this.opts.codec ?? 'json';
    const records: RecordInit[] = [];
    const failed: { init: RecordInit; reason: string }[] = [];
    // Highest offset per partition in this batch: one ticket each, acked when the batch settles.
    const highest = new Map<PartitionState, bigint>();
    for (const m of batch) {
      const st = this.owned.get(`${m.topic}:${m.partition}`);
      const gen = (m.metadata.consumer as { generationId?: number } | undefined)?.generationId;
      if (!st || gen !== st.generation) continue; // fetched for an older assignment
      st.tracker ??= new ContiguousTracker<bigint>(m.offset);
      const prev = highest.get(st);
      if (prev === undefined || m.offset > prev) highest.set(st, m.offset);
      const decoded = decode(m, codec, this.limits);
      if (decoded.error !== undefined) failed.push({ init: decoded.record, reason: decoded.error });
      else records.push(decoded.record);
    }
    if (highest.size === 0) return;

    const tickets: [PartitionState, number][] = [];
    for (const [st, offset] of highest)
      tickets.push([st, (st.tracker as ContiguousTracker<bigint>).track(offset + 1n)]);
    let pending = (records.length > 0 ? 1 : 0) + failed.length;
    let error: Error | undefined;
    const settle = (err?: Error): void => {
      error ??= err;
      if (--pending > 0) return;
      if (error) {
        // Not durable: the partition's commit stays below this batch, so a restart redelivers it.
        this.log.error({ err: error.message }, 'kafka batch failed downstream; its offsets stay uncommitted');
        return;
      }
      let moved = false;
      for (const [st, ticket] of tickets) moved = (st.tracker?.ack(ticket) ?? false) || moved;
      if (moved) this.scheduleCommit();
      if (this.inflightWaiters.size > 0) for (const w of this.inflightWaiters) w();
    };
    const aborted = this.abortedOf(ctx.signal);
    for (const f of failed) await Promise.race([ctx.fail(f.init, f.reason, settle), aborted]);
    if (records.length > 0) await Promise.race([ctx.emit(records, settle), aborted]);
  }

  // ------------------------------------------------------------------ rebalance

  /**
   * Runs before every JoinGroup (the client's subscription-metadata hook): all partitions
   * are about to be revoked, so stop fetching, let in-flight records settle, commit, forget.
   */
  private async beforeJoin(): Promise<Buffer> {
    if (this.revoking) return EMPTY_USER_DATA;
    this.revoking = true;
    this.ready = false;
    try {
      const stream = this.stream;
      if (stream && !stream.destroyed) stream.pause();
      if (this.owned.size > 0) {
        const deadline = Date.now() + (this.opts.drain_timeout ?? 15_000);
        await this.waitForInFlight(deadline);
        await this.commit();
        const left = [...this.owned.values()].reduce((n, st) => n + (st.tracker?.inFlight ?? 0), 0);
        if (left > 0)
          this.log.warn(
            { batches: left },
            'rebalance: in-flight records not acked in time; they will be read again',
          );
      }
      // Nothing fetched for the old assignment may land after the new one took effect.
      await Promise.race([this.consumer?.fetchesIdle(), sleep((this.opts.fetch_max_wait ?? 500) + 5_000)]);
      for (const st of this.owned.values()) this.metrics.clearLag(`${st.topic}/${st.partition}`);
      this.owned = new Map();
      // Positions restart from the group's committed offsets after the join.
      stream?.offsetsToFetch.clear();
    } catch (err) {
      this.log.warn({ err: kafkaErrorMessage(err) }, 'rebalance: commit before rejoin failed');
    }
    return EMPTY_USER_DATA;
  }

  private async afterJoin(
    generation: number,
    assignments: { topic: string; partitions: number[] }[],
  ): Promise<void> {
    const owned = new Map<string, PartitionState>();
    for (const a of assignments) {
      for (const p of a.partitions) {
        const key = `${a.topic}:${p}`;
        owned.set(key, {
          topic: a.topic,
          partition: p,
          key,
          generation,
          tracker: undefined,
          committed: undefined,
        });
      }
    }
    this.generation = generation;
    this.owned = owned;
    this.revoking = false;
    this.ready = true;
    this.log.info(
      { generation, partitions: [...owned.values()].map((s) => `${s.topic}/${s.partition}`) },
      'kafka group joined',
    );
    const stream = this.stream;
    if (stream && !stream.destroyed && !this.closed) stream.resume();
    this.poke();
    void this.logStarts(assignments);
  }

  /**
   * One line per assigned partition: the group's committed offset it resumes at, or the
   * `start` policy when the group never committed one. Asked once per assignment, off the
   * fetch path; a failed query only costs the lines.
   */
  private async logStarts(assignments: { topic: string; partitions: number[] }[]): Promise<void> {
    const consumer = this.consumer;
    if (!consumer || assignments.length === 0) return;
    const group = this.opts.group;
    const start = this.opts.start ?? 'latest';
    try {
      const committed = await consumer.listCommittedOffsets({ topics: assignments });
      for (const a of assignments) {
        for (const p of a.partitions) {
          const offset = committed.get(a.topic)?.[p];
          const partition = `${a.topic}/${p}`;
          if (offset !== undefined && offset >= 0n) {
            this.log.info(
              { partition, offset: Number(offset) },
              `resuming partition ${partition} at offset ${offset} (committed by group ${group})`,
            );
          } else {
            this.log.info(
              { partition, start },
              `no committed offset for partition ${partition} in group ${group}: starting at the ${start} offset (start: ${start})`,
            );
          }
        }
      }
    } catch (err) {
      this.log.debug({ err: kafkaErrorMessage(err) }, 'kafka committed offsets query failed');
    }
  }

  private waitForInFlight(deadline: number): Promise<void> {
    return new Promise((resolve) => {
      const check = (): void => {
        const busy = [...this.owned.values()].some((st) => (st.tracker?.inFlight ?? 0) > 0);
        if (!busy || Date.now() >= deadline) {
          clearTimeout(timer);
          this.inflightWaiters.delete(check);
          resolve();
        }
      };
      const timer = setTimeout(check, Math.max(0, deadline - Date.now()));
      this.inflightWaiters.add(check);
      check();
    });
  }

  // ------------------------------------------------------------------ commits and lag

  private scheduleCommit(): void {
    if (this.commitTimer || this.closed) return;
    this.commitTimer = setTimeout(() => {
      this.commitTimer = undefined;
      if (!this.revoking) void this.commit();
    }, this.opts.commit_interval ?? 200);
  }

  /** Commits every owned partition whose committable offset moved; one commit at a time. */
  commit(): Promise<void> {
    this.commitChain = this.commitChain
      .then(() => this.commitNow())
      .catch((err: unknown) => {
        this.log.warn({ err: kafkaErrorMessage(err) }, 'kafka offset commit failed; will retry');
        this.scheduleCommit();
      });
    return this.commitChain;
  }

  private async commitNow(): Promise<void> {
    const consumer = this.consumer;
    if (!consumer) return;
    const offsets: { topic: string; partition: number; offset: bigint; leaderEpoch: number }[] = [];
    const states: [PartitionState, bigint][] = [];
    for (const st of this.owned.values()) {
      const next = st.tracker?.committable;
      if (next === undefined || next === st.committed) continue;
      offsets.push({ topic: st.topic, partition: st.partition, offset: next, leaderEpoch: -1 });
      states.push([st, next]);
    }
    if (offsets.length === 0) return;
    await consumer.commit({ offsets });
    for (const [st, next] of states) st.committed = next;
    this.metrics.count('commits');
  }

  private async updateLag(): Promise<void> {
    this.metrics.gauge('buffered', this.buffered);
    const consumer = this.consumer;
    if (!consumer || this.owned.size === 0 || !this.ready) return;
    try {
      const ends = await consumer.listOffsets({
        topics: [...new Set([...this.owned.values()].map((s) => s.topic))],
      });
      for (const st of this.owned.values()) {
        const end = ends.get(st.topic)?.[st.partition];
        if (end === undefined) continue;
        const position = st.tracker?.committable ?? st.committed;
        if (position === undefined) continue;
        const lag = end - position;
        this.metrics.setLag(`${st.topic}/${st.partition}`, Number(lag > 0n ? lag : 0n), 'records');
      }
    } catch (err) {
      this.log.debug({ err: kafkaErrorMessage(err) }, 'kafka lag query failed');
    }
  }

  // ------------------------------------------------------------------ plumbing

  private async resolveTopics(base: ClientBase): Promise<string[]> {
    if (this.opts.topics) return [...this.opts.topics];
    const pattern = new RegExp(this.opts.topic_pattern ?? '.^');
    const { Admin } = await import('../kafka/runtime.ts');
    const admin = new Admin({ ...base, clientId: `${base.clientId}-admin` });
    try {
      const all = await admin.listTopics();
      const matched = all.filter((t) => pattern.test(t) && !t.startsWith('__')).sort();
      if (matched.length === 0) throw new Error(`no topic matches /${pattern.source}/`);
      this.log.info({ topics: matched }, 'kafka topic_pattern resolved');
      return matched;
    } finally {
      await admin.close().catch(() => undefined);
    }
  }

  private aborted: { signal: AbortSignal; promise: Promise<void> } | undefined;

  /** One promise per run that settles on abort (one listener, not one per batch). */
  private abortedOf(signal: AbortSignal): Promise<void> {
    if (this.aborted?.signal !== signal) {
      const promise = new Promise<void>((resolve) => {
        if (signal.aborted) resolve();
        else signal.addEventListener('abort', () => resolve(), { once: true });
      });
      this.aborted = { signal, promise };
    }
    return this.aborted.promise;
  }

  private poke(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private waitForPoke(signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      this.wake = resolve;
      // The stream only says 'readable' on edges; look again now and then anyway.
      setTimeout(() => this.poke(), 250).unref();
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.commitTimer);
    await this.commit();
    const stream = this.stream;
    const consumer = this.consumer;
    if (stream && !stream.destroyed) await stream.close().catch(() => undefined);
    if (consumer) {
      await consumer.close().catch((err: unknown) => {
        this.log.warn({ err: kafkaErrorMessage(err) }, 'kafka consumer close failed');
      });
    }
  }
}

/** What decoding reads of a consumed message. */
type Decodable = Pick<
  Consumed,
  'topic' | 'partition' | 'offset' | 'timestamp' | 'value' | 'headerEntries'
> & {
  key: Buffer | null;
};

function decode(
  m: Decodable,
  codec: 'json' | 'text' | 'binary',
  limits: InputLimits,
): { record: RecordInit; error?: string } {
  const headers: Record<string, string> = {};
  for (const [k, v] of m.headerEntries) headers[k.toString('utf8')] = v ? v.toString('utf8') : '';
  const key = m.key ? m.key.toString('utf8') : undefined;
  const time = Number(m.timestamp);
  const offset = Number(m.offset);
  const meta = { topic: m.topic, partition: m.partition, offset, key: key ?? null, headers, timestamp: time };
  const raw = m.value;
  const size = raw ? raw.length : 0;
  const base = { key, time, meta, size, position: `${m.topic}/${m.partition}/${offset}` };
  if (raw && size > limits.maxRecordBytes) {
    // Only the start goes to the error output: text, or base64 for binary values.
    const head = raw.subarray(0, 4096);
    const value =
      codec === 'binary' ? head.subarray(0, 1024).toString('base64') : excerpt(head.toString('utf8'));
    return { record: { ...base, value }, error: tooLargeReason(size, limits.maxRecordBytes) };
  }
  if (codec === 'binary') return { record: { ...base, value: raw ?? null } };
  const text = raw ? raw.toString('utf8') : null;
  if (codec === 'text' || text === null) return { record: { ...base, value: text } };
  const decoded = decodeJson(text, limits, size);
  if (decoded.ok) return { record: { ...base, value: decoded.value } };
  return {
    record: { ...base, value: text },
    error: decoded.kind === 'malformed' ? `invalid JSON: ${decoded.detail}` : decoded.reason,
  };
}
