/**
 * The engine: builds the stage graph of a validated spec, runs stages concurrently over
 * bounded channels, carries acks from sinks back to sources, retries failed writes, routes
 * failures to error outputs, flushes checkpoints, and stops cleanly.
 */
import type { Logger } from 'pino';
import type { PipelineSpec, StageSpec } from '../spec/validate.ts';
import type {
  Batching,
  RecordFailure,
  Sink,
  SinkBatch,
  SinkDefinition,
  Source,
  SourceContext,
  StageContext,
  Transform,
  TransformOutput,
} from '../stages/define.ts';
import { AckGroup } from './ack.ts';
import { type Batch, Channel } from './channel.ts';
import { BufferedScope, type CheckpointStore, FileCheckpointStore } from './checkpoint.ts';
import { MetricsRegistry, type StageMetrics } from './metrics.ts';
import type { ErrorValue, RecordInit, SluiceRecord } from './record.ts';
import { waitBackoff } from './retry.ts';

export interface RunOptions {
  stateDir: string;
  log: Logger;
  /** End cleanly when no source produced anything for this long (ms). */
  exitIdle?: number;
  checkpointStore?: CheckpointStore;
  metrics?: MetricsRegistry;
}

export interface RunResult {
  ok: boolean;
  /** Set when the pipeline failed: the first fatal error. */
  error?: string;
  /** True when draining took longer than shutdown_timeout and in-flight work was abandoned. */
  timedOut: boolean;
}

interface SourceNode {
  spec: StageSpec;
  source: Source;
  metrics: StageMetrics;
  scope: BufferedScope;
  abort: AbortController;
}

interface TransformNode {
  spec: StageSpec;
  transform: Transform;
  metrics: StageMetrics;
  input: Channel;
}

interface SinkNode {
  spec: StageSpec;
  sink: Sink;
  metrics: StageMetrics;
  input: Channel;
  batching: Batching;
  byPartition: boolean;
  maxRecordBytes: number | undefined;
  maxInFlight: number;
}

export class Pipeline {
  readonly metrics: MetricsRegistry;
  private readonly spec: PipelineSpec;
  private readonly opts: RunOptions;
  private readonly log: Logger;
  private readonly store: CheckpointStore;
  private readonly sources: SourceNode[] = [];
  private readonly transforms: TransformNode[] = [];
  private readonly sinks: SinkNode[] = [];
  /** Output name (`stage` or `stage.errors`) → channels of the stages that read it. */
  private readonly readers = new Map<string, Channel[]>();
  private readonly loggedErrorKinds = new Set<string>();
  private fatal: string | undefined;
  private stopping = false;
  /** Starts the shutdown_timeout clock once a stop is requested. */
  private armDeadline: (() => void) | undefined;
  private produced = 0;
  private readonly stopped = new AbortController();

  constructor(spec: PipelineSpec, opts: RunOptions) {
    this.spec = spec;
    this.opts = opts;
    this.log = opts.log;
    this.metrics = opts.metrics ?? new MetricsRegistry(spec.name);
    this.store = opts.checkpointStore ?? new FileCheckpointStore(opts.stateDir, spec.name);
    this.build();
  }

  private build(): void {
    const capacity = this.spec.runtime.channel_capacity;
    const writersOf = (s: StageSpec) => s.from.length;
    for (const s of this.spec.stages) {
      const metrics = this.metrics.stage(s.name, s.kind, s.type, s.from);
      const ctx: StageContext = {
        name: s.name,
        pipeline: this.spec.name,
        log: this.log.child({ stage: s.name }),
        metrics,
        stateDir: this.opts.stateDir,
        batchSize: this.spec.runtime.batch_size,
      };
      if (s.def.kind === 'source') {
        const source = s.def.create(s.options as never, ctx);
        const node: SourceNode = {
          spec: s,
          source,
          metrics,
          scope: new BufferedScope(this.store, s.name),
          abort: new AbortController(),
        };
        metrics.queueFill = () => Math.max(0, ...(this.readers.get(s.name) ?? []).map((c) => c.fill));
        this.sources.push(node);
        continue;
      }
      const input = new Channel(capacity, writersOf(s));
      metrics.queueFill = () => input.fill;
      for (const from of s.from) {
        const list = this.readers.get(from) ?? [];
        list.push(input);
        this.readers.set(from, list);
      }
      if (s.def.kind === 'transform') {
        this.transforms.push({ spec: s, transform: s.def.create(s.options as never, ctx), metrics, input });
      } else {
        const def = s.def as SinkDefinition;
        const policy = typeof def.batching === 'function' ? def.batching(s.options as never) : def.batching;
        const batching: Batching = { ...policy.defaults, ...stripUndefined(s.buffer) };
        if (policy.limits?.max_records)
          batching.max_records = Math.min(batching.max_records, policy.limits.max_records);
        if (policy.limits?.max_bytes)
          batching.max_bytes = Math.min(batching.max_bytes, policy.limits.max_bytes);
        this.sinks.push({
          spec: s,
          sink: def.create(s.options as never, ctx),
          metrics,
          input,
          batching,
          byPartition: policy.byPartition ?? false,
          maxRecordBytes: policy.limits?.max_record_bytes,
          maxInFlight: Math.min(s.maxInFlight, policy.maxInFlight ?? s.maxInFlight),
        });
      }
    }
  }

  /** Stops the sources; what is in flight drains, sinks flush, checkpoints are written. */
  stop(reason = 'stop requested'): void {
    if (this.stopping) return;
    this.stopping = true;
    if (this.metrics.state === 'running' || this.metrics.state === 'starting')
      this.metrics.state = 'draining';
    this.log.info({ reason }, 'stopping: draining in-flight records');
    for (const s of this.sources) s.abort.abort();
    this.armDeadline?.();
  }

  private fail(message: string): void {
    if (this.fatal) return;
    this.fatal = message;
    this.log.error({ error: message }, 'pipeline failed');
    this.metrics.state = 'failed';
    this.stop(message);
  }

  async run(): Promise<RunResult> {
    for (const s of this.sinks) {
      try {
        await s.sink.open?.();
      } catch (err) {
        this.metrics.state = 'failed';
        return {
          ok: false,
          error: `sink '${s.spec.name}' could not start: ${(err as Error).message}`,
          timedOut: false,
        };
      }
    }
    this.metrics.state = 'running';
    const checkpointTimer = setInterval(
      () => void this.flushCheckpoints(),
      this.spec.runtime.checkpoint_interval,
    );
    const idleTimer = this.opts.exitIdle ? this.watchIdle(this.opts.exitIdle) : undefined;
    const work = Promise.all([
      ...this.sources.map((s) => this.runSource(s)),
      ...this.transforms.map((t) => this.runTransform(t)),
      ...this.sinks.map((s) => this.runSink(s)),
    ]);
    let timedOut = false;
    await Promise.race([work, this.drainDeadline().then(() => (timedOut = true))]);
    clearInterval(checkpointTimer);
    if (idleTimer) clearInterval(idleTimer);
    this.stopped.abort();
    await this.flushCheckpoints();
    await Promise.allSettled([
      ...this.sources.map((s) => s.source.close?.()),
      ...this.transforms.map((t) => t.transform.close?.()),
      ...this.sinks.map((s) => s.sink.close?.()),
    ]);
    if (timedOut)
      this.log.warn(
        { timeout_ms: this.spec.runtime.shutdown_timeout },
        'drain timed out: records past the last checkpoint will be delivered again on restart',
      );
    this.metrics.state = this.fatal ? 'failed' : 'stopped';
    return { ok: !this.fatal, error: this.fatal, timedOut };
  }

  /** Resolves shutdown_timeout after a stop was requested (never when the pipeline ends on its own). */
  private drainDeadline(): Promise<void> {
    return new Promise((resolve) => {
      this.armDeadline = () => setTimeout(resolve, this.spec.runtime.shutdown_timeout).unref();
      if (this.stopping) this.armDeadline();
    });
  }

  private watchIdle(idleMs: number): NodeJS.Timeout {
    let last = -1;
    let since = Date.now();
    return setInterval(
      () => {
        if (this.produced !== last) {
          last = this.produced;
          since = Date.now();
        } else if (Date.now() - since >= idleMs) this.stop(`no input for ${idleMs}ms (--exit-idle)`);
      },
      Math.min(250, idleMs),
    );
  }

  private async flushCheckpoints(): Promise<void> {
    await Promise.all(
      this.sources.map((s) =>
        s.scope
          .flush()
          .catch((err: Error) =>
            this.log.error({ source: s.spec.name, error: err.message }, 'checkpoint write failed'),
          ),
      ),
    );
  }

  // ------------------------------------------------------------ sources

  private async runSource(node: SourceNode): Promise<void> {
    const { spec, metrics } = node;
    let lastYield = performance.now();
    const toRecord = (r: RecordInit, ack: AckGroup): SluiceRecord => ({
      value: r.value,
      meta: r.meta ?? {},
      key: r.key,
      time: r.time,
      partition: r.partition,
      position: r.position,
      size: r.size ?? 0,
      ack,
    });
    const ctx: SourceContext = {
      signal: node.abort.signal,
      checkpoints: node.scope,
      emit: async (inits, onAck) => {
        if (inits.length === 0) {
          onAck?.();
          return;
        }
        const group = new AckGroup(inits.length, onAck);
        const batch: Batch = new Array(inits.length);
        let bytes = 0;
        for (let i = 0; i < inits.length; i++) {
          batch[i] = toRecord(inits[i], group);
          bytes += batch[i].size;
        }
        this.produced += inits.length;
        metrics.sent(inits.length, bytes);
        await this.publish(spec.name, batch, metrics);
        // Channels hand batches over through promises alone; a source that never waits on I/O
        // would starve timers (buffer max_age, checkpoint flushes, metrics, --exit-idle).
        if (performance.now() - lastYield > 20) {
          await new Promise((resolve) => setImmediate(resolve));
          lastYield = performance.now();
        }
      },
      fail: async (input, reason, onAck) => {
        this.produced++;
        const record = toRecord(input, new AckGroup(1, onAck));
        await this.routeErrors(spec, metrics, [[record, reason]], false);
      },
    };
    try {
      await node.source.run(ctx);
    } catch (err) {
      if (!node.abort.signal.aborted) this.fail(`source '${spec.name}' failed: ${(err as Error).message}`);
    } finally {
      for (const c of this.readers.get(spec.name) ?? []) c.closeWriter();
      for (const c of this.readers.get(`${spec.name}.errors`) ?? []) c.closeWriter();
    }
  }

  // ------------------------------------------------------------ transforms

  private async runTransform(node: TransformNode): Promise<void> {
    const { spec, metrics, transform, input } = node;
    let pushed: SluiceRecord[] = [];
    let failures: [SluiceRecord, string][] = [];
    const out: TransformOutput = {
      push: (r) => pushed.push(r),
      drop: (r) => {
        metrics.droppedRecords(1);
        r.ack.resolve();
      },
      duplicate: (r) => {
        metrics.duplicateRecords(1);
        r.ack.resolve();
      },
      fail: (r, reason) => failures.push([r, reason]),
    };
    try {
      for (;;) {
        const batch = await input.pull();
        if (!batch) break;
        metrics.received(batch.length, sumBytes(batch));
        const t0 = performance.now();
        try {
          await transform.process(batch, out);
        } catch (err) {
          // A transform that throws on a whole batch: every record not yet handled fails.
          const handled = new Set<SluiceRecord>([...pushed, ...failures.map((f) => f[0])]);
          for (const r of batch) if (!handled.has(r)) failures.push([r, (err as Error).message]);
        }
        metrics.batchTook(performance.now() - t0);
        const batchOut = pushed;
        const batchFailures = failures;
        pushed = [];
        failures = [];
        if (batchFailures.length > 0) await this.routeErrors(spec, metrics, batchFailures, false);
        if (batchOut.length > 0) {
          metrics.sent(batchOut.length, sumBytes(batchOut));
          await this.publish(spec.name, batchOut, metrics);
        }
      }
    } finally {
      for (const c of this.readers.get(spec.name) ?? []) c.closeWriter();
      for (const c of this.readers.get(`${spec.name}.errors`) ?? []) c.closeWriter();
    }
  }

  // ------------------------------------------------------------ sinks

  private async runSink(node: SinkNode): Promise<void> {
    const { spec, metrics, input, batching } = node;
    const buffers = new Map<
      string,
      { records: SluiceRecord[]; bytes: number; startedAt: number; timer?: NodeJS.Timeout }
    >();
    const inFlight = new Set<Promise<void>>();
    // Flushes started by a buffer's age timer, possibly still waiting for a write slot.
    const byAge = new Set<Promise<void>>();
    let seq = 0;
    // Records held across all partition buffers: bounded so many partitions cannot add up to
    // unbounded memory; past the bound the largest buffer is flushed early.
    let buffered = 0;
    const maxBuffered = Math.max(
      batching.max_records,
      batching.max_total_records ?? DEFAULT_MAX_TOTAL_RECORDS,
    );

    const dispatch = async (key: string): Promise<void> => {
      const buf = buffers.get(key);
      if (!buf) return;
      buffers.delete(key);
      buffered -= buf.records.length;
      if (buf.timer) clearTimeout(buf.timer);
      while (inFlight.size >= node.maxInFlight) await Promise.race(inFlight);
      const batch: SinkBatch = {
        records: buf.records,
        partition: node.byPartition ? key : undefined,
        startedAt: buf.startedAt,
        bytes: buf.bytes,
        seq: seq++,
      };
      const p = this.writeWithRetry(node, batch).finally(() => inFlight.delete(p));
      inFlight.add(p);
    };
    const dispatchByAge = (key: string): void => {
      const d = dispatch(key).finally(() => byAge.delete(d));
      byAge.add(d);
    };

    for (;;) {
      const batch = await input.pull();
      if (!batch) break;
      metrics.received(batch.length, sumBytes(batch));
      // Synchronous per record; awaits only when a buffer is full (once per max_records).
      for (let i = 0; i < batch.length; i++) {
        const r = batch[i];
        if (node.maxRecordBytes !== undefined && r.size > node.maxRecordBytes) {
          const reason = `record of ${r.size} bytes exceeds the ${spec.type} limit of ${node.maxRecordBytes} bytes`;
          await this.routeErrors(spec, metrics, [[r, reason]], true);
          continue;
        }
        const key = node.byPartition ? (r.partition ?? '_') : '';
        let buf = buffers.get(key);
        if (buf !== undefined && buf.bytes + r.size > batching.max_bytes) {
          await dispatch(key);
          buf = buffers.get(key);
        }
        if (buf === undefined) {
          buf = { records: [], bytes: 0, startedAt: Date.now() };
          buffers.set(key, buf);
          buf.timer = setTimeout(() => dispatchByAge(key), batching.max_age);
        }
        buf.records.push(r);
        buf.bytes += r.size;
        buffered++;
        if (buf.records.length >= batching.max_records || buf.bytes >= batching.max_bytes)
          await dispatch(key);
        else if (buffered > maxBuffered) await dispatch(largestBuffer(buffers));
      }
    }
    for (const key of [...buffers.keys()]) await dispatch(key);
    // Age flushes waiting for a slot add writes when they get one: wait for both to settle.
    while (byAge.size > 0 || inFlight.size > 0) await Promise.all([...byAge, ...inFlight]);
    for (const c of this.readers.get(`${spec.name}.errors`) ?? []) c.closeWriter();
  }

  /** Writes a batch; retries only the failed records with backoff; the rest go to the error output. */
  private async writeWithRetry(node: SinkNode, batch: SinkBatch): Promise<void> {
    const { spec, metrics, sink } = node;
    let records = batch.records;
    for (let attempt = 1; ; attempt++) {
      const t0 = performance.now();
      let failed: RecordFailure[];
      try {
        const result = await sink.write({ ...batch, records, bytes: sumBytes(records) });
        failed = result?.failed ?? [];
      } catch (err) {
        const retryable = (err as { retryable?: boolean }).retryable !== false;
        const reason = (err as Error).message;
        failed = records.map((_, index) => ({ index, reason, retryable }));
      }
      metrics.batchTook(performance.now() - t0);
      const failedAt = new Map(failed.map((f) => [f.index, f]));
      let okBytes = 0;
      let ok = 0;
      for (let i = 0; i < records.length; i++) {
        if (failedAt.has(i)) continue;
        ok++;
        okBytes += records[i].size;
        records[i].ack.resolve();
      }
      if (ok > 0) metrics.sent(ok, okBytes);
      if (failed.length === 0) return;
      const permanent = failed.filter((f) => !f.retryable || attempt >= spec.retry.max_attempts);
      const again = failed.filter((f) => f.retryable && attempt < spec.retry.max_attempts);
      if (permanent.length > 0) {
        const suffix = (f: RecordFailure) => (f.retryable ? ` (after ${attempt} attempts)` : '');
        await this.routeErrors(
          spec,
          metrics,
          permanent.map((f) => [records[f.index], f.reason + suffix(f)]),
          true,
        );
      }
      if (again.length === 0) return;
      metrics.retried(again.length);
      this.log.warn(
        { stage: spec.name, attempt, failed: again.length, reason: again[0].reason },
        'write failed; retrying',
      );
      await waitBackoff(spec.retry, attempt, this.stopped.signal);
      records = again.map((f) => records[f.index]);
    }
  }

  // ------------------------------------------------------------ routing

  /** Fans a batch out to every reader of `output`; each extra copy joins the record's ack group. */
  private async publish(output: string, batch: Batch, metrics: StageMetrics): Promise<void> {
    const channels = this.readers.get(output);
    if (!channels || channels.length === 0) {
      // Nobody reads this output (validation warned): the records are done here.
      metrics.droppedRecords(batch.length);
      for (const r of batch) r.ack.resolve();
      return;
    }
    if (channels.length === 1) return channels[0].push(batch);
    for (const r of batch) r.ack.add(channels.length - 1);
    // Copy before the first push: once a reader has the batch it may transform the records,
    // and a later branch must see them as they left this stage.
    const copies = channels.map((_, i) => (i === 0 ? batch : batch.map((r) => ({ ...r }))));
    for (let i = 0; i < channels.length; i++) await channels[i].push(copies[i]);
  }

  /**
   * Sends failed records to `<stage>.errors`. Unwired: counted and logged once per kind; a
   * record a sink could not write is nacked (its source will not checkpoint past it), a
   * record that cannot be processed is acked (replaying it cannot help).
   */
  private async routeErrors(
    spec: StageSpec,
    metrics: StageMetrics,
    failures: [SluiceRecord, string][],
    fromSink: boolean,
  ): Promise<void> {
    for (const [, reason] of failures) metrics.failed(reason);
    if (spec.onError === 'stop') {
      this.fail(`${spec.kind} '${spec.name}': ${failures[0][1]} (on_error: stop)`);
      for (const [r, reason] of failures) r.ack.reject(new Error(reason));
      return;
    }
    const output = `${spec.name}.errors`;
    if (!this.readers.get(output)?.length) {
      for (const [r, reason] of failures) {
        this.logErrorOnce(spec, r, reason, fromSink);
        if (fromSink) r.ack.reject(new Error(reason));
        else r.ack.resolve();
      }
      return;
    }
    const at = new Date().toISOString();
    const batch: Batch = failures.map(([r, reason]) => {
      const value: ErrorValue = { stage: spec.name, reason, at, value: r.value, meta: r.meta };
      return { ...r, value, partition: spec.name };
    });
    await this.publish(output, batch, metrics);
  }

  private logErrorOnce(spec: StageSpec, r: SluiceRecord, reason: string, fromSink: boolean): void {
    const kind = `${spec.name}:${reason
      .replace(/\d+/g, '#')
      .replace(/'[^']*'/g, "'…'")
      .slice(0, 80)}`;
    if (this.loggedErrorKinds.has(kind)) return;
    this.loggedErrorKinds.add(kind);
    this.log.warn(
      {
        stage: spec.name,
        reason,
        sample: truncate(r.value),
        position: r.position,
        wire: `${spec.name}.errors`,
      },
      fromSink
        ? `records could not be written and ${spec.name}.errors is not wired: they stay unacknowledged (not checkpointed); further errors of this kind are only counted`
        : `records failed and ${spec.name}.errors is not wired: counted; further errors of this kind are only counted`,
    );
  }
}

/** Default bound on records held across the partition buffers of one sink. */
const DEFAULT_MAX_TOTAL_RECORDS = 50_000;

function largestBuffer(buffers: Map<string, { records: SluiceRecord[] }>): string {
  let best = '';
  let size = -1;
  for (const [key, buf] of buffers) {
    if (buf.records.length > size) {
      size = buf.records.length;
      best = key;
    }
  }
  return best;
}

function sumBytes(batch: SluiceRecord[]): number {
  let n = 0;
  for (const r of batch) n += r.size;
  return n;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function truncate(v: unknown): unknown {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return s && s.length > 300 ? `${s.slice(0, 300)}…` : v;
}
