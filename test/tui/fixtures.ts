/** Synthetic snapshots shaped like the demo pipeline and a Kinesis/SNS one. */
import type { PipelineSnapshot, StageSnapshot } from '../../src/runtime/metrics.ts';

export function stage(
  over: Partial<StageSnapshot> & Pick<StageSnapshot, 'name' | 'kind' | 'type'>,
): StageSnapshot {
  return {
    inputs: [],
    recordsIn: 0,
    recordsOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    errors: 0,
    dropped: 0,
    duplicates: 0,
    retries: 0,
    queueFill: 0,
    batchLatencyMs: 0,
    lag: undefined,
    lagUnit: undefined,
    lagByPartition: {},
    extra: {},
    lastErrors: [],
    deadLettered: 0,
    held: 0,
    heldPeak: 0,
    heldLimit: 0,
    health: { state: 'ok' },
    ...over,
  };
}

export const T0 = Date.UTC(2026, 0, 15, 12, 0, 0);

/**
 * The demo graph after `t` seconds at `rate` records/s from the source: enrich, dedup (5 %
 * duplicates), a partitioner, and two sinks. `errors` puts failures on `enriched`.
 */
export function demo(t: number, rate = 12_345, errors = 0): PipelineSnapshot {
  const n = Math.round(t * rate);
  const bytes = n * 180;
  const uniq = Math.round(n * 0.95);
  const lastErrors = Array.from({ length: Math.min(errors, 20) }, (_, i) => ({
    at: T0 + t * 1000 - (errors - i) * 10,
    stage: 'enriched',
    reason: `no such key: peso_medio (record ${i})`,
  }));
  return {
    pipeline: 'demo',
    state: 'running',
    startedAt: T0,
    at: T0 + t * 1000,
    logFile: '.sluice/logs/demo-20260115.log',
    stages: [
      stage({
        name: 'orders',
        kind: 'source',
        type: 'generate',
        recordsOut: n,
        bytesOut: bytes,
        queueFill: 0.3,
      }),
      stage({
        name: 'enriched',
        kind: 'transform',
        type: 'enrich',
        inputs: ['orders'],
        recordsIn: n,
        recordsOut: n - errors,
        bytesIn: bytes,
        bytesOut: bytes,
        errors,
        lastErrors,
        queueFill: 0.62,
        batchLatencyMs: 1.4,
      }),
      stage({
        name: 'unique',
        kind: 'transform',
        type: 'dedup',
        inputs: ['enriched'],
        recordsIn: n - errors,
        recordsOut: uniq,
        bytesIn: bytes,
        duplicates: n - errors - uniq,
        queueFill: 0.1,
      }),
      stage({
        name: 'by_day',
        kind: 'transform',
        type: 'partition',
        inputs: ['unique'],
        recordsIn: uniq,
        recordsOut: uniq,
        bytesIn: bytes,
      }),
      stage({
        name: 'lake',
        kind: 'sink',
        type: 'file',
        inputs: ['by_day'],
        recordsIn: uniq,
        recordsOut: uniq,
        bytesIn: bytes,
        queueFill: 0.95,
        extra: { files: 12 },
      }),
      stage({
        name: 'console',
        kind: 'sink',
        type: 'stdout',
        inputs: ['unique'],
        recordsIn: uniq,
        recordsOut: uniq,
        bytesIn: bytes,
      }),
    ],
  };
}

/** A Kinesis source with per-shard lag and an SNS source with requests in flight. */
export function streams(t: number): PipelineSnapshot {
  const shards: Record<string, number> = {};
  for (let i = 0; i < 6; i++) shards[`shardId-00000000000${i}`] = 1000 * i + 250;
  const lag = Object.values(shards).reduce((a, b) => a + b, 0);
  return {
    pipeline: 'feedlot-consumption',
    state: 'draining',
    startedAt: T0,
    at: T0 + t * 1000,
    stages: [
      stage({
        name: 'sales',
        kind: 'source',
        type: 'kinesis',
        recordsOut: t * 800,
        bytesOut: t * 800 * 400,
        lag,
        lagUnit: 'ms',
        lagByPartition: shards,
      }),
      stage({
        name: 'consumption',
        kind: 'source',
        type: 'sns',
        recordsOut: t * 50,
        bytesOut: t * 50 * 300,
        extra: { in_flight: 7 },
      }),
      stage({
        name: 'events',
        kind: 'source',
        type: 'kafka',
        recordsOut: t * 2000,
        lag: 45_000,
        lagUnit: 'records',
        lagByPartition: { 'orders-0': 30_000, 'orders-1': 15_000 },
      }),
      stage({
        name: 'merged',
        kind: 'transform',
        type: 'filter',
        inputs: ['sales', 'consumption', 'events'],
        recordsIn: t * 2850,
        recordsOut: t * 2000,
        dropped: t * 850,
      }),
      stage({
        name: 'warehouse',
        kind: 'sink',
        type: 'mysql',
        inputs: ['merged'],
        recordsIn: t * 2000,
        recordsOut: t * 2000,
        retries: 3,
      }),
      stage({ name: 'rejects', kind: 'sink', type: 'file', inputs: ['merged.errors'], recordsIn: 0 }),
    ],
  };
}
