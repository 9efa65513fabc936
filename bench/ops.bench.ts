// Cost of the operations endpoint's two parts:
//
//   node bench/ops.bench.ts [seconds-per-case]
//
// 1. The hot path: `StageMetrics.batchTook` now also counts each batch in a fixed bucket
//    array. Baseline: the moving average it kept before, written by hand.
// 2. A scrape: sluice's /metrics text for a 30-stage pipeline (one snapshot, collect callbacks,
//    the histogram built from the bucket counts). Baseline: the bare prom-client with the same
//    metrics and series, its values set directly and its own histogram, then `metrics()`.

import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { PrometheusExposition } from '../src/runtime/http.ts';
import { MetricsRegistry } from '../src/runtime/metrics.ts';

const seconds = Number(process.argv[2] ?? 1);

function measure(run: () => unknown): number {
  const end = performance.now() + seconds * 1000;
  let n = 0;
  const t0 = performance.now();
  while (performance.now() < end) {
    run();
    n++;
  }
  return (performance.now() - t0) / n;
}

async function measureAsync(run: () => Promise<unknown>): Promise<number> {
  const end = performance.now() + seconds * 1000;
  let n = 0;
  const t0 = performance.now();
  while (performance.now() < end) {
    await run();
    n++;
  }
  return (performance.now() - t0) / n;
}

// ------------------------------------------------------------------ 1. per batch

const LATENCIES = Array.from({ length: 4096 }, (_, i) => (i * 7.3) % 400);
const registry = new MetricsRegistry('bench');
const stage = registry.stage('w', 'sink', 'file');
let i = 0;
const perBatchSluice = measure(() => {
  for (let k = 0; k < 1000; k++) stage.batchTook(LATENCIES[i++ & 4095]);
});
let ewma = 0;
const perBatchBaseline = measure(() => {
  for (let k = 0; k < 1000; k++) {
    const ms = LATENCIES[i++ & 4095];
    ewma = ewma === 0 ? ms : ewma * 0.8 + ms * 0.2;
  }
});
console.log(
  `batchTook: ${((perBatchSluice * 1e6) / 1000).toFixed(1)} ns/batch; moving average alone (plain JS): ${((perBatchBaseline * 1e6) / 1000).toFixed(1)} ns/batch; ratio ${(perBatchSluice / perBatchBaseline).toFixed(2)}`,
);

// ------------------------------------------------------------------ 2. per scrape

const STAGES = 30;
const kinds = ['source', 'transform', 'sink'] as const;
const pipeline = new MetricsRegistry('bench');
for (let s = 0; s < STAGES; s++) {
  const m = pipeline.stage(`stage_${s}`, kinds[s % 3], 'file');
  m.received(1_000_000 + s, 180_000_000);
  m.sent(999_000 + s, 170_000_000);
  m.failed('x', 3);
  for (let b = 0; b < 200; b++) m.batchTook(LATENCIES[b]);
  if (m.kind === 'source') for (let p = 0; p < 8; p++) m.setLag(`topic/${p}`, p * 10, 'records');
}
const exposition = new PrometheusExposition(pipeline);
const sluiceText = await exposition.text();
const perScrapeSluice = await measureAsync(() => exposition.text());

// The bare client: the same names and series, values set through its own API.
const bare = new Registry();
const labelNames = ['pipeline', 'stage', 'kind', 'type'];
const counters = [
  'received_records',
  'received_bytes',
  'sent_records',
  'sent_bytes',
  'failed_records',
  'dropped_records',
  'duplicate_records',
  'dead_lettered_records',
  'retried_records',
].map((n) => new Counter({ name: `bare_${n}_total`, help: n, labelNames, registers: [bare] }));
const gauges = [
  'queue_fill_ratio',
  'held_records',
  'held_limit_records',
  'retrying',
  'last_success_age_seconds',
].map((n) => new Gauge({ name: `bare_${n}`, help: n, labelNames, registers: [bare] }));
const lag = new Gauge({
  name: 'bare_lag_records',
  help: 'lag',
  labelNames: [...labelNames, 'partition'],
  registers: [bare],
});
const hist = new Histogram({
  name: 'bare_batch_seconds',
  help: 'batches',
  labelNames,
  buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  registers: [bare],
});
for (let s = 0; s < STAGES; s++) {
  const labels = { pipeline: 'bench', stage: `stage_${s}`, kind: kinds[s % 3], type: 'file' };
  for (const c of counters) c.inc(labels, 1000 + s);
  for (const g of gauges) g.set(labels, s);
  if (s % 3 === 0) for (let p = 0; p < 8; p++) lag.set({ ...labels, partition: `topic/${p}` }, p * 10);
  for (let b = 0; b < 200; b++) hist.observe(labels, LATENCIES[b] / 1000);
}
const bareText = await bare.metrics();
const perScrapeBare = await measureAsync(() => bare.metrics());

console.log(
  `/metrics for ${STAGES} stages: ${(perScrapeSluice * 1000).toFixed(0)} µs/scrape (${sluiceText.length} bytes); bare prom-client with values already set: ${(perScrapeBare * 1000).toFixed(0)} µs/scrape (${bareText.length} bytes); ratio ${(perScrapeSluice / perScrapeBare).toFixed(2)}`,
);
