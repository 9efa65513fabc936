/**
 * What the live view costs the pipeline: the demo pipeline's throughput on a real terminal
 * (tmux) with the view on, against the same run with `--no-tui` (plain lines) on the same
 * terminal, alternating rounds so drift in machine load hits both. Each run processes
 * BENCH_RECORDS records, long enough that start-up (loading the view) is a small share;
 * wall time and the process's CPU time (user + system) come from GNU time. Also the
 * in-process cost of one frame.
 *
 *   node bench/tui.bench.ts     (BENCH_RECORDS=1000000 BENCH_ROUNDS=3 by default)
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { PipelineSnapshot, StageSnapshot } from '../src/runtime/metrics.ts';
import { frameLines } from '../src/tui/app.ts';
import { RateTracker } from '../src/tui/model.ts';

const root = resolve(import.meta.dirname, '..');
const node = join(root, 'node_modules/.bin/node');
const RECORDS = Number(process.env.BENCH_RECORDS ?? 1_000_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const socket = `sluice-bench-${randomBytes(4).toString('hex')}`;
const sh = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

interface Run {
  /** Records per wall-clock second, and per CPU second of the sluice process. */
  rate: number;
  perCpu: number;
  seconds: number;
}

/** One run of the demo in a fresh 100×30 tmux window. */
async function runOnTerminal(tui: boolean): Promise<Run> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-'));
  const done = join(dir, 'time');
  const cmd = [
    `cd ${sh(root)} &&`,
    `DEMO_RECORDS=${RECORDS} DEMO_OUT=${sh(join(dir, 'out'))}`,
    `/usr/bin/time -f '%e %U %S %x' -o ${sh(`${done}.tmp`)}`,
    `${sh(node)} src/cli.ts run pipelines/demo.yaml --state-dir ${sh(join(dir, 'state'))}${tui ? '' : ' --no-tui'};`,
    `mv ${sh(`${done}.tmp`)} ${sh(done)}`,
  ].join(' ');
  execFileSync('tmux', ['-L', socket, 'new-session', '-d', '-s', 'bench', '-x', '100', '-y', '30', cmd]);
  try {
    const end = Date.now() + 15 * 60_000;
    while (!existsSync(done)) {
      if (Date.now() > end) throw new Error('run did not finish in 15 minutes');
      await new Promise((r) => setTimeout(r, 100));
    }
    const last = readFileSync(done, 'utf8').trim().split('\n').at(-1) ?? '';
    const [wall, user, sys, code] = last.split(' ').map(Number);
    if (code !== 0) throw new Error(`sluice exited with ${code}`);
    return { rate: RECORDS / wall, perCpu: RECORDS / (user + sys), seconds: wall };
  } finally {
    spawnSync('tmux', ['-L', socket, 'kill-server']);
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Per-frame work: on the pipeline's thread only copying the snapshot out to the view's worker
 * (measured as a structured clone, what postMessage does); on the view's thread rate tracking
 * and frame layout, before Ink draws.
 */
function frameCost(): { cloneUs: number; updateUs: number; layoutUs: number } {
  const stage = (name: string, kind: StageSnapshot['kind'], inputs: string[], n: number): StageSnapshot => ({
    name,
    kind,
    type: kind === 'source' ? 'generate' : kind === 'sink' ? 'file' : 'enrich',
    inputs,
    recordsIn: n,
    recordsOut: n,
    bytesIn: n * 200,
    bytesOut: n * 200,
    errors: 0,
    dropped: 0,
    duplicates: 0,
    retries: 0,
    queueFill: 0.4,
    batchLatencyMs: 2,
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
  });
  const snap = (t: number): PipelineSnapshot => {
    const n = Math.round(t * 40_000);
    return {
      pipeline: 'demo',
      state: 'running',
      startedAt: 0,
      at: t * 1000,
      stages: [
        stage('consumption', 'source', [], n),
        stage('enriched', 'transform', ['consumption'], n),
        stage('unique', 'transform', ['enriched'], n),
        stage('by_day', 'transform', ['unique'], n),
        stage('lake', 'sink', ['by_day'], n),
        stage('rejected', 'sink', ['enriched.errors'], n / 100),
      ],
    };
  };
  const tracker = new RateTracker();
  const frames = 2000;
  let t = 0;
  let clone = 0;
  let update = 0;
  let layout = 0;
  for (let i = 0; i < frames; i++) {
    t += 0.25;
    const s = snap(t);
    const c = performance.now();
    structuredClone(s);
    const a = performance.now();
    clone += a - c;
    const view = tracker.update(s);
    const b = performance.now();
    frameLines(view, { width: 100, height: 29, selected: -1, panel: 'none', quitting: false });
    layout += performance.now() - b;
    update += b - a;
  }
  return {
    cloneUs: (clone / frames) * 1000,
    updateUs: (update / frames) * 1000,
    layoutUs: (layout / frames) * 1000,
  };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  if (spawnSync('tmux', ['-V']).status !== 0) throw new Error('tmux is missing: apt-get install -y tmux');
  if (!existsSync('/usr/bin/time')) throw new Error('GNU time is missing: apt-get install -y time');
  console.log(`demo pipeline, ${RECORDS} records, ${ROUNDS} rounds each, 100x30 tmux terminal`);
  const off: Run[] = [];
  const on: Run[] = [];
  const fmt = (r: Run): string =>
    `${Math.round(r.rate)} rec/s, ${Math.round(r.perCpu)} rec/cpu-s (${r.seconds.toFixed(1)} s)`;
  for (let i = 0; i < ROUNDS; i++) {
    // Alternate which goes first so a drift in machine load hits both alike.
    for (const tui of i % 2 === 0 ? [false, true] : [true, false])
      (tui ? on : off).push(await runOnTerminal(tui));
    console.log(`  round ${i + 1}: --no-tui ${fmt(off[i])};  live view ${fmt(on[i])}`);
  }
  const row = (label: string, a: number, b: number) =>
    console.log(
      `${label.padEnd(32)} off ${String(Math.round(a)).padStart(6)}  on ${String(Math.round(b)).padStart(6)}  ratio on/off ${(b / a).toFixed(3)} (${((b / a - 1) * 100).toFixed(1)}%)`,
    );
  console.log('medians (baseline: --no-tui, plain lines on the same terminal):');
  row('records per second', median(off.map((r) => r.rate)), median(on.map((r) => r.rate)));
  row('records per CPU second', median(off.map((r) => r.perCpu)), median(on.map((r) => r.perCpu)));
  const cost = frameCost();
  console.log(
    `per frame: pipeline thread ${cost.cloneUs.toFixed(1)} µs (snapshot copy to the view); ` +
      `view thread ${cost.updateUs.toFixed(1)} µs rates + ${cost.layoutUs.toFixed(1)} µs layout, then Ink; 2 frames/s`,
  );
}

await main();
