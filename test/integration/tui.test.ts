/**
 * `sluice run` on a real pseudo-terminal (tmux): the live view shows every stage moving, the
 * keys work, `q` drains and exits (3: the demo's bad records) with the totals left on the normal screen, and the
 * checkpoint it wrote lets the next run resume exactly where this one stopped.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../..');
const node = join(root, 'node_modules/.bin/node');
const socket = `sluice-tui-${randomBytes(4).toString('hex')}`;
const RECORDS = 50_000_000; // far more than a run of a few seconds produces
const dir = mkdtempSync(join(tmpdir(), 'sluice-tui-'));

const sh = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
const tmux = (...args: string[]): string =>
  execFileSync('tmux', ['-L', socket, ...args], { encoding: 'utf8' });
const screen = (): string => tmux('capture-pane', '-p', '-t', 'run');
/** The visible screen plus what scrolled off it. */
const scrollback = (): string => tmux('capture-pane', '-p', '-t', 'run', '-S', '-200');
const press = (...keys: string[]): void => void tmux('send-keys', '-t', 'run', ...keys);

async function waitFor<T>(what: string, probe: () => T | undefined, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  let last = '';
  while (Date.now() < end) {
    const got = probe();
    if (got !== undefined) return got;
    last = screen();
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}; the screen was:\n${last}`);
}

interface Row {
  name: string;
  kind: string;
  type: string;
  inRate: string;
  outRate: string;
}

/** Stage rows of the live view: marker, tree drawing, name, kind, type, IN/s, OUT/s, ... */
function rows(text: string): Map<string, Row> {
  const out = new Map<string, Row>();
  for (const line of text.split('\n')) {
    const m = /^[ !›][│├└─╌ ]*([\w.-]+)\s+(src|xfrm|sink|source|transform)\s+(\S+)\s+(\S+)\s+(\S+)\s/.exec(
      line,
    );
    if (m) out.set(m[1], { name: m[1], kind: m[2], type: m[3], inRate: m[4], outRate: m[5] });
  }
  return out;
}

const moving = (r: Row | undefined): boolean =>
  r !== undefined && [r.inRate, r.outRate].some((v) => v !== '0' && v !== '-');

describe('sluice run on a terminal', () => {
  beforeAll(() => {
    if (spawnSync('tmux', ['-V']).status !== 0) throw new Error('tmux is missing: apt-get install -y tmux');
    const cmd = [
      `cd ${sh(root)}`,
      `&& DEMO_RECORDS=${RECORDS} DEMO_OUT=${sh(join(dir, 'out'))}`,
      `${sh(node)} src/cli.ts run pipelines/demo.yaml --state-dir ${sh(join(dir, 'state'))};`,
      'echo SLUICE_EXIT=$?; sleep 600',
    ].join(' ');
    tmux('new-session', '-d', '-s', 'run', '-x', '100', '-y', '30', cmd);
  });

  afterAll(() => {
    spawnSync('tmux', ['-L', socket, 'kill-server']);
    rmSync(dir, { recursive: true, force: true });
  });

  it('shows every stage moving, answers its keys, and drains on q', async () => {
    // Every stage of the demo shows a non-zero rate at some point (sinks write in bursts).
    const seen = new Set<string>();
    const stages = ['consumption', 'enriched', 'unique', 'by_day', 'lake'];
    const live = await waitFor('all stages moving', () => {
      const text = screen();
      if (!text.includes('● running')) return undefined;
      for (const [name, r] of rows(text)) if (moving(r)) seen.add(name);
      return stages.every((s) => seen.has(s)) ? text : undefined;
    });
    const first = live.split('\n')[0];
    expect(first).toMatch(
      /^sluice demo {2}● running {2}up \d+:\d\d:\d\d {2}in [\d.]+k\/s {2}out [\d.]+k?\/s/,
    );
    expect(live).toContain(`log ${join(dir, 'state', 'demo.log')}`);
    const r = rows(live);
    expect([...r.keys()]).toEqual(['consumption', 'enriched', 'unique', 'by_day', 'lake', 'rejected']);
    expect(r.get('consumption')).toMatchObject({ kind: 'src', type: 'generate', inRate: '-' });
    expect(r.get('lake')).toMatchObject({ kind: 'sink', type: 'file' });
    expect(live).toMatch(/^ {3}│ {3}└─lake /m);
    expect(live).toMatch(/^ {3}└╌rejected /m);

    // The demo sends about one record in a hundred to the error output: e shows the reasons.
    press('e');
    const errors = await waitFor('errors panel', () => {
      const text = screen();
      return /^Recent errors \([\d.k]+ in all/m.test(text) ? text : undefined;
    });
    expect(errors).toMatch(/^\d\d:\d\d:\d\d enriched +(×\d+ )?\S/m);
    expect(errors).toMatch(/^!└─enriched/m);
    press('e', 'Down');
    const detail = await waitFor('stage detail', () => {
      const text = screen();
      return /^consumption {2}source generate$/m.test(text) ? text : undefined;
    });
    expect(detail).toMatch(/^›consumption/m);
    expect(detail).not.toContain('Recent errors');

    press('q');
    const final = await waitFor('exit', () => {
      const text = scrollback();
      return text.includes('SLUICE_EXIT=') ? text : undefined;
    });
    // Drained on q; the demo's deliberate bad records went to its error output: exit 3, counted.
    expect(final).toMatch(/SLUICE_EXIT=3\b/);
    expect(final).toMatch(
      /^sluice: exit 3: completed, but \d+ records? failed: \d+ to error outputs, 0 to dead letters$/m,
    );
    // The live view lived on the alternate screen; the normal screen keeps only the totals.
    expect(final).not.toContain('q quit');
    expect(final).toMatch(/^demo: stopped after \d+:\d\d:\d\d$/m);
    expect(final).toMatch(/^in \d+ \([\d.]+k\/s\) {2}out \d+ .* {2}errors [1-9]\d*$/m);
    const totals = new Map<string, string[]>();
    for (const line of final.split('\n')) {
      const cells = line.trim().split(/\s+/);
      if (stages.includes(cells[0]) || cells[0] === 'rejected') totals.set(cells[0], cells);
    }
    expect([...totals.keys()]).toEqual([...stages, 'rejected']);
    const generated = Number(totals.get('consumption')?.[4]);
    expect(generated).toBeGreaterThan(10_000);
    expect(generated).toBeLessThan(RECORDS);

    // A valid checkpoint: the generator's position, no further than what it produced.
    const file = join(dir, 'state', 'demo.checkpoint.json');
    expect(existsSync(file)).toBe(true);
    const checkpoint = JSON.parse(readFileSync(file, 'utf8'));
    expect(checkpoint).toMatchObject({ version: 1, pipeline: 'demo' });
    const position = Number(checkpoint.sources.consumption.generate);
    expect(Number.isInteger(position)).toBe(true);
    expect(position).toBeGreaterThan(0);
    expect(position).toBeLessThan(generated);

    // And the next run starts right after it: with the end 2000 records further, it makes 2000.
    const resumed = spawnSync(
      node,
      ['src/cli.ts', 'run', 'pipelines/demo.yaml', '--no-tui', '--state-dir', join(dir, 'state')],
      {
        cwd: root,
        encoding: 'utf8',
        env: { ...process.env, DEMO_RECORDS: String(position + 1 + 2000), DEMO_OUT: join(dir, 'out') },
        timeout: 60_000,
      },
    );
    expect(resumed.status, resumed.stderr).toBe(3);
    expect(`${resumed.stdout}${resumed.stderr}`).toMatch(/^consumption\s+source\s+generate\s+\S+\s+2000\b/m);
  });
});
