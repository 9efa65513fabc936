/**
 * Text without a screen: one line per stage per interval (no TTY, or `--no-tui`), and the
 * totals table printed when a run ends. Plain characters only, so it reads the same in a CI
 * log, a pipe and the scrollback.
 */
import type { PipelineSnapshot, StageSnapshot } from '../runtime/metrics.ts';
import {
  humanByteRate,
  humanBytes,
  humanCount,
  humanLag,
  humanRate,
  padLeft,
  padRight,
  uptime,
} from './format.ts';
import { pipelineTotals, type Rates, ratesBetween, wiringOrder } from './model.ts';

/**
 * The lag worth showing for a source: time behind (Kinesis) is as bad as its worst shard, so
 * the maximum; a count behind (Kafka) adds up over partitions, so the total.
 */
export function sourceLag(s: StageSnapshot): number | undefined {
  const parts = Object.values(s.lagByPartition);
  if (s.lagUnit === 'ms' && parts.length > 0) return Math.max(...parts);
  return s.lag;
}

/** A source's lag, or the SNS source's requests in flight, as text; undefined when it has neither. */
export function lagText(s: StageSnapshot): string | undefined {
  const lag = sourceLag(s);
  if (lag !== undefined) return humanLag(lag, s.lagUnit);
  const inFlight = s.extra.in_flight;
  if (inFlight !== undefined) return `${humanCount(inFlight)} in flight`;
  return undefined;
}

/** One plain line for a stage: `enrich  transform/enrich  in 12.3k/s  out 12.3k/s  4.1 MiB/s  total 1.23M ...`. */
export function formatLine(stage: StageSnapshot, rates: Rates, nameWidth = 12): string {
  const parts = [
    padRight(stage.name, nameWidth),
    padRight(`${stage.kind}/${stage.type}`, 20),
    stage.kind === 'source' ? padLeft('', 11) : `in ${padLeft(humanRate(rates.inPerSec), 8)}`,
    `out ${padLeft(humanRate(rates.outPerSec), 8)}`,
    padLeft(humanByteRate(rates.bytesPerSec), 12),
    `total ${padLeft(humanCount(stage.kind === 'source' ? stage.recordsOut : stage.recordsIn), 6)}`,
    `err ${humanCount(stage.errors)}`,
  ];
  if (stage.dropped > 0) parts.push(`dropped ${humanCount(stage.dropped)}`);
  if (stage.duplicates > 0) parts.push(`dedup ${humanCount(stage.duplicates)}`);
  if (stage.retries > 0) parts.push(`retries ${humanCount(stage.retries)}`);
  if (stage.kind !== 'source' || stage.queueFill > 0)
    parts.push(`queue ${Math.round(stage.queueFill * 100)}%`);
  const lag = lagText(stage);
  if (lag !== undefined) parts.push(sourceLag(stage) !== undefined ? `lag ${lag}` : lag);
  return parts.join('  ').trimEnd();
}

/**
 * The plain interval output: one line per stage in wiring order, with rates measured since
 * `prev` (zero on the first call).
 */
export function renderPlainLines(prev: PipelineSnapshot | undefined, cur: PipelineSnapshot): string[] {
  const seconds = prev ? (cur.at - prev.at) / 1000 : 0;
  const before = new Map(prev?.stages.map((s) => [s.name, s]));
  const nameWidth = Math.min(24, Math.max(6, ...cur.stages.map((s) => s.name.length)));
  return wiringOrder(cur.stages).map(({ index }) => {
    const s = cur.stages[index];
    return formatLine(s, ratesBetween(before.get(s.name), s, seconds), nameWidth);
  });
}

interface Column {
  title: string;
  right: boolean;
  /** Shown even when every row is zero or empty. */
  always?: boolean;
  cell(s: StageSnapshot): string;
}

const count = (n: number): string => (n === 0 ? '0' : String(n));

const COLUMNS: Column[] = [
  { title: 'STAGE', right: false, always: true, cell: (s) => s.name },
  { title: 'KIND', right: false, always: true, cell: (s) => s.kind },
  { title: 'TYPE', right: false, always: true, cell: (s) => s.type },
  {
    title: 'IN',
    right: true,
    always: true,
    cell: (s) => (s.kind === 'source' && s.recordsIn === 0 ? '-' : count(s.recordsIn)),
  },
  { title: 'OUT', right: true, always: true, cell: (s) => count(s.recordsOut) },
  {
    title: 'BYTES',
    right: true,
    cell: (s) => (s.bytesIn + s.bytesOut > 0 ? humanBytes(Math.max(s.bytesIn, s.bytesOut)) : '-'),
  },
  { title: 'ERRORS', right: true, always: true, cell: (s) => count(s.errors) },
  { title: 'DROPPED', right: true, cell: (s) => count(s.dropped) },
  { title: 'DEDUP', right: true, cell: (s) => count(s.duplicates) },
  { title: 'RETRIES', right: true, cell: (s) => count(s.retries) },
  { title: 'LAG', right: true, cell: (s) => lagText(s) ?? '' },
];

const EMPTY = new Set(['', '0', '-']);

/**
 * The final totals: the pipeline's state, run time and average rates, then one row per stage
 * with exact counts. Columns that are zero for every stage are left out, so the table of a
 * typical pipeline fits 80 columns.
 */
export function formatTotals(snap: PipelineSnapshot): string {
  const elapsed = Math.max(0, snap.at - snap.startedAt);
  const t = pipelineTotals(snap);
  const secs = elapsed / 1000;
  const avg = (n: number): string => (secs > 0 ? ` (${humanRate(n / secs)})` : '');
  const head = [
    `${snap.pipeline}: ${snap.state} after ${uptime(elapsed)}`,
    `in ${t.in}${avg(t.in)}  out ${t.out}${avg(t.out)}  errors ${t.errors}`,
  ];
  const order = wiringOrder(snap.stages).map((p) => snap.stages[p.index]);
  const cells = order.map((s) => COLUMNS.map((c) => c.cell(s)));
  const used = COLUMNS.map((c, i) => c.always === true || cells.some((r) => !EMPTY.has(r[i])));
  const widths = COLUMNS.map((c, i) => Math.max(c.title.length, ...cells.map((r) => r[i].length)));
  const line = (row: string[]): string =>
    row
      .map((v, i) => (COLUMNS[i].right ? v.padStart(widths[i]) : v.padEnd(widths[i])))
      .filter((_, i) => used[i])
      .join('  ')
      .trimEnd();
  return [...head, line(COLUMNS.map((c) => c.title)), ...cells.map(line)].join('\n');
}
