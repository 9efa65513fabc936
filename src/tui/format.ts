/**
 * Number and glyph formatting shared by the live view, the plain interval lines and the
 * totals table. Every function returns a short string of single-width characters, so column
 * widths can be computed with `.length`.
 */

import type { SinkHealth } from '../runtime/metrics.ts';

const UNITS = ['', 'k', 'M', 'G', 'T'];

/** Three significant digits with a metric suffix: 999, 1.23k, 12.3k, 123k, 1.23M. */
export function humanCount(n: number): string {
  if (!Number.isFinite(n)) return '-';
  const neg = n < 0;
  let v = Math.abs(n);
  if (v < 1000) {
    const s = v === 0 || v >= 10 || Number.isInteger(v) ? String(Math.round(v)) : v.toFixed(1);
    return neg ? `-${s}` : s;
  }
  let u = 0;
  while (v >= 999.5 && u < UNITS.length - 1) {
    v /= 1000;
    u++;
  }
  const s = v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
  return `${neg ? '-' : ''}${s}${UNITS[u]}`;
}

/** Records per second: `12.3k/s`. */
export function humanRate(perSec: number): string {
  return `${humanCount(perSec)}/s`;
}

const MIB = 1024 * 1024;

/** A bytes-per-second figure in MiB without the unit, for a `MiB/s` column: 0, 0.04, 4.1, 123. */
export function mibNumber(bytesPerSec: number): string {
  const v = bytesPerSec / MIB;
  if (v === 0) return '0';
  if (v < 0.005) return '<.01';
  if (v < 1) return v.toFixed(2).replace(/^0/, '');
  if (v < 100) return v.toFixed(1);
  return humanCount(Math.round(v));
}

/** Bytes per second with the unit: `4.1 MiB/s`. */
export function humanByteRate(bytesPerSec: number): string {
  return `${humanBytes(bytesPerSec)}/s`;
}

const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** Binary units: 512 B, 12.0 KiB, 4.1 MiB, 1.23 GiB. */
export function humanBytes(n: number): string {
  let v = Math.max(0, n);
  let u = 0;
  while (v >= 1024 && u < BYTE_UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  const s = u === 0 ? String(Math.round(v)) : v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
  return `${s} ${BYTE_UNITS[u]}`;
}

/** A short duration: 120ms, 3.4s, 2m05s, 1h02m, 3d04h. */
export function humanDuration(ms: number): string {
  if (!Number.isFinite(ms)) return '-';
  const v = Math.max(0, ms);
  if (v < 1000) return `${Math.round(v)}ms`;
  if (v < 10_000) return `${(v / 1000).toFixed(1)}s`;
  const s = Math.floor(v / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d${String(h % 24).padStart(2, '0')}h`;
}

/** Wall-clock uptime: 0:00:07, 1:02:03, 3d 04:05:06. */
export function uptime(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const d = Math.floor(s / 86_400);
  const hh = Math.floor((s % 86_400) / 3600);
  const mm = String(Math.floor((s % 3600) / 60)).padStart(2, '0');
  const ss = String(s % 60).padStart(2, '0');
  return d > 0 ? `${d}d ${String(hh).padStart(2, '0')}:${mm}:${ss}` : `${hh}:${mm}:${ss}`;
}

/** A lag value in its unit: milliseconds become a duration, anything else a count. */
export function humanLag(value: number, unit: string | undefined): string {
  if (unit === 'ms') return humanDuration(value);
  if (unit === 's') return humanDuration(value * 1000);
  return humanCount(value);
}

const EIGHTHS = ['', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];

/** A horizontal bar of `width` cells for a fill in 0..1, with eighth-cell resolution. */
export function bar(fill: number, width: number): string {
  const f = Math.min(1, Math.max(0, Number.isFinite(fill) ? fill : 0));
  const eighths = Math.round(f * width * 8);
  const full = Math.floor(eighths / 8);
  const part = EIGHTHS[eighths % 8];
  return ('█'.repeat(full) + part).padEnd(width, '░');
}

const TICKS = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/**
 * A sparkline of `width` cells over `samples` (oldest first), right-aligned: the newest value
 * is the last cell. When there are more samples than cells, neighbours are averaged; cells with
 * no data yet are blank, and zero stays blank so idle time reads as a gap.
 */
export function sparkline(samples: readonly number[], width: number, span = samples.length): string {
  if (width <= 0) return '';
  const per = Math.max(1, span / width);
  const cells: number[] = [];
  // Walk from the newest sample backwards so the right edge is always "now".
  for (let c = 0; c < width; c++) {
    const hi = samples.length - Math.round(c * per);
    const lo = Math.max(0, samples.length - Math.round((c + 1) * per));
    if (hi <= 0) break;
    let sum = 0;
    for (let i = lo; i < hi; i++) sum += samples[i];
    cells.push(sum / Math.max(1, hi - lo));
  }
  cells.reverse();
  let max = 0;
  for (const v of cells) if (v > max) max = v;
  let out = '';
  for (const v of cells) out += v <= 0 || max <= 0 ? ' ' : TICKS[Math.min(7, Math.ceil((v / max) * 8) - 1)];
  return out.padStart(width, ' ');
}

/** Cuts `s` to `width` cells, marking the cut with an ellipsis. */
export function clip(s: string, width: number): string {
  if (width <= 0) return '';
  if (s.length <= width) return s;
  return width === 1 ? '…' : `${s.slice(0, width - 1)}…`;
}

export function padLeft(s: string, width: number): string {
  return clip(s, width).padStart(width, ' ');
}

export function padRight(s: string, width: number): string {
  return clip(s, width).padEnd(width, ' ');
}

/** A short span for operators: `45s`, `3m05s`, `2h10m`. */
export function shortSpan(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** `retrying 12s: connection refused; last success 14s ago`: what an operator needs to judge an outage. */
export function retryText(h: SinkHealth, now: number): string {
  const since = h.since ? ` ${shortSpan(now - h.since)}` : '';
  const last = h.lastSuccessAt
    ? `; last success ${shortSpan(now - h.lastSuccessAt)} ago`
    : '; no success yet';
  return `retrying${since}: ${h.reason ?? 'transient failure'}${last}`;
}
