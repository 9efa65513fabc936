// Two pipelines run by sluice, each against a plain hand-written Node loop doing the same work,
// in the same run. Every side runs in a child process of its own, so its time and its peak RSS
// are its own (no heap left over from the other side).
//
//   npm run bench                                  1M records, both cases
//   BENCH_RECORDS=5000000 npm run bench            5M records
//   BENCH_CASES=file npm run bench                 one case (demo, file)
//   BENCH_BASELINE_FLAGS=1 npm run bench           the baseline with sluice's heap flags too
//
// demo: pipelines/demo.yaml (generate → enrich → dedup → partition → file lake, failed records
//   to an error file). Baseline: the generator's fields, the enrichment, a Map of seen ids,
//   per-partition arrays written as ndjson files (temp file, fsync, rename; 4 writes in flight).
// file: an ndjson file of feedlot records (3 % exact repeats) → enrich (the seed-004 fields incl.
//   uuid_v5) → dedup (max_keys 5M, so every distinct key stays) → partition by farm and day →
//   file lake. Baseline: read the file in chunks, JSON.parse each line, the same arithmetic, a
//   one-shot crypto SHA-1 for uuid v5, a Map, per-partition arrays, the same writes.
//
// The baseline side imports nothing from sluice: everything it does is written out below.
// The last line is one JSON object with every figure.

import { spawnSync } from 'node:child_process';
import { hash } from 'node:crypto';
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { mkdir, open, rename } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';

const RECORDS = Number(process.env.BENCH_RECORDS ?? 1_000_000);
const CASES = (process.env.BENCH_CASES ?? 'demo,file').split(',');
// Records per lake file. The demo's own 20000 per partition would keep about 40 partitions of
// 20000 records in memory; the benchmark bounds memory instead, the same on both sides.
const LAKE_MAX_RECORDS = 2000;
const IN_FLIGHT = 4;

type Side = 'sluice' | 'baseline';
interface Result {
  ms: number;
  written: number;
  errors: number;
  peakRssMb: number;
  gcMs: number;
}

// ------------------------------------------------------------------ sluice side

const FILE_SPEC = (input: string, out: string) => `
version: 1
name: bench-file
sources:
  consumption: { type: file, path: '${input}', format: ndjson }
transforms:
  enriched:
    type: enrich
    from: [consumption]
    set:
      fazenda: 'cod_cliente == "1" ? "fazenda_um" : "fazenda_dois"'
      consumo_meta: 'round(peso_medio * 0.025 * quantidade_animais, 3)'
      id_treated_data: 'uuid_v5(cod_cliente + "|" + id_lote + "|" + data)'
  unique: { type: dedup, from: [enriched], key: id_treated_data, ttl: 24h, max_keys: 5000000 }
  by_day: { type: partition, from: [unique], by: 'fazenda + "/" + format_time(data, "yyyy/MM/dd")' }
sinks:
  lake:
    type: file
    from: [by_day]
    dir: '${out}'
    path: 'historico_diario/{partition}/historico_consumo_{first_position}-{last_position}{ext}'
    buffer: { max_records: ${LAKE_MAX_RECORDS}, max_age: 5s }
`;

async function runSluice(
  kase: string,
  records: number,
  input: string,
  out: string,
): Promise<Omit<Result, 'peakRssMb' | 'gcMs'>> {
  const { default: pino } = await import('pino');
  const { Pipeline } = await import('../src/runtime/engine.ts');
  const { validateText } = await import('../src/spec/validate.ts');
  const file =
    kase === 'demo' ? resolve(import.meta.dirname, '../pipelines/demo.yaml') : join(out, 'bench.yaml');
  const text = kase === 'demo' ? readFileSync(file, 'utf8') : FILE_SPEC(input, out);
  const { spec, diagnostics } = validateText(file, text, { DEMO_RECORDS: String(records), DEMO_OUT: out });
  if (!spec) throw new Error(`spec invalid: ${diagnostics.map((d) => d.message).join('; ')}`);
  const lake = spec.stages.find((s) => s.name === 'lake');
  if (lake) lake.buffer = { ...lake.buffer, max_records: LAKE_MAX_RECORDS };
  const t0 = performance.now();
  const pipeline = new Pipeline(spec, { stateDir: join(out, 'state'), log: pino({ level: 'silent' }) });
  const result = await pipeline.run();
  const ms = performance.now() - t0;
  if (!result.ok) throw new Error(`pipeline failed: ${result.error}`);
  const stages = pipeline.metrics.snapshot().stages;
  const written = stages.find((s) => s.name === 'lake')?.recordsOut ?? 0;
  const errors = stages.find((s) => s.name === 'rejected')?.recordsOut ?? 0;
  return { ms, written, errors };
}

// ------------------------------------------------------------------ baseline side (plain JS)

/** temp file, fsync, rename: the durability the file sink gives. */
async function writeDurably(path: string, body: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = join(dirname(path), `.${basename(path)}.tmp`);
  const fh = await open(tmp, 'w');
  try {
    await fh.writeFile(body);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
}

/** Per-partition arrays of rows, each flushed as one ndjson file at LAKE_MAX_RECORDS. */
class Lake {
  readonly #dir: string;
  readonly #buffers = new Map<string, { rows: object[]; first: number; last: number }>();
  readonly #inFlight = new Set<Promise<void>>();
  written = 0;

  constructor(dir: string) {
    this.#dir = dir;
  }

  async add(partition: string, row: object, position: number): Promise<void> {
    let b = this.#buffers.get(partition);
    if (!b) {
      b = { rows: [], first: position, last: position };
      this.#buffers.set(partition, b);
    }
    b.rows.push(row);
    b.last = position;
    if (b.rows.length >= LAKE_MAX_RECORDS) {
      this.#buffers.delete(partition);
      await this.#flush(partition, b);
    }
  }

  async #flush(partition: string, b: { rows: object[]; first: number; last: number }): Promise<void> {
    while (this.#inFlight.size >= IN_FLIGHT) await Promise.race(this.#inFlight);
    let body = '';
    for (const r of b.rows) body += `${JSON.stringify(r)}\n`;
    this.written += b.rows.length;
    const path = join(
      this.#dir,
      'historico_diario',
      partition,
      `historico_consumo_${b.first}-${b.last}.ndjson`,
    );
    const p: Promise<void> = writeDurably(path, body).then(() => {
      this.#inFlight.delete(p);
    });
    this.#inFlight.add(p);
  }

  async end(): Promise<void> {
    for (const [p, b] of this.#buffers) await this.#flush(p, b);
    this.#buffers.clear();
    await Promise.all(this.#inFlight);
  }
}

const NAMESPACE = Buffer.from('dcd8fece294342bda2003d9bc10fdc51', 'hex');

function uuidV5(name: string): string {
  const h = hash('sha1', Buffer.concat([NAMESPACE, Buffer.from(name, 'utf8')]), 'hex');
  const v = ((Number.parseInt(h[16], 16) & 0x3) | 0x8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${v}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** Round half away from zero at `d` decimals, as the decimal text reads. */
function round(x: number, d: number): number {
  return Math.sign(x) * Number(`${Math.round(Number(`${Math.abs(x)}e${d}`))}e-${d}`);
}

/** The demo generator's stateless random numbers: a hash of (seed, index, field). */
function random(seed: number, index: number, stream: number): number {
  let h = (seed ^ Math.imul(index, 0x9e3779b1) ^ Math.imul(stream, 0x85ebca77)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
  h ^= h >>> 16;
  h = (h + Math.floor(index / 4294967296)) >>> 0;
  return h / 4294967296;
}

const p2 = (n: number) => (n < 10 ? `0${n}` : String(n));

function dateText(ms: number): string {
  const d = new Date(ms);
  return `${d.getUTCFullYear()}-${p2(d.getUTCMonth() + 1)}-${p2(d.getUTCDate())} ${p2(d.getUTCHours())}:${p2(d.getUTCMinutes())}:${p2(d.getUTCSeconds())}`;
}

const RACAS = ['nelore', 'angus', 'brahman', 'senepol'];

/** pipelines/demo.yaml's generator, field by field. */
function demoRecord(i: number): Record<string, unknown> {
  const r = (f: number) => random(42, i, f);
  const id_curral = `C${Math.trunc(r(1) * 40) + 1}`;
  const id_raca = RACAS[Math.trunc(r(2) * 4)];
  const id_lote = `L${Math.trunc(i / 50) + 1}`;
  const peso_entrada = round(280 + r(4) * 80, 1);
  const peso_medio = round(peso_entrada + r(5) * 150, 1);
  const quantidade_animais = Math.trunc(r(6) * 120) + 20;
  const dia_confinamento = Math.trunc(r(7) * 110) + 1;
  const consumo_real =
    r(8) < 0.01 ? 'n/a' : round(peso_medio * 0.024 * quantidade_animais * (0.9 + r(8) * 0.2), 2);
  const data = dateText(1710892800000 + (i % 20) * 86400000 + Math.trunc(r(9) * 86400000));
  const cod_cliente = String(Math.trunc(r(10) * 2) + 1);
  return {
    id_curral,
    id_raca,
    id_lote,
    peso_entrada,
    peso_medio,
    quantidade_animais,
    dia_confinamento,
    consumo_real,
    data,
    cod_cliente,
  };
}

function demoOrigin(i: number): number {
  if (i === 0 || random(42, i, 0) >= 0.03) return i;
  return i - 1 - Math.floor(random(42, i, -1) * Math.min(i, 50));
}

async function baselineDemo(records: number, out: string): Promise<Omit<Result, 'peakRssMb' | 'gcMs'>> {
  const t0 = performance.now();
  const lake = new Lake(out);
  const seen = new Map<string, number>();
  let errors: string[] = [];
  let errorCount = 0;
  for (let i = 0; i < records; i++) {
    const v = demoRecord(demoOrigin(i));
    if (typeof v.consumo_real !== 'number') {
      errors.push(JSON.stringify({ stage: 'enriched', reason: 'set consumo_real: not a number', value: v }));
      errorCount++;
      if (errors.length >= 10_000) {
        await writeDurably(join(out, 'errors', `enrich_${i}.ndjson`), `${errors.join('\n')}\n`);
        errors = [];
      }
      continue;
    }
    const peso = v.peso_medio as number;
    const qtd = v.quantidade_animais as number;
    const data = v.data as string;
    const row = {
      ...v,
      fazenda: v.cod_cliente === '1' ? 'fazenda_um' : 'fazenda_dois',
      consumo_meta: round(peso * 0.025 * qtd, 3),
      id_treated_data: uuidV5(`${v.cod_cliente}|${v.id_lote}|${v.id_curral}|${data}`),
      row_ts: new Date().toISOString(),
    };
    if (seen.has(row.id_treated_data)) continue;
    seen.set(row.id_treated_data, Date.now());
    await lake.add(`${row.fazenda}/${data.slice(0, 4)}/${data.slice(5, 7)}/${data.slice(8, 10)}`, row, i);
  }
  if (errors.length > 0)
    await writeDurably(join(out, 'errors', 'enrich_last.ndjson'), `${errors.join('\n')}\n`);
  await lake.end();
  return { ms: performance.now() - t0, written: lake.written, errors: errorCount };
}

async function baselineFile(input: string, out: string): Promise<Omit<Result, 'peakRssMb' | 'gcMs'>> {
  const t0 = performance.now();
  const lake = new Lake(out);
  const seen = new Map<string, number>();
  const fd = openSync(input, 'r');
  const chunk = Buffer.allocUnsafe(1 << 20);
  let rest = '';
  let line = 0;
  try {
    for (;;) {
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      const text = rest + chunk.toString('utf8', 0, n);
      let start = 0;
      for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n', start)) {
        const v = JSON.parse(text.slice(start, nl));
        start = nl + 1;
        line++;
        const data = v.data as string;
        v.fazenda = v.cod_cliente === '1' ? 'fazenda_um' : 'fazenda_dois';
        v.consumo_meta = round(v.peso_medio * 0.025 * v.quantidade_animais, 3);
        v.id_treated_data = uuidV5(`${v.cod_cliente}|${v.id_lote}|${data}`);
        if (seen.has(v.id_treated_data)) continue;
        seen.set(v.id_treated_data, Date.now());
        await lake.add(`${v.fazenda}/${data.slice(0, 4)}/${data.slice(5, 7)}/${data.slice(8, 10)}`, v, line);
      }
      rest = text.slice(start);
    }
  } finally {
    closeSync(fd);
  }
  await lake.end();
  return { ms: performance.now() - t0, written: lake.written, errors: 0 };
}

// ------------------------------------------------------------------ input and harness

/** Feedlot records as seed 004 sends them, 3 % of them exact repeats of a recent line. */
function writeInput(path: string, records: number): void {
  const fd = openSync(path, 'w');
  let buf = '';
  const lines: string[] = [];
  for (let i = 0; i < records; i++) {
    let text: string;
    if (i > 0 && random(7, i, 0) < 0.03) text = lines[Math.floor(random(7, i, 1) * lines.length)];
    else {
      const r = (f: number) => random(7, i, f);
      text = JSON.stringify({
        cod_cliente: String(Math.trunc(r(2) * 2) + 1),
        id_lote: `L${Math.trunc(i / 50) + 1}`,
        id_curral: `C${Math.trunc(r(3) * 40) + 1}`,
        data: dateText(1710892800000 + (i % 20) * 86400000 + Math.trunc(r(4) * 86400000)),
        peso_medio: round(300 + r(5) * 200, 1),
        quantidade_animais: Math.trunc(r(6) * 120) + 20,
        consumo_real: round(r(7) * 900, 2),
      });
      if (lines.length < 64) lines.push(text);
      else lines[i % 64] = text;
    }
    buf += `${text}\n`;
    if (buf.length > 1 << 20) {
      writeSync(fd, buf);
      buf = '';
    }
  }
  writeSync(fd, buf);
  closeSync(fd);
}

async function child(kase: string, side: Side, records: number, input: string, out: string): Promise<void> {
  const { PerformanceObserver } = await import('node:perf_hooks');
  let gcMs = 0;
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) gcMs += e.duration;
  });
  obs.observe({ entryTypes: ['gc'] });
  let r: Omit<Result, 'peakRssMb' | 'gcMs'>;
  if (side === 'sluice') r = await runSluice(kase, records, input, out);
  else r = kase === 'demo' ? await baselineDemo(records, out) : await baselineFile(input, out);
  await new Promise((done) => setImmediate(done));
  obs.disconnect();
  const peakRssMb = Math.round(process.resourceUsage().maxRSS / 1024);
  process.stdout.write(`${JSON.stringify({ ...r, peakRssMb, gcMs: Math.round(gcMs) })}\n`);
}

/**
 * The heap flags sluice's launchers start Node with (`bin/sluice`, `bin/sluice.cjs`), read from
 * the package launcher: the sluice side runs as `sluice run` would. The baseline runs with Node's
 * defaults, as `node loop.js` would (BENCH_BASELINE_FLAGS=1 gives it the same flags).
 */
const HEAP_FLAGS: string[] = JSON.parse(
  (
    /var HEAP_FLAGS = (\[[^\]]*\])/.exec(
      readFileSync(resolve(import.meta.dirname, '../bin/sluice.cjs'), 'utf8'),
    )?.[1] ?? '[]'
  ).replaceAll("'", '"'),
);

const COMPILE_CACHE =
  process.env.NODE_COMPILE_CACHE ?? join(process.env.TMPDIR ?? '/tmp', 'node-compile-cache');

function spawnSide(kase: string, side: Side, records: number, input: string, out: string): Result {
  mkdirSync(out, { recursive: true });
  const flags = side === 'sluice' || process.env.BENCH_BASELINE_FLAGS === '1' ? HEAP_FLAGS : [];
  const p = spawnSync(
    process.execPath,
    [...process.execArgv, ...flags, import.meta.filename, '--child', kase, side, String(records), input, out],
    // Node's compile cache, which bin/sluice turns on: the warm-up run fills it, so the measured
    // run loads compiled modules instead of stripping and compiling them again (~25 MB of RSS).
    { encoding: 'utf8', maxBuffer: 1 << 24, env: { ...process.env, NODE_COMPILE_CACHE: COMPILE_CACHE } },
  );
  if (p.status !== 0) throw new Error(`${kase}/${side} failed (${p.status}): ${p.stderr}`);
  const last = p.stdout.trim().split('\n').at(-1) ?? '';
  return JSON.parse(last) as Result;
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

function main(): void {
  const root = mkdtempSync(join(tmpdir(), 'sluice-bench-'));
  const summary: Record<string, unknown> = {
    records: RECORDS,
    node: process.version,
    heap_flags: HEAP_FLAGS,
  };
  process.stdout.write(`sluice side runs with the launchers' heap flags: ${HEAP_FLAGS.join(' ')}\n`);
  try {
    const input = join(root, 'input.ndjson');
    if (CASES.includes('file')) writeInput(input, RECORDS);
    // Warm the disk cache and the module cache on a small run of each side first.
    for (const kase of CASES) {
      for (const side of ['sluice', 'baseline'] as const)
        spawnSide(kase, side, 20_000, input, join(root, `warm-${kase}-${side}`));
    }
    for (const kase of CASES) {
      const r: Record<Side, Result> = {
        sluice: spawnSide(kase, 'sluice', RECORDS, input, join(root, `${kase}-sluice`)),
        baseline: spawnSide(kase, 'baseline', RECORDS, input, join(root, `${kase}-baseline`)),
      };
      rmSync(join(root, `${kase}-sluice`), { recursive: true, force: true });
      rmSync(join(root, `${kase}-baseline`), { recursive: true, force: true });
      const rps = (x: Result) => (RECORDS / x.ms) * 1000;
      const ratio = rps(r.sluice) / rps(r.baseline);
      const line = (side: Side) =>
        `  ${side.padEnd(9)}${fmt(rps(r[side])).padStart(10)} records/s  ${(r[side].ms / 1000).toFixed(2).padStart(6)}s  peak RSS ${String(r[side].peakRssMb).padStart(4)} MB  GC ${(r[side].gcMs / 1000).toFixed(2)}s  written ${fmt(r[side].written)}, errors ${fmt(r[side].errors)}`;
      process.stdout.write(
        `${kase} pipeline, ${fmt(RECORDS)} records\n${line('sluice')}\n${line('baseline')}\n  ratio    ${ratio.toFixed(2)} (sluice / hand-written loop)\n`,
      );
      summary[kase] = {
        sluice_rps: Math.round(rps(r.sluice)),
        baseline_rps: Math.round(rps(r.baseline)),
        ratio: Number(ratio.toFixed(3)),
        sluice_peak_rss_mb: r.sluice.peakRssMb,
        baseline_peak_rss_mb: r.baseline.peakRssMb,
        sluice_gc_ms: r.sluice.gcMs,
        baseline_gc_ms: r.baseline.gcMs,
      };
    }
    process.stdout.write(`${JSON.stringify(summary)}\n`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

const at = process.argv.indexOf('--child');
const inputOnly = process.argv.indexOf('--write-input');
if (inputOnly >= 0) {
  // For profiling one side by hand: --write-input <path> <records>, then --child file <side> <records> <path> <out>.
  writeInput(process.argv[inputOnly + 1], Number(process.argv[inputOnly + 2]));
} else if (at >= 0) {
  const [kase, side, records, input, out] = process.argv.slice(at + 1);
  await child(kase, side as Side, Number(records), input, out);
} else {
  main();
}
