import { describe, expect, it } from 'vitest';
import { RateTracker, wiringOrder } from '../../src/tui/model.ts';
import { formatTotals, renderPlainLines } from '../../src/tui/plain.ts';
import { demo, stage, streams } from './fixtures.ts';

describe('RateTracker', () => {
  it('measures rates over a one-second window from successive snapshots', () => {
    const t = new RateTracker();
    expect(t.update(demo(0, 10_000)).rows[0].rates.outPerSec).toBe(0);
    t.update(demo(0.25, 10_000));
    t.update(demo(0.5, 10_000));
    const v = t.update(demo(1, 10_000));
    const orders = v.rows.find((r) => r.stage.name === 'orders')!;
    expect(orders.rates.outPerSec).toBeCloseTo(10_000, 0);
    expect(orders.rates.bytesPerSec).toBeCloseTo(10_000 * 180, -2);
    const unique = v.rows.find((r) => r.stage.name === 'unique')!;
    expect(unique.rates.outPerSec).toBeCloseTo(9_500, -1);
    // Pipeline in = sources' output; out = what the two sinks wrote.
    expect(v.inPerSec).toBeCloseTo(10_000, 0);
    expect(v.outPerSec).toBeCloseTo(2 * 9_500, -1);
  });

  it('follows a change of rate within a second or two', () => {
    const t = new RateTracker();
    let at = 0;
    let n = 0;
    const snap = () => ({
      ...demo(0),
      at: demo(0).startedAt + at * 1000,
      stages: [stage({ name: 's', kind: 'source' as const, type: 'generate', recordsOut: n })],
    });
    for (; at < 5; at += 0.25) {
      n += 250; // 1000/s
      t.update(snap());
    }
    let last = 0;
    for (; at <= 6.5; at += 0.25) {
      n += 2500; // 10000/s
      last = t.update(snap()).rows[0].rates.outPerSec;
    }
    expect(last).toBeCloseTo(10_000, 0);
  });

  it('keeps a minute of per-second history for the sparkline', () => {
    const t = new RateTracker();
    let v = t.update(demo(0, 1000));
    for (let s = 0.25; s <= 90; s += 0.25) v = t.update(demo(s, 1000));
    const h = v.rows[0].history;
    expect(h.length).toBe(60);
    for (const x of h) expect(x).toBeCloseTo(1000, 0);
  });
});

describe('wiringOrder', () => {
  it('draws the graph as a tree under each source, error edges dashed', () => {
    const s = streams(1).stages;
    const placed = wiringOrder(s).map(
      (p) => p.prefix + s[p.index].name + (p.extraInputs ? `+${p.extraInputs}` : ''),
    );
    expect(placed).toEqual(['sales', '└─merged+2', '  ├─warehouse', '  └╌rejects', 'consumption', 'events']);
  });

  it('nests deeper levels with guide lines', () => {
    const s = demo(1).stages;
    expect(wiringOrder(s).map((p) => p.prefix + s[p.index].name)).toEqual([
      'orders',
      '└─enriched',
      '  └─unique',
      '    ├─by_day',
      '    │ └─lake',
      '    └─console',
    ]);
  });

  it('still lists every stage of a cycle', () => {
    const s = [
      stage({ name: 'a', kind: 'transform', type: 'filter', inputs: ['b'] }),
      stage({ name: 'b', kind: 'transform', type: 'filter', inputs: ['a'] }),
    ];
    expect(
      wiringOrder(s)
        .map((p) => s[p.index].name)
        .sort(),
    ).toEqual(['a', 'b']);
  });
});

describe('plain output', () => {
  it('prints one line per stage in wiring order with humanised rates', () => {
    const lines = renderPlainLines(demo(1, 12_345), demo(2, 12_345));
    expect(lines).toHaveLength(6);
    expect(lines[0]).toMatch(
      /^orders\s+source\/generate\s+out\s+12\.3k\/s\s+2\.12 MiB\/s\s+total\s+24\.7k\s+err 0/,
    );
    expect(lines[2]).toMatch(/^unique .* in\s+12\.3k\/s\s+out\s+11\.7k\/s.* dedup 1\.23k/);
    expect(lines[4]).toMatch(/^lake .*queue 95%/);
  });

  it('shows zero rates on the first interval and the source lag', () => {
    const lines = renderPlainLines(undefined, streams(10));
    expect(lines[0]).toMatch(/^sales .*out\s+0\/s.*lag 5\.3s$/);
    expect(lines.find((l) => l.startsWith('consumption'))).toMatch(/7 in flight$/);
    expect(lines.find((l) => l.startsWith('events'))).toMatch(/lag 45\.0k$/);
  });

  it('formats the final totals with exact counts per stage in wiring order, under titled columns', () => {
    const text = formatTotals({ ...demo(10, 1000, 3), state: 'stopped' });
    const [head, rates, titles, rule, ...rows] = text.split('\n');
    expect(head).toBe('demo: stopped after 0:00:10');
    expect(rates).toBe('in 10000 (1.00k/s)  out 19000 (1.90k/s)  errors 3');
    // Columns are found by title: words within a title are one space apart, columns two or more.
    expect(titles.split(/\s{2,}/)).toEqual([
      'stage',
      'kind',
      'type',
      'in',
      'out',
      'errors',
      'dead',
      'dup',
      'dropped',
      'retries',
      'bytes out',
      'lag',
      'other',
    ]);
    expect(rule).toMatch(/^-+( {2}-+){12}$/);
    expect(rows.map((r) => r.split(/\s+/)[0])).toEqual([
      'orders',
      'enriched',
      'unique',
      'by_day',
      'lake',
      'console',
    ]);
    expect(rows[0].split(/\s{2,}/)).toEqual([
      'orders',
      'source',
      'generate',
      '-',
      '10000',
      '0',
      '0',
      '0',
      '0',
      '0',
      '1.72 MiB',
      '-',
    ]);
    expect(rows[1].split(/\s{2,}/)).toEqual([
      'enriched',
      'transform',
      'enrich',
      '10000',
      '9997',
      '3',
      '0',
      '0',
      '0',
      '0',
      '1.72 MiB',
      '-',
    ]);
    expect(rows[2].split(/\s{2,}/).slice(3, 8)).toEqual(['9997', '9500', '0', '0', '497']);
  });

  it("shows a source's lag or requests in flight, and a sink's retries", () => {
    const text = formatTotals(streams(100));
    const lines = text.split('\n');
    const titles = lines[2].split(/\s{2,}/);
    const row = (name: string) => {
      const cells = (lines.find((l) => l.startsWith(`${name} `)) ?? '').split(/\s{2,}/);
      return Object.fromEntries(titles.map((t, i) => [t, cells[i]]));
    };
    expect(row('sales').lag).toBe('5.3s');
    expect(row('consumption').lag).toBe('7 in flight');
    expect(row('events').lag).toBe('45.0k');
    expect(row('warehouse').retries).toBe('3');
    expect(row('warehouse').lag).toBe('-');
  });
});
