// biome-ignore-all lint/suspicious/noTemplateCurlyInString: specs are full of ${VAR} references
/**
 * One test (at least) per diagnostic code, each on a small inline spec with the exact span the
 * diagnostic must point at. Positions are 1-based; `end` is exclusive (the column after the
 * last character underlined).
 */
import { describe, expect, it } from 'vitest';
import { DIAGNOSTIC_CODES, type Diagnostic, type DiagnosticCode } from '../../src/spec/diagnostics.ts';
import { validate } from '../../src/spec/plugins.ts';
import { validateText } from '../../src/spec/validate.ts';

type Env = Record<string, string | undefined>;

const covered = new Set<string>();

function check(text: string, env: Env = {}) {
  const result = validateText('spec.yaml', text, env);
  for (const d of result.diagnostics) covered.add(d.code);
  return result;
}

const span = (d: Diagnostic) => `${d.line}:${d.column}-${d.endLine}:${d.endColumn}`;

/** The diagnostics with `code`; fails when there are none. */
function withCode(text: string, code: DiagnosticCode, env: Env = {}): Diagnostic[] {
  const { diagnostics } = check(text, env);
  const found = diagnostics.filter((d) => d.code === code);
  expect(found, `no ${code} in ${JSON.stringify(diagnostics, null, 2)}`).not.toHaveLength(0);
  return found;
}

/** The one diagnostic of the spec; fails when there are more or none. */
function only(text: string, env: Env = {}): Diagnostic {
  const { diagnostics } = check(text, env);
  expect(diagnostics, JSON.stringify(diagnostics, null, 2)).toHaveLength(1);
  return diagnostics[0];
}

const lines = (...l: string[]) => `${l.join('\n')}\n`;

/** A valid pipeline with `extra` lines inserted into the generate source (from line 8 on). */
const withSource = (...extra: string[]) =>
  lines(
    'version: 1', //                         1
    'name: t', //                            2
    'sources:', //                           3
    '  gen:', //                             4
    '    type: generate', //                 5
    '    count: 10', //                      6
    "    fields: {a: '1'}", //               7
    ...extra,
    'sinks:',
    '  out:',
    '    type: stdout',
    '    from: [gen]',
  );

/** A valid pipeline with `stage` (lines of one sink, indented by 2) added under sinks. */
const withSink = (...stage: string[]) =>
  lines(
    'version: 1', //                         1
    'name: t', //                            2
    'sources:', //                           3
    '  gen:', //                             4
    '    type: generate', //                 5
    "    fields: {a: '1'}", //               6
    'sinks:', //                             7
    '  out:', //                             8
    '    type: stdout', //                   9
    '    from: [gen]', //                   10
    ...stage, //                            11 on
  );

describe('the base specs', () => {
  it('are valid, so each test below sees only the problem it adds', () => {
    expect(check(withSource()).diagnostics).toEqual([]);
    expect(check(withSink()).diagnostics).toEqual([]);
  });
});

describe('yaml', () => {
  it('yaml-syntax: an unclosed flow sequence, at the line after it', () => {
    const d = only(lines('version: 1', 'name: t', 'sources: [gen', 'sinks: {}'));
    expect(d.code).toBe('yaml-syntax');
    expect(d.severity).toBe('error');
    expect(span(d)).toBe('4:1-4:2');
    expect(d.message).toMatch(/Flow sequence/);
  });

  it('yaml-syntax: a tab used as indentation', () => {
    const d = withCode(lines('version: 1', 'name: t', 'sources:', '\tgen: {}'), 'yaml-syntax')[0];
    expect(d.line).toBe(4);
    expect(d.column).toBe(1);
  });

  it('yaml-syntax: a ${VAR} whose default holds braces, in a flow collection, gets a hint', () => {
    const d = withCode(withSource().replace('from: [gen]', 'from: [gen, ${X:-{gen}}]'), 'yaml-syntax')[0];
    expect(d.code).toBe('yaml-syntax');
    expect(span(d)).toBe('11:18-11:19');
    expect(d.message).toBe(
      'Missing , or : between flow sequence items (inside { } or [ ], a ${VAR} whose default holds { or } must be quoted)',
    );
  });

  it('yaml-syntax: values nested deeper than 64 levels, at the first level too deep', () => {
    const nested = withSource(`    duplicates: ${'['.repeat(70)}1${']'.repeat(70)}`);
    const d = withCode(nested, 'yaml-syntax')[0];
    // `    duplicates: ` is 16 characters; the value is level 1 at column 17, level 63 at column 79.
    expect(span(d)).toBe('8:79-8:96');
    expect(d.message).toBe('values nest too deeply (more than 64 levels): a spec needs only a few');
    // Far deeper than the parser's own stack: still one diagnostic, not a crash.
    const deeper = check(withSource(`    duplicates: ${'['.repeat(5000)}${']'.repeat(5000)}`)).diagnostics;
    expect(deeper.map((x) => [x.code, x.line, x.message])).toEqual([
      ['yaml-syntax', 8, 'values nest too deeply (more than 64 levels): a spec needs only a few'],
    ]);
  });

  it('yaml-syntax: a tag the parser ignores is a warning at the tag', () => {
    const result = check(withSource().replace("fields: {a: '1'}", "fields: !!str {a: '1'}"));
    expect(result.diagnostics).toHaveLength(1);
    const d = result.diagnostics[0];
    expect([d.code, d.severity, span(d)]).toEqual(['yaml-syntax', 'warning', '7:13-7:18']);
    expect(d.message).toBe('the tag !!str is ignored: specs use no tags; remove it');
  });

  it('duplicate-key: at the second occurrence of the key', () => {
    const d = only(withSource('    count: 20'));
    expect(d.code).toBe('duplicate-key');
    expect(span(d)).toBe('8:5-8:10');
    expect(d.message).toBe('this key appears twice in the same mapping; keep one');
    const quoted = only(withSource('    "count": 20'));
    expect(span(quoted)).toBe('8:5-8:12');
  });

  it('multiple-documents: from the `---` to the end of the second document', () => {
    const d = withCode(`${withSource()}---\nversion: 2\n`, 'multiple-documents')[0];
    expect(span(d)).toBe('12:1-14:1');
    expect(d.message).toMatch(/one YAML document/);
    expect(check(`${withSource()}---\nversion: 2\n`).diagnostics).toHaveLength(1);
  });

  it('alias-limit: a billion-laughs document stops at the alias that crosses the limit', () => {
    const lol = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
    for (const [name, prev] of [
      ['b', 'a'],
      ['c', 'b'],
      ['d', 'c'],
      ['e', 'd'],
      ['f', 'e'],
      ['g', 'f'],
      ['h', 'g'],
      ['i', 'h'],
    ]) {
      lol.push(`${name}: &${name} [${Array(9).fill(`*${prev}`).join(',')}]`);
    }
    const text = lines('version: 1', 'name: t', 'x:', ...lol.map((l) => `  ${l}`));
    const started = performance.now();
    const found = withCode(text, 'alias-limit');
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(found).toHaveLength(1);
    expect(found[0].message).toBe(
      'aliases expand to more than 100000 nodes or 100 references; write the values out',
    );
    // References count as expanded: `b` holds 9, each `*b` of `c` is 1 + 9, so `c` ends at 99; the
    // 101st is the first `*b` inside the first `*c` of `d`, reported at that `*c` (line 7).
    expect(span(found[0])).toBe('7:10-7:12');
  });
});

describe('environment', () => {
  it('env-unset: at the scalar that names the variable, and nothing else on it', () => {
    const d = only(withSource('    seed: ${SEED}'));
    expect(d.code).toBe('env-unset');
    expect(span(d)).toBe('8:11-8:18');
    expect(d.message).toBe(
      'environment variable SEED is not set and has no default: export it or write ${SEED:-default}',
    );
  });

  it('${VAR:-default} takes the default when unset or empty, the environment otherwise', () => {
    const text = withSource('    seed: ${SEED:-7}');
    const seed = (env: Env) => check(text, env).spec?.stages[0].options.seed;
    expect(seed({})).toBe(7);
    expect(seed({ SEED: '' })).toBe(7);
    expect(seed({ SEED: '99' })).toBe(99);
  });

  it('a whole-reference plain scalar takes the type of its text: port: ${PORT:-8080} is a number', () => {
    const text = lines(
      'version: 1',
      'name: t',
      'sources:',
      '  hook:',
      '    type: sns',
      '    listen:',
      '      port: ${PORT:-8080}',
      "    topic_arn: 'arn:aws:sns:us-east-1:000000000000:t'",
      'sinks:',
      '  out: {type: stdout, from: [hook]}',
    );
    const listen = (env: Env) =>
      (check(text, env).spec?.stages[0].options.listen as { port?: unknown } | undefined)?.port;
    expect(listen({})).toBe(8080);
    expect(listen({ PORT: '9001' })).toBe(9001);
    // Quoted, the reference stays a string: the schema says so at the value.
    const quoted = only(text.replace('${PORT:-8080}', "'${PORT:-8080}'"));
    expect(quoted.code).toBe('schema-type');
    expect(span(quoted)).toBe('7:13-7:28');
    expect(quoted.message).toBe("'listen.port' must be integer");
  });

  it('$${ is a literal ${ and never looks up the environment', () => {
    const text = withSource('    key: \'"$${NOT_A_VAR}"\'');
    const result = check(text, { NOT_A_VAR: 'x' });
    expect(result.diagnostics).toEqual([]);
    expect(result.spec?.stages[0].options.key).toBe('"${NOT_A_VAR}"');
  });

  it('never prints a value that came from the environment, whatever the check that fails', () => {
    const secret = 'Sup3r-s3cret!(x';
    const env = { SECRET: secret, BIG: '123456789', TYPE: `generatr${secret}`, INPUT: 'Zebra_input_name' };
    const text = lines(
      'version: 1', //                                   1
      'name: t', //                                      2
      'sources:', //                                     3
      '  gen:', //                                       4
      '    type: generate', //                           5
      '    count: ${SECRET}', //                         6
      '    seed: x${SECRET}', //                         7
      '    on_error: ${SECRET}', //                      8
      '    fields:', //                                  9
      '      a: ${SECRET}', //                          10
      "      b: 'a + ${SECRET}'", //                    11
      '  gen2:', //                                     12
      '    type: ${TYPE}', //                           13
      'transforms:', //                                 14
      '  d:', //                                        15
      '    type: dedup', //                             16
      '    from: [gen, "${SECRET}", "${INPUT}"]', //    17
      '    key: x', //                                  18
      '    ttl: ${SECRET}', //                          19
      '  d2:', //                                       20
      '    type: dedup', //                             21
      '    from: [gen]', //                             22
      '    key: x', //                                  23
      '    max_keys: ${BIG}', //                        24
      'sinks:', //                                      25
      '  out:', //                                      26
      '    type: file', //                              27
      '    from: [d, d2]', //                           28
      '    dir: ./out', //                              29
      "    path: 'x/{${SECRET}}.json'", //              30
      '    buffer: {max_bytes: "${SECRET}"}', //        31
    );
    const { diagnostics } = check(text, env);
    const lines_ = diagnostics.map((d) => `${d.line}:${d.code}`);
    // Each scalar holding the secret is reported, at its position ...
    expect(lines_).toEqual(
      expect.arrayContaining([
        '6:schema-type',
        '7:schema-type',
        '8:schema-value',
        '10:expr-syntax',
        '11:expr-syntax',
        '13:unknown-stage-type',
        '17:schema-value',
        '19:invalid-duration',
        '24:dedup-memory',
        '30:invalid-template',
        '31:invalid-size',
      ]),
    );
    // ... and no message, in any output form, holds it or a recognisable part of it.
    const all = JSON.stringify(diagnostics);
    expect(all).not.toContain(secret);
    expect(all).not.toContain('Sup3r');
    expect(all).not.toContain('123456789');
    expect(all).not.toContain('Zebra');
    // A from entry that names no output is reported without its name.
    const input = only(withSink('  x:', '    type: stdout', '    from: [gen, "${INPUT}"]'), env);
    expect(input.code).toBe('unknown-input');
    expect(input.message).toBe('the input named by the environment is not an output of this pipeline');
    expect(span(input)).toBe('13:17-13:27');
    // An error inside an expression from the environment points at the whole value, not inside it.
    const expr = diagnostics.find((d) => d.line === 10)!;
    expect(span(expr)).toBe('10:10-10:19');
  });
});

describe('schema', () => {
  it('schema-type: a string where an integer belongs, at the value', () => {
    const d = only(withSource('    seed: "x"'));
    expect(d.code).toBe('schema-type');
    expect(span(d)).toBe('8:11-8:14');
    expect(d.message).toBe("'seed' must be integer");
  });

  it('schema-type: a stage that is not a mapping', () => {
    const d = only(withSource('  other: 5'));
    expect(d.code).toBe('schema-type');
    expect(span(d)).toBe('8:10-8:11');
    expect(d.message).toBe("source 'other' must be a mapping with at least a 'type'");
  });

  it('schema-required: at the stage key, naming the missing option', () => {
    const d = only(
      lines(
        'version: 1',
        'name: t',
        'sources:',
        '  gen:',
        '    type: generate',
        'sinks:',
        '  out: {type: stdout, from: [gen]}',
      ),
    );
    expect(d.code).toBe('schema-required');
    expect(span(d)).toBe('4:3-4:6');
    expect(d.message).toBe("missing required key 'fields' in source 'gen' (generate)");
  });

  it('schema-required: a stage without type lists the types of its kind', () => {
    const d = only(withSource('  other: {count: 1}'));
    expect(d.code).toBe('schema-required');
    expect(span(d)).toBe('8:3-8:8');
    expect(d.message).toBe(
      "source 'other' needs a 'type': one of generate, file, kinesis, sns, http_server, kafka",
    );
  });

  it('unknown-key: at the key, with did-you-mean', () => {
    const d = only(withSource('    sed: 3'));
    expect(d.code).toBe('unknown-key');
    expect(span(d)).toBe('8:5-8:8');
    expect(d.message).toBe("unknown key 'sed' in source 'gen' (generate): did you mean 'seed'?");
  });

  it('unknown-key: with no close match, lists the known keys', () => {
    const d = only(withSource('    banana: 3'));
    expect(d.message).toBe(
      "unknown key 'banana' in source 'gen' (generate); known keys: type, on_error, count, rate, seed, fields, duplicates, key",
    );
  });

  it('unknown-key: at the top level', () => {
    const d = only(`${withSource()}sink:\n  x: 1\n`);
    expect(d.code).toBe('unknown-key');
    expect(span(d)).toBe('12:1-12:5');
    expect(d.message).toMatch(/^unknown key 'sink' in the spec: did you mean 'sinks'\?/);
  });

  it('unknown-stage-type: a misspelt type, with did-you-mean', () => {
    const d = only(withSource('  other:', '    type: generatr', "    fields: {a: '1'}"));
    expect(d.code).toBe('unknown-stage-type');
    expect(span(d)).toBe('9:11-9:19');
    expect(d.message).toBe(
      "unknown source type 'generatr': did you mean 'generate'?; source types: generate, file, kinesis, sns, http_server, kafka",
    );
  });

  it('unknown-stage-type: a type of another kind says where it belongs', () => {
    const d = withCode(withSource('  other:', '    type: s3'), 'unknown-stage-type')[0];
    expect(span(d)).toBe('9:11-9:13');
    expect(d.message).toBe("'s3' is a sink type, not a source type; move it to sinks");
  });

  it('schema-value: an enum with did-you-mean', () => {
    const d = only(withSource('    on_error: stopp'));
    expect(d.code).toBe('schema-value');
    expect(span(d)).toBe('8:15-8:20');
    expect(d.message).toBe(`'on_error' must be "continue" or "stop" (did you mean 'stop'?)`);
  });

  it('schema-value: a number out of range; top-level keys are named', () => {
    expect(span(only(withSource('    duplicates: 1.5')))).toBe('8:17-8:20');
    const version = only(withSource().replace('version: 1', 'version: 2'));
    expect(version.code).toBe('schema-value');
    expect(span(version)).toBe('1:10-1:11');
    expect(version.message).toBe("'version' must be 1");
  });

  it('invalid-duration: a bad unit, at the value', () => {
    const text = withSink('  d:', '    type: stdout', '    from: [gen]', '    buffer: {max_age: 5 sec}');
    const d = only(text);
    expect(d.code).toBe('invalid-duration');
    expect(span(d)).toBe('14:23-14:28');
    expect(d.message).toBe(
      "'buffer.max_age': '5 sec' is not a duration: write a number and a unit, e.g. 500ms, 60s, 5m, 24h",
    );
  });

  it('invalid-duration: durations become milliseconds', () => {
    const text = withSink('  d:', '    type: stdout', '    from: [gen]', '    buffer: {max_age: 1.5s}');
    expect(check(text).spec?.stages.find((s) => s.name === 'd')?.buffer.max_age).toBe(1500);
  });

  it('invalid-size: a bad unit, at the value; sizes become bytes', () => {
    const d = only(withSink('  d:', '    type: stdout', '    from: [gen]', '    buffer: {max_bytes: 5MB/s}'));
    expect(d.code).toBe('invalid-size');
    expect(span(d)).toBe('14:25-14:30');
    expect(d.message).toBe(
      "'buffer.max_bytes': '5MB/s' is not a size: write a number and a unit, e.g. 256KiB, 5MiB, 1GB",
    );
    const ok = withSink('  d:', '    type: stdout', '    from: [gen]', '    buffer: {max_bytes: 256KiB}');
    expect(check(ok).spec?.stages.find((s) => s.name === 'd')?.buffer.max_bytes).toBe(262_144);
  });

  it('invalid-template: at the unknown placeholder inside the path', () => {
    const d = only(
      withSink(
        '  f:',
        '    type: file',
        '    from: [gen]',
        '    dir: out',
        "    path: 'x/{partitio}/{seq}.json'",
      ),
    );
    expect(d.code).toBe('invalid-template');
    expect(span(d)).toBe('15:14-15:24');
    expect(d.message).toMatch(/^unknown template field \{partitio\}; known fields: partition, /);
  });
});

describe('expressions', () => {
  /** Fields of the one source, from line 7 on. */
  const field = (...l: string[]) =>
    lines(
      'version: 1',
      'name: t',
      'sources:',
      '  gen:',
      '    type: generate',
      '    fields:',
      ...l,
      'sinks:',
      '  out: {type: stdout, from: [gen]}',
    );

  it('expr-syntax in a plain scalar: at the offending character', () => {
    const d = only(field('      x: a + * 2'));
    expect(d.code).toBe('expr-syntax');
    expect(span(d)).toBe('7:14-7:15');
    expect(d.message).toMatch(/^expression does not compile: /);
  });

  it('expr-syntax in a single-quoted scalar, after a doubled quote', () => {
    const d = only(field("      x: 'a == ''it'' + * 2'"));
    expect(span(d)).toBe('7:25-7:26');
  });

  it('expr-syntax in a double-quoted scalar, after escapes', () => {
    const d = only(field('      x: "a == \\"q\\u00e9\\" +* 1"'));
    // `      x: "a == \"q\u00e9\" +` is 28 characters: the `*` is column 29.
    expect(span(d)).toBe('7:29-7:30');
    // An escape that is itself the offending character is underlined whole.
    expect(span(only(field('      x: "a + \\u00e9"')))).toBe('7:15-7:21');
  });

  it('expr-syntax in a literal block scalar: on the right line', () => {
    const d = only(field('      x: |', '        a +', '        b )) c'));
    expect(span(d)).toBe('9:11-9:12');
  });

  it('expr-syntax in a literal block whose lines repeat', () => {
    const d = only(field('      x: |', '        a +', '        a +', '        b + ) c'));
    expect(span(d)).toBe('10:13-10:14');
  });

  it('expr-syntax in a folded block and a multi-line plain scalar', () => {
    expect(span(only(field('      x: >-', '        a +', '        b )) c')))).toBe('9:11-9:12');
    expect(span(only(field('      x: a +', '        b )) c')))).toBe('8:11-8:12');
  });

  it('expr-syntax after a $${ literal and a ${VAR:-default}', () => {
    const d = only(field('      x: \'"$${x}" + ${N:-1} +* 2\''));
    // `      x: '"$${x}" + ${N:-1} +` is 29 characters: the `*` is column 30.
    expect(span(d)).toBe('7:30-7:31');
  });
});

describe('graph', () => {
  it('unknown-input: at the entry of from, with did-you-mean', () => {
    const d = only(withSink('  x:', '    type: stdout', '    from: [gen, gne]'));
    expect(d.code).toBe('unknown-input');
    expect(span(d)).toBe('13:17-13:20');
    expect(d.message).toBe("'gne' is not an output of this pipeline: did you mean 'gen'?");
  });

  it('unknown-input: a sink read directly (only its .errors can be)', () => {
    const d = only(withSink('  x:', '    type: stdout', '    from: [out]'));
    expect(d.code).toBe('unknown-input');
    expect(span(d)).toBe('13:12-13:15');
    expect(d.message).toBe("'out' is a sink: only its error output 'out.errors' can be read");
    expect(check(withSink('  x:', '    type: stdout', '    from: [out.errors]')).diagnostics).toEqual([]);
  });

  it('cycle: names the stages of the loop, at the first one’s from', () => {
    const text = lines(
      'version: 1',
      'name: t',
      'sources:',
      "  gen: {type: generate, fields: {a: '1'}}",
      'transforms:',
      '  a:',
      '    type: filter',
      '    from: [gen, c]',
      "    where: 'true'",
      "  b: {type: filter, from: [a], where: 'true'}",
      "  c: {type: filter, from: [b], where: 'true'}",
      'sinks:',
      '  out: {type: stdout, from: [c]}',
    );
    const d = only(text);
    expect(d.code).toBe('cycle');
    // `    from: [gen, c]`: the entry `c` closes the loop.
    expect(span(d)).toBe('8:17-8:18');
    expect(d.message).toBe('stages feed each other in a loop: a → b → c → a');
  });

  it('sink-no-input: at the sink key, reported once', () => {
    const d = only(withSink('  x:', '    type: stdout'));
    expect(d.code).toBe('sink-no-input');
    expect(span(d)).toBe('11:3-11:4');
    expect(d.message).toBe("sink 'x' reads from nothing: add from: [<source or transform>]");
  });

  it('unused-output: a warning at the stage key; the spec stays valid', () => {
    const result = check(withSource('  spare:', '    type: generate', "    fields: {a: '1'}"));
    expect(result.diagnostics).toHaveLength(1);
    const d = result.diagnostics[0];
    expect(d.code).toBe('unused-output');
    expect(d.severity).toBe('warning');
    expect(span(d)).toBe('8:3-8:8');
    expect(d.message).toBe(
      "nothing reads the output of source 'spare': wire it into a sink's from, or remove it",
    );
    expect(result.spec).toBeDefined();
  });

  it('duplicate-name: a sink named like a source, at the second key', () => {
    const d = withCode(withSink('  gen:', '    type: stdout', '    from: [out.errors]'), 'duplicate-name')[0];
    expect(span(d)).toBe('11:3-11:6');
    expect(d.message).toBe(
      "the name 'gen' is already used in sources: stage names are unique across sections",
    );
  });
});

describe('the outside world', () => {
  it('aws-limit: kinesis sink buffer.max_records above PutRecords’ 500', () => {
    const d = only(
      withSink(
        '  k:',
        '    type: kinesis',
        '    from: [gen]',
        '    stream: s',
        '    partition_key: a',
        '    buffer: {max_records: 600}',
      ),
    );
    expect(d.code).toBe('aws-limit');
    expect(span(d)).toBe('16:27-16:30');
    expect(d.message).toBe(
      'kinesis accepts at most 500 records per request; set buffer.max_records to 500 or less',
    );
  });

  it('aws-limit: kinesis sink buffer.max_bytes above 5 MiB, sns above 10 records', () => {
    const k = only(
      withSink(
        '  k:',
        '    type: kinesis',
        '    from: [gen]',
        '    stream: s',
        '    partition_key: a',
        '    buffer: {max_bytes: 6MiB}',
      ),
    );
    expect(span(k)).toBe('16:25-16:29');
    expect(k.message).toBe('kinesis accepts at most 5.0 MiB per request; lower buffer.max_bytes');
    const sns = only(
      withSink(
        '  n:',
        '    type: sns',
        '    from: [gen]',
        "    topic_arn: 'arn:aws:sns:us-east-1:000000000000:t'",
        '    buffer: {max_records: 11}',
      ),
    );
    expect(sns.code).toBe('aws-limit');
    expect(sns.message).toBe(
      'sns accepts at most 10 records per request; set buffer.max_records to 10 or less',
    );
  });

  it('aws-limit: s3 part_size below the 5 MiB multipart minimum', () => {
    const d = only(
      withSink(
        '  lake:',
        '    type: s3',
        '    from: [gen]',
        '    bucket: b',
        "    key: 'x/{seq}.json'",
        '    part_size: 1MiB',
      ),
    );
    expect(d.code).toBe('aws-limit');
    expect(span(d)).toBe('16:16-16:20');
    expect(d.message).toBe('S3 multipart parts must be at least 5 MiB (all but the last)');
  });

  it('aws-limit: kinesis source poll_interval below 200ms (5 GetRecords calls/s per shard)', () => {
    const d = only(
      withSource('  ks:', '    type: kinesis', '    stream: s', '    poll_interval: 100ms').replace(
        'from: [gen]',
        'from: [gen, ks]',
      ),
    );
    expect(d.code).toBe('aws-limit');
    expect(span(d)).toBe('11:20-11:25');
    expect(d.message).toBe(
      'GetRecords allows 5 calls per second per shard: poll_interval must be 200ms or more',
    );
  });

  it('literal-credential: an AWS access key id anywhere in a stage', () => {
    const d = only(withSource('    key: "\'AKIAIOSFODNN7EXAMPLE\'"'));
    expect(d.code).toBe('literal-credential');
    expect(span(d)).toBe('8:10-8:34');
    expect(d.message).toMatch(
      /^this looks like an AWS access key id: remove it; credentials come from the AWS SDK chain/,
    );
  });

  it('literal-credential: a password inside a URL', () => {
    const d = only(
      withSink(
        '  f:',
        '    type: file',
        '    from: [gen]',
        '    dir: https://bob:pw@example.com/x',
        "    path: '{seq}'",
      ),
    );
    expect(d.code).toBe('literal-credential');
    expect(span(d)).toBe('14:10-14:38');
    expect(d.message).toBe(
      'this URL holds a password: move the URL to an environment variable and write ${VAR}',
    );
  });

  it('literal-credential: a mysql url with a password, reported once; ${MYSQL_URL} is fine', () => {
    const mysql = (url: string) =>
      withSink('  db:', '    type: mysql', '    from: [gen]', `    url: ${url}`, '    table: t');
    const d = only(mysql('mysql://root:hunter2@db:3306/x'));
    expect(d.code).toBe('literal-credential');
    expect(span(d)).toBe('14:10-14:40');
    expect(d.message).toBe(
      'this URL holds a password: write ${MYSQL_URL} (or another variable) and export the URL in the environment',
    );
    const fromEnv = check(mysql('${MYSQL_URL}'), { MYSQL_URL: 'mysql://root:hunter2@db:3306/x' });
    expect(fromEnv.diagnostics).toEqual([]);
    expect(fromEnv.spec?.stages.find((s) => s.name === 'db')?.options.url).toBe(
      'mysql://root:hunter2@db:3306/x',
    );
    // A URL without a password is not a credential.
    expect(check(mysql('mysql://root@db:3306/x')).diagnostics).toEqual([]);
  });

  it('literal-credential: a secret-looking key that is no option', () => {
    const d = only(
      withSink(
        '  db:',
        '    type: mysql',
        '    from: [gen]',
        '    url: ${MYSQL_URL:-mysql://db/x}',
        '    table: t',
        '    password: x',
      ),
    );
    expect(d.code).toBe('literal-credential');
    expect(span(d)).toBe('16:5-16:13');
    expect(d.message).toMatch(
      /^unknown key 'password' in sink 'db' \(mysql\).*credentials come from the environment/,
    );
  });

  it('dedup-memory: max_keys whose memory bound cannot hold', () => {
    const text = lines(
      'version: 1',
      'name: t',
      'sources:',
      "  gen: {type: generate, fields: {a: '1'}}",
      'transforms:',
      '  u:',
      '    type: dedup',
      '    from: [gen]',
      '    key: a',
      '    max_keys: 100000000',
      'sinks:',
      '  out: {type: stdout, from: [u]}',
    );
    const d = only(text);
    expect(d.code).toBe('dedup-memory');
    expect(span(d)).toBe('10:15-10:24');
    expect(d.message).toMatch(/^100000000 keys need about 4 GiB of memory; keep max_keys at or below \d+$/);
    expect(check(text.replace('100000000', '1000000')).diagnostics).toEqual([]);
  });

  it('insecure-setting: sns verify: false is a warning at the setting', () => {
    const text = lines(
      'version: 1',
      'name: t',
      'sources:',
      '  hook:',
      '    type: sns',
      '    listen: {port: 8080}',
      "    topic_arn: 'arn:aws:sns:us-east-1:000000000000:t'",
      '    verify: false',
      'sinks:',
      '  out: {type: stdout, from: [hook]}',
    );
    const result = check(text);
    expect(result.diagnostics).toHaveLength(1);
    const d = result.diagnostics[0];
    expect(d.code).toBe('insecure-setting');
    expect(d.severity).toBe('warning');
    expect(span(d)).toBe('8:13-8:18');
    expect(d.message).toBe(
      'signature verification is off: anyone who can reach this port can inject records',
    );
    expect(result.spec).toBeDefined();
  });
});

describe('plugins', () => {
  it('plugin: a file named in plugins that does not load, at its entry', async () => {
    const text = lines(
      'version: 1',
      'name: t',
      'plugins: [./no-such-plugin.ts]',
      'sources:',
      "  gen: { type: generate, fields: { a: '1' } }",
      'sinks:',
      '  out: { type: stdout, from: [gen] }',
    );
    const { diagnostics } = await validate('spec.yaml', { text, env: {} });
    for (const d of diagnostics) covered.add(d.code);
    expect(diagnostics).toHaveLength(1);
    expect(diagnostics[0].code).toBe('plugin');
    expect(span(diagnostics[0])).toBe('3:11-3:30');
    expect(diagnostics[0].message).toMatch(/^cannot load plugin \.\/no-such-plugin\.ts: /);
  });
});

describe('every code', () => {
  it('has a description', () => {
    for (const [code, text] of Object.entries(DIAGNOSTIC_CODES)) expect(text, code).not.toBe('');
  });

  // Tests of a file run in order: this one sees what all the tests above produced.
  it('was produced by a test above', () => {
    const missing = Object.keys(DIAGNOSTIC_CODES).filter((c) => !covered.has(c));
    expect(missing, 'codes no test produced').toEqual([]);
  });
});
