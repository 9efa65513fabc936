/**
 * Plugin stages as a user meets them: the example plugin (examples/plugins/uppercase.ts) named
 * in a spec or with --plugin, run, validated and in `sluice schema`; and plugin files that are
 * missing, export nothing, redefine a built-in type or shadow a runtime key, each reported at
 * the spec's entry. Every run is a child process on the project's Node, started together up
 * front (each loads every stage).
 */
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../runtime/helpers.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const NODE = join(ROOT, 'node_modules/.bin/node');
const CLI = join(ROOT, 'src/cli.ts');
const EXAMPLE = join(ROOT, 'examples/plugins/uppercase.ts');
const dir = tempDir('sluice-plugins-');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function sluice(args: string[]): Promise<Run> {
  return new Promise((done) => {
    execFile(NODE, [CLI, ...args], { cwd: dir, encoding: 'utf8', timeout: 60_000 }, (err, stdout, stderr) =>
      done({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr }),
    );
  });
}

const lines = (...l: string[]) => `${l.join('\n')}\n`;
const write = (name: string, text: string) => writeFileSync(join(dir, name), text);

/** ndjson in, uppercase, ndjson out; a record whose field is not text goes to an error file. */
const pipeline = (plugins: string) =>
  lines(
    'version: 1',
    'name: loud',
    plugins,
    'sources:',
    '  lots: { type: file, path: lots.ndjson }',
    'transforms:',
    '  loud: { type: uppercase, from: [lots], fields: [fazenda] }',
    'sinks:',
    "  out: { type: file, from: [loud], dir: out, path: 'lots{ext}' }",
    "  rejected: { type: file, from: [loud.errors], dir: rejected, path: 'lots{ext}' }",
  );

/** A plugin module written as plain JavaScript: a definition needs no import at all. */
const definition = (type: string, kind: string, properties = '{}') =>
  `{ type: '${type}', kind: '${kind}', description: 'A test stage.', options: { type: 'object', properties: ${properties} }, create() { return { process(records, out) { for (const r of records) out.push(r); } }; } }`;

const runs: Record<string, Promise<Run>> = {};

beforeAll(() => {
  write('lots.ndjson', lines('{"fazenda":"um"}', '{"fazenda":7}', '{"fazenda":"dois"}', '{"id":3}'));
  write('spec.yaml', pipeline(`plugins: [${relative(dir, EXAMPLE)}]`));
  write('bare.yaml', pipeline(''));
  write('nothing.mjs', 'export const notAStage = 42;\n');
  write('clash.mjs', `export const filter = ${definition('filter', 'transform')};\n`);
  write(
    'reserved.mjs',
    `export default [${definition('tee', 'transform', "{ from: { type: 'string' } }")}];\n`,
  );
  write('broken.mjs', 'export const x = ;\n');
  write(
    'bad.yaml',
    lines(
      'version: 1',
      'name: bad',
      'plugins:',
      '  - ./missing.ts',
      '  - ./nothing.mjs',
      '  - ./clash.mjs',
      '  - ./reserved.mjs',
      '  - ./broken.mjs',
      'sources:',
      "  gen: { type: generate, count: 1, fields: { a: '1' } }",
      'sinks:',
      '  out: { type: stdout, from: [gen] }',
    ),
  );
  runs.run = sluice(['run', 'spec.yaml', '--no-tui', '--state-dir', 'state']);
  runs.validate = sluice(['validate', 'spec.yaml']);
  runs.withFlag = sluice(['validate', 'bare.yaml', '--plugin', EXAMPLE]);
  runs.withoutFlag = sluice(['validate', 'bare.yaml']);
  runs.schema = sluice(['schema', '--plugin', EXAMPLE]);
  runs.graph = sluice(['graph', 'spec.yaml']);
  runs.bad = sluice(['validate', 'bad.yaml', '--format', 'json']);
  runs.missingFlag = sluice(['validate', 'bare.yaml', '--plugin', './missing.ts']);
  runs.clashFlag = sluice(['run', 'bare.yaml', '--plugin', './clash.mjs']);
});

describe('the example plugin', () => {
  it('runs in a pipeline: text fields in capitals, a record whose field is not text in the error output', async () => {
    const r = await runs.run;
    // 3: the run completed, and one record went to an error output.
    expect(r.code, r.stderr).toBe(3);
    const out = readFileSync(join(dir, 'out', readdirSync(join(dir, 'out'))[0]), 'utf8');
    expect(
      out
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l)),
    ).toEqual([{ fazenda: 'UM' }, { fazenda: 'DOIS' }, { id: 3 }]);
    const rejected = readFileSync(join(dir, 'rejected', readdirSync(join(dir, 'rejected'))[0]), 'utf8');
    const error = JSON.parse(rejected.trim());
    expect(error).toMatchObject({
      stage: 'loud',
      reason: "field 'fazenda' is number, not text",
      value: { fazenda: 7 },
    });
    expect(r.stderr).toMatch(/loud\s+transform\s+uppercase\s+4\s+3\s+1/);
  });

  it('validates like a built-in stage', async () => {
    const r = await runs.validate;
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stderr).toContain('1 file checked: 0 errors, 0 warnings');
  });

  it('is found with --plugin when the spec does not name it, and unknown without', async () => {
    const withFlag = await runs.withFlag;
    expect(withFlag.code, withFlag.stdout).toBe(0);
    const without = await runs.withoutFlag;
    expect(without.code).toBe(1);
    expect(without.stdout).toContain("error[unknown-stage-type]: unknown transform type 'uppercase'");
  });

  it('is in sluice schema --plugin, with its options documented', async () => {
    const r = await runs.schema;
    expect(r.code, r.stderr).toBe(0);
    const schema = JSON.parse(r.stdout);
    expect(schema.$defs.transform.properties.type.enum).toContain('uppercase');
    const own = schema.$defs['transform.uppercase'];
    expect(own.description).toMatch(/^Writes the named text fields in capitals/);
    expect(own.properties.fields.description).toMatch(/^Fields to write in capitals/);
    expect(own.required).toEqual(expect.arrayContaining(['type', 'from', 'fields']));
  });

  it('is drawn by sluice graph', async () => {
    const r = await runs.graph;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('uppercase');
  });
});

describe('a plugin that cannot be used', () => {
  it('is reported at its entry in the spec, one diagnostic each', async () => {
    const r = await runs.bad;
    expect(r.code).toBe(1);
    const found = (JSON.parse(r.stdout) as { code: string; line: number; column: number; message: string }[])
      .filter((d) => d.code === 'plugin')
      .map((d) => [d.line, d.column, d.message]);
    expect(found).toEqual([
      [4, 5, 'cannot load plugin ./missing.ts: no such file'],
      [
        5,
        5,
        './nothing.mjs exports no stage definition: export the result of defineSource, defineTransform or defineSink',
      ],
      [6, 5, "./clash.mjs defines the transform type 'filter', which is a built-in transform"],
      [7, 5, "./reserved.mjs: transform 'tee': an option may not be named from: sluice owns that key"],
      [8, 5, expect.stringMatching(/^cannot load plugin \.\/broken\.mjs: Unexpected token/)],
    ]);
  });

  it('on the command line is a usage error (exit 2) with one line', async () => {
    const missing = await runs.missingFlag;
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe('sluice: cannot load plugin ./missing.ts: no such file\n');
    const clash = await runs.clashFlag;
    expect(clash.code).toBe(2);
    expect(clash.stderr).toBe(
      "sluice: ./clash.mjs defines the transform type 'filter', which is a built-in transform\n",
    );
  });
});
