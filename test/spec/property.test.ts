// biome-ignore-all lint/suspicious/noTemplateCurlyInString: specs are full of ${VAR} references
/**
 * Bad input, generated: valid pipelines mutated by deleted keys, wrong types, truncation, tabs,
 * random bytes, huge numbers, deep nesting and random unicode. The validator never throws, never
 * hides a crash as a message, and every diagnostic points at a place that exists in the file;
 * through the CLI, the exit code is 0 or 1 and no stack trace reaches the user.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { DIAGNOSTIC_CODES, type Diagnostic, hasErrors } from '../../src/spec/diagnostics.ts';
import { validateText } from '../../src/spec/validate.ts';

const root = join(import.meta.dirname, '..', '..');
const fixtures = join(import.meta.dirname, 'fixtures');
const seeds: { name: string; text: string }[] = [
  ...readdirSync(join(root, 'pipelines'))
    .filter((f) => /\.ya?ml$/.test(f) && !/\.test\.ya?ml$/.test(f))
    .map((f) => ({ name: `pipelines/${f}`, text: readFileSync(join(root, 'pipelines', f), 'utf8') })),
  ...readdirSync(fixtures)
    .filter((f) => /\.ya?ml$/.test(f))
    .map((f) => ({ name: `fixtures/${f}`, text: readFileSync(join(fixtures, f), 'utf8') })),
];

/** No variable set: the seeds are valid on their defaults. */
const NO_ENV: Record<string, string | undefined> = {};

type Mutation = { kind: string; apply: (text: string) => string };

const KEY_LINE = /^(\s*(?:- )?)([^\s#:][^:#]*?):(\s|$)/;

/** Index of the n-th line (modulo) that holds a `key:`; -1 when none does. */
function keyLine(lines: string[], n: number): number {
  const candidates = lines.flatMap((l, i) => (KEY_LINE.test(l) ? [i] : []));
  return candidates.length === 0 ? -1 : candidates[n % candidates.length];
}

const indentOf = (line: string) => line.length - line.trimStart().length;

/** Replaces the value of the n-th `key:` line (and the block under it) with `value`. */
function replaceValue(text: string, n: number, value: string): string {
  const lines = text.split('\n');
  const i = keyLine(lines, n);
  if (i < 0) return text;
  const m = KEY_LINE.exec(lines[i])!;
  let end = i + 1;
  while (end < lines.length && (lines[end].trim() === '' || indentOf(lines[end]) > indentOf(lines[i]))) end++;
  lines.splice(i, end - i, `${m[1]}${m[2]}: ${value}`);
  return lines.join('\n');
}

const at = (text: string, n: number) => n % (text.length + 1);

const deleteKey = fc.nat().map<Mutation>((n) => ({
  kind: 'delete key',
  apply: (text) => {
    const lines = text.split('\n');
    const i = keyLine(lines, n);
    if (i < 0) return text;
    let end = i + 1;
    while (end < lines.length && (lines[end].trim() === '' || indentOf(lines[end]) > indentOf(lines[i])))
      end++;
    lines.splice(i, end - i);
    return lines.join('\n');
  },
}));

const WRONG = [
  '[]',
  '{}',
  '42',
  '-1',
  '0',
  'true',
  'null',
  '~',
  '"text"',
  "''",
  '[1, 2]',
  '{a: 1}',
  '3.5',
  'yes',
  '@x',
  '`x`',
];
const wrongType = fc.tuple(fc.nat(), fc.constantFrom(...WRONG)).map<Mutation>(([n, v]) => ({
  kind: 'wrong type',
  apply: (text) => replaceValue(text, n, v),
}));

const truncate = fc
  .nat()
  .map<Mutation>((n) => ({ kind: 'truncate', apply: (text) => text.slice(0, at(text, n)) }));

const tabs = fc.tuple(fc.nat(), fc.boolean()).map<Mutation>(([n, leading]) => ({
  kind: 'tab',
  apply: (text) => {
    if (!leading) return `${text.slice(0, at(text, n))}\t${text.slice(at(text, n))}`;
    const lines = text.split('\n');
    const i = n % lines.length;
    lines[i] = lines[i].replace(/^ +/, (s) => '\t'.repeat(Math.max(1, s.length / 2)));
    return lines.join('\n');
  },
}));

const randomBytes = fc
  .tuple(fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 40 }))
  .map<Mutation>(([n, bytes]) => ({
    kind: 'random bytes',
    apply: (text) =>
      `${text.slice(0, at(text, n))}${Buffer.from(bytes).toString('latin1')}${text.slice(at(text, n))}`,
  }));

const HUGE = [
  '1e309',
  '-1e309',
  '9'.repeat(400),
  '123456789012345678901234567890',
  '1e-400',
  '.nan',
  '.inf',
  '-.inf',
  '0x7fffffffffffffff',
  String(Number.MAX_SAFE_INTEGER + 2),
  '-0',
  '99999999999999999999ms',
  '1e300MiB',
];
const hugeNumber = fc
  .tuple(fc.nat(), fc.constantFrom(...HUGE), fc.boolean())
  .map<Mutation>(([n, v, anyNumber]) => ({
    kind: 'huge number',
    apply: (text) => {
      if (!anyNumber) return replaceValue(text, n, v);
      const numbers = [...text.matchAll(/\b\d+(\.\d+)?/g)];
      if (numbers.length === 0) return text;
      const m = numbers[n % numbers.length];
      return text.slice(0, m.index) + v + text.slice(m.index + m[0].length);
    },
  }));

const deepNesting = fc
  .tuple(
    fc.nat(),
    fc.integer({ min: 1, max: 2_000 }),
    fc.constantFrom('flow-seq', 'flow-map', 'block-map', 'block-seq'),
  )
  .map<Mutation>(([n, depth, style]) => ({
    kind: 'deep nesting',
    apply: (text) => {
      if (style === 'flow-seq') return replaceValue(text, n, `${'['.repeat(depth)}1${']'.repeat(depth)}`);
      if (style === 'flow-map') return replaceValue(text, n, `${'{a: '.repeat(depth)}1${'}'.repeat(depth)}`);
      const lines = text.split('\n');
      const i = keyLine(lines, n);
      if (i < 0) return text;
      const base = indentOf(lines[i]);
      const nested = Array.from({ length: Math.min(depth, 300) }, (_, k) =>
        style === 'block-map'
          ? `${' '.repeat(base + 2 * (k + 1))}k${k}:`
          : `${' '.repeat(base + 2 * (k + 1))}-`,
      );
      lines.splice(i + 1, 0, ...nested.slice(0, -1), `${nested[nested.length - 1]} 1`);
      return lines.join('\n');
    },
  }));

const unicode = fc
  .tuple(fc.nat(), fc.string({ unit: 'binary', minLength: 1, maxLength: 24 }), fc.boolean())
  .map<Mutation>(([n, s, asKey]) => ({
    kind: 'random unicode',
    apply: (text) => {
      if (!asKey) return replaceValue(text, n, s);
      const lines = text.split('\n');
      const i = keyLine(lines, n);
      if (i < 0) return text;
      lines[i] = lines[i].replace(
        KEY_LINE,
        (_m, lead: string, _k: string, after: string) => `${lead}${s}:${after}`,
      );
      return lines.join('\n');
    },
  }));

const shuffleLines = fc.tuple(fc.nat(), fc.nat(), fc.boolean()).map<Mutation>(([a, b, duplicate]) => ({
  kind: duplicate ? 'duplicate line' : 'swap lines',
  apply: (text) => {
    const lines = text.split('\n');
    const i = a % lines.length;
    const j = b % lines.length;
    if (duplicate) lines.splice(j, 0, lines[i]);
    else [lines[i], lines[j]] = [lines[j], lines[i]];
    return lines.join('\n');
  },
}));

const mutation = fc.oneof(
  deleteKey,
  wrongType,
  truncate,
  tabs,
  randomBytes,
  hugeNumber,
  deepNesting,
  unicode,
  shuffleLines,
);

const mutated = fc
  .tuple(fc.constantFrom(...seeds), fc.array(mutation, { minLength: 1, maxLength: 3 }))
  .map(([seed, muts]) => ({
    seed: seed.name,
    kinds: muts.map((m) => m.kind),
    text: muts.reduce((t, m) => m.apply(t), seed.text),
  }));

/** What must hold of any validation result. */
function checkResult(text: string, diagnostics: Diagnostic[], hasSpec: boolean): void {
  const lineCount = text.split('\n').length;
  for (const d of diagnostics) {
    expect(d.code in DIAGNOSTIC_CODES, d.code).toBe(true);
    expect(['error', 'warning']).toContain(d.severity);
    expect(d.message).not.toBe('');
    expect(d.message, 'a crash hidden as a diagnostic').not.toMatch(
      /internal error|cannot (parse|read) this file/,
    );
    expect(d.line, JSON.stringify(d)).toBeGreaterThanOrEqual(1);
    expect(d.line, JSON.stringify(d)).toBeLessThanOrEqual(lineCount + 1);
    expect(d.column, JSON.stringify(d)).toBeGreaterThanOrEqual(1);
    expect(d.endLine * 1e6 + d.endColumn, JSON.stringify(d)).toBeGreaterThanOrEqual(d.line * 1e6 + d.column);
    expect(d.endLine, JSON.stringify(d)).toBeLessThanOrEqual(lineCount + 1);
  }
  expect(hasSpec).toBe(!hasErrors(diagnostics));
}

describe('mutated specs', () => {
  it('the seeds themselves are valid', () => {
    expect(seeds.length).toBeGreaterThanOrEqual(4);
    for (const seed of seeds) {
      const { diagnostics } = validateText(seed.name, seed.text, NO_ENV);
      expect(
        diagnostics.filter((d) => d.severity === 'error'),
        seed.name,
      ).toEqual([]);
    }
  });

  it('never throw, and every diagnostic is at a place in the file (1,000 runs)', () => {
    let invalid = 0;
    let runs = 0;
    const kinds = new Map<string, number>();
    fc.assert(
      fc.property(mutated, ({ text, kinds: applied }) => {
        runs++;
        for (const k of applied) kinds.set(k, (kinds.get(k) ?? 0) + 1);
        const { diagnostics, spec } = validateText('spec.yaml', text, NO_ENV);
        checkResult(text, diagnostics, spec !== undefined);
        if (hasErrors(diagnostics)) {
          invalid++;
          expect(diagnostics.some((d) => d.severity === 'error')).toBe(true);
        }
      }),
      { numRuns: 1_000 },
    );
    expect(runs).toBeGreaterThanOrEqual(1_000);
    // The mutations bite: most results are invalid, and every kind of mutation was tried.
    expect(invalid).toBeGreaterThan(runs / 2);
    expect([...kinds.keys()].sort()).toEqual(
      [
        'deep nesting',
        'delete key',
        'duplicate line',
        'huge number',
        'random bytes',
        'random unicode',
        'swap lines',
        'tab',
        'truncate',
        'wrong type',
      ].sort(),
    );
  });

  it('an invalid spec always has at least one error (targeted cases)', () => {
    const demo = seeds[0].text;
    for (const text of [
      '',
      '\n',
      '# only a comment\n',
      'version: 1\n',
      '[]',
      '42',
      '"just a string"',
      '\t',
      '\u0000\u0001\u0002',
      '\uFEFFversion: 1\n',
      '- a\n- b\n',
      '&a [*a]',
      '!!binary abc',
      '? complex key\n: value\n',
      `${demo}\n...\nversion: 1\n`,
      demo.slice(0, demo.length / 2),
      demo.replaceAll('\n', '\r\n').slice(0, 500),
    ]) {
      const { diagnostics, spec } = validateText('spec.yaml', text, NO_ENV);
      checkResult(text, diagnostics, spec !== undefined);
      expect(hasErrors(diagnostics), JSON.stringify(text.slice(0, 80))).toBe(true);
    }
    // A tag the parser ignores is a warning at the tag, not silence.
    const tagged = demo.replace(/^sources:/m, 'sources: !!str');
    const { diagnostics } = validateText('spec.yaml', tagged, NO_ENV);
    expect(diagnostics.map((d) => [d.code, d.severity, d.line, d.column, d.message])).toEqual([
      ['yaml-syntax', 'warning', 13, 10, 'the tag !!str is ignored: specs use no tags; remove it'],
    ]);
  });
});

describe('the CLI on mutated specs', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-prop-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const node = join(root, 'node_modules', '.bin', 'node');
  const cli = join(root, 'src', 'cli.ts');

  function run(file: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve, reject) => {
      const child = spawn(node, [cli, 'validate', file], {
        cwd: root,
        env: { PATH: process.env.PATH, NO_COLOR: '1' },
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (b) => (stdout += b));
      child.stderr.on('data', (b) => (stderr += b));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
  }

  // Each run starts a Node process that loads every stage's client library: keep it to two dozen.
  const RUNS = 24;
  it(`exits 0 or 1 as the in-process result says, with no stack trace (${RUNS} runs)`, async () => {
    const samples = fc.sample(mutated, { numRuns: RUNS, seed: Date.now() % 100_000 });
    const outcomes: number[] = [];
    const queue = samples.map((s, i) => ({ ...s, file: join(dir, `m${i}.yaml`) }));
    for (const s of queue) writeFileSync(s.file, s.text);
    const worker = async () => {
      for (let s = queue.shift(); s; s = queue.shift()) {
        const { code, stdout, stderr } = await run(s.file);
        const expected = hasErrors(validateText(s.file, s.text, {}).diagnostics) ? 1 : 0;
        const context = `${s.seed} ${s.kinds.join(', ')}: ${stderr}`;
        expect(code, context).toBe(expected);
        expect(stderr, context).not.toMatch(/^ {4}at /m);
        expect(stdout, context).not.toMatch(/^ {4}at /m);
        expect(stderr).toMatch(/1 file checked: \d+ errors?, \d+ warnings?/);
        if (expected === 1) expect(stdout).toMatch(/^.+:\d+:\d+: error\[[a-z-]+\]: /m);
        outcomes.push(code ?? -1);
      }
    };
    await Promise.all(Array.from({ length: 3 }, worker));
    expect(outcomes).toHaveLength(RUNS);
    // Both outcomes occur in practice; at least the invalid one must.
    expect(outcomes).toContain(1);
  }, 180_000);
});
