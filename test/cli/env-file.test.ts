// biome-ignore-all lint/suspicious/noTemplateCurlyInString: specs are full of ${VAR} references
/**
 * `--env-file` and `validate --allow-unset-env`: variables from a dotenv file act as environment
 * variables and are never printed; CI without the secrets can still validate a spec.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EnvFiles, envFilesIn } from '../../src/cli/env-file.ts';

const root = join(import.meta.dirname, '..', '..');
const node = join(root, 'node_modules', '.bin', 'node');
const cli = join(root, 'src', 'cli.ts');
const dir = mkdtempSync(join(tmpdir(), 'sluice-env-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SECRET = 'Zx9-s3cr3t-Value';
const write = (name: string, text: string) => {
  writeFileSync(join(dir, name), text);
  return join(dir, name);
};

const spec = write(
  'spec.yaml',
  [
    'version: 1',
    'name: env-file',
    'sources:',
    '  gen: { type: generate, count: 1, seed: ${SEED}, fields: { greeting: ${GREETING} } }',
    'sinks:',
    '  out: { type: stdout, from: [gen] }',
    '',
  ].join('\n'),
);
const envFile = write('.env', `# test values\nSEED=7\nGREETING='"hello"'\nexport UNUSED="${SECRET}"\n`);
const badSeed = write('bad.env', `SEED=${SECRET}\nGREETING='"x"'\n`);

function sluice(args: string[], env: Record<string, string> = {}) {
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !['SEED', 'GREETING', 'UNUSED'].includes(k)),
  );
  const r = spawnSync(node, [cli, ...args], {
    cwd: dir,
    env: { ...clean, ...env, NO_COLOR: '1' },
    encoding: 'utf8',
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('--env-file', () => {
  it('feeds ${VAR} for validate and run, before or after the command; the environment wins', () => {
    expect(sluice(['validate', spec])).toMatchObject({ code: 1 });
    expect(sluice(['validate', spec, '--env-file', envFile])).toMatchObject({ code: 0 });
    expect(sluice(['--env-file', envFile, 'validate', spec])).toMatchObject({ code: 0 });
    const state = ['--state-dir', join(dir, 'state')];
    const run = sluice(['run', spec, '--no-tui', '--env-file', envFile, ...state]);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe('{"greeting":"hello"}\n');
    const env = sluice(
      ['run', spec, '--no-tui', `--env-file=${envFile}`, ...state, '--state-dir', join(dir, 's2')],
      {
        GREETING: '"from the environment"',
      },
    );
    expect(env.stdout).toBe('{"greeting":"from the environment"}\n');
  });

  it('never prints a value from the file; a missing file stops before anything runs', () => {
    const bad = sluice(['validate', spec, '--env-file', badSeed]);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(/seed/);
    expect(bad.stdout + bad.stderr).not.toContain(SECRET);
    // Node itself checks that every --env-file exists (wherever it stands) and stops first.
    const missing = sluice(['validate', spec, '--env-file', join(dir, 'nope.env')]);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/nope\.env: not found/);
  });
});

describe('validate --allow-unset-env', () => {
  it('turns unset variables into warnings and still checks the rest', () => {
    const ok = sluice(['validate', spec, '--allow-unset-env']);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/warning.*SEED is not set and has no default \(allowed by --allow-unset-env/);
    expect(ok.stderr).toMatch(/0 errors, 2 warnings/);
    const typo = write(
      'typo.yaml',
      `version: 1\nname: t\nsources:\n  gen: { type: generate, sed: \${SEED}, fields: { a: '1' } }\nsinks:\n  out: { type: stdout, from: [gen] }\n`,
    );
    const bad = sluice(['validate', typo, '--allow-unset-env', '--format', 'json']);
    expect(bad.code).toBe(1);
    const codes = (JSON.parse(bad.stdout) as { code: string; severity: string }[]).map(
      (d) => `${d.severity}:${d.code}`,
    );
    expect(codes).toEqual(['error:unknown-key', 'warning:env-unset']);
  });
});

describe('EnvFiles', () => {
  it('reads again: the environment wins, a later file wins over an earlier one, removed names go', () => {
    const a = write('a.env', 'A=1\nB=1\nKEEP=file\n');
    const b = write('b.env', 'B=2\n');
    const env: Record<string, string | undefined> = { KEEP: 'env' };
    const files = new EnvFiles([a, b], env);
    files.load();
    expect(env).toEqual({ KEEP: 'env', A: '1', B: '2' });
    writeFileSync(a, 'C=3\n');
    files.load();
    expect(env).toEqual({ KEEP: 'env', B: '2', C: '3' });
    expect(envFilesIn(['run', 'x', '--env-file', 'p', '--env-file=q', '--', '--env-file', 'r'])).toEqual([
      'p',
      'q',
    ]);
  });
});
