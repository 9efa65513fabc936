/**
 * `sluice test` and `sluice eval` as a user runs them: a child process, its exit code and output.
 * The shipped pipelines' tests pass with no service configured (every endpoint points at a closed
 * port); a copied spec with a broken expression or column mapping fails at the expectation's line.
 */
import { spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
const node = join(root, 'node_modules', '.bin', 'node');
const cli = join(root, 'src', 'cli.ts');
const dir = mkdtempSync(join(tmpdir(), 'sluice-test-cli-'));

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Nothing listens here: a test that reached for a service would fail. */
const NO_SERVICES = {
  AWS_ENDPOINT_URL: 'http://127.0.0.1:9',
  KAFKA_BROKERS: '127.0.0.1:9',
  MYSQL_URL: 'mysql://root@127.0.0.1:9/none',
  AWS_REGION: 'us-east-1',
  AWS_ACCESS_KEY_ID: 'none',
  AWS_SECRET_ACCESS_KEY: 'none',
};

function sluice(args: string[], cwd = root): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(node, [cli, ...args], {
      cwd,
      env: { ...process.env, ...NO_SERVICES, NO_COLOR: '1' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** A copy of a shipped spec and its test file, the spec edited by `edit`. */
function brokenCopy(name: string, edit: (spec: string) => string): string {
  const sub = mkdtempSync(join(dir, `${name}-`));
  writeFileSync(
    join(sub, `${name}.yaml`),
    edit(readFileSync(join(root, 'pipelines', `${name}.yaml`), 'utf8')),
  );
  copyFileSync(join(root, 'pipelines', `${name}.test.yaml`), join(sub, `${name}.test.yaml`));
  return join(sub, `${name}.test.yaml`);
}

/** The 1-based line of the first line of `file` that contains `text` after the line holding `after`. */
function lineOf(file: string, text: string, after: string): number {
  const lines = readFileSync(file, 'utf8').split('\n');
  const start = lines.findIndex((l) => l.includes(after));
  return lines.findIndex((l, i) => i > start && l.includes(text)) + 1;
}

const runs: Record<string, Promise<Result>> = {};
let exprTest = '';
let columnTest = '';

beforeAll(() => {
  exprTest = brokenCopy('feedlot-sns-mysql-s3', (s) =>
    s.replace(
      "consumo_meta: 'peso_medio * 0.025 * quantidade_animais'",
      "consumo_meta: 'peso_medio * 0.25 * quantidade_animais'",
    ),
  );
  columnTest = brokenCopy('feedlot-kafka-mysql', (s) =>
    s.replace('      peso_entrada: FLOAT', '      peso_entrada: INT'),
  );
  runs.all = sluice(['test', 'pipelines/*.test.yaml']);
  runs.expr = sluice(['test', exprTest]);
  runs.column = sluice(['test', columnTest]);
  runs.github = sluice(['test', '--format', 'github', exprTest]);
  runs.evalOk = sluice([
    'eval',
    'peso_medio * 0.025 * quantidade_animais',
    '--record',
    '{"peso_medio": 400, "quantidade_animais": 10}',
  ]);
  runs.evalMeta = sluice([
    'eval',
    'meta.topic + "/" + string(meta.partition)',
    '--meta',
    '{"topic": "vale3", "partition": 1}',
  ]);
  runs.evalSyntax = sluice(['eval', 'peso_medio * * 2']);
  runs.evalField = sluice(['eval', 'peso + 1', '--record', '{"peso_medio": 1}']);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('sluice test', () => {
  it("passes every shipped pipeline's test file with no service reachable", async () => {
    const r = await runs.all;
    // Every test file beside the specs, however many pipelines ship.
    const files = readdirSync(join(root, 'pipelines')).filter((f) => f.endsWith('.test.yaml')).length;
    expect(r.stderr).toMatch(new RegExp(`\\d+ cases in ${files} files: \\d+ passed, 0 failed`));
    expect(r.stdout).not.toMatch(/^FAIL/m);
    expect(r.code).toBe(0);
  });

  it('fails a copied spec with a broken expression, with a diff at the line of the expectation', async () => {
    const r = await runs.expr;
    expect(r.code).toBe(1);
    const where = lineOf(exprTest, "'consumo_meta == 100.0'", 'a message becomes one upserted row');
    expect(r.stdout).toContain(`${exprTest}:${where}:`);
    expect(r.stdout).toMatch(/fail `consumo_meta == 100.0`/);
    // The rows and lake records differ: expected (-) and produced (+), the produced with the new value.
    expect(r.stdout).toMatch(/^ {4}- .*"consumo_meta":100[,}]/m);
    expect(r.stdout).toMatch(/^ {4}\+ .*"consumo_meta":1000[,}]/m);
  });

  it('fails a copied spec with a broken column type, naming the column, at the rows expectation', async () => {
    const r = await runs.column;
    expect(r.code).toBe(1);
    // peso_entrada 300.5 does not fit an INT column under strict conversion: no row, an error record.
    expect(r.stdout).toMatch(/FAIL .*feedlot-kafka-mysql\.test\.yaml › a message becomes one upserted row/);
    const rowsLine = lineOf(columnTest, '- id_treated_data', 'a message becomes one upserted row');
    expect(r.stdout).toContain(`${columnTest}:${rowsLine}:`);
    expect(r.stdout).toMatch(/^ {4}- \{"id_treated_data"/m);
    expect(r.stdout).toMatch(/rejected: 1 records, expected 0|column 'peso_entrada'/);
  });

  it('prints GitHub annotation lines with --format github', async () => {
    const r = await runs.github;
    expect(r.code).toBe(1);
    const lines = r.stdout.trim().split('\n');
    expect(lines.length).toBeGreaterThan(0);
    for (const l of lines)
      expect(l).toMatch(/^::error file=[^,]+,line=\d+,col=\d+,endLine=\d+,endColumn=\d+,title=[^:]+::/);
  });
});

describe('sluice eval', () => {
  it('prints the value and its CEL type', async () => {
    const r = await runs.evalOk;
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('100\ndouble\n');
  });

  it('reads meta', async () => {
    const r = await runs.evalMeta;
    expect(r.stdout).toBe('"vale3/1"\nstring\n');
  });

  it('prints a syntax error with a caret under the offending token', async () => {
    const r = await runs.evalSyntax;
    expect(r.code).toBe(1);
    const [message, expr, caret] = r.stderr.split('\n');
    expect(message).toMatch(/^error: expression does not compile/);
    expect(expr).toBe('  peso_medio * * 2');
    expect(caret.indexOf('^')).toBe(expr.indexOf('* 2'));
  });

  it('prints an evaluation error with the field that is missing', async () => {
    const r = await runs.evalField;
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/fails on this record: no such field 'peso'/);
    expect(r.stderr.split('\n')[2]).toBe('  ^^^^');
  });
});
