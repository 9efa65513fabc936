// The demo pipeline (generate → enrich → dedup → partition → file sink, errors to their own
// file) run by the engine, against a hand-written loop doing the same work in the same
// process: the same CEL expressions compiled once, the same dedup map, the same per-partition
// buffers, encoding and atomic file writes, with no channels, acks, metrics or batching.
//
//   npm run bench                          1M records
//   BENCH_RECORDS=10000000 npm run bench   10M records
//
// The last line is one JSON object: {"records","sluice_rps","baseline_rps","ratio","peak_rss_mb"}.
// peak_rss_mb is the peak resident set size sampled during the first engine run. BENCH_ROUNDS
// (default 2) alternates the order of the runs; each side's best run counts.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import pino from 'pino';
import { compile } from '../src/expr/index.ts';
import { writeAtomic } from '../src/runtime/checkpoint.ts';
import { Pipeline } from '../src/runtime/engine.ts';
import { encodeBatch, objectKey } from '../src/runtime/objects.ts';
import type { ErrorValue, SluiceRecord } from '../src/runtime/record.ts';
import { compileTemplate } from '../src/runtime/template.ts';
import type { PipelineSpec, StageSpec } from '../src/spec/validate.ts';
import { validateText } from '../src/spec/validate.ts';
import { random } from '../src/stages/sources/generate.ts';
import { LruTtl } from '../src/stages/transforms/dedup.ts';

const RECORDS = Number(process.env.BENCH_RECORDS ?? 1_000_000);
const WARMUP = 30_000;
// Records per lake file. The demo's own 20000 per partition keeps about 20000 × 40 partitions
// (the whole of a 1M run) in memory; the benchmark bounds memory instead.
const LAKE_MAX_RECORDS = Number(process.env.BENCH_LAKE_MAX_RECORDS ?? 2000);

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const DEMO = resolve(import.meta.dirname, '../pipelines/demo.yaml');

function demoSpec(records: number, out: string): PipelineSpec {
  const { spec, diagnostics } = validateText(DEMO, readFileSync(DEMO, 'utf8'), {
    DEMO_RECORDS: String(records),
    DEMO_OUT: out,
  });
  if (!spec) throw new Error(`demo spec invalid: ${diagnostics.map((d) => d.message).join('; ')}`);
  const lake = stage(spec, 'lake');
  lake.buffer = { ...lake.buffer, max_records: LAKE_MAX_RECORDS };
  return spec;
}

function stage(spec: PipelineSpec, name: string): StageSpec {
  const s = spec.stages.find((x) => x.name === name);
  if (!s) throw new Error(`the demo has no stage ${name}`);
  return s;
}

// ------------------------------------------------------------------ sluice

async function runSluice(records: number, out: string): Promise<number> {
  const spec = demoSpec(records, out);
  const stateDir = join(out, 'state');
  const t0 = performance.now();
  const pipeline = new Pipeline(spec, { stateDir, log: pino({ level: 'silent' }) });
  const result = await pipeline.run();
  const ms = performance.now() - t0;
  if (!result.ok) throw new Error(`pipeline failed: ${result.error}`);
  const lake = pipeline.metrics.snapshot().stages.find((s) => s.name === 'lake');
  const rejected = pipeline.metrics.snapshot().stages.find((s) => s.name === 'rejected');
  last.sluice = {
    written: lake?.recordsOut ?? 0,
    errors: rejected?.recordsOut ?? 0,
    files: (lake?.extra.files ?? 0) + (rejected?.extra.files ?? 0),
  };
  return ms;
}

// ------------------------------------------------------------------ baseline

interface Row {
  value: unknown;
  position: string;
  partition?: string;
}

async function runBaseline(records: number, out: string): Promise<number> {
  const spec = demoSpec(records, out);
  const gen = stage(spec, 'consumption').options as {
    count: number;
    seed: number;
    duplicates: number;
    fields: Record<string, string>;
  };
  const enrich = stage(spec, 'enriched').options as { set: Record<string, string> };
  const dedup = stage(spec, 'unique').options as { key: string; ttl: number; max_keys: number };
  const part = stage(spec, 'by_day').options as { by: string };
  const lake = stage(spec, 'lake');
  const rejected = stage(spec, 'rejected');
  const lakeOpts = lake.options as { dir: string; path: string };
  const rejectedOpts = rejected.options as { dir: string; path: string };
  const maxRecords = lake.buffer.max_records ?? 10_000;
  const rejectedMax = rejected.buffer.max_records ?? 10_000;

  const t0 = performance.now();
  const fields = Object.entries(gen.fields).map(([name, src]) => [name, compile(src)] as const);
  const setters = Object.entries(enrich.set).map(([name, src]) => [name, compile(src)] as const);
  const key = compile(dedup.key);
  const by = compile(part.by);
  const seen = new LruTtl(dedup.max_keys, dedup.ttl);
  const lakeTemplate = compileTemplate(lakeOpts.path);
  const rejectedTemplate = compileTemplate(rejectedOpts.path);
  const buffers = new Map<string, { rows: Row[]; startedAt: number }>();
  let errors: Row[] = [];
  let seq = 0;
  let written = 0;
  let files = 0;

  // Up to 4 writes in flight, as the engine's sinks do by default (max_in_flight), so that
  // the loop computes while the disk syncs.
  const inFlight = new Set<Promise<void>>();
  const write = async (
    dir: string,
    template: ReturnType<typeof compileTemplate>,
    rows: Row[],
    partition: string | undefined,
    startedAt: number,
  ) => {
    while (inFlight.size >= 4) await Promise.race(inFlight);
    const batch = { records: rows as SluiceRecord[], partition, startedAt, bytes: 0, seq: seq++ };
    const encoded = encodeBatch(batch.records, { format: 'ndjson', compression: 'none' });
    const p: Promise<void> = writeAtomic(
      join(resolve(dir), objectKey(template, batch, encoded.ext)),
      encoded.body,
    ).then(() => {
      inFlight.delete(p);
      files++;
    });
    inFlight.add(p);
  };

  const build = (i: number): Record<string, unknown> => {
    const value: Record<string, unknown> = {};
    const scope: Record<string, unknown> = { i: BigInt(i), rand: 0 };
    for (let f = 0; f < fields.length; f++) {
      scope.rand = random(gen.seed, i, f + 1);
      const v = fields[f][1].evaluate(scope);
      value[fields[f][0]] = v;
      scope[fields[f][0]] = v;
    }
    return value;
  };
  const origin = (i: number): number => {
    if (gen.duplicates <= 0 || i === 0 || random(gen.seed, i, 0) >= gen.duplicates) return i;
    return i - 1 - Math.floor(random(gen.seed, i, -1) * Math.min(i, 50));
  };

  for (let i = 0; i < gen.count; i++) {
    const meta = { index: i };
    const position = String(i);
    const generated = build(origin(i));
    const value: Record<string, unknown> = { ...generated };
    let failed: string | undefined;
    for (const [name, expr] of setters) {
      try {
        value[name] = expr.evaluate(value, meta);
      } catch (err) {
        failed = `set ${name}: ${(err as Error).message}`;
        break;
      }
    }
    if (failed !== undefined) {
      const ev: ErrorValue = {
        stage: 'enriched',
        reason: failed,
        at: new Date().toISOString(),
        value: generated,
        meta,
      };
      errors.push({ value: ev, position, partition: 'enriched' });
      if (errors.length >= rejectedMax) {
        await write(rejectedOpts.dir, rejectedTemplate, errors, 'enriched', Date.now());
        errors = [];
      }
      continue;
    }
    const k = key.evaluate(value, meta);
    const text = typeof k === 'string' ? k : JSON.stringify(k);
    const now = Date.now();
    if (seen.seen(text, now)) continue;
    seen.remember(text, now);
    const p = String(by.evaluate(value, meta));
    let buf = buffers.get(p);
    if (!buf) {
      buf = { rows: [], startedAt: now };
      buffers.set(p, buf);
    }
    buf.rows.push({ value, position, partition: p });
    if (buf.rows.length >= maxRecords) {
      buffers.delete(p);
      written += buf.rows.length;
      await write(lakeOpts.dir, lakeTemplate, buf.rows, p, buf.startedAt);
    }
  }
  for (const [p, buf] of buffers) {
    written += buf.rows.length;
    await write(lakeOpts.dir, lakeTemplate, buf.rows, p, buf.startedAt);
  }
  if (errors.length > 0) await write(rejectedOpts.dir, rejectedTemplate, errors, 'enriched', Date.now());
  await Promise.all(inFlight);
  const ms = performance.now() - t0;
  last.baseline = { written, errors: 0, files };
  return ms;
}

// ------------------------------------------------------------------ harness

const last: {
  sluice?: { written: number; errors: number; files: number };
  baseline?: { written: number; errors: number; files: number };
} = {};

async function measured(fn: () => Promise<number>): Promise<{ ms: number; peakRss: number }> {
  gc();
  let peakRss = process.memoryUsage.rss();
  const sampler = setInterval(() => {
    peakRss = Math.max(peakRss, process.memoryUsage.rss());
  }, 20);
  const ms = await fn();
  clearInterval(sampler);
  peakRss = Math.max(peakRss, process.memoryUsage.rss());
  return { ms, peakRss };
}

const mb = (bytes: number) => Math.round(bytes / 1024 / 1024);
const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

async function main(): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'sluice-bench-'));
  try {
    // Warm both paths up (JIT, expression caches) on a small run before measuring.
    await runBaseline(WARMUP, join(root, 'warm-baseline'));
    await runSluice(WARMUP, join(root, 'warm-sluice'));
    rmSync(root, { recursive: true, force: true });

    // A run leaves the heap grown for the next one: alternate the order (sluice, baseline,
    // baseline, sluice, …) and keep each side's best, so neither profits from going second.
    // Peak RSS is the first sluice run's, which no baseline run preceded.
    const rounds = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 2));
    const order: ('sluice' | 'baseline')[] = [];
    for (let r = 0; r < rounds; r++) {
      order.push(...(r % 2 === 0 ? (['sluice', 'baseline'] as const) : (['baseline', 'sluice'] as const)));
    }
    const best = { sluice: Number.POSITIVE_INFINITY, baseline: Number.POSITIVE_INFINITY };
    const peak = { sluice: 0, baseline: 0 };
    for (const [k, side] of order.entries()) {
      const dir = join(root, `${side}-${k}`);
      const m = await measured(() =>
        side === 'sluice' ? runSluice(RECORDS, dir) : runBaseline(RECORDS, dir),
      );
      rmSync(dir, { recursive: true, force: true });
      best[side] = Math.min(best[side], m.ms);
      if (peak[side] === 0) peak[side] = m.peakRss;
      process.stdout.write(
        `  run ${k + 1}: ${side.padEnd(8)} ${fmt((RECORDS / m.ms) * 1000).padStart(9)} records/s  peak RSS ${mb(m.peakRss)} MB\n`,
      );
    }

    const sluiceRps = (RECORDS / best.sluice) * 1000;
    const baselineRps = (RECORDS / best.baseline) * 1000;
    const ratio = sluiceRps / baselineRps;
    process.stdout.write(
      [
        `demo pipeline, ${fmt(RECORDS)} records, best of ${rounds} (lake buffer ${LAKE_MAX_RECORDS} records per partition)`,
        `  sluice    ${fmt(sluiceRps).padStart(9)} records/s  ${(best.sluice / 1000).toFixed(2)}s  peak RSS ${mb(peak.sluice)} MB (first run)  written ${fmt(last.sluice?.written ?? 0)}, files ${last.sluice?.files}`,
        `  baseline  ${fmt(baselineRps).padStart(9)} records/s  ${(best.baseline / 1000).toFixed(2)}s  peak RSS ${mb(peak.baseline)} MB (first run)  written ${fmt(last.baseline?.written ?? 0)}, files ${last.baseline?.files}`,
        `  ratio     ${ratio.toFixed(2)} (sluice / baseline)`,
        `  process peak RSS ${mb(process.resourceUsage().maxRSS * 1024)} MB (every run and the warm-up)`,
        JSON.stringify({
          records: RECORDS,
          sluice_rps: Math.round(sluiceRps),
          baseline_rps: Math.round(baselineRps),
          ratio: Number(ratio.toFixed(3)),
          peak_rss_mb: mb(peak.sluice),
        }),
      ].join('\n') + '\n',
    );
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

await main();
