/** Plain metric output when no screen UI runs: one line per stage per interval, a totals table at exit. */
import type { PipelineSnapshot, StageSnapshot } from '../runtime/metrics.ts';
import { humanBytes, humanCount, retryText } from '../tui/format.ts';

export function plainLines(prev: PipelineSnapshot | undefined, cur: PipelineSnapshot): string[] {
  const dt = prev ? (cur.at - prev.at) / 1000 : (cur.at - cur.startedAt) / 1000;
  return cur.stages.map((s) => {
    const p = prev?.stages.find((x) => x.name === s.name);
    const rin = (s.recordsIn - (p?.recordsIn ?? 0)) / (dt || 1);
    const rout = (s.recordsOut - (p?.recordsOut ?? 0)) / (dt || 1);
    const parts = [
      `${s.kind} ${s.name} (${s.type})`,
      s.kind === 'source' ? '' : `in ${humanCount(rin)}/s`,
      `out ${humanCount(rout)}/s`,
      `total ${humanCount(s.kind === 'source' ? s.recordsOut : s.recordsIn)}`,
      s.errors ? `errors ${s.errors}` : '',
      s.duplicates ? `duplicates ${s.duplicates}` : '',
      s.dropped ? `dropped ${s.dropped}` : '',
      s.retries ? `retries ${s.retries}` : '',
      `queue ${Math.round(s.queueFill * 100)}%`,
      s.lag !== undefined ? `lag ${humanCount(s.lag)}${s.lagUnit ?? ''}` : '',
      s.kind === 'sink' && s.held > 0 ? `held ${humanCount(s.held)}/${humanCount(s.heldLimit)}` : '',
      s.deadLettered ? `dead letters ${s.deadLettered}` : '',
      s.health.state === 'retrying' ? retryText(s.health, cur.at) : '',
    ];
    return parts.filter(Boolean).join('  ');
  });
}

const extraOf = (s: StageSnapshot) =>
  Object.entries(s.extra)
    .map(([k, v]) => `${k}=${humanCount(v)}`)
    .join(' ');

export function totalsTable(snap: PipelineSnapshot): string {
  const secs = (snap.at - snap.startedAt) / 1000;
  const header = [
    'stage',
    'kind',
    'type',
    'in',
    'out',
    'errors',
    'dead',
    'dup',
    'dropped',
    'bytes out',
    'other',
  ];
  const rows = snap.stages.map((s) => [
    s.name,
    s.kind,
    s.type,
    s.kind === 'source' ? '-' : String(s.recordsIn),
    String(s.recordsOut),
    String(s.errors),
    String(s.deadLettered),
    String(s.duplicates),
    String(s.dropped),
    humanBytes(s.bytesOut),
    extraOf(s),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => (i >= 3 && i <= 8 ? c.padStart(widths[i]) : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [
    `pipeline ${snap.pipeline}: ${snap.state} after ${secs.toFixed(1)}s`,
    line(header),
    line(widths.map((w) => '-'.repeat(w))),
    ...rows.map(line),
  ].join('\n');
}
