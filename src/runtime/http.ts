/**
 * The operations endpoint of a running pipeline: Prometheus metrics (`/metrics`), probes for
 * orchestrators (`/ready`, `/live`) and the JSON snapshot the live view draws (`/stats`, read by
 * `sluice top`). Everything is read from the pipeline's one metrics registry when a request
 * arrives: the hot path keeps its plain field increments and pays nothing for a scraper.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, type MetricType, Registry } from 'prom-client';
import type { ListenAddress } from './listen.ts';
import {
  BATCH_LATENCY_BUCKETS_MS,
  type MetricsRegistry,
  type PipelineSnapshot,
  type PipelineState,
  type StageSnapshot,
} from './metrics.ts';

// The address helpers live apart so the command line can parse addresses without loading prom-client.
export { DEFAULT_HTTP_ADDRESS, type ListenAddress, parseListenAddress } from './listen.ts';

// ------------------------------------------------------------------ readiness

export interface Readiness {
  ready: boolean;
  state: PipelineState;
  /** Why it is not ready, or `running`. */
  reason: string;
  /** Sinks waiting out a transient failure, with the failure. */
  retrying?: { stage: string; reason: string | undefined; since: number | undefined }[];
}

/**
 * Ready once the engine opened every sink and started every source (state `running`) and no
 * sink is waiting out a failure: a load balancer or a rollout then knows the pipeline moves data.
 */
export function readiness(snap: PipelineSnapshot): Readiness {
  const { state } = snap;
  if (state === 'starting') return { ready: false, state, reason: 'starting: opening sinks' };
  if (state !== 'running') return { ready: false, state, reason: state };
  const retrying = snap.stages
    .filter((s) => s.health.state === 'retrying')
    .map((s) => ({ stage: s.name, reason: s.health.reason, since: s.health.since }));
  if (retrying.length > 0) {
    const names = retrying.map((r) => r.stage).join(', ');
    return { ready: false, state, reason: `sink retrying a transient failure: ${names}`, retrying };
  }
  return { ready: true, state, reason: 'running' };
}

// ------------------------------------------------------------------ Prometheus

type StageLabel = 'pipeline' | 'stage' | 'kind' | 'type';
const STAGE_LABELS: StageLabel[] = ['pipeline', 'stage', 'kind', 'type'];
type Kinds = readonly StageSnapshot['kind'][];
const ALL: Kinds = ['source', 'transform', 'sink'];
const READERS: Kinds = ['transform', 'sink'];

interface StageSeries {
  name: string;
  help: string;
  kinds: Kinds;
  /** undefined: no sample for this stage (nothing measured yet). */
  value(s: StageSnapshot, at: number): number | undefined;
}

const STAGE_COUNTERS: StageSeries[] = [
  {
    name: 'sluice_stage_received_records_total',
    help: 'Records a stage read from its inputs',
    kinds: READERS,
    value: (s) => s.recordsIn,
  },
  {
    name: 'sluice_stage_received_bytes_total',
    help: 'Bytes of the records a stage read from its inputs',
    kinds: READERS,
    value: (s) => s.bytesIn,
  },
  {
    name: 'sluice_stage_sent_records_total',
    help: 'Records a source emitted or a transform passed on; for a sink, records made durable',
    kinds: ALL,
    value: (s) => s.recordsOut,
  },
  {
    name: 'sluice_stage_sent_bytes_total',
    help: 'Bytes a stage passed on; for a sink, the bytes it wrote',
    kinds: ALL,
    value: (s) => s.bytesOut,
  },
  {
    name: 'sluice_stage_failed_records_total',
    help: 'Records that failed for good in a stage (to its error output or dead letters)',
    kinds: ALL,
    value: (s) => s.errors,
  },
  {
    name: 'sluice_stage_dropped_records_total',
    help: 'Records removed on purpose (filtered, or an output nothing reads)',
    kinds: ALL,
    value: (s) => s.dropped,
  },
  {
    name: 'sluice_stage_duplicate_records_total',
    help: 'Records removed as duplicates',
    kinds: ['transform'],
    value: (s) => s.duplicates,
  },
  {
    name: 'sluice_stage_dead_lettered_records_total',
    help: 'Failed records written to the dead-letter files (the error output was not wired)',
    kinds: ALL,
    value: (s) => s.deadLettered,
  },
  {
    name: 'sluice_sink_retried_records_total',
    help: 'Record writes retried after a transient failure',
    kinds: ['sink'],
    value: (s) => s.retries,
  },
];

const seconds = (ms: number): number => ms / 1000;

const STAGE_GAUGES: StageSeries[] = [
  {
    name: 'sluice_stage_queue_fill_ratio',
    help: 'Fill of the stage input channel, 0 to 1 (sources: of their output)',
    kinds: ALL,
    value: (s) => s.queueFill,
  },
  {
    name: 'sluice_sink_held_records',
    help: 'Records a sink holds: buffered, waiting for a write, being written or retried',
    kinds: ['sink'],
    value: (s) => s.held,
  },
  {
    name: 'sluice_sink_held_limit_records',
    help: 'The bound on records a sink holds; at it the sink stops reading',
    kinds: ['sink'],
    value: (s) => s.heldLimit,
  },
  {
    name: 'sluice_sink_retrying',
    help: '1 while a sink waits out a transient failure, else 0',
    kinds: ['sink'],
    value: (s) => (s.health.state === 'retrying' ? 1 : 0),
  },
  {
    name: 'sluice_sink_last_success_age_seconds',
    help: 'Seconds since the sink last wrote successfully (absent before its first write)',
    kinds: ['sink'],
    value: (s, at) =>
      s.health.lastSuccessAt === undefined ? undefined : seconds(at - s.health.lastSuccessAt),
  },
  {
    name: 'sluice_source_checkpoint_age_seconds',
    help: 'Seconds since the source checkpoint was last written (absent before the first write)',
    kinds: ['source'],
    value: (s, at) => (s.checkpointAt === undefined ? undefined : seconds(at - s.checkpointAt)),
  },
];

/** Source lag per shard or partition, one metric per unit the sources report. */
const LAG_UNITS: { unit: string; name: string; help: string; scale: (v: number) => number }[] = [
  {
    unit: 'ms',
    name: 'sluice_source_lag_seconds',
    help: 'How far a shard reader is behind the stream tip (Kinesis MillisBehindLatest)',
    scale: seconds,
  },
  {
    unit: 'records',
    name: 'sluice_source_lag_records',
    help: 'Records a partition reader is behind the log end (Kafka consumer lag)',
    scale: (v) => v,
  },
];

const STATES: PipelineState[] = ['starting', 'running', 'draining', 'stopped', 'failed'];
const BATCH_HISTOGRAM = 'sluice_stage_batch_duration_seconds';
const BATCH_HISTOGRAM_HELP = 'Time a transform took to process a batch, or a sink to write one';

/**
 * The batch latency histogram of every stage, read from the fixed buckets `StageMetrics` counts
 * per batch. prom-client's Histogram only learns values one `observe` at a time; here the counts
 * already exist, so the values it exposes are built from them at scrape time.
 */
class BatchDurations extends Histogram<StageLabel | 'le'> {
  private readonly read: () => PipelineSnapshot;

  constructor(registry: Registry, read: () => PipelineSnapshot) {
    super({
      name: BATCH_HISTOGRAM,
      help: BATCH_HISTOGRAM_HELP,
      labelNames: STAGE_LABELS,
      buckets: BATCH_LATENCY_BUCKETS_MS.map(seconds),
      registers: [registry],
    });
    this.read = read;
  }

  override async get(): ReturnType<Histogram<StageLabel | 'le'>['get']> {
    const snap = this.read();
    const values = [];
    for (const s of snap.stages) {
      const h = s.batchLatency;
      if (s.kind === 'source' || !h) continue;
      const labels = stageLabels(snap, s);
      let cumulative = 0;
      for (let i = 0; i < BATCH_LATENCY_BUCKETS_MS.length; i++) {
        cumulative += h.counts[i];
        const le = seconds(BATCH_LATENCY_BUCKETS_MS[i]);
        values.push({
          metricName: `${BATCH_HISTOGRAM}_bucket`,
          labels: { ...labels, le },
          value: cumulative,
        });
      }
      values.push({
        metricName: `${BATCH_HISTOGRAM}_bucket`,
        labels: { ...labels, le: '+Inf' },
        value: h.count,
      });
      values.push({ metricName: `${BATCH_HISTOGRAM}_sum`, labels, value: seconds(h.sumMs) });
      values.push({ metricName: `${BATCH_HISTOGRAM}_count`, labels, value: h.count });
    }
    // The type is an enum in prom-client's declarations but the string at run time.
    return {
      name: BATCH_HISTOGRAM,
      help: BATCH_HISTOGRAM_HELP,
      type: 'histogram' as unknown as MetricType,
      aggregator: 'sum',
      values,
      collect: () => undefined,
    };
  }

  /** What the registry calls to write the text format. */
  getForPromString(): ReturnType<Histogram<StageLabel | 'le'>['get']> {
    return this.get();
  }
}

function stageLabels(snap: PipelineSnapshot, s: StageSnapshot): Record<StageLabel, string> {
  return { pipeline: snap.pipeline, stage: s.name, kind: s.kind, type: s.type };
}

/**
 * A prom-client registry whose metrics are set from one snapshot of the pipeline per scrape, so
 * the numbers of one exposition belong together.
 */
export class PrometheusExposition {
  readonly registry = new Registry();
  private readonly metrics: MetricsRegistry;
  private snap: PipelineSnapshot;

  constructor(metrics: MetricsRegistry) {
    this.metrics = metrics;
    this.snap = metrics.snapshot();
    const read = (): PipelineSnapshot => this.snap;
    const registers = [this.registry];
    for (const def of STAGE_COUNTERS) {
      new Counter({
        name: def.name,
        help: def.help,
        labelNames: STAGE_LABELS,
        registers,
        collect() {
          this.reset();
          eachStage(read(), def, (labels, v) => this.inc(labels, v));
        },
      });
    }
    for (const def of STAGE_GAUGES) {
      new Gauge({
        name: def.name,
        help: def.help,
        labelNames: STAGE_LABELS,
        registers,
        collect() {
          this.reset();
          eachStage(read(), def, (labels, v) => this.set(labels, v));
        },
      });
    }
    for (const lag of LAG_UNITS) {
      new Gauge({
        name: lag.name,
        help: lag.help,
        labelNames: [...STAGE_LABELS, 'partition'],
        registers,
        collect() {
          this.reset();
          const snap = read();
          for (const s of snap.stages) {
            if (s.kind !== 'source' || s.lagUnit !== lag.unit) continue;
            for (const [partition, v] of Object.entries(s.lagByPartition))
              this.set({ ...stageLabels(snap, s), partition }, lag.scale(v));
          }
        },
      });
    }
    new BatchDurations(this.registry, read);
    new Gauge({
      name: 'sluice_pipeline_state',
      help: '1 for the state the pipeline is in (starting, running, draining, stopped, failed), 0 for the others',
      labelNames: ['pipeline', 'state'],
      registers,
      collect() {
        const snap = read();
        for (const state of STATES)
          this.set({ pipeline: snap.pipeline, state }, snap.state === state ? 1 : 0);
      },
    });
    new Gauge({
      name: 'sluice_pipeline_ready',
      help: '1 when /ready answers 200: every sink opened, every source started, no sink retrying',
      labelNames: ['pipeline'],
      registers,
      collect() {
        const snap = read();
        this.set({ pipeline: snap.pipeline }, readiness(snap).ready ? 1 : 0);
      },
    });
    new Gauge({
      name: 'sluice_pipeline_uptime_seconds',
      help: 'Seconds since the pipeline was built',
      labelNames: ['pipeline'],
      registers,
      collect() {
        const snap = read();
        this.set({ pipeline: snap.pipeline }, seconds(snap.at - snap.startedAt));
      },
    });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The text exposition of the pipeline as it is now. */
  async text(): Promise<string> {
    this.snap = this.metrics.snapshot();
    return this.registry.metrics();
  }
}

function eachStage(
  snap: PipelineSnapshot,
  def: StageSeries,
  put: (labels: Record<StageLabel, string>, value: number) => void,
): void {
  for (const s of snap.stages) {
    if (!def.kinds.includes(s.kind)) continue;
    const v = def.value(s, snap.at);
    if (v !== undefined) put(stageLabels(snap, s), v);
  }
}

// ------------------------------------------------------------------ server

export interface OpsServer {
  /** `http://host:port`, with the port actually bound (useful with port 0). */
  url: string;
  address: ListenAddress;
  close(): Promise<void>;
}

/**
 * Serves the operations endpoint of a pipeline (anything with its metrics registry, such as a
 * `Pipeline`). Resolves once listening; rejects when the address cannot be bound.
 */
export async function startOpsServer(
  pipeline: { metrics: MetricsRegistry },
  address: ListenAddress,
): Promise<OpsServer> {
  const exposition = new PrometheusExposition(pipeline.metrics);
  const server = createServer((req, res) => {
    handle(req, res, pipeline.metrics, exposition).catch((err: Error) => {
      if (!res.headersSent) send(res, 500, { error: err.message });
      else res.destroy();
    });
  });
  // Probes must never keep a finished run alive.
  server.unref();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(address.port, address.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = server.address() as AddressInfo;
  const host = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
  return {
    url: `http://${host}:${bound.port}`,
    address: { host: bound.address, port: bound.port },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function handle(
  req: IncomingMessage,
  res: ServerResponse,
  metrics: MetricsRegistry,
  exposition: PrometheusExposition,
): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('allow', 'GET, HEAD');
    return send(res, 405, { error: `${req.method} is not allowed; use GET` });
  }
  const path = new URL(req.url ?? '/', 'http://localhost').pathname;
  switch (path) {
    case '/metrics': {
      const body = await exposition.text();
      res.writeHead(200, { 'content-type': exposition.contentType, 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : body);
      return;
    }
    case '/ready': {
      const r = readiness(metrics.snapshot());
      return send(res, r.ready ? 200 : 503, r);
    }
    case '/live': {
      // Answering at all shows the event loop turns; a failed pipeline is dead however it answers.
      const state = metrics.state;
      return send(res, state === 'failed' ? 503 : 200, { live: state !== 'failed', state });
    }
    case '/stats':
      return send(res, 200, metrics.snapshot());
    case '/':
      return send(res, 200, {
        pipeline: metrics.pipeline,
        endpoints: ['/metrics', '/ready', '/live', '/stats'],
      });
    default:
      return send(res, 404, {
        error: `no such endpoint: ${path}`,
        endpoints: ['/metrics', '/ready', '/live', '/stats'],
      });
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  res.end(`${JSON.stringify(body)}\n`);
}
