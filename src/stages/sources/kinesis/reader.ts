/**
 * The running `kinesis` source: lists shards, starts one reader per shard it holds (parents
 * before children), de-aggregates KPL records, tracks acks per shard and checkpoints the
 * highest contiguous acked position.
 */
import type {
  _Record,
  GetRecordsCommandOutput,
  GetShardIteratorCommandInput,
  KinesisClient,
  ListShardsCommandOutput,
} from '@aws-sdk/client-kinesis';
import { ContiguousTracker } from '../../../runtime/ack.ts';
import { checkpointPath } from '../../../runtime/checkpoint.ts';
import { type InputLimits, inputLimits } from '../../../runtime/limits.ts';
import type { RecordInit } from '../../../runtime/record.ts';
import { awsClientConfig } from '../../aws/clients.ts';
import { deaggregate } from '../../aws/kpl.ts';
import { kinesis } from '../../aws/sdk.ts';
import {
  DynamoCheckpoints,
  leaseNamespace,
  ScopeCheckpoints,
  SHARD_END,
  type ShardCheckpoints,
} from '../../aws/shard-checkpoints.ts';
import {
  CHECK_TIMEOUT_MS,
  endpointLabel,
  StartupCheckError,
  withinCheckDeadline,
} from '../../aws/startup.ts';
import { type Source, type SourceContext, type StageContext, StageError } from '../../define.ts';
import type { Options } from '../kinesis.ts';
import { decodeData } from './decode.ts';

interface ShardInfo {
  id: string;
  parents: string[];
  /** Has an ending sequence number: no record will ever be added. */
  closed: boolean;
}

type StartSpec =
  | { type: 'LATEST' | 'TRIM_HORIZON' }
  | { type: 'AT_TIMESTAMP'; at: Date }
  | { type: 'POSITION'; position: string };

/** One shard being read; replaced by a new one when the shard is taken again after a lost lease. */
class ShardReader {
  readonly shard: ShardInfo;
  readonly initial: StartSpec;
  tracker: ContiguousTracker<string>;
  /** Bumped on rewind: acks of older batches are ignored. */
  gen = 0;
  /** Last position handed downstream (renewed iterators continue after it). */
  lastRead: string | undefined;
  /** When a LATEST iterator was first taken: a renewal uses AT_TIMESTAMP so nothing in between is missed. */
  openedAt: number | undefined;
  /** Skip user records up to this sub-sequence of this aggregate (resuming inside an aggregate). */
  skip: { seq: string; sub: number } | undefined;
  ended = false;
  finished = false;
  lost = false;
  rewind = false;
  rewinds = 0;
  private changed: (() => void) | undefined;

  constructor(shard: ShardInfo, initial: StartSpec, committed: string | undefined) {
    this.shard = shard;
    this.initial = initial;
    this.tracker = new ContiguousTracker<string>(committed);
    this.lastRead = committed;
  }

  /** Resolves at the next finish, rewind, lost lease or wake-up. */
  waitChange(signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        signal.removeEventListener('abort', done);
        this.changed = undefined;
        resolve();
      };
      this.changed = done;
      signal.addEventListener('abort', done, { once: true });
    });
  }

  notify(): void {
    this.changed?.();
  }
}

const THROTTLING = new Set([
  'ProvisionedThroughputExceededException',
  'LimitExceededException',
  'KMSThrottlingException',
  'ThrottlingException',
  'TooManyRequestsException',
]);

const errorName = (err: unknown): string => (err instanceof Error ? err.name : String(err));

/** Exponential backoff with jitter: 0.5s, 1s, 2s … capped at 30s. */
const backoff = (attempt: number): number => Math.min(30_000, 500 * 2 ** attempt) * (0.5 + Math.random() / 2);

/** Sleeps, returning early (false) when the signal aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  if (ms <= 0) return Promise.resolve(true);
  return new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

function parsePosition(position: string): { seq: string; sub: number | undefined } {
  const i = position.indexOf(':');
  return i < 0
    ? { seq: position, sub: undefined }
    : { seq: position.slice(0, i), sub: Number(position.slice(i + 1)) };
}

export class KinesisSource implements Source {
  readonly client: KinesisClient;
  private readonly o: Options;
  private readonly stage: StageContext;
  private readonly limit: number;
  private readonly pollInterval: number;
  private readonly idleInterval: number;
  private readonly shardRefresh: number;
  private readonly store: ShardCheckpoints | undefined;
  private checkpoints!: ShardCheckpoints;
  private ctx!: SourceContext;
  private signal!: AbortSignal;
  private readonly stopping = new AbortController();
  private failure: Error | undefined;
  private readonly known = new Map<string, ShardInfo>();
  private readonly firstListing = new Set<string>();
  /** Shards not read because `start: latest` began after they closed. */
  private readonly skipped = new Set<string>();
  private readonly readers = new Map<string, ShardReader>();
  private readonly tasks = new Set<Promise<void>>();
  private positions: Record<string, string> = {};
  /** Positions this run committed. */
  private readonly committed: Record<string, string> = {};
  /** Positions stored before this run began. */
  private loaded: Record<string, string> = {};
  private wake: (() => void) | undefined;
  private readonly limits: InputLimits;

  constructor(o: Options, stage: StageContext) {
    this.o = o;
    this.stage = stage;
    this.limit = o.limit ?? 1000;
    this.pollInterval = Math.max(200, o.poll_interval ?? 200);
    this.idleInterval = Math.max(this.pollInterval, o.idle_interval ?? 1000);
    this.shardRefresh = o.shard_refresh ?? 10_000;
    this.limits = inputLimits(o);
    if (o.start === 'at_timestamp' && !o.start_timestamp) {
      throw new StageError('start: at_timestamp needs start_timestamp', { retryable: false });
    }
    this.client = new (kinesis().KinesisClient)(awsClientConfig(o));
    const ddb = o.checkpoint?.dynamodb;
    if (ddb) {
      this.store = new DynamoCheckpoints({
        region: o.region,
        endpoint: o.endpoint,
        table: ddb.table,
        namespace: leaseNamespace(stage.pipeline, stage.name, o.stream),
        leaseDuration: ddb.lease_duration ?? 30_000,
        log: stage.log,
        metrics: stage.metrics,
      });
    }
  }

  async run(ctx: SourceContext): Promise<void> {
    this.ctx = ctx;
    this.signal = AbortSignal.any([ctx.signal, this.stopping.signal]);
    this.checkpoints = this.store ?? new ScopeCheckpoints(ctx.checkpoints);
    this.checkpoints.onLost = (id) => this.loseLease(id);
    const flushTimer =
      this.checkpoints.flushInterval === undefined
        ? undefined
        : setInterval(() => {
            this.checkpoints.flush().catch((err) => this.stage.log.warn({ err }, 'checkpoint flush failed'));
          }, this.checkpoints.flushInterval);
    const onAbort = () => this.wake?.();
    this.signal.addEventListener('abort', onAbort);
    try {
      this.positions = await this.checkpoints.load();
      this.loaded = { ...this.positions };
      let first = true;
      let attempt = 0;
      let listedAt = 0;
      while (!this.signal.aborted) {
        // Shared leases are balanced every renewal period; the shard list is refreshed less often.
        if (!first && Date.now() - listedAt < this.shardRefresh) {
          await this.schedule();
          this.gaugeReading();
          await this.waitWake(this.scheduleInterval());
          continue;
        }
        let shards: ShardInfo[];
        try {
          // A first listing that gets no answer fails the start instead of waiting for ever.
          shards = first
            ? await withinCheckDeadline(
                this.listShards(),
                () =>
                  `kinesis: no answer from ${endpointLabel({ service: 'kinesis', ...awsClientConfig(this.o) })} ` +
                  `within ${CHECK_TIMEOUT_MS / 1000}s listing the shards of stream '${this.o.stream}'; ` +
                  'check `endpoint` (or AWS_ENDPOINT_URL), the region and the network',
              )
            : await this.listShards();
          listedAt = Date.now();
          attempt = 0;
        } catch (err) {
          if (this.signal.aborted) break;
          if (err instanceof StartupCheckError) throw err;
          if (first && errorName(err) === 'ResourceNotFoundException') {
            throw new StageError(`Kinesis stream '${this.o.stream}' not found`, {
              retryable: false,
              cause: err,
            });
          }
          // At start-up a few tries tell a passing fault from a wrong endpoint or missing credentials.
          if (first && attempt >= 2) {
            const why = (err as Error).message;
            throw new StageError(`cannot list the shards of Kinesis stream '${this.o.stream}': ${why}`, {
              retryable: false,
              cause: err,
            });
          }
          this.stage.log.warn({ err, stream: this.o.stream }, 'listing shards failed; retrying');
          await sleep(backoff(attempt++), this.signal);
          continue;
        }
        for (const s of shards) {
          if (this.known.has(s.id)) {
            // A shard that was open may have closed since (resharding).
            if (s.closed) this.known.set(s.id, s);
            continue;
          }
          this.known.set(s.id, s);
          if (first) this.firstListing.add(s.id);
        }
        first = false;
        await this.schedule();
        this.gaugeReading();
        await this.waitWake(this.scheduleInterval());
      }
      await Promise.all(this.tasks);
    } finally {
      clearInterval(flushTimer);
      this.signal.removeEventListener('abort', onAbort);
    }
    if (this.failure) throw this.failure;
  }

  async close(): Promise<void> {
    await this.checkpoints?.flush();
    await this.checkpoints?.close();
    this.client.destroy();
  }

  private gaugeReading(): void {
    let reading = 0;
    for (const r of this.readers.values()) if (!r.finished) reading++;
    this.stage.metrics.gauge('shards_reading', reading);
  }

  /** Shared leases are balanced each renewal period; a local checkpoint only needs the shard refresh. */
  private scheduleInterval(): number {
    const renew = this.checkpoints.balance ? this.checkpoints.flushInterval : undefined;
    return renew === undefined ? this.shardRefresh : Math.min(renew, this.shardRefresh);
  }

  private waitWake(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = () => {
        this.wake = undefined;
        done();
      };
      if (this.signal.aborted) done();
    });
  }

  private async listShards(): Promise<ShardInfo[]> {
    const out: ShardInfo[] = [];
    let next: string | undefined;
    do {
      const res: ListShardsCommandOutput = await this.client.send(
        new (kinesis().ListShardsCommand)(next ? { NextToken: next } : { StreamName: this.o.stream }),
        { abortSignal: this.signal },
      );
      for (const s of res.Shards ?? []) {
        if (!s.ShardId) continue;
        const parents = [s.ParentShardId, s.AdjacentParentShardId].filter((p): p is string => !!p);
        out.push({ id: s.ShardId, parents, closed: !!s.SequenceNumberRange?.EndingSequenceNumber });
      }
      next = res.NextToken;
    } while (next);
    return out;
  }

  /** A shard whose every record is acked (or that needs no reading). */
  private isDone(id: string): boolean {
    return this.positions[id] === SHARD_END || this.skipped.has(id);
  }

  /** Starts readers for every shard whose parents are done; a parent that aged out of the stream counts as done. */
  private async schedule(): Promise<void> {
    if (this.checkpoints.balance) return this.balanceLeases();
    let progress = true;
    while (progress && !this.signal.aborted) {
      progress = false;
      for (const shard of this.known.values()) {
        if (this.readers.has(shard.id) || this.isDone(shard.id)) continue;
        if (!shard.parents.every((p) => !this.known.has(p) || this.isDone(p))) continue;
        const started = await this.startShard(shard);
        if (started) progress = true;
      }
    }
  }

  /**
   * With shared leases: the shards that need a reader (parents finished, by any process) go to
   * the lease plan, which says which to take now; other processes' progress comes back with it.
   */
  private async balanceLeases(): Promise<void> {
    const balance = this.checkpoints.balance?.bind(this.checkpoints);
    if (!balance) return;
    const eligible: string[] = [];
    for (const shard of this.known.values()) {
      if (this.isDone(shard.id)) continue;
      if (shard.parents.every((p) => !this.known.has(p) || this.isDone(p))) eligible.push(shard.id);
    }
    let plan: { take: string[]; positions: Record<string, string> };
    try {
      plan = await balance(eligible);
    } catch (err) {
      if (!this.signal.aborted) this.stage.log.warn({ err }, 'reading the lease table failed; retrying');
      return;
    }
    // Without forgetting our own progress not yet flushed.
    this.positions = { ...plan.positions, ...this.committed };
    for (const id of plan.take) {
      const shard = this.known.get(id);
      if (!shard || this.readers.has(id) || this.isDone(id) || this.signal.aborted) continue;
      await this.startShard(shard);
    }
  }

  /**
   * Where a shard without a checkpoint starts. `start` applies to the shards listed at start-up;
   * children of shards read before (a stored parent checkpoint) or found while running start at
   * their beginning, so nothing put after the split is missed.
   */
  private initialSpec(shard: ShardInfo): StartSpec | 'skip' {
    const parentRead = shard.parents.some((p) => this.known.has(p) && this.loaded[p] !== undefined);
    if (parentRead || !this.firstListing.has(shard.id)) return { type: 'TRIM_HORIZON' };
    switch (this.o.start ?? 'latest') {
      case 'trim_horizon':
        return { type: 'TRIM_HORIZON' };
      case 'at_timestamp':
        return { type: 'AT_TIMESTAMP', at: new Date(this.o.start_timestamp ?? Date.now()) };
      default:
        return shard.closed ? 'skip' : { type: 'LATEST' };
    }
  }

  private async startShard(shard: ShardInfo): Promise<boolean> {
    let stored: string | null | false;
    try {
      stored = await this.checkpoints.acquire(shard.id, shard.parents);
    } catch (err) {
      this.stage.log.warn({ err, shard: shard.id }, 'could not take the shard lease; retrying later');
      return false;
    }
    if (stored === false) return false; // another process reads it
    if (stored === SHARD_END) {
      this.positions[shard.id] = SHARD_END;
      this.stage.log.info(
        { shard: shard.id },
        `shard ${shard.id} was read to its end before (${this.where()}): nothing left to read in it`,
      );
      await this.checkpoints.release(shard.id);
      return true;
    }
    let spec: StartSpec;
    if (stored !== null) {
      this.positions[shard.id] = stored;
      spec = { type: 'POSITION', position: stored };
    } else {
      const initial = this.initialSpec(shard);
      if (initial === 'skip') {
        this.skipped.add(shard.id);
        this.stage.log.info(
          { shard: shard.id },
          `no checkpoint for shard ${shard.id}: it closed before this run and start is LATEST, so it is not read`,
        );
        await this.checkpoints.release(shard.id);
        return true;
      }
      spec = initial;
    }
    this.logStart(shard, spec);
    const reader = new ShardReader(shard, spec, stored ?? undefined);
    this.readers.set(shard.id, reader);
    const task = this.read(reader)
      .catch((err) => {
        this.failure ??= err instanceof Error ? err : new Error(String(err));
        this.stopping.abort();
      })
      .finally(() => {
        this.tasks.delete(task);
        if (this.readers.get(shard.id) === reader && !reader.finished) this.readers.delete(shard.id);
      });
    this.tasks.add(task);
    return true;
  }

  /** Where this source's checkpoints live, for operators. */
  private where(): string {
    const table = this.o.checkpoint?.dynamodb?.table;
    return table
      ? `checkpoint in DynamoDB table ${table}`
      : `checkpoint in state file ${checkpointPath(this.stage.stateDir, this.stage.pipeline)}`;
  }

  /** One line per shard when its reading starts: where, and why there. */
  private logStart(shard: ShardInfo, spec: StartSpec): void {
    const log = this.stage.log;
    if (spec.type === 'POSITION') {
      const { seq, sub } = parsePosition(spec.position);
      const inside = sub === undefined ? '' : ` (inside its KPL aggregate, after user record ${sub})`;
      log.info(
        { shard: shard.id, sequence: seq, sub_sequence: sub },
        `resuming shard ${shard.id} after sequence ${seq}${inside} (${this.where()})`,
      );
      return;
    }
    const at = spec.type === 'AT_TIMESTAMP' ? `AT_TIMESTAMP ${spec.at.toISOString()}` : spec.type;
    const why = !this.firstListing.has(shard.id)
      ? ' (a shard created while running starts at its beginning)'
      : shard.parents.some((p) => this.known.has(p) && this.loaded[p] !== undefined)
        ? ' (its parent was read before, so it starts at its beginning)'
        : '';
    log.info(
      { shard: shard.id, start: spec.type },
      `no checkpoint for shard ${shard.id}: starting at ${at}${why}`,
    );
  }

  private loseLease(id: string): void {
    // The new owner's progress is the truth now.
    delete this.committed[id];
    const r = this.readers.get(id);
    if (!r) return;
    r.lost = true;
    r.notify();
  }

  private requestRewind(r: ShardReader, err: Error): void {
    if (r.rewind) return;
    this.stage.log.warn(
      { shard: r.shard.id, err: err.message, from: r.tracker.committable ?? r.initial.type },
      'a batch was not delivered; reading the shard again from its checkpoint',
    );
    r.rewind = true;
    r.notify();
  }

  private acked(r: ShardReader, ticket: number): void {
    if (!r.tracker.ack(ticket) || r.lost) return;
    const pos = r.tracker.committable;
    if (pos === undefined) return;
    this.checkpoints.commit(r.shard.id, pos);
    this.positions[r.shard.id] = pos;
    this.committed[r.shard.id] = pos;
    if (pos === SHARD_END && !r.finished) {
      r.finished = true;
      this.stage.metrics.clearLag(r.shard.id);
      this.checkpoints
        .release(r.shard.id)
        .catch((err) => this.stage.log.warn({ err, shard: r.shard.id }, 'releasing a finished shard failed'));
      r.notify();
      this.wake?.();
    }
  }

  private iteratorInput(r: ShardReader): GetShardIteratorCommandInput {
    const base = { StreamName: this.o.stream, ShardId: r.shard.id };
    r.skip = undefined;
    if (r.lastRead !== undefined) {
      const { seq, sub } = parsePosition(r.lastRead);
      if (sub === undefined)
        return { ...base, ShardIteratorType: 'AFTER_SEQUENCE_NUMBER', StartingSequenceNumber: seq };
      r.skip = { seq, sub };
      return { ...base, ShardIteratorType: 'AT_SEQUENCE_NUMBER', StartingSequenceNumber: seq };
    }
    const spec = r.initial;
    if (spec.type === 'AT_TIMESTAMP')
      return { ...base, ShardIteratorType: 'AT_TIMESTAMP', Timestamp: spec.at };
    if (spec.type === 'LATEST') {
      if (r.openedAt !== undefined) {
        return { ...base, ShardIteratorType: 'AT_TIMESTAMP', Timestamp: new Date(r.openedAt) };
      }
      r.openedAt = Date.now();
    }
    if (spec.type === 'POSITION') throw new Error('a position start always sets lastRead');
    return { ...base, ShardIteratorType: spec.type };
  }

  private async read(r: ShardReader): Promise<void> {
    const signal = this.signal;
    const id = r.shard.id;
    const metrics = this.stage.metrics;
    let iterator: string | undefined;
    let attempt = 0;
    while (!signal.aborted && !r.lost && !r.finished) {
      if (r.rewind) {
        r.gen++;
        r.tracker = new ContiguousTracker<string>(r.tracker.committable);
        r.lastRead = r.tracker.committable;
        r.rewind = false;
        r.ended = false;
        iterator = undefined;
        if (!(await sleep(backoff(r.rewinds++), signal))) break;
        continue;
      }
      if (r.ended) {
        // Read to the end: wait until every record is acked (finished) or a batch failed (rewind).
        await r.waitChange(signal);
        continue;
      }
      if (iterator === undefined) {
        try {
          const input = this.iteratorInput(r);
          const res = await this.client.send(new (kinesis().GetShardIteratorCommand)(input), {
            abortSignal: signal,
          });
          iterator = res.ShardIterator;
          attempt = 0;
          this.stage.log.debug(
            { shard: id, from: input.ShardIteratorType, sequence: input.StartingSequenceNumber },
            'reading shard',
          );
          if (!iterator) {
            r.ended = true;
            this.acked(r, r.tracker.track(SHARD_END));
            continue;
          }
        } catch (err) {
          if (signal.aborted) break;
          if (errorName(err) === 'ResourceNotFoundException') {
            // The shard aged out of the stream: nothing left to read in it.
            this.stage.log.warn({ shard: id }, 'shard no longer exists; treating it as finished');
            r.ended = true;
            this.acked(r, r.tracker.track(SHARD_END));
            continue;
          }
          if (THROTTLING.has(errorName(err))) metrics.count('throttled');
          else this.stage.log.warn({ err, shard: id }, 'GetShardIterator failed; retrying');
          await sleep(backoff(attempt++), signal);
          continue;
        }
      }

      const started = Date.now();
      let res: GetRecordsCommandOutput;
      try {
        res = await this.client.send(
          new (kinesis().GetRecordsCommand)({ ShardIterator: iterator, Limit: this.limit }),
          {
            abortSignal: signal,
          },
        );
        metrics.count('get_records');
      } catch (err) {
        if (signal.aborted) break;
        const name = errorName(err);
        if (name === 'ExpiredIteratorException') {
          metrics.count('iterators_renewed');
          iterator = undefined;
          continue;
        }
        if (THROTTLING.has(name)) {
          metrics.count('throttled');
          this.stage.log.debug({ shard: id, error: name }, 'throttled; backing off');
        } else {
          this.stage.log.warn({ err, shard: id }, 'GetRecords failed; retrying');
        }
        await sleep(backoff(attempt++), signal);
        continue;
      }
      attempt = 0;
      if (res.MillisBehindLatest !== undefined) metrics.setLag(id, res.MillisBehindLatest, 'ms');
      const records = res.Records ?? [];
      if (records.length > 0) {
        const delivered = await this.deliver(r, records);
        if (!delivered) break;
        r.rewinds = 0;
      }
      if (!res.NextShardIterator) {
        r.ended = true;
        this.acked(r, r.tracker.track(SHARD_END));
        if (res.ChildShards?.length) this.wake?.();
        continue;
      }
      iterator = res.NextShardIterator;
      const wait = (records.length > 0 ? this.pollInterval : this.idleInterval) - (Date.now() - started);
      await sleep(wait, signal);
    }
  }

  /** Decodes one GetRecords response and hands it downstream as one tracked batch. */
  private async deliver(r: ShardReader, records: _Record[]): Promise<boolean> {
    const id = r.shard.id;
    const stream = this.o.stream;
    const good: RecordInit[] = [];
    const bad: { input: RecordInit; reason: string }[] = [];
    const skip = r.skip;
    r.skip = undefined;
    let last = '';
    for (const rec of records) {
      const seq = rec.SequenceNumber ?? '';
      const data = rec.Data ?? new Uint8Array(0);
      const arrival = rec.ApproximateArrivalTimestamp;
      const time = arrival ? arrival.getTime() : undefined;
      const arrivalIso = arrival ? arrival.toISOString() : undefined;
      last = seq;
      const users = deaggregate(data);
      if (users === undefined) {
        const meta = {
          stream,
          shard_id: id,
          sequence_number: seq,
          partition_key: rec.PartitionKey,
          arrival_time: arrivalIso,
        };
        this.decode(data, meta, rec.PartitionKey, time, `${id}:${seq}`, good, bad);
        continue;
      }
      this.stage.metrics.count('kpl_aggregates');
      for (let i = 0; i < users.length; i++) {
        if (skip && skip.seq === seq && i <= skip.sub) continue;
        const u = users[i];
        const pos = i === users.length - 1 ? seq : `${seq}:${i}`;
        const meta: Record<string, unknown> = {
          stream,
          shard_id: id,
          sequence_number: seq,
          sub_sequence_number: i,
          partition_key: u.partitionKey,
          arrival_time: arrivalIso,
        };
        if (u.explicitHashKey !== undefined) meta.explicit_hash_key = u.explicitHashKey;
        this.decode(u.data, meta, u.partitionKey, time, `${id}:${pos}`, good, bad);
      }
    }
    r.lastRead = last;
    const ticket = r.tracker.track(last);
    const gen = r.gen;
    let pending = (good.length > 0 ? 1 : 0) + bad.length;
    const onAck = (err?: Error) => {
      if (r.gen !== gen) return;
      if (err) {
        this.requestRewind(r, err);
        return;
      }
      if (--pending === 0) this.acked(r, ticket);
    };
    if (pending === 0) this.acked(r, ticket);
    try {
      if (good.length > 0) await this.ctx.emit(good, onAck);
      for (const b of bad) await this.ctx.fail(b.input, b.reason, onAck);
    } catch (err) {
      if (this.signal.aborted) return false;
      throw err;
    }
    return true;
  }

  private decode(
    data: Uint8Array,
    meta: Record<string, unknown>,
    key: string | undefined,
    time: number | undefined,
    position: string,
    good: RecordInit[],
    bad: { input: RecordInit; reason: string }[],
  ): void {
    decodeData(this.o.codec ?? 'json', this.limits, data, meta, key, time, position, good, bad);
  }
}
