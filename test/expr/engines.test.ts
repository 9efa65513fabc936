import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compile, ExprError } from '../../src/expr/index.ts';
import { outcome } from './helpers.ts';

// The generated code against the interpreter on random expressions over random records:
// the same value or the same error (message, code, position) for every pair.

const field = fc.constantFrom(
  'a',
  'b',
  'n',
  's',
  't',
  'flag',
  'nada',
  'missing',
  'nested.x',
  'nested.y',
  'items[0]',
  'items[5]',
  'record.a',
  'meta.k',
);
const literal = fc.oneof(
  fc.integer({ min: -5, max: 5 }).map((k) => (k < 0 ? `(${k})` : String(k))),
  fc.constantFrom(
    '0.5',
    '2.0',
    '0.0',
    '-1.5',
    '"x"',
    '""',
    '"2024-03-05"',
    'true',
    'false',
    'null',
    '9223372036854775807',
  ),
);

const expr: fc.Arbitrary<string> = fc.letrec<{ e: string }>((tie) => ({
  e: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    field,
    literal,
    fc
      .tuple(
        tie('e'),
        fc.constantFrom('+', '-', '*', '/', '%', '==', '!=', '<', '<=', '>', '>=', '&&', '||'),
        tie('e'),
      )
      .map(([l, op, r]) => `(${l} ${op} ${r})`),
    tie('e').map((x) => `!${x}`),
    tie('e').map((x) => `-${x}`),
    fc.tuple(tie('e'), tie('e'), tie('e')).map(([c, y, n]) => `(${c} ? ${y} : ${n})`),
    fc
      .tuple(
        fc.constantFrom(
          'round',
          'abs',
          'lower',
          'to_string',
          'to_int',
          'size',
          'uuid_v5',
          'floor',
          'int',
          'string',
        ),
        tie('e'),
      )
      .map(([f, x]) => `${f}(${x})`),
    fc.tuple(tie('e'), fc.integer({ min: -2, max: 3 })).map(([x, d]) => `round(${x}, ${d})`),
    fc.tuple(tie('e'), tie('e')).map(([x, y]) => `coalesce(${x}, ${y})`),
    fc.tuple(tie('e'), tie('e')).map(([x, y]) => `[${x}, ${y}]`),
    fc.tuple(tie('e'), tie('e')).map(([x, y]) => `{"k": ${x}, "v": ${y}}`),
    tie('e').map((x) => `format_time(${x}, "yyyy/MM/dd HH")`),
    fc.constantFrom(
      'has(record.a)',
      'has(nested.x)',
      'has(record.missing)',
      'has(meta.k)',
      'items.map(i, i * 2)',
      'size(items)',
    ),
  ),
})).e;

const value = fc.oneof(
  fc.double({ noNaN: false, min: -1e6, max: 1e6 }),
  fc.integer({ min: -3, max: 3 }),
  fc.string({ maxLength: 4 }),
  fc.boolean(),
  fc.constant(null),
  fc.constant('2024-03-05T14:07:09Z'),
  // Where ints computed in doubles stop being exact.
  fc.constantFrom(2 ** 53 - 1, 2 ** 53, -(2 ** 53) - 2, 9.3e18, Number.POSITIVE_INFINITY),
);

const recordArb = fc.record(
  {
    a: value,
    b: value,
    n: fc.integer({ min: -100, max: 100 }),
    s: fc.string({ maxLength: 3 }),
    t: fc.constantFrom('2024-03-05T14:07:09.123Z', '2024-02-30', 'soon'),
    flag: fc.boolean(),
    nada: fc.constant(null),
    nested: fc.record({ x: value }, { requiredKeys: [] }),
    items: fc.array(value, { maxLength: 3 }),
  },
  { requiredKeys: ['n', 's', 't', 'flag', 'nada', 'nested', 'items'] },
);

describe('compiled expressions agree with the interpreter', () => {
  it('on random expressions and records, values and errors alike', () => {
    let compared = 0;
    fc.assert(
      fc.property(expr, recordArb, (source, rec) => {
        try {
          compile(source);
        } catch (e) {
          if (e instanceof ExprError) return; // does not type-check: neither engine runs it
          throw e;
        }
        compared++;
        const meta = { k: 'v' };
        expect(outcome('compiled', source, rec, meta), source).toStrictEqual(
          outcome('interpreter', source, rec, meta),
        );
      }),
      { numRuns: 3000, seed: 17 },
    );
    expect(compared).toBeGreaterThan(1000);
  });

  it('folds constant subexpressions without changing results or errors', () => {
    for (const source of [
      '1 + 2 * 3',
      'lower("ÁB") + x',
      '9223372036854775807 + 1',
      '"a" + "b" == x',
      'round(2.5) + x',
    ]) {
      for (const rec of [{ x: 'ab' }, { x: 1.5 }, {}]) {
        expect(outcome('compiled', source, rec), source).toStrictEqual(outcome('interpreter', source, rec));
      }
    }
  });

  it('reads records kept in a Map and values of library types through the interpreter', () => {
    const rec = new Map<string, unknown>([
      ['a', 2],
      ['d', new Date(0)],
    ]);
    for (const source of ['a + 1', 'd', 'format_time(d, "yyyy")', 'record.a', 'has(record.a)']) {
      expect(outcome('compiled', source, rec), source).toStrictEqual(outcome('interpreter', source, rec));
    }
  });
});
