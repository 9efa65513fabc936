// biome-ignore-all lint/suspicious/noTemplateCurlyInString: specs are full of ${VAR} references
/**
 * `sluice validate`, `schema`, `graph` and `--help` as a user runs them: a child process, its
 * exit code, stdout and stderr. Every run starts Node and loads every stage, so the runs are
 * started together up front and the tests below only read their results.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { colorEnabled, formatGithub, formatHuman } from '../../src/cli/format.ts';
import type { Diagnostic } from '../../src/spec/diagnostics.ts';

const root = join(import.meta.dirname, '..', '..');
const node = join(root, 'node_modules', '.bin', 'node');
const cli = join(root, 'src', 'cli.ts');
const dir = mkdtempSync(join(tmpdir(), 'sluice-cli-'));
/** Paths as the user types them: relative to the repository. */
const rel = (name: string) => relative(root, join(dir, name));

const SECRET = 'Pa55-w0rd!from#env';
/** Passwords written in a spec (literal.yaml): validate reports them, and never prints them. */
const LITERALS = ['Wr1tten-Pw', 'In-Def4ult', 'C0mment-Pw', 'K3y-Value-Pw'];
/** The start of an ANSI escape sequence (colours). */
const ANSI = new RegExp(`${String.fromCharCode(27)}\\[`);

const files: Record<string, string> = {
  'invalid.yaml': [
    'version: 1',
    'name: t',
    'sources:',
    '  gen:',
    '    type: generate',
    '    sed: 3',
    "    fields: {a: '1'}",
    'sinks:',
    '  out: {type: stdout, from: [gen]}',
    '',
  ].join('\n'),
  'warning.yaml': [
    'version: 1',
    'name: t',
    'sources:',
    "  gen: {type: generate, fields: {a: '1'}}",
    "  spare: {type: generate, fields: {a: '1'}}",
    'sinks:',
    '  out: {type: stdout, from: [gen]}',
    '',
  ].join('\n'),
  'secret.yaml': [
    'version: 1',
    'name: t',
    'sources:',
    '  gen:',
    '    type: generate',
    '    seed: ${SECRET}',
    '    fields:',
    '      a: ${SECRET}',
    'sinks:',
    '  out:',
    '    type: file',
    '    from: [gen]',
    '    dir: ${SECRET}',
    "    path: '{seq}{ext}'",
    '',
  ].join('\n'),
  'literal.yaml': [
    'version: 1',
    'name: t',
    'sources:',
    "  gen: {type: generate, fields: {a: '1'}}",
    'sinks:',
    '  db:',
    '    type: mysql',
    '    from: [gen]',
    '    url: mysql://app:Wr1tten-Pw@db:3306/x   # before: mysql://app:C0mment-Pw@db/x',
    '    table: t',
    '  lake:',
    '    type: file',
    '    from: [gen]',
    '    dir: ${LAKE_URL:-sftp://u:In-Def4ult@host/lake}',
    "    path: '{seq}'",
    '    secret: K3y-Value-Pw',
    '',
  ].join('\n'),
  'graph-secret.yaml': [
    'version: 1',
    'name: t',
    'sources:',
    '  gen:',
    '    type: generate',
    '    count: ${COUNT:-5}',
    "    fields: {a: '1'}",
    'sinks:',
    '  out:',
    '    type: file',
    '    from: [gen]',
    '    dir: ${SECRET}',
    "    path: '{seq}{ext}'",
    '',
  ].join('\n'),
};

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function sluice(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(node, [cli, ...args], {
      cwd: root,
      // Not a terminal; TERM says colours would work, so only the TTY check keeps them off.
      env: { PATH: process.env.PATH ?? '', TERM: 'xterm-256color', ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b) => (stdout += b));
    child.stderr.on('data', (b) => (stderr += b));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Every run of this file, started in beforeAll, a few at a time. */
const plan = {
  valid: () => sluice(['validate', 'pipelines/demo.yaml']),
  invalid: () => sluice(['validate', rel('invalid.yaml')]),
  invalidNoColor: () => sluice(['validate', rel('invalid.yaml')], { NO_COLOR: '1' }),
  github: () => sluice(['validate', '--format', 'github', rel('invalid.yaml'), rel('warning.yaml')]),
  json: () => sluice(['validate', '--format', 'json', rel('invalid.yaml'), rel('warning.yaml')]),
  warningOnly: () => sluice(['validate', rel('warning.yaml')]),
  mixed: () => sluice(['validate', 'pipelines/demo.yaml', rel('invalid.yaml')]),
  glob: () => sluice(['validate', `${rel('')}/*.yaml`], { SECRET }),
  secretHuman: () => sluice(['validate', rel('secret.yaml')], { SECRET }),
  secretGithub: () => sluice(['validate', '-f', 'github', rel('secret.yaml')], { SECRET }),
  secretJson: () => sluice(['validate', '-f', 'json', rel('secret.yaml')], { SECRET }),
  literalHuman: () => sluice(['validate', rel('literal.yaml')]),
  literalGithub: () => sluice(['validate', '-f', 'github', rel('literal.yaml')]),
  literalJson: () => sluice(['validate', '-f', 'json', rel('literal.yaml')], { LAKE_URL: '/data/lake' }),
  literalGraph: () => sluice(['graph', rel('literal.yaml')]),
  missing: () => sluice(['validate', rel('nope.yaml')]),
  globNothing: () => sluice(['validate', `${rel('')}/*.nothing`]),
  noArgs: () => sluice(['validate']),
  badFormat: () => sluice(['validate', '--format', 'xml', 'pipelines/demo.yaml']),
  unknownCommand: () => sluice(['frobnicate']),
  help: () => sluice(['--help']),
  validateHelp: () => sluice(['validate', '--help']),
  graphHelp: () => sluice(['graph', '--help']),
  mermaid: () =>
    sluice(['graph', 'pipelines/demo.yaml'], { DEMO_OUT: `/data/${SECRET}`, DEMO_RECORDS: '777123' }),
  dot: () => sluice(['graph', '--format', 'dot', 'pipelines/demo.yaml'], { DEMO_OUT: `/data/${SECRET}` }),
  graphSecret: () => sluice(['graph', rel('graph-secret.yaml')], { SECRET, COUNT: '918273' }),
  graphInvalid: () => sluice(['graph', rel('invalid.yaml')]),
  schema: () => sluice(['schema']),
} satisfies Record<string, () => Promise<Run>>;

const runs = {} as Record<keyof typeof plan, Run>;

beforeAll(async () => {
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  const queue = Object.entries(plan) as [keyof typeof plan, () => Promise<Run>][];
  const worker = async () => {
    for (let next = queue.shift(); next; next = queue.shift()) runs[next[0]] = await next[1]();
  };
  await Promise.all(Array.from({ length: 4 }, worker));
}, 300_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const noStack = (r: Run) => {
  expect(r.stderr).not.toMatch(/^ {4}at /m);
  expect(r.stdout).not.toMatch(/^ {4}at /m);
};

describe('sluice validate, human format', () => {
  it('exits 0 on a valid spec, prints nothing on stdout and a summary on stderr', () => {
    const r = runs.valid;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe('1 file checked: 0 errors, 0 warnings\n');
  });

  it('prints path:line:col: error[code]: message and a code frame with a caret under the span', () => {
    const r = runs.invalidNoColor;
    expect(r.code).toBe(1);
    expect(r.stdout).toBe(
      [
        `${rel('invalid.yaml')}:6:5: error[unknown-key]: unknown key 'sed' in source 'gen' (generate): did you mean 'seed'?`,
        '  |',
        '6 |     sed: 3',
        '  |     ^^^',
        '',
      ].join('\n'),
    );
    expect(r.stderr).toBe('1 file checked: 1 error, 0 warnings\n');
  });

  it('has no colour when stdout is not a terminal, even with TERM set', () => {
    expect(runs.invalid.code).toBe(1);
    expect(runs.invalid.stdout).not.toMatch(ANSI);
    expect(runs.invalid.stdout).toBe(runs.invalidNoColor.stdout);
  });

  it('colours only a terminal, and never with NO_COLOR', () => {
    const tty = { isTTY: true } as NodeJS.WriteStream;
    const pipe = { isTTY: false } as NodeJS.WriteStream;
    vi.stubEnv('TERM', 'xterm-256color');
    vi.stubEnv('NO_COLOR', undefined);
    try {
      expect(colorEnabled(tty)).toBe(true);
      expect(colorEnabled(pipe)).toBe(false);
      vi.stubEnv('NO_COLOR', '');
      expect(colorEnabled(tty)).toBe(false);
      vi.stubEnv('NO_COLOR', '1');
      expect(colorEnabled(tty)).toBe(false);
    } finally {
      vi.unstubAllEnvs();
    }
    const d: Diagnostic = {
      file: 'a.yaml',
      severity: 'error',
      code: 'unknown-key',
      message: 'm',
      line: 1,
      column: 1,
      endLine: 1,
      endColumn: 2,
    };
    const sources = new Map([['a.yaml', 'x: 1\n']]);
    expect(formatHuman([d], sources, true)).toMatch(ANSI);
    expect(formatHuman([d], sources, false)).not.toMatch(ANSI);
  });

  it('exits 0 with warnings only, and shows them', () => {
    const r = runs.warningOnly;
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^${rel('warning.yaml')}:5:3: warning\\[unused-output\\]: `, 'm'));
    expect(r.stderr).toBe('1 file checked: 0 errors, 1 warning\n');
  });

  it('exits 1 when any of several files is invalid', () => {
    expect(runs.mixed.code).toBe(1);
    expect(runs.mixed.stderr).toBe('2 files checked: 1 error, 0 warnings\n');
  });

  it('expands globs itself', () => {
    const r = runs.glob;
    expect(r.code).toBe(1);
    for (const f of Object.keys(files)) if (f !== 'graph-secret.yaml') expect(r.stdout).toContain(rel(f));
    expect(r.stderr).toMatch(new RegExp(`^${Object.keys(files).length} files checked: `, 'm'));
  });
});

describe('sluice validate, github and json formats', () => {
  it('github: one workflow command per diagnostic with file, line, col, endLine, endColumn and title', () => {
    const r = runs.github;
    expect(r.code).toBe(1);
    expect(r.stdout.trimEnd().split('\n')).toEqual([
      `::error file=${rel('invalid.yaml')},line=6,col=5,endLine=6,endColumn=8,title=sluice unknown-key::unknown key 'sed' in source 'gen' (generate): did you mean 'seed'?`,
      `::warning file=${rel('warning.yaml')},line=5,col=3,endLine=5,endColumn=8,title=sluice unused-output::nothing reads the output of source 'spare': wire it into a sink's from, or remove it`,
    ]);
    expect(r.stderr).toBe('');
  });

  it('github: escapes what would end a property or a command', () => {
    const d: Diagnostic = {
      file: 'dir,x/a:b.yaml',
      severity: 'error',
      code: 'expr-syntax',
      message: '100% wrong\nsecond line',
      line: 2,
      column: 3,
      endLine: 2,
      endColumn: 4,
    };
    expect(formatGithub([d])).toBe(
      '::error file=dir%2Cx/a%3Ab.yaml,line=2,col=3,endLine=2,endColumn=4,title=sluice expr-syntax::100%25 wrong%0Asecond line\n',
    );
  });

  it('json: an array of diagnostics with file, span, severity, code and message', () => {
    const r = runs.json;
    expect(r.code).toBe(1);
    const parsed = JSON.parse(r.stdout) as Diagnostic[];
    expect(Array.isArray(parsed)).toBe(true);
    expect(parsed).toEqual([
      {
        file: rel('invalid.yaml'),
        severity: 'error',
        code: 'unknown-key',
        message: "unknown key 'sed' in source 'gen' (generate): did you mean 'seed'?",
        line: 6,
        column: 5,
        endLine: 6,
        endColumn: 8,
      },
      {
        file: rel('warning.yaml'),
        severity: 'warning',
        code: 'unused-output',
        message: "nothing reads the output of source 'spare': wire it into a sink's from, or remove it",
        line: 5,
        column: 3,
        endLine: 5,
        endColumn: 8,
      },
    ]);
  });

  it('never prints a value from the environment, in any format', () => {
    for (const r of [runs.secretHuman, runs.secretGithub, runs.secretJson, runs.glob]) {
      expect(r.code).toBe(1);
      expect(r.stdout + r.stderr).not.toContain(SECRET);
      expect(r.stdout + r.stderr).not.toContain('Pa55');
    }
    const lines = (JSON.parse(runs.secretJson.stdout) as Diagnostic[]).map((d) => `${d.line}:${d.code}`);
    expect(lines).toEqual(expect.arrayContaining(['6:schema-type', '8:expr-syntax']));
  });
});

describe('literal secrets in a spec', () => {
  it('are reported and never printed, in any format, not even in the code frame', () => {
    for (const r of [runs.literalHuman, runs.literalGithub, runs.literalJson, runs.literalGraph]) {
      expect(r.code).toBe(1);
      for (const secret of LITERALS) expect(r.stdout + r.stderr).not.toContain(secret);
    }
    const found = (JSON.parse(runs.literalJson.stdout) as Diagnostic[]).map((d) => `${d.line}:${d.code}`);
    expect(found).toEqual(['9:literal-credential', '14:literal-credential', '16:literal-credential']);
  });

  it('the code frame masks each secret column for column, the caret still under the value', () => {
    const out = runs.literalHuman.stdout;
    expect(out).toContain(
      [
        '9 |     url: mysql://app:**********@db:3306/x   # before: mysql://app:**********@db/x',
        `  |          ${'^'.repeat('mysql://app:Wr1tten-Pw@db:3306/x'.length)}`,
      ].join('\n'),
    );
    expect(out).toContain('14 |     dir: ${LAKE_URL:-sftp://u:**********@host/lake}');
    expect(out).toContain(['16 |     secret: ************', '   |     ^^^^^^'].join('\n'));
  });
});

describe('usage errors', () => {
  it('exits 2 on a missing file, saying which', () => {
    expect(runs.missing.code).toBe(2);
    expect(runs.missing.stderr).toBe(`sluice: cannot read ${rel('nope.yaml')}: ENOENT\n`);
    expect(runs.missing.stdout).toBe('');
  });

  it('exits 2 on a glob that matches nothing', () => {
    expect(runs.globNothing.code).toBe(2);
    expect(runs.globNothing.stderr).toMatch(/no file matches/);
  });

  it('exits 2 on a missing argument, a bad option value or an unknown command', () => {
    expect(runs.noArgs.code).toBe(2);
    expect(runs.noArgs.stderr).toMatch(/missing required argument 'files'/);
    expect(runs.badFormat.code).toBe(2);
    expect(runs.badFormat.stderr).toMatch(/'xml' is invalid.*human, json, github/);
    expect(runs.unknownCommand.code).toBe(2);
    expect(runs.unknownCommand.stderr).toMatch(/unknown command 'frobnicate'/);
  });

  it('never shows a stack trace', () => {
    for (const r of Object.values(runs)) noStack(r);
  });
});

describe('help', () => {
  it('sluice --help lists every command and exits 0', () => {
    const r = runs.help;
    expect(r.code).toBe(0);
    for (const c of ['validate', 'run', 'schema', 'graph'])
      expect(r.stdout).toMatch(new RegExp(`^\\s+${c}\\b`, 'm'));
    expect(r.stdout).toMatch(/--version/);
  });

  it('validate --help documents the arguments, the formats and the exit codes', () => {
    const r = runs.validateHelp;
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Usage: sluice validate \[options\] <files\.\.\.>/);
    expect(r.stdout).toMatch(/--format <format>.*choices: "human", "json", "github"/s);
    expect(r.stdout).toMatch(/Exit codes: 0 valid \(warnings allowed\), 1 invalid, 2 usage or I\/O error/);
  });

  it('graph --help names both formats', () => {
    expect(runs.graphHelp.code).toBe(0);
    expect(runs.graphHelp.stdout).toMatch(/choices: "mermaid", "dot"/);
  });
});

describe('sluice graph and schema', () => {
  const stages = ['consumption', 'enriched', 'unique', 'by_day', 'lake', 'rejected'];

  it('mermaid: every stage and edge of the demo, no value from the environment', () => {
    const r = runs.mermaid;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.split('\n')[0]).toBe('flowchart LR');
    for (const s of stages) expect(r.stdout).toContain(s);
    expect(r.stdout).toContain('consumption --> enriched');
    expect(r.stdout).toContain('enriched -. errors .-> rejected');
    expect(r.stdout).not.toContain(SECRET);
    expect(r.stdout).not.toContain('777123');
  });

  it('dot: a digraph of the same stages, no value from the environment', () => {
    const r = runs.dot;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^digraph "demo" \{/);
    for (const s of stages) expect(r.stdout).toContain(`"${s}"`);
    expect(r.stdout).toContain('"by_day" -> "lake";');
    expect(r.stdout).not.toContain(SECRET);
  });

  it('graph shows names and types only, even for values set in the environment', () => {
    const r = runs.graphSecret;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('gen --> out');
    expect(r.stdout + r.stderr).not.toContain(SECRET);
    expect(r.stdout).not.toContain('918273');
  });

  it('graph of an invalid spec prints the diagnostics and exits 1', () => {
    expect(runs.graphInvalid.code).toBe(1);
    expect(runs.graphInvalid.stdout).toBe('');
    expect(runs.graphInvalid.stderr).toMatch(/:6:5: error\[unknown-key\]/);
  });

  it('schema prints the JSON Schema document', () => {
    expect(runs.schema.code).toBe(0);
    const schema = JSON.parse(runs.schema.stdout) as Record<string, unknown>;
    expect(schema.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
    expect(Object.keys(schema.$defs as object)).toContain('sink.s3');
  });
});
