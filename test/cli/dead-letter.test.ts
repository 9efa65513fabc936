/**
 * Exit codes and dead letters through the real CLI: records that fail with no wired error
 * output become dead letters (exit 3, counted on the last line), the checkpoint moves past them,
 * `dead-letter ls` shows them, and `dead-letter replay` sends them again once the cause is fixed.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../runtime/helpers.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const NODE = join(ROOT, 'node_modules/.bin/node');

function sluice(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(NODE, ['src/cli.ts', ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, SLUICE_LOG_LEVEL: 'warn' },
    timeout: 60_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** 100 lines; `divisor` is 0 on lines 17 and 58, so `100 / divisor` fails on exactly those. */
function input(dir: string): string {
  const path = join(dir, 'in.ndjson');
  const lines = Array.from({ length: 100 }, (_, n) =>
    JSON.stringify({ n, divisor: n === 17 || n === 58 ? 0 : 4 }),
  );
  writeFileSync(path, `${lines.join('\n')}\n`);
  return path;
}

const spec = (dir: string, expr: string) => `
version: 1
name: dl
sources:
  in: { type: file, path: ${join(dir, 'in.ndjson')} }
transforms:
  calc: { type: enrich, from: [in], set: { q: '${expr}' } }
sinks:
  out: { type: file, from: [calc], dir: ${join(dir, 'out')}, path: 'part_{first_position}{ext}', buffer: { max_age: 10ms } }
`;

function written(dir: string): number[] {
  const out = join(dir, 'out');
  if (!existsSync(out)) return [];
  return readdirSync(out)
    .filter((f) => f.endsWith('.ndjson'))
    .flatMap((f) => readFileSync(join(out, f), 'utf8').split('\n').filter(Boolean))
    .map((l) => (JSON.parse(l) as { n: number }).n)
    .sort((a, b) => a - b);
}

describe('dead letters and exit codes (CLI)', () => {
  it('exit 3 with the count, ls lists them, replay after the fix delivers them and clears the files', () => {
    const dir = tempDir();
    input(dir);
    const file = join(dir, 'dl.yaml');
    const state = join(dir, 'state');
    writeFileSync(file, spec(dir, 'int(100 / divisor)'));

    const first = sluice(['run', file, '--no-tui', '--state-dir', state]);
    expect(first.stderr).toMatch(/2 records failed: 0 to error outputs, 2 to dead letters/);
    expect(first.code).toBe(3);
    expect(written(dir)).toHaveLength(98);
    // The checkpoint passed the dead letters: a second run has nothing to read and exits 0.
    const checkpoint = JSON.parse(readFileSync(join(state, 'dl.checkpoint.json'), 'utf8'));
    expect(Object.values(checkpoint.sources.in)).toEqual(['100']);
    const again = sluice(['run', file, '--no-tui', '--state-dir', state]);
    expect(again.code).toBe(0);

    const ls = sluice(['dead-letter', 'ls', file, '--state-dir', state, '--format', 'json']);
    expect(ls.code).toBe(0);
    const listed = JSON.parse(ls.stdout) as {
      stages: { stage: string; records: number; reasons: { reason: string }[] }[];
    };
    expect(listed.stages).toHaveLength(1);
    expect(listed.stages[0]).toMatchObject({ stage: 'calc', records: 2 });
    expect(listed.stages[0].reasons[0].reason).toMatch(/integer overflow/);
    expect(sluice(['dead-letter', 'ls', file, '--state-dir', state]).stdout).toMatch(
      /^calc: 2 records in 1 file/,
    );

    // Replay with the expression unchanged: both fail again, stay dead letters, exit 3.
    const unchanged = sluice(['dead-letter', 'replay', file, '--state-dir', state]);
    expect(unchanged.code).toBe(3);
    expect(unchanged.stdout).toMatch(/calc: replayed 2 records: 0 delivered, 2 failed again/);
    expect(
      JSON.parse(sluice(['dead-letter', 'ls', file, '--state-dir', state, '--format', 'json']).stdout)
        .stages[0].records,
    ).toBe(2);

    // Fix the spec; replay delivers both, and nothing is left.
    writeFileSync(file, spec(dir, 'divisor == 0 ? 0 : int(100 / divisor)'));
    const fixed = sluice(['dead-letter', 'replay', file, '--state-dir', state]);
    expect(fixed.stderr).toBe('');
    expect(fixed.code).toBe(0);
    expect(fixed.stdout).toMatch(/calc: replayed 2 records: 2 delivered, 0 failed again/);
    expect(written(dir)).toEqual([...Array(100).keys()]);
    expect(sluice(['dead-letter', 'ls', file, '--state-dir', state]).stdout).toMatch(/no dead letters/);
  });

  it('exit 0 when every record was delivered, and no dead-letter directory appears', () => {
    const dir = tempDir();
    input(dir);
    const file = join(dir, 'ok.yaml');
    writeFileSync(file, spec(dir, 'divisor == 0 ? -1 : 1'));
    const r = sluice(['run', file, '--no-tui', '--state-dir', join(dir, 'state')]);
    expect(r.code).toBe(0);
    expect(written(dir)).toHaveLength(100);
    expect(existsSync(join(dir, 'state', 'dl', 'dead-letter'))).toBe(false);
  });
});
