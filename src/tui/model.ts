/**
 * Turns successive metric snapshots into what the screen shows: per-stage rates, a minute of
 * throughput history for the sparklines, and the stages in wiring order. The runtime only
 * keeps counters; every rate is derived here, off the pipeline's hot path.
 */
import type { PipelineSnapshot, StageSnapshot } from '../runtime/metrics.ts';

export interface Rates {
  /** Records per second received. */
  inPerSec: number;
  /** Records per second emitted (sources, transforms) or written (sinks). */
  outPerSec: number;
  /** Bytes per second through the stage, whichever of in and out it counts (the larger). */
  bytesPerSec: number;
}

export interface StageRow {
  stage: StageSnapshot;
  rates: Rates;
  /** Per-second throughput over the last minute, oldest first. */
  history: readonly number[];
  /** Tree drawing before the name, e.g. `│ └─`. */
  prefix: string;
  depth: number;
  /** Inputs beyond the one the row hangs under. */
  extraInputs: number;
}

export interface View {
  snapshot: PipelineSnapshot;
  rows: StageRow[];
  /** Records per second entering (sources' output) and leaving (sinks' writes). */
  inPerSec: number;
  outPerSec: number;
  errors: number;
}

export const HISTORY_SECONDS = 60;
/** Rates are measured over at least this window, so a 4 Hz refresh does not jitter. */
const RATE_WINDOW_MS = 1000;

/** The counter a stage's throughput, sparkline and total follow. */
export function throughput(s: StageSnapshot): number {
  return s.kind === 'source' ? s.recordsOut : s.recordsIn;
}

/**
 * Bytes through a stage: the larger of what it received and what it sent, since stages count
 * what they can see (a source the bytes it read, a file sink the bytes it wrote) and leave the
 * other side at zero.
 */
function bytesThrough(prev: StageSnapshot, cur: StageSnapshot): number {
  return Math.max(0, cur.bytesIn - prev.bytesIn, cur.bytesOut - prev.bytesOut);
}

/** Rates between two snapshots of the same stage; zero when there is no earlier one. */
export function ratesBetween(prev: StageSnapshot | undefined, cur: StageSnapshot, seconds: number): Rates {
  if (!prev || seconds <= 0) return { inPerSec: 0, outPerSec: 0, bytesPerSec: 0 };
  return {
    inPerSec: Math.max(0, cur.recordsIn - prev.recordsIn) / seconds,
    outPerSec: Math.max(0, cur.recordsOut - prev.recordsOut) / seconds,
    bytesPerSec: bytesThrough(prev, cur) / seconds,
  };
}

/** Records entering the pipeline (sources' output) and leaving it (sinks' output). */
export function pipelineTotals(snap: PipelineSnapshot): { in: number; out: number; errors: number } {
  let inn = 0;
  let out = 0;
  let errors = 0;
  for (const s of snap.stages) {
    if (s.kind === 'source') inn += s.recordsOut;
    else if (s.kind === 'sink') out += s.recordsOut;
    errors += s.errors;
  }
  return { in: inn, out, errors };
}

function baseInput(input: string, names: ReadonlySet<string>): string {
  if (names.has(input)) return input;
  const dot = input.lastIndexOf('.');
  return dot > 0 ? input.slice(0, dot) : input;
}

interface Placed {
  index: number;
  prefix: string;
  depth: number;
  extraInputs: number;
}

/**
 * Orders stages as a tree: each source, then depth first the stages whose first input it is.
 * A stage with several inputs hangs under its first one (the others are counted in
 * `extraInputs`); an error-output edge (`x.errors`) is drawn dashed.
 */
export function wiringOrder(stages: readonly StageSnapshot[]): Placed[] {
  const names = new Set(stages.map((s) => s.name));
  const children = new Map<string, number[]>();
  const roots: number[] = [];
  stages.forEach((s, i) => {
    const first = s.inputs[0];
    const parent = first === undefined ? undefined : baseInput(first, names);
    if (parent === undefined || !names.has(parent) || parent === s.name) roots.push(i);
    else children.set(parent, [...(children.get(parent) ?? []), i]);
  });
  const out: Placed[] = [];
  const seen = new Set<number>();
  const visit = (i: number, lead: string, connector: string, depth: number): void => {
    if (seen.has(i)) return;
    seen.add(i);
    const s = stages[i];
    out.push({ index: i, prefix: lead + connector, depth, extraInputs: Math.max(0, s.inputs.length - 1) });
    const kids = children.get(s.name) ?? [];
    const nextLead = depth === 0 ? '' : lead + (connector.startsWith('└') ? '  ' : '│ ');
    kids.forEach((k, n) => {
      const last = n === kids.length - 1;
      const viaErrors = !names.has(stages[k].inputs[0]);
      visit(k, nextLead, (last ? '└' : '├') + (viaErrors ? '╌' : '─'), depth + 1);
    });
  };
  for (const r of roots) visit(r, '', '', 0);
  // A cycle (rejected by validation, but never hang or hide a stage): list what is left.
  stages.forEach((_, i) => {
    if (!seen.has(i)) visit(i, '', '', 0);
  });
  return out;
}

interface Sample {
  at: number;
  stages: Map<string, StageSnapshot>;
}

interface Spark {
  /** Start of the second being accumulated and the throughput counter then. */
  bucketAt: number;
  bucketCount: number;
  history: number[];
}

/** Keeps the few snapshots rates need and a minute of per-second history per stage. */
export class RateTracker {
  private samples: Sample[] = [];
  private readonly sparks = new Map<string, Spark>();
  private order: { key: string; placed: Placed[] } | undefined;

  update(snap: PipelineSnapshot): View {
    const cur: Sample = { at: snap.at, stages: new Map(snap.stages.map((s) => [s.name, s])) };
    // The reference point is the newest sample at least a window old (or the oldest we have).
    let ref: Sample | undefined;
    for (const s of this.samples) if (snap.at - s.at >= RATE_WINDOW_MS || !ref) ref = s;
    this.samples.push(cur);
    while (this.samples.length > 2 && snap.at - this.samples[1].at >= RATE_WINDOW_MS) this.samples.shift();

    const seconds = ref ? (snap.at - ref.at) / 1000 : 0;
    const key = snap.stages.map((s) => s.name + '<' + s.inputs.join(',')).join('|');
    if (this.order?.key !== key) this.order = { key, placed: wiringOrder(snap.stages) };

    const rows: StageRow[] = this.order.placed.map((p) => {
      const stage = snap.stages[p.index];
      return {
        stage,
        rates: ratesBetween(ref?.stages.get(stage.name), stage, seconds),
        history: this.spark(stage, snap.at),
        prefix: p.prefix,
        depth: p.depth,
        extraInputs: p.extraInputs,
      };
    });
    let inPerSec = 0;
    let outPerSec = 0;
    let errors = 0;
    for (const r of rows) {
      if (r.stage.kind === 'source') inPerSec += r.rates.outPerSec;
      else if (r.stage.kind === 'sink') outPerSec += r.rates.outPerSec;
      errors += r.stage.errors;
    }
    return { snapshot: snap, rows, inPerSec, outPerSec, errors };
  }

  /** Closes every whole second since the last bucket, spreading the count evenly across them. */
  private spark(stage: StageSnapshot, at: number): readonly number[] {
    const count = throughput(stage);
    let sp = this.sparks.get(stage.name);
    if (!sp) {
      sp = { bucketAt: at, bucketCount: count, history: [] };
      this.sparks.set(stage.name, sp);
      return sp.history;
    }
    const elapsed = at - sp.bucketAt;
    if (elapsed >= 1000) {
      const whole = Math.floor(elapsed / 1000);
      const perSec = Math.max(0, count - sp.bucketCount) / (elapsed / 1000);
      for (let i = 0; i < Math.min(whole, HISTORY_SECONDS); i++) sp.history.push(perSec);
      if (sp.history.length > HISTORY_SECONDS) sp.history.splice(0, sp.history.length - HISTORY_SECONDS);
      sp.bucketAt = at;
      sp.bucketCount = count;
    }
    return sp.history;
  }
}
