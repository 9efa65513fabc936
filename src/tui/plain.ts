/**
 * Text without a screen, the one plain renderer: a line per stage per interval (no TTY,
 * `--no-tui`, `sluice top` into a pipe) and the totals table printed when a run ends, after the
 * live view or the plain lines alike. Plain characters only, so it reads the same in a CI log,
 * a pipe and the scrollback; tests and scripts parse the table by its column titles.
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
  retryText,
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

/**
 * One plain line for a stage: `enrich  transform/enrich  in 12.3k/s  out 12.3k/s  4.1 MiB/s  total 1.23M ...`;
 * a sink waiting out an outage says so, with its reason and how long, at `now`.
 */
export function formatLine(stage: StageSnapshot, rates: Rates, nameWidth = 12, now = Date.now()): string {
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
  if (stage.kind === 'sink' && stage.held > 0)
    parts.push(`held ${humanCount(stage.held)}/${humanCount(stage.heldLimit)}`);
  if (stage.deadLettered > 0) parts.push(`dead letters ${humanCount(stage.deadLettered)}`);
  if (stage.health.state === 'retrying') parts.push(retryText(stage.health, now));
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
    return formatLine(s, ratesBetween(before.get(s.name), s, seconds), nameWidth, cur.at);
  });
}

interface Column {
  title: string;
  right: boolean;
  cell(s: StageSnapshot): string;
}

const extraText = (s: StageSnapshot): string =>
  Object.entries(s.extra)
    .map(([k, v]) => `${k}=${humanCount(v)}`)
    .join(' ');

/**
 * Exact counts per stage. Titles and their order are an interface: scripts and tests find
 * columns by title (words separated by one space, columns by two or more).
 */
const COLUMNS: readonly Column[] = [
  { title: 'stage', right: false, cell: (s) => s.name },
  { title: 'kind', right: false, cell: (s) => s.kind },
  { title: 'type', right: false, cell: (s) => s.type },
  // A source reads no input of the pipeline's.
  { title: 'in', right: true, cell: (s) => (s.kind === 'source' ? '-' : String(s.recordsIn)) },
  { title: 'out', right: true, cell: (s) => String(s.recordsOut) },
  { title: 'errors', right: true, cell: (s) => String(s.errors) },
  { title: 'dead', right: true, cell: (s) => String(s.deadLettered) },
  { title: 'dup', right: true, cell: (s) => String(s.duplicates) },
  { title: 'dropped', right: true, cell: (s) => String(s.dropped) },
  { title: 'retries', right: true, cell: (s) => String(s.retries) },
  { title: 'bytes out', right: true, cell: (s) => humanBytes(s.bytesOut) },
  // Never empty: a blank cell would merge two columns for a reader splitting on spaces.
  { title: 'lag', right: true, cell: (s) => lagText(s) ?? '-' },
  { title: 'other', right: false, cell: extraText },
];

/**
 * The final totals: the pipeline's state and run time, the records in and out with their
 * average rates, then one row per stage in wiring order with exact counts.
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
  const widths = COLUMNS.map((c, i) => Math.max(c.title.length, ...cells.map((r) => r[i].length)));
  const line = (row: readonly string[]): string =>
    row
      .map((v, i) => (COLUMNS[i].right ? v.padStart(widths[i]) : v.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [
    ...head,
    line(COLUMNS.map((c) => c.title)),
    line(widths.map((w) => '-'.repeat(w))),
    ...cells.map(line),
  ].join('\n');
}
