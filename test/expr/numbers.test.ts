import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { run, thrown } from './helpers.ts';

// JSON numbers are doubles in CEL, integer literals are ints: the two must mix.
const rec = { quantidade_animais: 10, peso_medio: 412.5, zero: 0 };

describe('int and double mixing', () => {
  it('adds an int literal to a JSON number', () => {
    expect(run('quantidade_animais + 1', rec)).toBe(11);
    expect(run('1 + quantidade_animais', rec)).toBe(11);
  });

  it.each([
    ['quantidade_animais - 1', 9],
    ['1 - quantidade_animais', -9],
    ['quantidade_animais * 3', 30],
    ['3 * quantidade_animais', 30],
    ['quantidade_animais / 4', 2.5],
    ['25 / quantidade_animais', 2.5],
    ['quantidade_animais % 3', 1],
    ['23 % quantidade_animais', 3],
    ['peso_medio % 100.0', 12.5],
    ['peso_medio * 0.025 * quantidade_animais', 103.125],
    ['quantidade_animais * 2 + 0.5', 20.5],
    ['-quantidade_animais + 1', -9],
  ])('%s = %s', (source, expected) => {
    expect(run(source, rec)).toBe(expected);
  });

  it('a JSON integer divides as a double: 25 / 2 is 12.5', () => {
    expect(run('x / 2', { x: 25 })).toBe(12.5);
  });

  it('int arithmetic stays integer arithmetic', () => {
    expect(run('7 / 2')).toBe(3);
    expect(run('to_int(x) / 2', { x: 25 })).toBe(12);
    expect(run('-7 % 3')).toBe(-1);
  });

  it.each([
    ['quantidade_animais == 10', true],
    ['10 == quantidade_animais', true],
    ['quantidade_animais != 10', false],
    ['10 != quantidade_animais', false],
    ['quantidade_animais < 11', true],
    ['11 < quantidade_animais', false],
    ['quantidade_animais <= 10', true],
    ['10 <= quantidade_animais', true],
    ['quantidade_animais > 9', true],
    ['9 > quantidade_animais', false],
    ['quantidade_animais >= 10', true],
    ['10 >= quantidade_animais', true],
    ['1.0 == 1', true],
    ['1 == 1.0', true],
    ['1 != 1.5', true],
    ['1.5 != 1', true],
    ['2 > 1.5', true],
    ['quantidade_animais in [5, 10]', true],
  ])('%s is %s', (source, expected) => {
    expect(run(source, rec)).toBe(expected);
  });

  it('compares large ints with doubles exactly', () => {
    expect(run('9007199254740993 == 9007199254740992.0')).toBe(false);
    expect(run('9007199254740992 == 9007199254740992.0')).toBe(true);
  });

  it('matches JavaScript arithmetic for any double and int', () => {
    fc.assert(
      fc.property(
        fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e12, max: 1e12 }),
        fc.integer({ min: -1000, max: 1000 }),
        (x, k) => {
          const lit = k < 0 ? `(${k})` : String(k);
          expect(run(`x + ${lit}`, { x })).toBe(x + k);
          expect(run(`${lit} - x`, { x })).toBe(k - x);
          expect(run(`x * ${lit}`, { x })).toBe(x * k);
          if (k !== 0) expect(run(`x / ${lit}`, { x })).toBe(x / k);
          expect(run(`x < ${lit}`, { x })).toBe(x < k);
          expect(run(`x == ${lit}`, { x })).toBe(x === k);
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('numbers in results', () => {
  it('returns CEL ints as JS numbers', () => {
    const v = run('1 + 2');
    expect(v).toBe(3);
    expect(typeof v).toBe('number');
    expect(run('[1, 2, 3]')).toEqual([1, 2, 3]);
    expect(run('{"n": 4}')).toEqual({ n: 4 });
  });

  it('returns bigint only beyond 2^53', () => {
    expect(run('9007199254740991')).toBe(9007199254740991);
    expect(run('9007199254740993 + 1')).toBe(9007199254740994n);
  });

  it('division and modulo by zero', () => {
    expect(run('x / 0', { x: 1 })).toBe(Number.POSITIVE_INFINITY);
    expect(thrown(() => run('x % 0', { x: 1 })).code).toBe('modulo_by_zero');
    expect(thrown(() => run('to_int(x) / 0', { x: 1 })).code).toBe('division_by_zero');
  });

  it('reports mixing numbers with strings clearly', () => {
    const e = thrown(() => run('"n=" + x', { x: 1 }));
    expect(e.message).toBe('no such overload: string + double');
  });
});
