// biome-ignore-all lint/suspicious/noTemplateCurlyInString: specs are full of ${VAR} references
/**
 * Literal secrets in a spec: reported as literal-credential, and never printed back, neither
 * in a message nor in the code frame that echoes the line (masked with `*`, column for column,
 * so the caret still points at the value).
 */
import { describe, expect, it } from 'vitest';
import { formatGithub, formatHuman, formatJson } from '../../src/cli/format.ts';
import { findSecrets } from '../../src/spec/secrets.ts';
import { validateText } from '../../src/spec/validate.ts';

const lines = (...l: string[]) => `${l.join('\n')}\n`;

/** A valid pipeline plus `stage`, lines of one more sink reading gen (line 9 on). */
const withSink = (...stage: string[]) =>
  lines(
    'version: 1', //                                  1
    'name: t', //                                     2
    'sources:', //                                    3
    "  gen: {type: generate, fields: {a: '1'}}", //   4
    'sinks:', //                                      5
    '  out:', //                                      6
    '    type: stdout', //                            7
    '    from: [gen]', //                             8
    ...stage, //                                      9 on
  );

/** Every output format of `sluice validate` for one spec. */
function outputs(text: string, env: Record<string, string> = {}) {
  const result = validateText('spec.yaml', text, env);
  const human = formatHuman(result.diagnostics, new Map([['spec.yaml', text]]), false);
  return {
    result,
    human,
    all: [human, formatJson(result.diagnostics), formatGithub(result.diagnostics)].join('\n'),
  };
}

/** The code frame line of the first diagnostic on `line`, and the caret line under it. */
function frame(human: string, line: number): { text: string; caret: string } {
  const rows = human.split('\n');
  const at = rows.findIndex((r) => r.startsWith(`${line} | `));
  expect(at, human).toBeGreaterThan(0);
  const gutter = `${line} | `.length;
  return { text: rows[at].slice(gutter), caret: rows[at + 1].slice(gutter) };
}

describe('a password in a URL', () => {
  it('is reported in a secret option, and masked alone in the frame, under the caret', () => {
    const text = withSink(
      '  db:',
      '    type: mysql',
      '    from: [gen]',
      '    url: mysql://app:Tr0ub4dor@db:3306/x',
      '    table: t',
    );
    const { result, human, all } = outputs(text);
    expect(result.diagnostics.map((d) => d.code)).toContain('literal-credential');
    expect(all).not.toContain('Tr0ub4dor');
    const { text: shown, caret } = frame(human, 12);
    expect(shown).toBe('    url: mysql://app:*********@db:3306/x');
    // The caret underlines the whole URL, as before: the message is about the URL.
    expect(caret).toBe(`         ${'^'.repeat('mysql://app:Tr0ub4dor@db:3306/x'.length)}`);
  });

  it('is reported in any option, and in a jdbc-style or quoted URL', () => {
    for (const value of ['https://bob:S3cr3tPw@example.com/x', "'jdbc:mysql://bob:S3cr3tPw@db/x'"]) {
      const text = withSink(
        '  f:',
        '    type: file',
        '    from: [gen]',
        `    dir: ${value}`,
        "    path: '{seq}'",
      );
      const { result, human, all } = outputs(text);
      expect(result.diagnostics.map((d) => d.code)).toEqual(['literal-credential']);
      expect(all).not.toContain('S3cr3tPw');
      expect(frame(human, 12).text).toBe(`    dir: ${value.replace('S3cr3tPw', '********')}`);
    }
  });

  it('holding @, # or / is masked whole, up to the last @', () => {
    const text = withSink(
      '  f:',
      '    type: file',
      '    from: [gen]',
      '    dir: ftp://u:p@ss#w/rd@host/x',
      "    path: '{seq}'",
    );
    const { result, human, all } = outputs(text);
    expect(result.diagnostics.map((d) => d.code)).toEqual(['literal-credential']);
    expect(all).not.toContain('p@ss#w/rd');
    expect(all).not.toContain('ss#w/rd');
    expect(frame(human, 12).text).toBe('    dir: ftp://u:*********@host/x');
  });

  it('written as the default of ${VAR:-…} is a literal secret, even when VAR is set', () => {
    const text = withSink(
      '  db:',
      '    type: mysql',
      '    from: [gen]',
      '    url: ${DB_URL:-mysql://app:Dflt-Pw1@db/x}',
      '    table: t',
    );
    for (const env of [{}, { DB_URL: 'mysql://app@db/x' }] as Record<string, string>[]) {
      const { result, human, all } = outputs(text, env);
      expect(result.diagnostics.map((d) => d.code)).toContain('literal-credential');
      expect(all).not.toContain('Dflt-Pw1');
      expect(frame(human, 12).text).toBe('    url: ${DB_URL:-mysql://app:********@db/x}');
    }
  });

  it('is never quoted by another check’s message', () => {
    const text = withSink(
      '  f:',
      '    type: file',
      '    from: [gen]',
      '    dir: d',
      "    path: '{seq}'",
      "    buffer: {max_age: 'https://u:Qu0tedPw@h'}",
    );
    const { result, all } = outputs(text);
    expect(result.diagnostics.map((d) => d.code).sort()).toEqual(['invalid-duration', 'literal-credential']);
    expect(all).not.toContain('Qu0tedPw');
  });

  it('in a comment on an echoed line is masked too', () => {
    const text = withSink(
      '  f:',
      '    type: file',
      '    from: [gen]',
      '    dir: 5  # was https://u:0ldPassw@h/x',
      "    path: '{seq}'",
    );
    const { result, all } = outputs(text);
    expect(result.diagnostics.map((d) => d.code)).toEqual(['schema-type']);
    expect(all).not.toContain('0ldPassw');
  });

  it('a URL without a password, or with a port and an @ in its path, is no credential', () => {
    for (const value of ['mysql://app@db:3306/x', 'https://host:8080/users/a@b.c', 's3://bucket/a:b@c']) {
      const text = withSink(
        '  f:',
        '    type: file',
        '    from: [gen]',
        `    dir: ${value}`,
        "    path: '{seq}'",
      );
      expect(validateText('spec.yaml', text).diagnostics).toEqual([]);
    }
    // A URL from the environment is where it belongs, password or not.
    const fromEnv = withSink(
      '  db:',
      '    type: mysql',
      '    from: [gen]',
      '    url: ${DB_URL}',
      '    table: t',
    );
    expect(validateText('spec.yaml', fromEnv, { DB_URL: 'mysql://u:pw@h/x' }).diagnostics).toEqual([]);
  });
});

describe('the search', () => {
  it('stays linear on long text full of scheme-like words (no backtracking blow-up)', () => {
    const text = 'a.'.repeat(100_000);
    const started = performance.now();
    expect(findSecrets(text)).toEqual([]);
    // Quadratic, this took seconds; linear, a few milliseconds.
    expect(performance.now() - started).toBeLessThan(1500);
  });
});

describe('other literal secrets', () => {
  it('an AWS access key id is masked in the frame', () => {
    const text = withSink('  k:', '    type: stdout', '    from: [gen]', '    format: AKIAIOSFODNN7EXAMPLE');
    const { result, human, all } = outputs(text);
    expect(result.diagnostics.map((d) => d.code).sort()).toEqual(['literal-credential', 'schema-value']);
    expect(all).not.toContain('AKIAIOSFODNN7EXAMPLE');
    expect(frame(human, 12).text).toBe(`    format: ${'*'.repeat(20)}`);
  });

  it('the value of a secret-looking key that is no option is masked; the key stays', () => {
    const text = withSink('  k:', '    type: stdout', '    from: [gen]', '    password: hunter2hunter');
    const { result, human, all } = outputs(text);
    expect(result.diagnostics.map((d) => d.code)).toEqual(['literal-credential']);
    expect(all).not.toContain('hunter2hunter');
    const { text: shown, caret } = frame(human, 12);
    expect(shown).toBe(`    password: ${'*'.repeat(13)}`);
    expect(caret).toBe('    ^^^^^^^^');
  });

  it('the JSON output keeps its documented fields only', () => {
    const text = withSink('  k:', '    type: stdout', '    from: [gen]', '    password: hunter2hunter');
    const { result } = outputs(text);
    expect(result.diagnostics[0].secrets).toHaveLength(1);
    const [d] = JSON.parse(formatJson(result.diagnostics));
    expect(Object.keys(d).sort()).toEqual([
      'code',
      'column',
      'endColumn',
      'endLine',
      'file',
      'line',
      'message',
      'severity',
    ]);
  });
});
