/**
 * The one metrics registry. Every counter the plain output, the TUI and Prometheus show is
 * named here; stages update them through these methods only. Hot-path updates are plain
 * field increments; snapshots copy numbers out.
 */
import type { StageKind } from '../stages/kind.ts';

export interface StageSnapshot {
  name: string;
  kind: StageKind;
  type: string;
  inputs: string[];
  recordsIn: number;
  recordsOut: number;
  bytesIn: number;
  bytesOut: number;
  errors: number;
  dropped: number;
  duplicates: number;
  retries: number;
  /** Input channel fill, 0..1 (sources: fill of their output). */
  queueFill: number;
  /** Mean latency of the last batches (sink write, transform process), ms. */
  batchLatencyMs: number;
  /** Every batch's latency counted in fixed buckets (`BATCH_LATENCY_BUCKETS_MS`), for histograms. */
  batchLatency?: LatencyHistogram;
  /** Source lag in its own unit (Kinesis ms behind latest, Kafka records), total over partitions. */
  lag: number | undefined;
  lagUnit: string | undefined;
  lagByPartition: Record<string, number>;
  /** Sink-specific counters, e.g. objects or files written, SNS requests in flight. */
  extra: Record<string, number>;
  lastErrors: ErrorSample[];
  /** Failed records written to this stage's dead-letter files (its error output was not wired). */
  deadLettered: number;
  /** Sinks: records held at once (buffers, waiting for a write, being written or retried). */
  held: number;
  heldPeak: number;
  heldLimit: number;
  /** Sinks: `retrying` while a transient failure is being waited out. */
  health: SinkHealth;
  /** Sources: epoch ms when their checkpoint was last written. */
  checkpointAt?: number;
}

/**
 * Upper bounds (ms) of the batch latency buckets: fixed and few, so counting a batch is a short
 * scan and one increment.
 */
export const BATCH_LATENCY_BUCKETS_MS: readonly number[] = [
  1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000,
];

export interface LatencyHistogram {
  /** Batches per bucket of `BATCH_LATENCY_BUCKETS_MS` (not cumulative); the last entry counts those above every bound. */
  counts: number[];
  sumMs: number;
  count: number;
}

export interface SinkHealth {
  state: 'ok' | 'retrying';
  /** The last transient failure, while retrying. */
  reason?: string;
  /** Epoch ms of the first failure of the current retry spell. */
  since?: number;
  /** Epoch ms of the last successful write. */
  lastSuccessAt?: number;
}

export interface ErrorSample {
  at: number;
  stage: string;
  reason: string;
}

export class StageMetrics {
  readonly name: string;
  readonly kind: StageKind;
  readonly type: string;
  /** Replaced when a hot reload rewires the stage. */
  inputs: string[];
  recordsIn = 0;
  recordsOut = 0;
  bytesIn = 0;
  bytesOut = 0;
  errors = 0;
  dropped = 0;
  duplicates = 0;
  retries = 0;
  batchLatencyMs = 0;
  private readonly latencyCounts = new Array<number>(BATCH_LATENCY_BUCKETS_MS.length + 1).fill(0);
  private latencySumMs = 0;
  private latencyCount = 0;
  /** Sources: epoch ms when the engine last wrote their checkpoint. */
  checkpointAt: number | undefined;
  lagUnit: string | undefined;
  readonly lagByPartition = new Map<string, number>();
  readonly extra = new Map<string, number>();
  readonly lastErrors: ErrorSample[] = [];
  deadLettered = 0;
  held = 0;
  heldPeak = 0;
  heldLimit = 0;
  health: SinkHealth = { state: 'ok' };
  /** Set once a sink reports the bytes it wrote: it then owns bytesOut. */
  private bytesOwned = false;
  queueFill: () => number = () => 0;
  private readonly onError: ((s: ErrorSample) => void) | undefined;

  constructor(
    name: string,
    kind: StageKind,
    type: string,
    inputs: string[],
    onError?: (s: ErrorSample) => void,
  ) {
    this.name = name;
    this.kind = kind;
    this.type = type;
    this.inputs = inputs;
    this.onError = onError;
  }

  received(records: number, bytes: number): void {
    this.recordsIn += records;
    this.bytesIn += bytes;
  }

  sent(records: number, bytes: number): void {
    this.recordsOut += records;
    this.bytesOut += bytes;
  }

  /**
   * Records a sink made durable. Its bytes out are the record sizes, unless the sink reports the
   * bytes it actually wrote through `wrote`: one owner per counter, never both.
   */
  delivered(records: number, bytes: number): void {
    this.recordsOut += records;
    if (!this.bytesOwned) this.bytesOut += bytes;
    const h = this.health;
    h.state = 'ok';
    h.reason = undefined;
    h.since = undefined;
    h.lastSuccessAt = Date.now();
  }

  /** Bytes a sink wrote (encoded, compressed): what left the process. */
  wrote(bytes: number): void {
    this.bytesOwned = true;
    this.bytesOut += bytes;
  }

  /** A transient failure: the sink waits it out, holding its records. */
  retrying(reason: string): void {
    const since = this.health.state === 'retrying' ? this.health.since : Date.now();
    this.health = { state: 'retrying', reason, since, lastSuccessAt: this.health.lastSuccessAt };
  }

  /** Records held by a sink moved by `delta`. */
  holding(delta: number): void {
    this.held += delta;
    if (this.held > this.heldPeak) this.heldPeak = this.held;
  }

  deadLetters(n: number): void {
    this.deadLettered += n;
  }

  failed(reason: string, n = 1): void {
    this.errors += n;
    const sample = { at: Date.now(), stage: this.name, reason };
    this.lastErrors.push(sample);
    if (this.lastErrors.length > 20) this.lastErrors.shift();
    this.onError?.(sample);
  }

  droppedRecords(n: number): void {
    this.dropped += n;
  }

  duplicateRecords(n: number): void {
    this.duplicates += n;
  }

  retried(n = 1): void {
    this.retries += n;
  }

  /** Exponentially weighted, so the figure follows recent batches without keeping a history. */
  batchTook(ms: number): void {
    this.batchLatencyMs = this.batchLatencyMs === 0 ? ms : this.batchLatencyMs * 0.8 + ms * 0.2;
    let i = 0;
    while (i < BATCH_LATENCY_BUCKETS_MS.length && ms > BATCH_LATENCY_BUCKETS_MS[i]) i++;
    this.latencyCounts[i]++;
    this.latencySumMs += ms;
    this.latencyCount++;
  }

  setLag(partition: string, value: number, unit: string): void {
    this.lagUnit = unit;
    this.lagByPartition.set(partition, value);
  }

  clearLag(partition: string): void {
    this.lagByPartition.delete(partition);
  }

  count(name: string, n = 1): void {
    this.extra.set(name, (this.extra.get(name) ?? 0) + n);
  }

  gauge(name: string, value: number): void {
    this.extra.set(name, value);
  }

  snapshot(): StageSnapshot {
    let lag: number | undefined;
    for (const v of this.lagByPartition.values()) lag = (lag ?? 0) + v;
    return {
      name: this.name,
      kind: this.kind,
      type: this.type,
      inputs: this.inputs,
      recordsIn: this.recordsIn,
      recordsOut: this.recordsOut,
      bytesIn: this.bytesIn,
      bytesOut: this.bytesOut,
      errors: this.errors,
      dropped: this.dropped,
      duplicates: this.duplicates,
      retries: this.retries,
      queueFill: this.queueFill(),
      batchLatencyMs: this.batchLatencyMs,
      batchLatency: { counts: [...this.latencyCounts], sumMs: this.latencySumMs, count: this.latencyCount },
      lag,
      lagUnit: this.lagUnit,
      lagByPartition: Object.fromEntries(this.lagByPartition),
      extra: Object.fromEntries(this.extra),
      lastErrors: [...this.lastErrors],
      deadLettered: this.deadLettered,
      held: this.held,
      heldPeak: this.heldPeak,
      heldLimit: this.heldLimit,
      health: { ...this.health },
      checkpointAt: this.checkpointAt,
    };
  }
}

export type PipelineState = 'starting' | 'running' | 'draining' | 'stopped' | 'failed';

export interface PipelineSnapshot {
  pipeline: string;
  state: PipelineState;
  startedAt: number;
  at: number;
  stages: StageSnapshot[];
  /** Where logs go while a screen UI owns the terminal. */
  logFile?: string;
  /** A line the live view shows under its header (`sluice top` when the endpoint is unreachable). */
  notice?: string;
}

export class MetricsRegistry {
  readonly pipeline: string;
  readonly startedAt = Date.now();
  logFile: string | undefined;
  /** Shown under the live view's header: a hot reload that failed, with the reason. */
  notice: string | undefined;
  private current: PipelineState = 'starting';
  private readonly stateListeners: ((s: PipelineState) => void)[] = [];
  private stages: StageMetrics[] = [];
  /** Stages of the pipeline before a hot reload, continued by the next one when it has them. */
  private previous = new Map<string, StageMetrics>();
  private readonly errorListeners: ((s: ErrorSample) => void)[] = [];

  constructor(pipeline: string) {
    this.pipeline = pipeline;
  }

  get state(): PipelineState {
    return this.current;
  }

  set state(state: PipelineState) {
    this.current = state;
    for (const l of this.stateListeners) l(state);
  }

  onState(listener: (s: PipelineState) => void): void {
    this.stateListeners.push(listener);
  }

  /**
   * A hot reload builds the pipeline again on this registry: a stage of the same name, kind and
   * type goes on counting (totals, rates and Prometheus counters run on), the others start
   * from zero, and stages the new spec lacks are no longer shown.
   */
  rebuilding(): void {
    for (const s of this.stages) this.previous.set(s.name, s);
    this.stages = [];
  }

  stage(name: string, kind: StageKind, type: string, inputs: string[] = []): StageMetrics {
    const before = this.previous.get(name);
    this.previous.delete(name);
    if (before && before.kind === kind && before.type === type) {
      before.inputs = inputs;
      before.health = { state: 'ok', lastSuccessAt: before.health.lastSuccessAt };
      this.stages.push(before);
      return before;
    }
    const m = new StageMetrics(name, kind, type, inputs, (s) => {
      for (const l of this.errorListeners) l(s);
    });
    this.stages.push(m);
    return m;
  }

  onError(listener: (s: ErrorSample) => void): void {
    this.errorListeners.push(listener);
  }

  snapshot(): PipelineSnapshot {
    return {
      pipeline: this.pipeline,
      state: this.state,
      startedAt: this.startedAt,
      at: Date.now(),
      stages: this.stages.map((s) => s.snapshot()),
      logFile: this.logFile,
      notice: this.notice,
    };
  }
}
