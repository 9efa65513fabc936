import { describe, expect, it } from 'vitest';
import { compile } from '../../src/expr/index.ts';
import { outcome, run } from './helpers.ts';

// Expressions become generated JavaScript. These cases check that what users write stays
// data (never code) and that the fast paths of the generated code give the interpreter's
// answer at their edges: odd records, names Object.prototype has, ints beyond 2^53.

const HOSTILE = [
  '"',
  "'",
  '\\',
  '\\"; throw new Error("pwned"); "',
  '`${process.exit(1)}`',
  '*/ process.exit(1) /*',
  '\u2028',
  '\u2029',
  '</script>',
  '__proto__',
  'constructor',
  'prototype',
  '\u0000',
  '😀',
];

/** A CEL string literal spelling `s` (escapes for the characters CEL's literals need). */
function celString(s: string): string {
  return JSON.stringify(s);
}

const agree = (source: string, record: unknown, meta?: Record<string, unknown>) =>
  expect(outcome('compiled', source, record, meta), source).toStrictEqual(
    outcome('interpreter', source, record, meta),
  );

describe('generated code keeps user text as data', () => {
  it('string constants, map keys and index keys with quotes, backslashes and separators are values', () => {
    for (const s of HOSTILE) {
      const lit = celString(s);
      expect(run(`${lit} + x`, { x: '!' }), lit).toBe(`${s}!`);
      expect(run(`x == ${lit}`, { x: s }), lit).toBe(true);
      // A record whose own `constructor` is a string is not a map to the library (either engine).
      if (s === 'constructor') agree(`record[${lit}]`, { [s]: 'v' });
      else expect(run(`record[${lit}]`, { [s]: 'v' }), lit).toBe('v');
      expect(run(`{${lit}: x}`, { x: 1 }), lit).toEqual(
        ['__proto__', 'constructor', 'prototype'].includes(s) ? {} : { [s]: 1 },
      );
      expect(run(`size(${lit}) + size(x)`, { x: s }), lit).toBe(2 * [...s].length);
    }
  });

  it('no string of the expression appears in the generated source', () => {
    for (const s of HOSTILE.filter((h) => h.length > 2)) {
      const expr = compile(`${celString(s)} + x + ${celString(`${s}tail`)}`);
      const source = String(expr.evaluate);
      expect(source).not.toContain(s);
      expect(expr.evaluate({ x: '|' })).toBe(`${s}|${s}tail`);
    }
  });

  it('fields named like Object.prototype members are read only from the record itself', () => {
    for (const name of ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', 'prototype']) {
      const json = JSON.parse(`{"${name}": "own", "x": 1}`);
      for (const source of [name, `record.${name}`, `has(record.${name})`, `x + 1`]) {
        agree(source, json);
        agree(source, { x: 1 });
        agree(source, Object.assign(Object.create(null), { x: 1 }));
      }
      if (name !== 'constructor') expect(run(`record.${name}`, json)).toBe('own');
    }
  });

  it('a value planted on Object.prototype is not a field', () => {
    const proto = Object.prototype as Record<string, unknown>;
    proto.planted = 'from the prototype';
    try {
      for (const source of ['planted', 'record.planted', 'nested.planted', 'coalesce(planted, "none")']) {
        agree(source, { nested: {} });
      }
      expect(run('coalesce(planted, "none")', { nested: {} })).toBe('none');
    } finally {
      delete proto.planted;
    }
  });

  it('records that are not ordinary objects go to the interpreter with the same outcome', () => {
    class Row {
      a = 2;
    }
    const chained = Object.create({ a: 'inherited' }) as Record<string, unknown>;
    chained.b = 1;
    for (const rec of [new Row(), chained, Object.create(null), [1, 2], 'text', 5, null]) {
      for (const source of ['a', 'a + 1', 'record.a', 'has(record.a)', 'record', 'b']) agree(source, rec);
    }
  });
});

describe('ints computed in doubles', () => {
  const edges = [
    0,
    -0,
    0.5,
    -0.5,
    2.7,
    -2.7,
    2 ** 53 - 2,
    2 ** 53 - 1,
    2 ** 53,
    -(2 ** 53),
    2 ** 60,
    9.3e18,
    -9.3e18,
    1e300,
    Number.NaN,
    Number.POSITIVE_INFINITY,
    '7',
    true,
    null,
  ];
  const sources = [
    'int(x) + 1',
    'int(x) - 2',
    'int(x) * 3',
    'int(x) * int(x)',
    'int(x) % 7',
    'int(x) % 0',
    '-int(x) + 1',
    'string(int(x) + 1)',
    'to_string(int(x) * 1000000)',
    '"C" + string(int(x * 40.0) + 1)',
    'int(x) + 9223372036854775807',
    'string(int(x) + 1) + string(int(x) - 1)',
  ];

  it('gives the interpreter’s values and errors on both sides of 2^53 and of int64', () => {
    for (const source of sources) for (const x of edges) agree(source, { x });
  });

  it('yields ints as ints and their text as the int’s text', () => {
    expect(run('int(x) + 1', { x: 2 ** 53 - 2 })).toBe(2 ** 53 - 1);
    expect(run('int(x) + 1', { x: 2 ** 53 })).toBe(9007199254740993n);
    expect(run('string(int(x) * 3)', { x: 2 ** 52 })).toBe('13510798882111488');
    expect(run('string(int(x) + 0)', { x: -0.5 })).toBe('0');
  });
});
