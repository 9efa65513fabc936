/**
 * The engine: builds the stage graph of a validated spec, runs stages concurrently over
 * bounded channels, carries acks from sinks back to sources, retries failed writes, routes
 * failures to error outputs, flushes checkpoints, and stops cleanly.
 */
import pino, { type Logger } from 'pino';
import { clock } from '../expr/clock.ts';
import type { PipelineSpec, StageSpec } from '../spec/validate.ts';
import type {
  Batching,
  PreviewContext,
  PreviewWrite,
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
import { DeadLetterWriter } from './dead-letter.ts';
import { MetricsRegistry, type StageMetrics } from './metrics.ts';
import type { ErrorValue, RecordInit, SluiceRecord } from './record.ts';
import { retryExhausted, waitBackoff } from './retry.ts';
import { ERROR_OUTPUT_LIMITS, type SafeValueLimits, safeValue } from './safe-value.ts';

export interface RunOptions {
  stateDir: string;
  /** Default: warnings and errors as JSON lines on stderr (an embedding service passes its own). */
  log?: Logger;
  /** End cleanly when no source produced anything for this long (ms). */
  exitIdle?: number;
  checkpointStore?: CheckpointStore;
  metrics?: MetricsRegistry;
  /**
   * Records fed into stages instead of running the sources: a transform or sink named here gets
   * them on its input (dead-letter replay into the stage they failed in); a source named here
   * emits them (and routes `failed` to its error output) instead of reading its service
   * (`sluice test`). Sources not named read nothing.
   */
  inject?: Injection[];
  /** Sinks are built with their `preview` (network calls replaced by `capture`), not `create`. */
  preview?: {
    capture(sink: string, write: PreviewWrite): void;
    partitions?: Readonly<Record<string, number>>;
    tables?: PreviewContext['tables'];
  };
  /** Sees every batch a stage hands to an output (`stage` or `stage.errors`), dead letters included. */
  tap?(output: string, records: readonly SluiceRecord[]): void;
}

export interface Injection {
  stage: string;
  records: RecordInit[];
  failed?: { input: RecordInit; reason: string }[];
}

export interface RunResult {
  ok: boolean;
  /** Set when the pipeline failed: the first fatal error. */
  error?: string;
  /** True when draining took longer than shutdown_timeout and in-flight work was abandoned. */
  timedOut: boolean;
  /** Records routed to error outputs or dead letters (a record failing twice counts twice). */
  errorRecords: number;
  /** Of those, records written to dead-letter files. */
  deadLettered: number;
  /** Source batches neither delivered nor failed at exit (a drain cut short): redelivered on restart. */
  unacked: number;
  /** Where dead letters of this pipeline are kept. */
  deadLetterDir: string;
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
  /** Records retried since the last retry WARN. */
  retryWarnCount: number;
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
  private readonly deadLetters: DeadLetterWriter;
  private readonly lastRetryWarn = new Map<string, number>();
  private errorRecords = 0;
  private deadLettered = 0;
  /** Source batches handed downstream whose acks are not all in. */
  private unsettled = 0;
  /** Records fed into stages instead of running the sources (replay, `sluice test`). */
  private readonly injections: Injection[];

  constructor(spec: PipelineSpec, opts: RunOptions) {
    this.spec = spec;
    this.opts = opts;
    this.log =
      opts.log ??
      pino({ level: 'warn', base: { pipeline: spec.name } }, pino.destination({ fd: 2, sync: true }));
    this.metrics = opts.metrics ?? new MetricsRegistry(spec.name);
    this.store = opts.checkpointStore ?? new FileCheckpointStore(opts.stateDir, spec.name);
    this.deadLetters = new DeadLetterWriter(opts.stateDir, spec.name);
    this.injections = opts.inject ?? [];
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
      // Injected records feed this stage's input as one more writer.
      const input = new Channel(capacity, writersOf(s) + (this.injectionOf(s.name) ? 1 : 0));
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
          sink: this.createSink(def, s, ctx),
          metrics,
          input,
          batching,
          byPartition: policy.byPartition ?? false,
          maxRecordBytes: policy.limits?.max_record_bytes,
          maxInFlight: Math.min(s.maxInFlight, policy.maxInFlight ?? s.maxInFlight),
          retryWarnCount: 0,
        });
      }
    }
  }

  private injectionOf(stage: string): Injection | undefined {
    return this.injections.find((i) => i.stage === stage);
  }

  private createSink(def: SinkDefinition, s: StageSpec, ctx: StageContext): Sink {
    const preview = this.opts.preview;
    if (!preview) return def.create(s.options as never, ctx);
    if (!def.preview) throw new Error(`sink '${s.name}': type ${s.type} has no preview of its writes`);
    return def.preview(s.options as never, {
      ...ctx,
      capture: (write) => preview.capture(s.name, write),
      partitions: preview.partitions?.[s.name],
      tables: preview.tables,
    });
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
        await Promise.allSettled(this.sinks.map((x) => x.sink.close?.()));
        return {
          ...this.totals(),
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
      this.runInjections(),
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
    await this.deadLetters.close();
    if (timedOut)
      this.log.warn(
        { timeout_ms: this.spec.runtime.shutdown_timeout },
        'drain timed out: records past the last checkpoint will be delivered again on restart',
      );
    this.metrics.state = this.fatal ? 'failed' : 'stopped';
    return { ...this.totals(), ok: !this.fatal, error: this.fatal, timedOut };
  }

  private totals(): Pick<RunResult, 'errorRecords' | 'deadLettered' | 'unacked' | 'deadLetterDir'> {
    return {
      errorRecords: this.errorRecords,
      deadLettered: this.deadLettered,
      unacked: this.unsettled,
      deadLetterDir: this.deadLetters.dir,
    };
  }

  /** Feeds replayed or injected records into the input of the transforms and sinks they name. */
  private async runInjections(): Promise<void> {
    await Promise.all(
      [...this.transforms, ...this.sinks].map(async (target) => {
        const injection = this.injectionOf(target.spec.name);
        if (!injection) return;
        try {
          await this.emitAll(injection.records, (batch) => target.input.push(batch));
        } finally {
          target.input.closeWriter();
        }
      }),
    );
  }

  /** Turns inits into records in source-sized batches, each with its ack group, and hands them on. */
  private async emitAll(inits: RecordInit[], push: (batch: Batch) => Promise<void>): Promise<void> {
    const size = this.spec.runtime.batch_size;
    for (let at = 0; at < inits.length; at += size) {
      const chunk = inits.slice(at, at + size);
      const group = this.ackGroup(chunk.length);
      this.produced += chunk.length;
      await push(chunk.map((r) => toRecord(r, group)));
    }
  }

  /** An ack group counted until it settles, so the run knows what was never acked. */
  private ackGroup(count: number, onAck?: (error?: Error) => void): AckGroup {
    this.unsettled++;
    return new AckGroup(count, (error) => {
      this.unsettled--;
      onAck?.(error);
    });
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
          .then(() => {
            s.metrics.checkpointAt = s.scope.lastWrittenAt;
          })
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
    const ctx: SourceContext = {
      signal: node.abort.signal,
      checkpoints: node.scope,
      emit: async (inits, onAck) => {
        if (inits.length === 0) {
          onAck?.();
          return;
        }
        const group = this.ackGroup(inits.length, onAck);
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
        const record = toRecord(input, this.ackGroup(1, onAck));
        await this.routeErrors(spec, metrics, [[record, reason]]);
      },
    };
    try {
      const injection = this.injectionOf(spec.name);
      if (this.injections.length === 0) await node.source.run(ctx);
      else if (injection) {
        await this.emitAll(injection.records, (batch) => this.publish(spec.name, batch, metrics));
        for (const f of injection.failed ?? []) await ctx.fail(f.input, f.reason);
      }
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
        if (batchFailures.length > 0) await this.routeErrors(spec, metrics, batchFailures);
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

  /**
   * Reads a sink's channel into buffers (per partition for object sinks) and writes them out.
   * Every record the sink holds — buffered, flushed and waiting for a write slot, being written or
   * retried — counts against one bound (records and bytes); at the bound the loop stops reading,
   * so the channel fills and the pressure goes back to the source. Age flushes only move a buffer
   * to the queue of flushed batches: nothing is ever held outside the count.
   */
  private async runSink(node: SinkNode): Promise<void> {
    const { spec, metrics, input, batching } = node;
    type Buffer = { records: SluiceRecord[]; bytes: number; startedAt: number; timer?: NodeJS.Timeout };
    const buffers = new Map<string, Buffer>();
    const flushed: SinkBatch[] = [];
    const inFlight = new Set<Promise<void>>();
    let seq = 0;
    let heldBytes = 0;
    const maxHeld = Math.max(batching.max_records, batching.max_total_records ?? DEFAULT_MAX_TOTAL_RECORDS);
    const maxHeldBytes = Math.max(
      batching.max_bytes * (node.maxInFlight + 1),
      batching.max_total_bytes ?? DEFAULT_MAX_TOTAL_BYTES,
    );
    metrics.heldLimit = maxHeld;
    let wake: (() => void) | undefined;
    const changed = () => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    const nextChange = () => new Promise<void>((resolve) => (wake = resolve));

    const startWrites = (): void => {
      while (inFlight.size < node.maxInFlight && flushed.length > 0) {
        const batch = flushed.shift() as SinkBatch;
        const p = this.writeBatch(node, batch).finally(() => {
          inFlight.delete(p);
          metrics.holding(-batch.records.length);
          heldBytes -= batch.bytes;
          startWrites();
          changed();
        });
        inFlight.add(p);
      }
    };
    const flush = (key: string): void => {
      const buf = buffers.get(key);
      if (!buf) return;
      buffers.delete(key);
      if (buf.timer) clearTimeout(buf.timer);
      flushed.push({
        records: buf.records,
        partition: node.byPartition ? key : undefined,
        startedAt: buf.startedAt,
        bytes: buf.bytes,
        seq: seq++,
      });
      startWrites();
    };
    /**
     * Waits until a record of `bytes` fits under the bound (always when nothing is held) and no
     * flushed batch waits for a write slot.
     */
    const room = async (bytes: number): Promise<void> => {
      const full = () =>
        flushed.length > 0 ||
        (metrics.held > 0 && (metrics.held + 1 > maxHeld || heldBytes + bytes > maxHeldBytes));
      while (full()) {
        // Free the write slots' worth of buffered records first: holding a full bound in
        // buffers while no write runs would wait forever.
        if (flushed.length === 0 && inFlight.size < node.maxInFlight && buffers.size > 0) {
          flush(largestBuffer(buffers));
          continue;
        }
        await nextChange();
      }
    };

    for (;;) {
      // A flushed batch waiting means every write slot is busy: read no further until it got one.
      while (flushed.length > 0) await nextChange();
      const batch = await input.pull();
      if (!batch) break;
      metrics.received(batch.length, sumBytes(batch));
      for (let i = 0; i < batch.length; i++) {
        const r = batch[i];
        if (node.maxRecordBytes !== undefined && r.size > node.maxRecordBytes) {
          const reason = `record of ${r.size} bytes exceeds the ${spec.type} limit of ${node.maxRecordBytes} bytes`;
          await this.routeErrors(spec, metrics, [[r, reason]]);
          continue;
        }
        // Synchronous per record while under the bound and no flushed batch waits; awaits only then.
        if (flushed.length > 0 || metrics.held + 1 > maxHeld || heldBytes + r.size > maxHeldBytes)
          await room(r.size);
        const key = node.byPartition ? (r.partition ?? '_') : '';
        let buf = buffers.get(key);
        if (buf !== undefined && buf.bytes + r.size > batching.max_bytes) {
          flush(key);
          buf = undefined;
        }
        if (buf === undefined) {
          buf = { records: [], bytes: 0, startedAt: clock().now() };
          buffers.set(key, buf);
          // Under a fixed clock time does not pass: buffers flush on size and at the end only.
          if (!clock().fixed) buf.timer = setTimeout(() => flush(key), batching.max_age);
        }
        buf.records.push(r);
        buf.bytes += r.size;
        heldBytes += r.size;
        metrics.holding(1);
        if (buf.records.length >= batching.max_records || buf.bytes >= batching.max_bytes) flush(key);
      }
    }
    for (const key of [...buffers.keys()]) flush(key);
    while (flushed.length > 0 || inFlight.size > 0) await nextChange();
    for (const c of this.readers.get(`${spec.name}.errors`) ?? []) c.closeWriter();
  }

  /**
   * Writes one batch until every record is durable or failed for good. Transient failures are
   * retried with backoff (by default without end: an outage is waited out); a record the sink
   * rejects goes to the error output at once; a whole batch failing for a reason that is not
   * transient is split in halves until the records that fail are alone, so one poison record
   * never takes its batch with it.
   */
  private async writeBatch(node: SinkNode, batch: SinkBatch): Promise<void> {
    const { spec, metrics, sink } = node;
    let records = batch.records;
    let firstFailureAt = 0;
    for (let attempt = 1; ; attempt++) {
      const t0 = performance.now();
      let failed: RecordFailure[];
      try {
        const result = await sink.write({ ...batch, records, bytes: sumBytes(records) });
        failed = result?.failed ?? [];
      } catch (err) {
        if (!isTransient(err)) {
          metrics.batchTook(performance.now() - t0);
          return this.isolate(node, batch, records, err as Error);
        }
        const reason = (err as Error).message;
        failed = records.map((_, index) => ({ index, reason, retryable: true }));
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
      if (ok > 0) metrics.delivered(ok, okBytes);
      if (failed.length === 0) return;
      const permanent: [SluiceRecord, string][] = [];
      const again: RecordFailure[] = [];
      for (const f of failed) {
        if (!f.retryable) permanent.push([records[f.index], f.reason]);
        else again.push(f);
      }
      if (again.length > 0) {
        firstFailureAt ||= Date.now();
        const exhausted = retryExhausted(spec.retry, attempt, firstFailureAt);
        if (exhausted) {
          for (const f of again) permanent.push([records[f.index], `${exhausted}: ${f.reason}`]);
          again.length = 0;
        }
      }
      if (permanent.length > 0) await this.routeErrors(spec, metrics, permanent);
      if (again.length === 0) return;
      if (this.stopped.signal.aborted) return; // abandoned at the drain deadline: never acked, redelivered on restart
      metrics.retried(again.length);
      metrics.retrying(again[0].reason);
      this.warnRetrying(node, again.length, again[0].reason, attempt);
      await waitBackoff(spec.retry, attempt, this.stopped.signal);
      if (this.stopped.signal.aborted) return;
      records = again.map((f) => records[f.index]);
    }
  }

  /** A batch failed as a whole, not transiently: halves are written on their own until the culprits are alone. */
  private async isolate(
    node: SinkNode,
    batch: SinkBatch,
    records: SluiceRecord[],
    err: Error,
  ): Promise<void> {
    if (records.length === 1) {
      await this.routeErrors(node.spec, node.metrics, [[records[0], err.message]]);
      return;
    }
    node.metrics.count('bisections');
    const half = Math.ceil(records.length / 2);
    // One after the other, so an ordered sink keeps its order.
    await this.writeBatch(node, { ...batch, records: records.slice(0, half) });
    await this.writeBatch(node, { ...batch, records: records.slice(half) });
  }

  /** At most one WARN per sink every few seconds while it waits out an outage, with the count. */
  private warnRetrying(node: SinkNode, records: number, reason: string, attempt: number): void {
    const now = Date.now();
    const last = this.lastRetryWarn.get(node.spec.name) ?? 0;
    node.retryWarnCount += records;
    if (now - last < RETRY_WARN_INTERVAL) return;
    this.lastRetryWarn.set(node.spec.name, now);
    const h = node.metrics.health;
    this.log.warn(
      {
        stage: node.spec.name,
        reason,
        attempt,
        retried_records: node.retryWarnCount,
        held: node.metrics.held,
        retrying_for_s: h.since ? Math.round((now - h.since) / 1000) : 0,
        last_success_s_ago: h.lastSuccessAt ? Math.round((now - h.lastSuccessAt) / 1000) : undefined,
      },
      `sink ${node.spec.name} is retrying a transient failure; its records are held and its input waits`,
    );
    node.retryWarnCount = 0;
  }

  // ------------------------------------------------------------ routing

  /** Fans a batch out to every reader of `output`; each extra copy joins the record's ack group. */
  private async publish(output: string, batch: Batch, metrics: StageMetrics): Promise<void> {
    this.opts.tap?.(output, batch);
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
   * Sends records that failed for good to `<stage>.errors`, as bounded copies that cannot fail to
   * encode. Unwired, they go to the stage's dead-letter file and are acked once it is synced:
   * nothing stalls the source's checkpoint and nothing is lost. `on_error: stop` fails the run.
   */
  private async routeErrors(
    spec: StageSpec,
    metrics: StageMetrics,
    failures: [SluiceRecord, string][],
  ): Promise<void> {
    for (const [, reason] of failures) metrics.failed(reason);
    this.errorRecords += failures.length;
    if (spec.onError === 'stop') {
      this.fail(`${spec.kind} '${spec.name}': ${failures[0][1]} (on_error: stop)`);
      for (const [r, reason] of failures) r.ack.reject(new Error(reason));
      return;
    }
    const output = `${spec.name}.errors`;
    const at = new Date(clock().now()).toISOString();
    if (!this.readers.get(output)?.length) {
      const letters = failures.map(([r, reason]) => errorValue(spec.name, r, reason, at, DEAD_LETTER_LIMITS));
      this.opts.tap?.(
        output,
        failures.map(([r], i) => ({ ...r, value: letters[i] })),
      );
      this.logErrorOnce(spec, failures[0][0], failures[0][1]);
      try {
        await this.deadLetters.write(spec.name, letters);
      } catch (err) {
        // Nowhere to put them: they stay unacked (redelivered after a restart) and the run fails.
        const message = `cannot write dead letters of '${spec.name}' under ${this.deadLetters.dir}: ${(err as Error).message}`;
        this.fail(message);
        for (const [r] of failures) r.ack.reject(new Error(message));
        return;
      }
      metrics.deadLetters(failures.length);
      this.deadLettered += failures.length;
      for (const [r] of failures) r.ack.resolve();
      return;
    }
    const batch: Batch = failures.map(([r, reason]) => ({
      ...r,
      value: errorValue(spec.name, r, reason, at, ERROR_OUTPUT_LIMITS),
      partition: spec.name,
    }));
    await this.publish(output, batch, metrics);
  }

  private logErrorOnce(spec: StageSpec, r: SluiceRecord, reason: string): void {
    const kind = `${spec.name}:${reason
      .replace(/\d+/g, '#')
      .replace(/'[^']*'/g, "'…'")
      .slice(0, 80)}`;
    if (this.loggedErrorKinds.has(kind) || this.loggedErrorKinds.size > 1000) return;
    this.loggedErrorKinds.add(kind);
    this.log.warn(
      {
        stage: spec.name,
        reason,
        sample: truncate(r.value),
        position: r.position,
        dead_letters: this.deadLetters.dir,
        wire: `${spec.name}.errors`,
      },
      `records failed in ${spec.name} and ${spec.name}.errors is not wired: they go to its dead letters (sluice dead-letter ls); further errors of this kind are only counted`,
    );
  }
}

/** The record of an error output or a dead letter: always encodable, bounded in depth and size. */
function errorValue(
  stage: string,
  r: SluiceRecord,
  reason: string,
  at: string,
  limits: SafeValueLimits,
): ErrorValue {
  const copy = safeValue(r.value, limits);
  const meta = safeValue(r.meta, META_LIMITS);
  const out: ErrorValue = {
    stage,
    reason: reason.length > 4096 ? `${reason.slice(0, 4096)}…` : reason,
    at,
    value: copy.value,
    meta: meta.value as ErrorValue['meta'],
  };
  if (r.position !== undefined) out.position = r.position;
  if (r.key !== undefined) out.key = r.key;
  if (r.partition !== undefined) out.partition = r.partition;
  if (r.time !== undefined) out.time = r.time;
  if (copy.truncated || meta.truncated) out.truncated = true;
  return out;
}

/** Dead letters are kept for replay: a larger budget than error outputs, which feed other sinks. */
const DEAD_LETTER_LIMITS: SafeValueLimits = { maxDepth: 64, maxBytes: 16 * 1024 * 1024 };
const META_LIMITS: SafeValueLimits = { maxDepth: 8, maxBytes: 64 * 1024 };
const RETRY_WARN_INTERVAL = 5000;
/** Default bound on bytes a sink holds. */
const DEFAULT_MAX_TOTAL_BYTES = 64 * 1024 * 1024;

/**
 * Whether a whole-batch failure should be waited out. Stages say so with `retryable`; otherwise
 * errors of encoding and of code (RangeError, TypeError, SyntaxError) are about the data in
 * hand, and everything else (network, service, access) is transient.
 */
function isTransient(err: unknown): boolean {
  const retryable = (err as { retryable?: unknown } | undefined)?.retryable;
  if (retryable === true || retryable === false) return retryable;
  if (err instanceof TypeError && (err as Error).cause !== undefined) return true; // fetch's network failures
  return !(err instanceof RangeError || err instanceof TypeError || err instanceof SyntaxError);
}

function toRecord(r: RecordInit, ack: AckGroup): SluiceRecord {
  return {
    value: r.value,
    meta: r.meta ?? {},
    key: r.key,
    time: r.time,
    partition: r.partition,
    position: r.position,
    size: r.size ?? 0,
    ack,
  };
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
