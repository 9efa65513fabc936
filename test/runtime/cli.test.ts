/**
 * `sluice run` as a real child process: SIGTERM drains and exits 0 with a consistent
 * checkpoint, kill -9 then restart loses nothing, --exit-idle ends an idle unbounded source,
 * on_error: stop exits 1.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir, until } from './helpers.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const NODE = join(ROOT, 'node_modules/.bin/node');

interface Run {
  child: ChildProcess;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stdout: () => string;
  stderr: () => string;
}

function sluice(args: string[], opts: { stdin?: boolean } = {}): Run {
  const child = spawn(NODE, ['src/cli.ts', 'run', ...args], {
    cwd: ROOT,
    stdio: [opts.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    env: { ...process.env, SLUICE_LOG_LEVEL: 'warn' },
  });
  let out = '';
  let err = '';
  child.stdout?.on('data', (d) => {
    out += d;
  });
  child.stderr?.on('data', (d) => {
    err += d;
  });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) =>
    child.on('exit', (code, signal) => res({ code, signal })),
  );
  return { child, exit, stdout: () => out, stderr: () => err };
}

/** Every `n` in the lake's complete files (name matches the template), with its multiplicity. */
function lake(dir: string): { counts: Map<number, number>; files: string[]; others: string[] } {
  const counts = new Map<number, number>();
  const files: string[] = [];
  const others: string[] = [];
  if (!existsSync(dir)) return { counts, files, others };
  for (const name of readdirSync(dir)) {
    if (!/^part_\d+-\d+\.ndjson$/.test(name)) {
      others.push(name);
      continue;
    }
    files.push(name);
    const lines = readFileSync(join(dir, name), 'utf8').split('\n');
    expect(lines.pop()).toBe('');
    for (const line of lines) {
      const n = (JSON.parse(line) as { n: number }).n;
      counts.set(n, (counts.get(n) ?? 0) + 1);
    }
  }
  return { counts, files, others };
}

function checkpointOf(stateDir: string, pipeline: string): number {
  const text = readFileSync(join(stateDir, `${pipeline}.checkpoint.json`), 'utf8');
  const parsed = JSON.parse(text) as {
    version: number;
    pipeline: string;
    sources: Record<string, Record<string, string>>;
  };
  expect(parsed).toMatchObject({ version: 1, pipeline });
  return Number(parsed.sources.gen.generate);
}

function writeSpec(
  dir: string,
  name: string,
  count: number,
  rate: number,
): { spec: string; out: string; state: string } {
  const out = join(dir, 'out');
  const state = join(dir, 'state');
  const spec = join(dir, `${name}.yaml`);
  writeFileSync(
    spec,
    `
version: 1
name: ${name}
runtime: { batch_size: 50, checkpoint_interval: 50ms }
sources:
  gen: { type: generate, count: ${count}, rate: ${rate}, fields: { n: 'i', pad: '"x" + string(i * 7)' } }
sinks:
  lake:
    type: file
    from: [gen]
    dir: ${out}
    path: 'part_{first_position}-{last_position}{ext}'
    buffer: { max_records: 400, max_age: 100ms }
`,
  );
  return { spec, out, state };
}

const range = (n: number) => [...Array(n).keys()];

describe('sluice run (child process)', () => {
  it('SIGTERM mid-run drains, exits 0, and leaves a checkpoint consistent with the output', async () => {
    const dir = tempDir();
    const COUNT = 30_000;
    const { spec, out, state } = writeSpec(dir, 'sigterm', COUNT, 6000);
    const first = sluice([spec, '--no-tui', '--state-dir', state, '--metrics-interval', '10s']);
    await until(() => lake(out).files.length >= 3, 20_000, 'first files');
    first.child.kill('SIGTERM');
    const { code } = await first.exit;
    expect(code, first.stderr()).toBe(0);
    const checkpoint = checkpointOf(state, 'sigterm');
    const { counts, others } = lake(out);
    expect(others).toEqual([]);
    // Mid-run: the source was stopped before its end.
    expect(checkpoint).toBeLessThan(COUNT - 1);
    // Drained: everything produced was written, exactly once, and the checkpoint covers it all.
    expect(Math.max(...counts.keys())).toBe(checkpoint);
    for (const n of range(checkpoint + 1)) expect(counts.get(n), `record ${n}`).toBe(1);

    // A restart resumes right after the checkpoint and finishes the count.
    const second = sluice([spec, '--no-tui', '--state-dir', state]);
    expect((await second.exit).code, second.stderr()).toBe(0);
    const after = lake(out).counts;
    for (const n of range(COUNT)) expect(after.get(n), `record ${n}`).toBe(1);
    expect(checkpointOf(state, 'sigterm')).toBe(COUNT - 1);
  }, 60_000);

  it('kill -9 mid-run, then a restart: no record lost, no partial file, checkpoint still valid', async () => {
    const dir = tempDir();
    const COUNT = 20_000;
    const { spec, out, state } = writeSpec(dir, 'killed', COUNT, 2000);
    const first = sluice([spec, '--no-tui', '--state-dir', state, '--metrics-interval', '10s']);
    await until(
      () => existsSync(join(state, 'killed.checkpoint.json')) && lake(out).files.length >= 3,
      20_000,
      'a checkpoint',
    );
    first.child.kill('SIGKILL');
    expect((await first.exit).signal).toBe('SIGKILL');
    const checkpoint = checkpointOf(state, 'killed');
    expect(checkpoint).toBeLessThan(COUNT - 1);
    const before = lake(out).counts;
    for (const n of range(checkpoint + 1)) expect(before.has(n), `record ${n}`).toBe(true);

    const second = sluice([spec, '--no-tui', '--state-dir', state]);
    expect((await second.exit).code, second.stderr()).toBe(0);
    const { counts, others } = lake(out);
    for (const n of range(COUNT)) expect(counts.has(n), `record ${n}`).toBe(true);
    // Temp files of the killed run may remain, but never under a name a reader of the lake would pick up.
    for (const name of others) expect(name.startsWith('.'), name).toBe(true);
    expect(checkpointOf(state, 'killed'), second.stderr()).toBe(COUNT - 1);
  }, 60_000);

  it('--exit-idle ends a pipeline whose unbounded source (stdin) went quiet', async () => {
    const dir = tempDir();
    const spec = join(dir, 'idle.yaml');
    writeFileSync(
      spec,
      `
version: 1
name: idle
sources:
  input: { type: file, path: '-' }
sinks:
  print: { type: stdout, from: [input], buffer: { max_age: 10ms } }
`,
    );
    const run = sluice([spec, '--no-tui', '--exit-idle', '500ms', '--state-dir', join(dir, 'state')], {
      stdin: true,
    });
    run.child.stdin?.write('{"a":1}\n{"a":2}\n');
    await until(() => run.stdout().split('\n').length >= 3, 10_000, 'records on stdout');
    run.child.stdin?.write('{"a":3}\n');
    // stdin stays open: only --exit-idle can end the run.
    const timer = setTimeout(() => run.child.kill('SIGKILL'), 15_000);
    const { code, signal } = await run.exit;
    clearTimeout(timer);
    expect(signal, run.stderr()).toBeNull();
    expect(code, run.stderr()).toBe(0);
    expect(run.stdout()).toBe('{"a":1}\n{"a":2}\n{"a":3}\n');
  }, 30_000);

  it('on_error: stop exits 1 and names the stage and the reason', async () => {
    const dir = tempDir();
    const spec = join(dir, 'stop.yaml');
    writeFileSync(
      spec,
      `
version: 1
name: stopper
sources:
  gen: { type: generate, count: 1000, fields: { n: 'i' } }
transforms:
  strict: { type: enrich, from: [gen], on_error: stop, set: { x: 'n == 500 ? 1 / 0 : n' } }
sinks:
  print: { type: stdout, from: [strict], sample: 0.001 }
`,
    );
    const run = sluice([spec, '--no-tui', '--state-dir', join(dir, 'state')]);
    const { code } = await run.exit;
    expect(code).toBe(1);
    expect(run.stderr()).toMatch(/strict.*on_error: stop/);
  }, 30_000);
});
