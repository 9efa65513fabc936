/**
 * The live view. Everything on screen is computed here from a `View` (rates already derived)
 * as lines of styled segments, each line cut to the terminal width, so the frame never wraps
 * and its height never exceeds the terminal's.
 */
import { Box, Text, useInput, useStdin, useWindowSize } from 'ink';
import React from 'react';
import type { PipelineState, StageSnapshot } from '../runtime/metrics.ts';
import {
  bar,
  clip,
  humanBytes,
  humanCount,
  humanDuration,
  humanLag,
  humanRate,
  mibNumber,
  padLeft,
  padRight,
  retryText,
  sparkline,
  uptime,
} from './format.ts';
import { HISTORY_SECONDS, type StageRow, throughput, type View } from './model.ts';
import { lagText, sourceLag } from './plain.ts';

const h = React.createElement;

export interface Seg {
  text: string;
  color?: string;
  bold?: boolean;
  dim?: boolean;
  inverse?: boolean;
}
export type Line = Seg[];

export interface AppProps {
  view: View;
  onQuit: () => void;
  /** Overrides the terminal size (tests, fixed layouts). */
  columns?: number;
  rows?: number;
  /** False under NO_COLOR: styles stay, colours go. */
  color?: boolean;
}

type Panel = 'none' | 'errors' | 'help';

const STATE_COLOR: Record<PipelineState, string> = {
  starting: 'cyan',
  running: 'green',
  draining: 'yellow',
  stopped: 'gray',
  failed: 'red',
};

const KIND_SHORT: Record<StageSnapshot['kind'], string> = { source: 'src', transform: 'xfrm', sink: 'sink' };

interface Column {
  id: string;
  title: string;
  min: number;
  max: number;
  right: boolean;
  /** Lower survives longer as the terminal narrows. */
  priority: number;
  cell(row: StageRow, width: number, selected: boolean): Seg;
}

const dimZero = (n: number, text = humanCount(n)): Seg => (n === 0 ? { text, dim: true } : { text });

const COLUMNS: Column[] = [
  {
    id: 'name',
    title: 'STAGE',
    min: 16,
    max: 28,
    right: false,
    priority: 0,
    cell: (r, _w, selected) => {
      const mark = selected
        ? '›'
        : r.stage.health.state === 'retrying'
          ? '↻'
          : r.stage.errors > 0
            ? '!'
            : ' ';
      const more = r.extraInputs > 0 ? ` +${r.extraInputs}` : '';
      return { text: mark + r.prefix + r.stage.name + more, bold: r.depth === 0 };
    },
  },
  {
    id: 'kind',
    title: 'KIND',
    min: 4,
    max: 9,
    right: false,
    priority: 3,
    cell: (r, w) => ({ text: w >= 9 ? r.stage.kind : KIND_SHORT[r.stage.kind], dim: true }),
  },
  {
    id: 'type',
    title: 'TYPE',
    min: 7,
    max: 12,
    right: false,
    priority: 2,
    cell: (r) => ({ text: r.stage.type }),
  },
  {
    id: 'in',
    title: 'IN/s',
    min: 5,
    max: 7,
    right: true,
    priority: 0,
    cell: (r) =>
      r.stage.kind === 'source' && r.stage.recordsIn === 0
        ? { text: '-', dim: true }
        : dimZero(r.rates.inPerSec),
  },
  {
    id: 'out',
    title: 'OUT/s',
    min: 5,
    max: 7,
    right: true,
    priority: 0,
    cell: (r) => dimZero(r.rates.outPerSec),
  },
  {
    id: 'mib',
    title: 'MiB/s',
    min: 5,
    max: 6,
    right: true,
    priority: 1,
    cell: (r) => dimZero(r.rates.bytesPerSec, mibNumber(r.rates.bytesPerSec)),
  },
  {
    id: 'total',
    title: 'TOTAL',
    min: 6,
    max: 7,
    right: true,
    priority: 4,
    cell: (r) => ({ text: humanCount(throughput(r.stage)) }),
  },
  { id: 'err', title: 'ERR', min: 5, max: 6, right: true, priority: 0, cell: (r) => dimZero(r.stage.errors) },
  {
    id: 'drop',
    title: 'DROP',
    min: 5,
    max: 6,
    right: true,
    priority: 1,
    cell: (r) => dimZero(r.stage.dropped + r.stage.duplicates),
  },
  {
    id: 'queue',
    title: 'QUEUE',
    min: 5,
    max: 5,
    right: false,
    priority: 1,
    cell: (r, w) => {
      const f = r.stage.queueFill;
      return { text: bar(f, w), color: f >= 0.9 ? 'red' : f >= 0.5 ? 'yellow' : 'green' };
    },
  },
  {
    id: 'lag',
    title: 'LAG',
    min: 5,
    max: 9,
    right: true,
    priority: 1,
    cell: (r) => {
      const s = r.stage;
      const lag = sourceLag(s);
      if (lag !== undefined) return { text: humanLag(lag, s.lagUnit), color: 'cyan' };
      const inFlight = s.extra.in_flight;
      if (inFlight !== undefined) return { text: `${humanCount(inFlight)} req`, color: 'cyan' };
      return { text: '' };
    },
  },
  {
    id: 'spark',
    title: 'LAST 60s',
    min: 6,
    max: HISTORY_SECONDS,
    right: false,
    priority: 2,
    cell: (r, w) => ({ text: sparkline(r.history, w, HISTORY_SECONDS), color: 'cyan' }),
  },
];

/** Where spare columns go, in order, once the minimum layout fits. */
const GROWTH: [string, number][] = [
  ['type', 9],
  ['name', 20],
  ['in', 6],
  ['out', 6],
  ['spark', 12],
  ['type', 12],
  ['lag', 9],
  ['name', 24],
  ['kind', 9],
  ['in', 7],
  ['out', 7],
  ['total', 7],
  ['spark', HISTORY_SECONDS],
  ['name', 28],
];

export interface Layout {
  columns: Column[];
  widths: number[];
}

/** Picks the columns that clip in `width` cells (one space between them) and sizes them. */
export function layoutColumns(width: number): Layout {
  let cols = COLUMNS.slice();
  const need = (cs: Column[]): number => cs.reduce((n, c) => n + c.min, 0) + cs.length - 1;
  while (need(cols) > width) {
    const worst = Math.max(...cols.map((c) => c.priority));
    if (worst === 0) break;
    const idx = cols.map((c) => c.priority).lastIndexOf(worst);
    cols = cols.filter((_, i) => i !== idx);
  }
  const widths = cols.map((c) => c.min);
  let spare = width - need(cols);
  for (const [id, upto] of GROWTH) {
    const i = cols.findIndex((c) => c.id === id);
    if (i < 0 || spare <= 0) continue;
    const add = Math.min(spare, Math.max(0, Math.min(upto, cols[i].max) - widths[i]));
    widths[i] += add;
    spare -= add;
  }
  return { columns: cols, widths };
}

function cellText(seg: Seg, width: number, right: boolean): Seg {
  return { ...seg, text: right ? padLeft(seg.text, width) : padRight(seg.text, width) };
}

function headerRow(layout: Layout): Line {
  const text = layout.columns
    .map((c, i) => {
      const w = layout.widths[i];
      const title = c.id === 'spark' && w < c.title.length ? '60s' : c.title;
      return c.right ? padLeft(title, w) : padRight(title, w);
    })
    .join(' ');
  return [{ text, bold: true, dim: true }];
}

function stageLine(r: StageRow, layout: Layout, selected: boolean): Line {
  const retrying = r.stage.health.state === 'retrying';
  const color = retrying ? 'yellow' : r.stage.errors > 0 ? 'red' : undefined;
  const out: Line = [];
  layout.columns.forEach((c, i) => {
    if (i > 0) out.push({ text: ' ' });
    const seg = cellText(c.cell(r, layout.widths[i], selected), layout.widths[i], c.right);
    const painted = c.id === 'queue' || c.id === 'spark';
    if (color && !painted) {
      seg.color = color;
      seg.dim = false;
    }
    out.push(seg);
  });
  if (selected) for (const s of out) s.inverse = true;
  return out;
}

function headerLines(view: View, width: number): Line[] {
  const s = view.snapshot;
  const first: Line = [
    { text: 'sluice ', dim: true },
    { text: s.pipeline, bold: true },
    { text: '  ' },
    { text: `● ${s.state}`, color: STATE_COLOR[s.state], bold: true },
    { text: `  up ${uptime(s.at - s.startedAt)}` },
    { text: `  in ${humanRate(view.inPerSec)}` },
    { text: `  out ${humanRate(view.outPerSec)}` },
  ];
  if (view.errors > 0) first.push({ text: `  errors ${humanCount(view.errors)}`, color: 'red', bold: true });
  const dead = view.rows.reduce((n, r) => n + r.stage.deadLettered, 0);
  if (dead > 0) first.push({ text: `  dead letters ${humanCount(dead)}`, color: 'red' });
  const lines = [first];
  for (const r of view.rows) {
    const h = r.stage.health;
    if (h.state !== 'retrying') continue;
    lines.push([
      { text: clip(`↻ ${r.stage.name} ${retryText(h, s.at)}`, width), color: 'yellow', bold: true },
    ]);
  }
  if (s.notice) lines.push([{ text: clip(`⚠ ${s.notice}`, width), color: 'red', bold: true }]);
  if (s.logFile) lines.push([{ text: clip(`log ${s.logFile}`, width), dim: true }]);
  return lines;
}

interface ErrorGroup {
  at: number;
  stage: string;
  reason: string;
  count: number;
}

/** Recent error samples of every stage, newest first, with repeats of a reason folded into one. */
function recentErrors(view: View): ErrorGroup[] {
  const all = view.rows.flatMap((r) => r.stage.lastErrors).sort((a, b) => b.at - a.at);
  const groups = new Map<string, ErrorGroup>();
  for (const e of all) {
    const key = `${e.stage}\u0000${e.reason}`;
    const g = groups.get(key);
    if (g) g.count++;
    else groups.set(key, { ...e, count: 1 });
  }
  return [...groups.values()];
}

function clock(at: number): string {
  const d = new Date(at);
  return [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, '0')).join(':');
}

function errorsPanel(view: View, width: number, height: number): Line[] {
  const errs = recentErrors(view);
  const lines: Line[] = [
    [{ text: clip(`Recent errors (${humanCount(view.errors)} in all; e closes)`, width), bold: true }],
  ];
  if (errs.length === 0) lines.push([{ text: 'No errors.', dim: true }]);
  const nameWidth = Math.min(16, Math.max(...errs.map((e) => e.stage.length), 4));
  for (const e of errs.slice(0, Math.max(0, height - 1))) {
    const times = e.count > 1 ? `×${e.count} ` : '';
    const lead = `${clock(e.at)} ${padRight(e.stage, nameWidth)} ${times}`;
    lines.push([
      { text: lead.slice(0, 9), dim: true },
      { text: lead.slice(9), color: 'red' },
      { text: clip(e.reason.replace(/\s+/g, ' '), Math.max(0, width - lead.length)) },
    ]);
  }
  return lines;
}

const HELP: [string, string][] = [
  ['q, Ctrl-C', 'stop: drain in-flight records, write checkpoints, exit'],
  ['q again', 'exit at once (records not yet acknowledged are read again next run)'],
  ['e', 'show or hide recent errors'],
  ['↑ ↓  (k j)', 'select a stage: per-shard / per-partition detail'],
  ['Esc', 'clear the selection, close panels'],
  ['?', 'show or hide this help'],
];

function helpPanel(width: number): Line[] {
  return [
    [{ text: 'Keys', bold: true }],
    ...HELP.map(
      ([k, v]): Line => [{ text: padRight(k, 12), bold: true }, { text: clip(v, Math.max(0, width - 12)) }],
    ),
    [
      {
        text: clip(
          'Rates are measured by this view over the last second; LAST 60s is per-second throughput.',
          width,
        ),
        dim: true,
      },
    ],
  ];
}

/** Lays `items` out in aligned columns, row-major, within `height` lines; the rest is counted. */
function grid(items: string[], width: number, height: number): string[] {
  if (items.length === 0 || height <= 0) return [];
  const cell = Math.min(width, Math.max(...items.map((s) => s.length)) + 2);
  const perLine = Math.max(1, Math.floor((width + 2) / cell));
  const rows: string[][] = [];
  for (let i = 0; i < items.length; i += perLine) rows.push(items.slice(i, i + perLine));
  if (rows.length > height) {
    const shown = rows.slice(0, height);
    const last = shown[height - 1];
    const hidden = items.length - height * perLine + 1;
    shown[height - 1] = [...last.slice(0, -1), `… ${hidden} more`];
    return shown.map((r) =>
      clip(
        r
          .map((s) => s.padEnd(cell))
          .join('')
          .trimEnd(),
        width,
      ),
    );
  }
  return rows.map((r) =>
    r
      .map((s) => s.padEnd(cell))
      .join('')
      .trimEnd(),
  );
}

/** Packs `items` into lines two spaces apart, within `height` lines. */
function flow(items: string[], width: number, height: number): string[] {
  const lines: string[] = [];
  let cur = '';
  for (const item of items) {
    if (cur !== '' && cur.length + 2 + item.length > width) {
      lines.push(cur);
      cur = '';
    }
    cur = cur === '' ? item : `${cur}  ${item}`;
  }
  if (cur !== '') lines.push(cur);
  return lines.slice(0, height).map((l) => clip(l, width));
}

function detailPanel(r: StageRow, width: number, height: number): Line[] {
  const s = r.stage;
  const from = s.inputs.length > 0 ? `  from ${s.inputs.join(', ')}` : '';
  const lines: Line[] = [
    [
      { text: s.name, bold: true, color: s.errors > 0 ? 'red' : undefined },
      { text: clip(`  ${s.kind} ${s.type}${from}`, width - s.name.length) },
    ],
  ];
  const stats = [
    `in ${humanCount(s.recordsIn)}${bytesNote(s.bytesIn)}`,
    `out ${humanCount(s.recordsOut)}${bytesNote(s.bytesOut)}`,
    `errors ${humanCount(s.errors)}`,
    `dropped ${humanCount(s.dropped)}`,
    `dedup ${humanCount(s.duplicates)}`,
    `retries ${humanCount(s.retries)}`,
    `queue ${Math.round(s.queueFill * 100)}%`,
    `batch ${humanDuration(s.batchLatencyMs)}`,
  ];
  if (s.kind === 'sink') stats.push(`held ${humanCount(s.held)}/${humanCount(s.heldLimit)}`);
  if (s.deadLettered > 0) stats.push(`dead letters ${humanCount(s.deadLettered)}`);
  for (const l of flow(stats, width, 2)) lines.push([{ text: l }]);
  if (s.health.state === 'retrying')
    lines.push([{ text: clip(retryText(s.health, Date.now()), width), color: 'yellow' }]);
  const parts = Object.entries(s.lagByPartition).sort(([a], [b]) =>
    a.localeCompare(b, 'en', { numeric: true }),
  );
  if (parts.length > 0) {
    const what =
      s.lagUnit === 'ms'
        ? `${parts.length} shards, time behind latest (worst ${lagText(s) ?? '-'})`
        : `${parts.length} partitions, lag in ${s.lagUnit ?? 'records'} (total ${lagText(s) ?? '-'})`;
    lines.push([{ text: clip(what, width), bold: true }]);
    const items = parts.map(([p, v]) => `${p} ${humanLag(v, s.lagUnit)}`);
    for (const l of grid(items, width, Math.max(1, height - lines.length - 1)))
      lines.push([{ text: l, color: 'cyan' }]);
  }
  const extra = Object.entries(s.extra).map(
    ([k, v]) => `${k === 'in_flight' ? 'requests in flight' : k.replace(/_/g, ' ')} ${humanCount(v)}`,
  );
  for (const l of flow(extra, width, 1)) lines.push([{ text: l, dim: true }]);
  return lines.slice(0, height);
}

function bytesNote(n: number): string {
  return n > 0 ? ` (${humanBytes(n)})` : '';
}

function footer(width: number, quitting: boolean, errors: number, hasSelection: boolean): Line {
  if (quitting)
    return [
      {
        text: clip('stopping: draining in-flight records, writing checkpoints…  q again: exit now', width),
        color: 'yellow',
      },
    ];
  const keys = `q quit  e errors${errors > 0 ? ` (${humanCount(errors)})` : ''}  ↑↓ ${hasSelection ? 'move' : 'select'}  ? help`;
  return [{ text: clip(keys, width), dim: true }];
}

/** The whole frame as lines; exported for tests and for a one-shot text capture. */
export function frameLines(
  view: View,
  ui: { width: number; height: number; selected: number; panel: Panel; quitting: boolean },
): Line[] {
  const { width, height } = ui;
  const layout = layoutColumns(width);
  const head = headerLines(view, width);
  const foot = footer(width, ui.quitting, view.errors, ui.selected >= 0);
  const fixed = head.length + 1 + 1;
  const room = Math.max(1, height - fixed);
  const selected = ui.selected >= 0 && ui.selected < view.rows.length ? view.rows[ui.selected] : undefined;
  // The panel takes what the stage rows leave, but never fewer than 4 lines when open.
  let panel: Line[] = [];
  const panelRoom = (want: number): number => Math.max(Math.min(want, 4), room - view.rows.length);
  if (ui.panel === 'help') panel = helpPanel(width);
  else if (ui.panel === 'errors') panel = errorsPanel(view, width, panelRoom(recentErrors(view).length + 1));
  else if (selected) panel = detailPanel(selected, width, panelRoom(99));
  if (panel.length > 0) panel = panel.slice(0, Math.max(0, panelRoom(panel.length + 1) - 1));
  const rowRoom = Math.max(1, room - (panel.length > 0 ? panel.length + 1 : 0));

  let first = 0;
  if (view.rows.length > rowRoom && ui.selected >= 0)
    first = Math.min(Math.max(0, ui.selected - rowRoom + 2), view.rows.length - rowRoom);
  const visible = view.rows.slice(first, first + rowRoom);
  const hidden = view.rows.length - visible.length;
  const body: Line[] = visible.map((r, i) => stageLine(r, layout, first + i === ui.selected));
  if (hidden > 0)
    body[body.length - 1] = [{ text: clip(`  … ${hidden} more stages (↑↓ to scroll)`, width), dim: true }];

  const lines: Line[] = [...head, headerRow(layout), ...body];
  if (panel.length > 0) lines.push([{ text: '─'.repeat(width), dim: true }], ...panel);
  lines.push(foot);
  return lines.map((l) => clipLine(l, width));
}

/** Cuts a line of segments to `width` cells, marking the cut. */
export function clipLine(line: Line, width: number): Line {
  const out: Line = [];
  let used = 0;
  const total = line.reduce((n, s) => n + s.text.length, 0);
  if (total <= width) return line;
  for (const seg of line) {
    const room = width - used;
    if (room <= 0) break;
    if (seg.text.length < room || (seg.text.length === room && used + seg.text.length === total)) {
      out.push(seg);
      used += seg.text.length;
    } else {
      out.push({ ...seg, text: clip(`${seg.text.slice(0, room)}…`, room) });
      break;
    }
  }
  return out;
}

const SGR_COLOR: Record<string, number> = { red: 31, green: 32, yellow: 33, cyan: 36, gray: 90 };

/**
 * A line as one string with its own SGR codes. One Ink node per line instead of one per
 * segment keeps each frame's reconcile and layout work small, which is what the pipeline
 * pays for.
 */
export function lineText(line: Line, color: boolean): string {
  let out = '';
  let open = '';
  let run = '';
  const flush = (): void => {
    if (run === '') return;
    out += open === '' ? run : `\u001b[${open}m${run}\u001b[0m`;
    run = '';
  };
  for (const seg of line) {
    const codes: number[] = [];
    if (seg.bold) codes.push(1);
    if (seg.dim) codes.push(2);
    if (seg.inverse) codes.push(7);
    if (color && seg.color !== undefined && SGR_COLOR[seg.color] !== undefined)
      codes.push(SGR_COLOR[seg.color]);
    const style = codes.join(';');
    if (style !== open) {
      flush();
      open = style;
    }
    run += seg.text;
  }
  flush();
  return out;
}

export function App(props: AppProps): React.ReactElement {
  const size = useWindowSize();
  const { isRawModeSupported } = useStdin();
  const [selected, setSelected] = React.useState(-1);
  const [panel, setPanel] = React.useState<Panel>('none');
  const [quitting, setQuitting] = React.useState(false);
  const { view, onQuit } = props;
  const n = view.rows.length;

  useInput(
    (input, key) => {
      if (input === 'q' || (key.ctrl && input === 'c')) {
        setQuitting(true);
        onQuit();
      } else if (input === 'e') setPanel((p) => (p === 'errors' ? 'none' : 'errors'));
      else if (input === '?') setPanel((p) => (p === 'help' ? 'none' : 'help'));
      else if (key.escape) {
        setSelected(-1);
        setPanel('none');
      } else if (key.downArrow || input === 'j') {
        setSelected((s) => (n === 0 ? -1 : (s + 1) % n));
        setPanel((p) => (p === 'help' ? 'none' : p));
      } else if (key.upArrow || input === 'k') {
        setSelected((s) => (n === 0 ? -1 : s <= 0 ? n - 1 : s - 1));
        setPanel((p) => (p === 'help' ? 'none' : p));
      }
    },
    { isActive: isRawModeSupported },
  );

  const width = Math.max(20, props.columns ?? size.columns);
  // One line short of the screen: a full-height frame would scroll the terminal on its last newline.
  const height = Math.max(6, (props.rows ?? size.rows) - 1);
  const stopped = view.snapshot.state === 'stopped' || view.snapshot.state === 'failed';
  const lines = frameLines(view, { width, height, selected, panel, quitting: quitting && !stopped });
  const color = props.color ?? true;
  return h(
    Box,
    { flexDirection: 'column', width },
    ...lines.map((l, i) => h(Text, { key: i, wrap: 'truncate-end' }, lineText(l, color))),
  );
}
