/**
 * `sluice run --watch` and SIGHUP as a user drives them: a generate → enrich → stdout pipeline in
 * a child process whose spec is edited while it runs. Every record is printed once, the new
 * field appears from one record on, an invalid edit leaves the pipeline running and says why,
 * and the operations endpoint serves the new pipeline.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
const node = join(root, 'node_modules', '.bin', 'node');
const cli = join(root, 'src', 'cli.ts');
const dir = mkdtempSync(join(tmpdir(), 'sluice-reload-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const spec = (set: string) =>
  [
    'version: 1',
    'name: reload',
    'runtime: { batch_size: 20, checkpoint_interval: 100ms }',
    'sources:',
    "  gen: { type: generate, rate: 400, fields: { n: 'i' } }",
    'transforms:',
    `  tag: { type: enrich, from: [gen], set: { ${set} } }`,
    'sinks:',
    '  out: { type: stdout, from: [tag] }',
    '',
  ].join('\n');

interface Run {
  child: ChildProcess;
  rows: () => Record<string, unknown>[];
  stderr: () => string;
  exit: Promise<number | null>;
}

function start(name: string, args: string[]): Run {
  const file = join(dir, `${name}.yaml`);
  const child = spawn(node, [cli, 'run', file, '--no-tui', '--state-dir', join(dir, name), ...args], {
    cwd: dir,
    env: { ...process.env, NO_COLOR: '1', SLUICE_LOG_LEVEL: 'info' },
  });
  let out = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const rows = () =>
    out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { child, rows, stderr: () => err, exit };
}

async function until(what: () => boolean, message: () => string): Promise<void> {
  for (let n = 0; !what(); n++) {
    if (n > 600) throw new Error(`timed out: ${message()}`);
    await sleep(50);
  }
}

/** Every index once, from 0 on, in order. */
function expectEveryRecordOnce(rows: Record<string, unknown>[]): void {
  const ns = rows.map((r) => r.n);
  expect(ns.length).toBeGreaterThan(0);
  expect(ns).toEqual(ns.map((_, k) => k));
}

describe('sluice run --watch', () => {
  it('applies an edited enrich, refuses an invalid edit, and serves the new pipeline', async () => {
    const file = join(dir, 'watched.yaml');
    writeFileSync(file, spec("v: '1'"));
    const run = start('watched', ['--watch', '--http', '127.0.0.1:0', '--metrics-interval', '60s']);
    const why = () => run.stderr();
    await until(() => run.rows().length >= 100, why);
    const url = /"url":"(http:\/\/[^"]+)"/.exec(run.stderr())?.[1];
    expect(url).toBeDefined();

    writeFileSync(file, spec("v: '2', doubled: 'n * 2'"));
    await until(() => run.rows().some((r) => r.doubled !== undefined), why);

    // An expression that does not compile: the diagnostic at its place, the pipeline goes on.
    writeFileSync(file, spec("v: '3', doubled: 'n *'"));
    await until(() => /reload refused, the running pipeline goes on/.test(run.stderr()), why);
    expect(run.stderr()).toMatch(/watched\.yaml:7:\d+: error\[expr-syntax\]/);
    const stats = (await (await fetch(`${url}/stats`)).json()) as { notice?: string; state: string };
    expect(stats.state).toBe('running');
    expect(stats.notice).toMatch(/reload refused.*expression does not compile/);
    const seen = run.rows().length;
    await until(() => run.rows().length >= seen + 100, why);

    const metrics = await (await fetch(`${url}/metrics`)).text();
    const sent = Number(/sluice_stage_sent_records_total\{[^}]*stage="out"[^}]*\} (\d+)/.exec(metrics)?.[1]);
    expect(sent).toBeGreaterThanOrEqual(seen);

    run.child.kill('SIGTERM');
    expect(await run.exit).toBe(0);
    const rows = run.rows();
    expectEveryRecordOnce(rows);
    // Old spec up to one record, the new one from there on: never a 3.
    const first = rows.findIndex((r) => r.doubled !== undefined);
    expect(first).toBeGreaterThanOrEqual(100);
    expect(rows.slice(0, first).every((r) => r.v === 1 && r.doubled === undefined)).toBe(true);
    expect(rows.slice(first).every((r) => r.v === 2 && r.doubled === (r.n as number) * 2)).toBe(true);
    // The totals at exit count every spec's records.
    expect(run.stderr()).toMatch(new RegExp(`out\\s+sink\\s+stdout\\s+${rows.length}\\s+${rows.length}`));
  });
});

describe('SIGHUP', () => {
  it('reloads like --watch, which is off: an edit alone changes nothing', async () => {
    const file = join(dir, 'hup.yaml');
    writeFileSync(file, spec("v: '1'"));
    const run = start('hup', ['--metrics-interval', '60s']);
    const why = () => run.stderr();
    await until(() => run.rows().length >= 60, why);
    writeFileSync(file, spec("v: '1', added: '\"yes\"'"));
    const before = run.rows().length;
    await until(() => run.rows().length >= before + 120, why);
    expect(run.rows().some((r) => r.added !== undefined)).toBe(false);

    run.child.kill('SIGHUP');
    await until(() => run.rows().some((r) => r.added === 'yes'), why);
    run.child.kill('SIGTERM');
    expect(await run.exit).toBe(0);
    const rows = run.rows();
    expectEveryRecordOnce(rows);
    const first = rows.findIndex((r) => r.added !== undefined);
    expect(rows.slice(first).every((r) => r.added === 'yes')).toBe(true);
    expect(run.stderr()).toMatch(/"trigger":"SIGHUP".*the spec changed and is valid/);
  });
});
