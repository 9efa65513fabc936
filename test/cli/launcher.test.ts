/**
 * `bin/sluice`, the documented way to run a pipeline: the process it starts is Node itself, so
 * a SIGTERM sent to that pid drains the pipeline, which exits 0 and leaves no process behind.
 * And the choice of Node when the project's own is not installed.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
const launcher = join(root, 'bin', 'sluice');
const dir = mkdtempSync(join(tmpdir(), 'sluice-launcher-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A pipeline that would run for hours: only a signal ends it. */
const spec = join(dir, 'endless.yaml');
writeFileSync(
  spec,
  [
    'version: 1',
    'name: endless',
    'sources:',
    '  gen:',
    '    type: generate',
    '    count: 100000000',
    '    rate: 100',
    "    fields: {a: 'i'}",
    'sinks:',
    '  out:',
    '    type: file',
    '    from: [gen]',
    `    dir: ${join(dir, 'out')}`,
    "    path: 'part{ext}'",
    '',
  ].join('\n'),
);

/** Pids of live processes whose command line mentions `needle`. */
function processesWith(needle: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(needle)) found.push(Number(entry));
    } catch {
      // The process ended while the list was read.
    }
  }
  return found;
}

function exited(
  child: ChildProcess,
  withinMs: number,
): Promise<{ code: number | null; signal: string | null }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`still running ${withinMs}ms after SIGTERM`)), withinMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal });
    });
  });
}

describe('bin/sluice run', () => {
  it('is the Node process itself: SIGTERM to its pid drains, exits 0 and leaves no process', async () => {
    // Its own process group, so that whatever happens, the test can end all it started.
    const child = spawn(
      launcher,
      ['run', spec, '--no-tui', '--metrics-interval', '100ms', '--state-dir', join(dir, 'state')],
      { cwd: root, stdio: ['ignore', 'ignore', 'pipe'], detached: true },
    );
    const pid = child.pid!;
    try {
      let stderr = '';
      // The first metric line says the pipeline runs and its signal handlers are in place.
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no output within 15s: ${stderr}`)), 15_000);
        child.stderr!.on('data', (b) => {
          stderr += b;
          clearTimeout(timer);
          resolve();
        });
        child.once('exit', (code) => reject(new Error(`exited with ${code} before the signal: ${stderr}`)));
      });
      expect(basename(readlinkSync(`/proc/${pid}/exe`))).toBe('node');
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      expect(argv).toContain(join(root, 'src', 'cli.ts'));
      // Started with the heap settings for long runs.
      for (const flag of HEAP_FLAGS) expect(argv).toContain(flag);

      process.kill(pid, 'SIGTERM');
      const end = await exited(child, 10_000);
      expect(end, stderr).toEqual({ code: 0, signal: null });
      expect(processesWith(spec)).toEqual([]);
    } finally {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // Nothing left in the group: the expected case.
      }
    }
  }, 30_000);
});

/** The heap flags of the package's launcher, read from its source. */
const HEAP_FLAGS: string[] = JSON.parse(
  (
    /var HEAP_FLAGS = (\[[^\]]*\])/.exec(readFileSync(join(root, 'bin', 'sluice.cjs'), 'utf8'))?.[1] ?? '[]'
  ).replaceAll("'", '"'),
);

describe('heap flags for long runs', () => {
  it('are the same in both launchers', () => {
    expect(HEAP_FLAGS).toContain('--max-semi-space-size=16');
    const sh = /for flag in ([^;]*); do/.exec(readFileSync(launcher, 'utf8'))?.[1].split(' ');
    expect(sh).toEqual(HEAP_FLAGS);
  });

  it('bin/sluice leaves a flag named in NODE_OPTIONS to it', () => {
    const trace = spawnSync('sh', ['-x', launcher, '--version'], {
      env: { ...process.env, NODE_OPTIONS: '--max-semi-space-size=32' },
      encoding: 'utf8',
    });
    const exec = trace.stderr.split('\n').find((l) => l.includes('exec ')) ?? '';
    expect(exec).not.toContain('--max-semi-space-size=16');
    expect(exec).toContain(HEAP_FLAGS[1]);
    expect(trace.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('the package launcher restarts `run` in place with them: same pid, SIGTERM drains, exit 0', async () => {
    const node = join(root, 'node_modules', 'node', 'bin', 'node');
    const child = spawn(
      node,
      [join(root, 'bin', 'sluice.cjs'), 'run', spec, '--no-tui', '--state-dir', join(dir, 'state-cjs')],
      { cwd: root, stdio: ['ignore', 'ignore', 'pipe'], detached: true },
    );
    const pid = child.pid!;
    try {
      let stderr = '';
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no output within 15s: ${stderr}`)), 15_000);
        child.stderr!.on('data', (b) => {
          stderr += b;
          clearTimeout(timer);
          resolve();
        });
        child.once('exit', (code) => reject(new Error(`exited with ${code} before the signal: ${stderr}`)));
      });
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      for (const flag of HEAP_FLAGS) expect(argv).toContain(flag);
      process.kill(pid, 'SIGTERM');
      expect(await exited(child, 10_000), stderr).toEqual({ code: 0, signal: null });
    } finally {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // Nothing left in the group: the expected case.
      }
    }
  }, 30_000);
});

describe('bin/sluice without the project’s Node', () => {
  // A checkout with no node_modules, and a `node` on the PATH that reports a version and
  // echoes how it was called.
  const checkout = join(dir, 'checkout');
  const fakeBin = join(dir, 'fake-bin');
  mkdirSync(join(checkout, 'bin'), { recursive: true });
  copyFileSync(launcher, join(checkout, 'bin', 'sluice'));
  chmodSync(join(checkout, 'bin', 'sluice'), 0o755);
  mkdirSync(fakeBin);
  writeFileSync(
    join(fakeBin, 'node'),
    '#!/bin/sh\nif [ "$1" = --version ]; then echo "v$FAKE_NODE_VERSION"; exit 0; fi\necho "node $*"\n',
  );
  chmodSync(join(fakeBin, 'node'), 0o755);
  // Called through a symlink from elsewhere, it still finds its checkout.
  symlinkSync(join(checkout, 'bin', 'sluice'), join(dir, 'sluice-link'));

  const run = (version: string) =>
    spawnSync(join(dir, 'sluice-link'), ['validate', 'x.yaml'], {
      env: { PATH: `${fakeBin}:/usr/bin:/bin`, FAKE_NODE_VERSION: version },
      encoding: 'utf8',
    });

  it('runs a recent node on the PATH as is', () => {
    const r = run('24.1.0');
    expect(r.stdout.trim()).toBe(
      `node ${HEAP_FLAGS.join(' ')} ${join(checkout, 'src', 'cli.ts')} validate x.yaml`,
    );
  });

  it('turns on type stripping for 22.6 to 22.17', () => {
    const r = run('22.12.0');
    expect(r.stdout.trim()).toBe(
      `node ${HEAP_FLAGS.join(' ')} --experimental-strip-types --disable-warning=ExperimentalWarning ${join(checkout, 'src', 'cli.ts')} validate x.yaml`,
    );
  });

  it('refuses an older node with exit code 2, saying what to do', () => {
    const r = run('20.11.1');
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('node on the PATH is v20.11.1; sluice needs 22.6 or newer: run `npm ci`');
  });
});
