import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { compile, functionDocs, SLUICE_NAMESPACE } from '../../src/expr/index.ts';
import { run, thrown } from './helpers.ts';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const DNS = '6ba7b810-9dad-11d1-80b4-00c04fd430c8';
const URL_NS = '6ba7b811-9dad-11d1-80b4-00c04fd430c8';

describe('uuid_v5', () => {
  it('matches the RFC 9562 example for the DNS namespace', () => {
    expect(run(`uuid_v5("${DNS}", "www.example.com")`)).toBe('2ed6657d-e927-568b-95e1-2665a8aea6a2');
  });

  it('matches other implementations for the URL namespace and non-ASCII names', () => {
    // Reference values from Python's uuid.uuid5().
    expect(run(`uuid_v5("${URL_NS}", "http://www.example.com/")`)).toBe(
      'fcde3c85-2270-590f-9e7c-ee003d65e0e2',
    );
    expect(run('uuid_v5("água")')).toBe('6e41f38a-56a7-5ebf-b96d-3a44d501630c');
  });

  it('is deterministic with the fixed sluice namespace', () => {
    const expr = compile('uuid_v5(email)');
    const a = expr.evaluate({ email: 'ana@example.com' });
    expect(a).toMatch(UUID_RE);
    expect(expr.evaluate({ email: 'ana@example.com' })).toBe(a);
    expect(expr.evaluate({ email: 'bia@example.com' })).not.toBe(a);
    expect(run(`uuid_v5("${SLUICE_NAMESPACE}", "x")`)).toBe(run('uuid_v5("x")'));
    // Pinned: a change here would change every id already derived by pipelines.
    expect(SLUICE_NAMESPACE).toBe('dcd8fece-2943-42bd-a200-3d9bc10fdc51');
    expect(run('uuid_v5("x")')).toBe('488918d7-5c51-5b39-9423-ecd9c8fa5fc4');
  });

  it('rejects a namespace that is not a UUID', () => {
    expect(thrown(() => run('uuid_v5("nope", "x")')).message).toContain("namespace 'nope' is not a UUID");
  });
});

describe('uuid_v4', () => {
  it('is random and version 4', () => {
    const a = run('uuid_v4()') as string;
    expect(a).toMatch(UUID_RE);
    expect(a[14]).toBe('4');
    expect(run('uuid_v4()')).not.toBe(a);
  });
});

describe('now', () => {
  it('is a timestamp, output as an ISO string', () => {
    const before = Date.now();
    const v = run('now()') as string;
    expect(Date.parse(v)).toBeGreaterThanOrEqual(before);
    expect(Date.parse(v)).toBeLessThanOrEqual(Date.now());
    expect(v).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
  });

  it('works with format_time, arithmetic and comparisons', () => {
    expect(run('format_time(now(), "yyyy-MM-dd HH:mm:ss")')).toMatch(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/);
    expect(run('now() - duration("1h") < now()')).toBe(true);
    expect(run('parse_time(t) < now()', { t: '2020-01-01' })).toBe(true);
  });
});

describe('format_time', () => {
  const at = '2024-03-05T14:07:09.123Z';
  const ms = Date.parse(at);

  it('accepts ISO strings, epoch millis and timestamps', () => {
    expect(run('format_time(t, "yyyy/MM/dd")', { t: at })).toBe('2024/03/05');
    expect(run('format_time(t, "yyyy/MM/dd HH:mm:ss.SSS")', { t: ms })).toBe('2024/03/05 14:07:09.123');
    expect(run(`format_time(${ms}, "HH:mm")`)).toBe('14:07');
    expect(run('format_time(timestamp(t), "dd.MM.yyyy")', { t: at })).toBe('05.03.2024');
    expect(run('format_time(parse_time(t), "yyyyMMddHHmmss")', { t: at })).toBe('20240305140709');
  });

  it('copies non-token characters', () => {
    expect(run('format_time(t, "yyyy-MM-ddTHH:mm:ssZ")', { t: at })).toBe('2024-03-05T14:07:09Z');
    expect(run('format_time(t, "[dd] yyyy")', { t: at })).toBe('[05] 2024');
  });

  it('formats in a time zone', () => {
    expect(run('format_time(t, "yyyy-MM-dd HH:mm", "America/Sao_Paulo")', { t: at })).toBe(
      '2024-03-05 11:07',
    );
    expect(run('format_time(t, "HH:mm", "Asia/Kolkata")', { t: at })).toBe('19:37');
    // Daylight saving time in Lisbon (UTC+1 in summer).
    expect(run('format_time(t, "yyyy-MM-dd HH:mm", "Europe/Lisbon")', { t: '2024-07-01T23:30:00Z' })).toBe(
      '2024-07-02 00:30',
    );
    expect(run('format_time(t, "HH:mm", "UTC")', { t: at })).toBe('14:07');
  });

  it('fails clearly on bad input', () => {
    expect(thrown(() => run('format_time(t, "yyyy")', { t: 'yesterday' })).message).toContain(
      'not an ISO-8601 date/time',
    );
    expect(thrown(() => run('format_time(t, "yyyy", "Mars/Olympus")', { t: at })).message).toBe(
      "unknown time zone 'Mars/Olympus'",
    );
    expect(thrown(() => run('format_time(t, "yyyy")', { t: true })).code).toBe('no_matching_overload');
  });
});

describe('parse_time', () => {
  it.each([
    ['2024-03-05', '2024-03-05T00:00:00.000Z'],
    ['2024-03-05T14:07:09Z', '2024-03-05T14:07:09.000Z'],
    ['2024-03-05T14:07:09.5Z', '2024-03-05T14:07:09.500Z'],
    ['2024-03-05 14:07:09.123456', '2024-03-05T14:07:09.123Z'],
    ['2024-03-05T14:07', '2024-03-05T14:07:00.000Z'],
    ['2024-03-05T14:07:09-03:00', '2024-03-05T17:07:09.000Z'],
    ['2024-03-05T14:07:09+0530', '2024-03-05T08:37:09.000Z'],
  ])('parses ISO %s', (text, iso) => {
    expect(run('parse_time(t)', { t: text })).toBe(iso);
  });

  it('parses with a format', () => {
    expect(run('parse_time("05/03/2024", "dd/MM/yyyy")')).toBe('2024-03-05T00:00:00.000Z');
    expect(run('parse_time("20240305 140709.250", "yyyyMMdd HHmmss.SSS")')).toBe('2024-03-05T14:07:09.250Z');
  });

  it('parses wall-clock time in a time zone', () => {
    expect(run('parse_time("05/03/2024 14:07", "dd/MM/yyyy HH:mm", "America/Sao_Paulo")')).toBe(
      '2024-03-05T17:07:00.000Z',
    );
    expect(run('parse_time("2024-07-01 12:00", "yyyy-MM-dd HH:mm", "Europe/Lisbon")')).toBe(
      '2024-07-01T11:00:00.000Z',
    );
    expect(run('parse_time("2024-01-01 12:00", "yyyy-MM-dd HH:mm", "Europe/Lisbon")')).toBe(
      '2024-01-01T12:00:00.000Z',
    );
  });

  it('resolves daylight-saving gaps forward and repeated times to the earlier instant', () => {
    const f = '"yyyy-MM-dd HH:mm"';
    const at = (s: string, tz: string) => run(`parse_time("${s}", ${f}, "${tz}")`);
    expect(at('2024-03-10 02:30', 'America/New_York')).toBe('2024-03-10T07:30:00.000Z');
    expect(at('2024-11-03 01:30', 'America/New_York')).toBe('2024-11-03T05:30:00.000Z');
    expect(at('2024-03-31 01:30', 'Europe/Lisbon')).toBe('2024-03-31T01:30:00.000Z');
    expect(at('2024-10-27 01:30', 'Europe/Lisbon')).toBe('2024-10-27T00:30:00.000Z');
  });

  it('round-trips with format_time', () => {
    const f = '"yyyy-MM-dd HH:mm:ss.SSS"';
    for (const tz of ['UTC', 'America/New_York', 'Australia/Sydney']) {
      const s = '2024-11-03 08:15:30.042';
      expect(run(`format_time(parse_time(s, ${f}, "${tz}"), ${f}, "${tz}")`, { s })).toBe(s);
    }
  });

  it('rejects invalid text', () => {
    expect(thrown(() => run('parse_time("2024-02-30")')).message).toContain('not a valid date/time');
    expect(thrown(() => run('parse_time("5/3/2024", "dd/MM/yyyy")')).message).toBe(
      "'5/3/2024' does not match the format 'dd/MM/yyyy'",
    );
    expect(thrown(() => run('parse_time("soon")')).code).toBe('invalid_timestamp');
  });
});

describe('string functions', () => {
  it.each([
    ['lower("ÁGUA Limpa")', 'água limpa'],
    ['upper("são paulo")', 'SÃO PAULO'],
    ['trim("  a b \\t")', 'a b'],
    ['split("a,b,,c", ",")', ['a', 'b', '', 'c']],
    ['"a,b".split(",")', ['a', 'b']],
    ['join(["a", "b"], ", ")', 'a, b'],
    ['join(["a", 1, 2.5, true, null])', 'a12.5truenull'],
    ['["a", "b"].join("-")', 'a-b'],
    ['replace("123.456.789-00", ".", "")', '123456789-00'],
    ['replace("a+b", "+", "$&")', 'a$&b'],
    ['"x-y-z".replace("-", "_")', 'x_y_z'],
    ['contains("fazenda", "zen")', true],
    ['"fazenda".contains("zen")', true],
    ['starts_with("BR-123", "BR-")', true],
    ['"BR-123".startsWith("US")', false],
    ['ends_with("a@b.com.br", ".br")', true],
    ['"a@b.com".endsWith(".br")', false],
    ['size("ção")', 3],
  ])('%s', (source, expected) => {
    expect(run(source)).toEqual(expected);
  });

  it('applies to record fields', () => {
    expect(run('lower(trim(email))', { email: '  Ana@Example.COM ' })).toBe('ana@example.com');
  });
});

describe('sha256', () => {
  it('hashes UTF-8 text to lower-case hex', () => {
    expect(run('sha256("abc")')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(run('sha256(s)', { s: 'água' })).toBe(createHash('sha256').update('água').digest('hex'));
    expect(run('sha256(b"abc")')).toBe(run('sha256("abc")'));
  });
});

describe('conversions', () => {
  it.each([
    ['to_int("42")', 42],
    ['to_int(" -7 ")', -7],
    ['to_int("4.9")', 4],
    ['to_int(7.9)', 7],
    ['to_int(-7.9)', -7],
    ['to_int(true)', 1],
    ['to_int(parse_time("1970-01-01T00:00:01Z"))', 1000],
    ['to_int("9007199254740993")', 9007199254740993n],
    ['to_double("3.5")', 3.5],
    ['to_double(2)', 2],
    ['to_double(false)', 0],
    ['to_string(10)', '10'],
    ['to_string(2.5)', '2.5'],
    ['to_string(true)', 'true'],
    ['to_string(null)', 'null'],
    ['to_string(parse_time("2024-03-05"))', '2024-03-05T00:00:00.000Z'],
    ['to_string([1, "a"])', '[1,"a"]'],
    ['to_string({"a": 1})', '{"a":1}'],
  ])('%s', (source, expected) => {
    expect(run(source)).toEqual(expected);
  });

  it('converts JSON fields', () => {
    expect(run('"lote-" + to_string(n)', { n: 25 })).toBe('lote-25');
    expect(run('to_int(n) + 1', { n: '41' })).toBe(42);
  });

  it('fails clearly on values that are not numbers', () => {
    expect(thrown(() => run('to_int("abc")')).message).toBe("to_int: 'abc' is not a number");
    expect(thrown(() => run('to_double(x)', { x: null })).message).toBe(
      'to_double: cannot convert null to double',
    );
    expect(thrown(() => run('to_int(x)', { x: 1e30 })).code).toBe('numeric_overflow');
  });
});

describe('coalesce', () => {
  const rec = { nickname: null, name: 'Ana', zero: 0, empty: '' };

  it('returns the first non-null argument', () => {
    expect(run('coalesce(nickname, name, "anonymous")', rec)).toBe('Ana');
    expect(run('coalesce(zero, 1)', rec)).toBe(0);
    expect(run('coalesce(empty, "x")', rec)).toBe('');
    expect(run('coalesce(nickname)', rec)).toBe(null);
    expect(run('coalesce(null, null)')).toBe(null);
  });

  it('treats missing fields, keys and indexes as null', () => {
    expect(run('coalesce(apelido, name)', rec)).toBe('Ana');
    expect(run('coalesce(record.a.b, meta.x, "d")', rec, {})).toBe('d');
    expect(run('coalesce(items[5], "none")', { items: [] })).toBe('none');
  });

  it('evaluates lazily', () => {
    expect(run('coalesce(name, to_int("not a number"))', rec)).toBe('Ana');
  });

  it('still reports other errors', () => {
    expect(thrown(() => run('coalesce(nickname, to_int("x"))', rec)).message).toBe(
      "to_int: 'x' is not a number",
    );
  });

  it('accepts up to 16 arguments', () => {
    const args = Array.from({ length: 16 }, (_, i) => (i === 15 ? '"last"' : 'null'));
    expect(run(`coalesce(${args.join(', ')})`)).toBe('last');
    expect(() => compile(`coalesce(${args.join(', ')}, 1)`)).toThrow();
  });
});

describe('math', () => {
  it.each([
    ['round(2.5)', 3],
    ['round(-2.5)', -3],
    ['round(1.005, 2)', 1.01],
    ['round(x, 1)', 3.3],
    ['round(1234.5678, -2)', 1200],
    ['round(1250, -2)', 1300],
    ['round(-1250, -2)', -1300],
    ['round(1249, -2)', 1200],
    ['round(7)', 7],
    ['abs(-3)', 3],
    ['abs(-2.5)', 2.5],
    ['abs(x)', 3.25],
    ['floor(2.7)', 2],
    ['floor(-2.2)', -3],
    ['ceil(2.2)', 3],
    ['ceil(5)', 5],
  ])('%s', (source, expected) => {
    expect(run(source, { x: 3.25 })).toBe(expected);
  });

  it('rounds computed values', () => {
    expect(
      run('round(peso_medio * 0.025 * quantidade_animais, 1)', { peso_medio: 412.5, quantidade_animais: 10 }),
    ).toBe(103.1);
  });
});

describe('functionDocs', () => {
  const docs = functionDocs();
  const markdown = readFileSync(new URL('../../docs/expressions.md', import.meta.url), 'utf8');
  const sample = {
    id: 42,
    email: 'Ana@Example.com',
    name: ' Ana ',
    nickname: null,
    uf: 'sp',
    created_at: '2024-03-05T14:07:09Z',
    quantidade_animais: 25,
    peso_medio: 412.5,
    preco_texto: '10.5',
    lote_id: 7,
    tags: ['a', 'b'],
    cpf: '123.456.789-00',
    sku: 'BR-1',
    saldo: -3.5,
    preco: 10,
    desconto: 1,
    cep: '01310-100',
  };

  it('covers every sluice function with a signature, description and example', () => {
    const names = docs.map((d) => d.name);
    for (const n of [
      'uuid_v5',
      'uuid_v4',
      'now',
      'format_time',
      'parse_time',
      'lower',
      'upper',
      'trim',
      'to_int',
      'to_double',
      'to_string',
      'coalesce',
      'has',
      'split',
      'join',
      'replace',
      'contains',
      'starts_with',
      'sha256',
      'round',
      'abs',
    ]) {
      expect(names).toContain(n);
    }
    for (const d of docs) {
      expect(d.signature).toContain(d.name);
      expect(d.description.length).toBeGreaterThan(10);
      expect(d.example.length).toBeGreaterThan(0);
    }
  });

  it.each(docs.map((d) => [d.name, d.example]))('example of %s compiles and evaluates', (_name, example) => {
    expect(() => compile(example).evaluate(sample, { partition_key: 'p' })).not.toThrow();
  });

  it('every function is documented in docs/expressions.md with its example', () => {
    for (const d of docs) {
      expect(markdown).toContain(`### \`${d.name}\``);
      expect(markdown).toContain(d.example);
    }
  });
});
