/**
 * The npm package as a user gets it: `npm pack` (which builds dist/ on prepack), the tarball
 * installed into an empty directory, and from there `npx sluice --version`, `validate`, `run`
 * of a small pipeline, a pipeline with a TypeScript plugin file of that directory, a script that
 * embeds sluice as a library (run, and typechecked against the installed types), and the one
 * line an older Node prints.
 *
 * The package is packed from a copy of the sources, so the test never writes dist/ into the
 * checkout. Installing reaches the npm registry (the packages come from the npm cache when
 * `npm ci` filled it).
 */
import { execFile, execFileSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { delimiter, dirname, join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../runtime/helpers.ts';

const ROOT = resolve(import.meta.dirname, '../..');
/** The project's own Node (24): the one a user of the package is expected to have. */
const NODE = realpathSync(join(ROOT, 'node_modules/.bin/node'));
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const NEEDED = [22, 22];

const dir = tempDir('sluice-package-');
const app = join(dir, 'app');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The environment of a user's shell: a current Node first on the PATH, no npm script variables. */
const env: NodeJS.ProcessEnv = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith('npm_')),
);
env.PATH = `${dirname(NODE)}${delimiter}${process.env.PATH ?? ''}`;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function sh(command: string, args: string[], cwd: string, timeout = 120_000): Promise<Run> {
  return new Promise((done) => {
    execFile(command, args, { cwd, env, encoding: 'utf8', timeout }, (err, stdout, stderr) =>
      done({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr }),
    );
  });
}

const lines = (...l: string[]) => `${l.join('\n')}\n`;

beforeAll(async () => {
  // A copy of what the package is made of, beside the checkout's node_modules (for the build).
  const pkg = join(dir, 'pkg');
  for (const entry of [
    'package.json',
    'tsconfig.json',
    'tsconfig.build.json',
    'README.md',
    'bin',
    'src',
    'schemas',
  ]) {
    cpSync(join(ROOT, entry), join(pkg, entry), { recursive: true });
  }
  symlinkSync(join(ROOT, 'node_modules'), join(pkg, 'node_modules'));
  const packed = await sh('npm', ['pack', '--pack-destination', dir], pkg);
  expect(packed.code, packed.stderr).toBe(0);
  const tarball = readdirSync(dir).find((f) => f.endsWith('.tgz'));
  expect(tarball).toBeDefined();

  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  const installed = await sh(
    'npm',
    ['install', '--no-audit', '--no-fund', '--prefer-offline', join(dir, tarball as string)],
    app,
  );
  expect(installed.code, installed.stderr).toBe(0);

  writeFileSync(
    join(app, 'gen.yaml'),
    lines(
      'version: 1',
      'name: gen-to-file',
      'sources:',
      "  gen: { type: generate, count: 1000, fields: { n: 'i', fazenda: '\"fazenda_\" + string(i % 3)' } }",
      'sinks:',
      "  out: { type: file, from: [gen], dir: out, path: 'all{ext}' }",
    ),
  );
  writeFileSync(
    join(app, 'invalid.yaml'),
    readFileSync(join(app, 'gen.yaml'), 'utf8').replace('count:', 'cuont:'),
  );
  mkdirSync(join(app, 'stages'));
  cpSync(join(ROOT, 'examples/plugins/uppercase.ts'), join(app, 'stages/uppercase.ts'));
  writeFileSync(
    join(app, 'loud.yaml'),
    lines(
      'version: 1',
      'name: loud',
      'plugins: [./stages/uppercase.ts]',
      'sources:',
      '  gen: { type: generate, count: 10, fields: { fazenda: \'"fazenda_" + string(i)\' } }',
      'transforms:',
      '  loud: { type: uppercase, from: [gen], fields: [fazenda] }',
      'sinks:',
      "  out: { type: file, from: [loud], dir: loud, path: 'all{ext}' }",
    ),
  );
}, 300_000);

describe('the installed package', () => {
  it('ships compiled JavaScript and its types, not the TypeScript sources', () => {
    const installed = join(app, 'node_modules/sluice');
    expect(existsSync(join(installed, 'dist/cli.js'))).toBe(true);
    expect(existsSync(join(installed, 'dist/index.d.ts'))).toBe(true);
    expect(existsSync(join(installed, 'src'))).toBe(false);
    expect(existsSync(join(installed, 'test'))).toBe(false);
  });

  it('npx sluice --version prints the package version', async () => {
    const r = await sh('npx', ['sluice', '--version'], app);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(VERSION);
  });

  it('npx sluice validate: 0 for a valid spec, 1 with the position for an invalid one', async () => {
    const ok = await sh('npx', ['sluice', 'validate', 'gen.yaml', 'loud.yaml'], app);
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(ok.stderr).toContain('2 files checked: 0 errors, 0 warnings');
    const bad = await sh('npx', ['sluice', 'validate', 'invalid.yaml'], app);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toContain("invalid.yaml:4:26: error[unknown-key]: unknown key 'cuont'");
  });

  it('npx sluice run runs a pipeline to completion', async () => {
    const r = await sh('npx', ['sluice', 'run', 'gen.yaml', '--no-tui', '--state-dir', 'state'], app);
    expect(r.code, r.stderr).toBe(0);
    const out = readFileSync(join(app, 'out/all.ndjson'), 'utf8').trim().split('\n');
    expect(out).toHaveLength(1000);
    expect(JSON.parse(out[999])).toEqual({ n: 999, fazenda: 'fazenda_0' });
  });

  it('runs a pipeline with a TypeScript plugin stage from the user’s directory', async () => {
    const r = await sh('npx', ['sluice', 'run', 'loud.yaml', '--no-tui', '--state-dir', 'state'], app);
    expect(r.code, r.stderr).toBe(0);
    const out = readFileSync(join(app, 'loud/all.ndjson'), 'utf8').trim().split('\n');
    expect(out.map((l) => JSON.parse(l).fazenda)).toEqual(
      Array.from({ length: 10 }, (_, i) => `FAZENDA_${i}`),
    );
    const schema = await sh('npx', ['sluice', 'schema', '--plugin', 'stages/uppercase.ts'], app);
    expect(JSON.parse(schema.stdout).$defs['transform.uppercase']).toBeDefined();
  });

  it('embeds as a library: validate with a stage of its own and a plugin, run, typecheck', async () => {
    writeFileSync(
      join(app, 'embed.ts'),
      lines(
        "import { defineSink, Pipeline, Type, validate } from 'sluice';",
        '',
        'const kept: unknown[] = [];',
        'const keep = defineSink({',
        "  type: 'keep',",
        "  kind: 'sink',",
        "  description: 'Keeps the records in memory.',",
        '  options: Type.Object({}),',
        '  batching: { defaults: { max_records: 100, max_bytes: 1 << 20, max_age: 10 } },',
        '  create: () => ({',
        '    async write(batch) {',
        '      for (const r of batch.records) kept.push(r.value);',
        '      return undefined;',
        '    },',
        '  }),',
        '});',
        '',
        "const text = (await import('node:fs')).readFileSync('loud.yaml', 'utf8').replace(/out: .*/, 'out: { type: keep, from: [loud] }');",
        "const { spec, diagnostics } = await validate('loud.yaml', { text, stages: [keep] });",
        "if (!spec) throw new Error(diagnostics.map((d) => d.message).join('\\n'));",
        "const result = await new Pipeline(spec, { stateDir: 'embed-state' }).run();",
        'console.log(JSON.stringify({ ok: result.ok, kept }));',
      ),
    );
    const r = await sh(NODE, ['embed.ts'], app);
    expect(r.code, r.stderr).toBe(0);
    const printed = JSON.parse(r.stdout) as { ok: boolean; kept: { fazenda: string }[] };
    expect(printed.ok).toBe(true);
    expect(printed.kept.map((v) => v.fazenda)).toEqual(Array.from({ length: 10 }, (_, i) => `FAZENDA_${i}`));

    // The package's types, as the user's editor and compiler see them.
    writeFileSync(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          module: 'nodenext',
          target: 'es2023',
          strict: true,
          noEmit: true,
          skipLibCheck: true,
          typeRoots: [join(ROOT, 'node_modules/@types')],
          types: ['node'],
        },
        files: ['embed.ts', 'stages/uppercase.ts'],
      }),
    );
    const tsc = await sh(NODE, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', '.'], app);
    expect(tsc.stdout + tsc.stderr).toBe('');
    expect(tsc.code).toBe(0);
  });
});

/** A Node on this machine, outside any node_modules, older than sluice needs. */
function olderNode(): { path: string; version: string } | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/bin', '/usr/local/bin'];
  for (const d of dirs) {
    const path = join(d, 'node');
    if (!d || !existsSync(path) || realpathSync(path).includes('node_modules')) continue;
    const version = execFileSync(path, ['--version'], { encoding: 'utf8' }).trim().replace(/^v/, '');
    const [major, minor] = version.split('.').map(Number);
    if (major < NEEDED[0] || (major === NEEDED[0] && minor < NEEDED[1])) return { path, version };
  }
  return undefined;
}

describe('on a Node older than it needs', () => {
  const old = olderNode();
  // Machines whose only Node is recent enough have nothing to run this with.
  it.skipIf(!old)('the installed sluice prints one line and exits 2, no stack trace', async () => {
    const { path, version } = old as { path: string; version: string };
    const r = await sh(path, [join(app, 'node_modules/.bin/sluice'), 'run', 'gen.yaml'], app);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`sluice needs Node.js >= ${NEEDED.join('.')}; this is ${version}\n`);
    expect(r.stdout).toBe('');
  });
});
