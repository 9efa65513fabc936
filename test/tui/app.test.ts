// Colours are decided when chalk loads, so force them before Ink is imported.
process.env.FORCE_COLOR = '1';

import { afterEach, describe, expect, it, vi } from 'vitest';
import type { PipelineSnapshot } from '../../src/runtime/metrics.ts';
import { demo, streams } from './fixtures.ts';

const React = (await import('react')).default;
const { render, cleanup } = await import('ink-testing-library');
const { App } = await import('../../src/tui/app.ts');
const { RateTracker } = await import('../../src/tui/model.ts');

const ESC = '\u001b';
const SGR = new RegExp(`${'\u001b'}\\[[0-9;]*m`, 'g');
const plain = (s: string | undefined): string => (s ?? '').replace(SGR, '');
const DOWN = `${ESC}[B`;
const UP = `${ESC}[A`;

/** A view after `seconds` of snapshots every 250 ms, as the live view would have built it. */
function viewOf(fixture: (t: number) => PipelineSnapshot, seconds = 5) {
  const t = new RateTracker();
  let v = t.update(fixture(0));
  for (let s = 0.25; s <= seconds; s += 0.25) v = t.update(fixture(s));
  return v;
}

function mount(
  fixture: (t: number) => PipelineSnapshot,
  props: { columns?: number; rows?: number; color?: boolean } = {},
) {
  const onQuit = vi.fn();
  const view = viewOf(fixture);
  const r = render(React.createElement(App, { view, onQuit, columns: 80, rows: 24, ...props }));
  return { ...r, onQuit, frame: () => plain(r.lastFrame()) };
}

const tick = () => new Promise((r) => setTimeout(r, 30));

afterEach(() => cleanup());

describe('live view layout', () => {
  it('shows the header, one row per stage in wiring order, and humanised rates', () => {
    const { frame } = mount((t) => demo(t, 12_345));
    const lines = frame().split('\n');
    expect(lines[0]).toMatch(/^sluice demo {2}● running {2}up 0:00:05 {2}in 12\.3k\/s {2}out 23\.5k\/s/);
    expect(lines[1]).toBe('log .sluice/logs/demo-20260115.log');
    expect(lines[2]).toMatch(/^STAGE\s+KIND TYPE\s+IN\/s OUT\/s MiB\/s\s+ERR\s+DROP QUEUE\s+LAG 60s/);
    const row = (name: string) => lines.find((l) => l.includes(name)) ?? '';
    expect(row('orders')).toMatch(/^ orders\s+src\s+generate\s+-\s+12\.3k\s+2\.1\s+0\s+0 █▌░░░/);
    expect(row('enriched')).toMatch(/^ └─enriched\s+xfrm\s+enrich\s+12\.3k\s+12\.3k\s+2\.1\s+0\s+0 ███/);
    expect(row('unique')).toMatch(/^ {3}└─unique\s+xfrm\s+dedup\s+12\.3k\s+11\.7k\s+2\.1\s+0\s+3\.09k/);
    expect(row('lake')).toMatch(/^ {5}│ └─lake\s+sink\s+file\s+11\.7k\s+11\.7k/);
    expect(lines.indexOf(row('orders'))).toBeLessThan(lines.indexOf(row('console')));
    // Throughput has run for a few seconds: the sparkline has bars on its right edge.
    expect(row('orders')).toMatch(/[▁▂▃▄▅▆▇█]$/);
    expect(lines.at(-1)).toMatch(/^q quit {2}e errors {2}↑↓ select {2}\? help/);
  });

  it('shows source lag: worst Kinesis shard, Kafka records behind, SNS requests in flight', () => {
    const { frame } = mount(streams);
    const lines = frame().split('\n');
    expect(lines[0]).toContain('● draining');
    expect(lines.find((l) => l.includes('sales'))).toMatch(/5\.3s [▁▂▃▄▅▆▇█ ]+$/);
    expect(lines.find((l) => l.includes('events'))).toMatch(/45\.0k [▁▂▃▄▅▆▇█ ]+$/);
    expect(lines.find((l) => l.startsWith(' consumption'))).toMatch(/7 req [▁▂▃▄▅▆▇█ ]+$/);
    expect(lines.find((l) => l.includes('merged'))).toMatch(/└─merged \+2 .*2\.85k 2\.00k/);
    expect(lines.find((l) => l.includes('rejects'))).toContain('└╌rejects');
  });

  it('paints a stage with errors red, marks it for colourless terminals, and counts errors in the header', () => {
    const { lastFrame } = mount((t) => demo(t, 1000, 4));
    const raw = lastFrame() ?? '';
    const line = raw.split('\n').find((l) => l.includes('enriched')) ?? '';
    expect(line).toContain(`${ESC}[31m`);
    expect(plain(line)).toMatch(/^!└─enriched .* 4 /);
    const clean = raw.split('\n').find((l) => l.includes('orders')) ?? '';
    expect(clean).not.toContain(`${ESC}[31m`);
    expect(plain(raw.split('\n')[0])).toContain('errors 4');
  });

  it('drops colours but keeps the marks under NO_COLOR', () => {
    const { lastFrame } = mount((t) => demo(t, 1000, 4), { color: false });
    const raw = lastFrame() ?? '';
    expect(raw).not.toMatch(new RegExp(`${ESC}\\[(\\d+;)*3\\dm`));
    expect(plain(raw)).toMatch(/!└─enriched/);
  });

  it('fits 80×24 without wrapping, and widens columns on a wider terminal', () => {
    const narrow = mount(streams, { columns: 80, rows: 24 }).frame().split('\n');
    expect(narrow.length).toBeLessThanOrEqual(23);
    for (const l of narrow) expect(l.length).toBeLessThanOrEqual(80);
    expect(narrow.join('\n')).not.toContain('TOTAL');
    cleanup();
    const wide = mount(streams, { columns: 140, rows: 40 }).frame().split('\n');
    expect(wide[1]).toMatch(
      /^STAGE\s+KIND\s+TYPE\s+IN\/s\s+OUT\/s\s+MiB\/s\s+TOTAL\s+ERR\s+DROP QUEUE\s+LAG LAST 60s/,
    );
    expect(wide.find((l) => l.includes('merged'))).toMatch(/transform filter .* 14\.3k /);
    expect(Math.max(...wide.map((l) => l.length))).toBeGreaterThan(100);
  });

  it('keeps the essential columns on a very narrow terminal', () => {
    const lines = mount((t) => demo(t, 12_345), { columns: 50, rows: 12 })
      .frame()
      .split('\n');
    for (const l of lines) expect(l.length).toBeLessThanOrEqual(50);
    expect(lines.length).toBeLessThanOrEqual(11);
    expect(lines.find((l) => l.startsWith('STAGE'))).toMatch(/IN\/s OUT\/s .*ERR/);
    expect(lines.find((l) => l.includes('unique'))).toContain('11.7k');
  });

  it('scrolls the stage rows when they do not fit', () => {
    const many = (t: number): PipelineSnapshot => {
      const d = demo(t);
      const extra = Array.from({ length: 30 }, (_, i) => ({
        ...d.stages[4],
        name: `sink_${i}`,
        inputs: ['unique'],
      }));
      return { ...d, stages: [...d.stages, ...extra] };
    };
    const lines = mount(many, { rows: 24 }).frame().split('\n');
    expect(lines.length).toBeLessThanOrEqual(23);
    expect(lines.at(-2)).toMatch(/… \d+ more stages/);
  });
});

describe('keys', () => {
  it('e toggles the errors panel with the newest reasons and their stage', async () => {
    const { stdin, frame } = mount((t) => demo(t, 1000, 3));
    expect(frame()).not.toContain('Recent errors');
    stdin.write('e');
    await tick();
    const lines = frame().split('\n');
    const at = lines.findIndex((l) => l.startsWith('Recent errors'));
    expect(at).toBeGreaterThan(0);
    expect(lines[at]).toContain('3 in all');
    expect(lines[at + 1]).toMatch(/^\d\d:\d\d:\d\d enriched no such key: peso_medio \(record 2\)$/);
    expect(lines[at + 3]).toMatch(/record 0\)$/);
    expect(lines.at(-1)).toContain('e errors (3)');
    stdin.write('e');
    await tick();
    expect(frame()).not.toContain('Recent errors');
  });

  it('folds repeats of one reason into a single line with a count', async () => {
    const repeated = (t: number): PipelineSnapshot => {
      const d = demo(t, 1000, 5);
      const enriched = d.stages[1];
      enriched.lastErrors = [
        ...Array.from({ length: 12 }, (_, i) => ({
          at: d.at - 1000 + i,
          stage: 'enriched',
          reason: "to_double: 'n/a' is not a number",
        })),
        { at: d.at, stage: 'enriched', reason: 'no such key: peso_medio' },
      ];
      return d;
    };
    const { stdin, frame } = mount(repeated);
    stdin.write('e');
    await tick();
    const lines = frame().split('\n');
    const at = lines.findIndex((l) => l.startsWith('Recent errors'));
    expect(lines[at + 1]).toMatch(/^\d\d:\d\d:\d\d enriched no such key: peso_medio$/);
    expect(lines[at + 2]).toMatch(/^\d\d:\d\d:\d\d enriched ×12 to_double: 'n\/a' is not a number$/);
    expect(lines[at + 3]).toMatch(/^q quit/);
  });

  it('? shows the key help', async () => {
    const { stdin, frame } = mount(demo);
    stdin.write('?');
    await tick();
    expect(frame()).toMatch(/Keys\nq, Ctrl-C\s+stop: drain/);
    stdin.write('?');
    await tick();
    expect(frame()).not.toContain('Keys');
  });

  it('arrows select a stage (wrapping around) and show its per-shard lag and counters', async () => {
    const { stdin, frame } = mount(streams, { columns: 100 });
    stdin.write(DOWN);
    await tick();
    let text = frame();
    expect(text).toMatch(/^›sales/m);
    expect(text).toMatch(/^sales {2}source kinesis$/m);
    expect(text).toContain('6 shards, time behind latest (worst 5.3s)');
    expect(text).toMatch(/shardId-000000000000 250ms\s+shardId-000000000001 1\.3s/);
    stdin.write(UP);
    await tick();
    text = frame();
    expect(text).toMatch(/^›events/m);
    expect(text).toContain('2 partitions, lag in records (total 45.0k)');
    expect(text).toMatch(/orders-0 30\.0k\s+orders-1 15\.0k/);
    stdin.write(UP);
    await tick();
    expect(frame()).toMatch(/^consumption {2}source sns$/m);
    expect(frame()).toContain('requests in flight 7');
    stdin.write(ESC);
    await tick();
    expect(frame()).not.toMatch(/^›/m);
  });

  it('q and Ctrl-C ask the runtime to stop and say it is draining', async () => {
    const { stdin, frame, onQuit } = mount(demo);
    stdin.write('q');
    await tick();
    expect(onQuit).toHaveBeenCalledTimes(1);
    expect(frame().split('\n').at(-1)).toMatch(/^stopping: draining in-flight records/);
    stdin.write('\u0003');
    await tick();
    expect(onQuit).toHaveBeenCalledTimes(2);
  });
});

describe('a sink waiting out an outage', () => {
  it('is marked in its row and named under the header with the reason and how long it has retried', () => {
    const retrying = (t: number): PipelineSnapshot => {
      const snap = demo(t);
      return {
        ...snap,
        stages: snap.stages.map((s) =>
          s.name === 'lake'
            ? {
                ...s,
                held: 9000,
                heldLimit: 50_000,
                health: {
                  state: 'retrying',
                  reason: 'EACCES: permission denied',
                  since: snap.at - 75_000,
                  lastSuccessAt: snap.at - 80_000,
                },
              }
            : s,
        ),
      };
    };
    const { frame } = mount(retrying);
    const lines = frame().split('\n');
    expect(lines).toContain('↻ lake retrying 1m15s: EACCES: permission denied; last success 1m20s ago');
    expect(lines.find((l) => l.includes('└─lake'))).toMatch(/^↻/);
    const { frame: healthy } = mount((t) => demo(t));
    expect(healthy()).not.toContain('retrying');
  });
});
