import { describe, expect, it } from 'vitest';
import { compile, ExprError } from '../../src/expr/index.ts';
import { thrown } from './helpers.ts';

function compileError(source: string): ExprError {
  const e = thrown(() => compile(source));
  expect(e).toBeInstanceOf(ExprError);
  return e as unknown as ExprError;
}

describe('compile', () => {
  it('keeps the source', () => {
    expect(compile('a + 1').source).toBe('a + 1');
  });

  it.each([
    ['a + * b', 4, 'Unexpected token: MULTIPLY'],
    ['  a +  ', 7, 'Unexpected token: EOF'],
    ['x == "abc', 5, 'Unterminated string'],
    ['f(1,, 2)', 4, ''],
    ['a.b.', 4, ''],
    ['(a + b', 6, ''],
    ['__proto__', 0, 'Reserved identifier'],
    ['', 0, ''],
  ])('syntax error in %j at offset %i', (source, offset, message) => {
    const e = compileError(source);
    expect(e.code).toBe('syntax');
    expect(e.offset).toBe(offset);
    expect(e.message).toContain(message);
  });

  it('points into multi-line expressions with a character offset', () => {
    const source = 'a +\n  b *\n  ) ';
    const e = compileError(source);
    expect(e.offset).toBe(source.indexOf(')'));
  });

  it('rejects unknown functions at compile time', () => {
    const e = compileError('x + nope(y, 1)');
    expect(e.code).toBe('unknown_function');
    expect(e.message).toBe("unknown function 'nope'");
    expect(e.offset).toBe(4);
    expect(e.length).toBe(4);
  });

  it('rejects unknown methods at compile time, pointing at the method name', () => {
    const e = compileError('name.lowercase()');
    expect(e.code).toBe('unknown_function');
    expect(e.offset).toBe(5);
    expect(e.length).toBe('lowercase'.length);
  });

  it('rejects wrong argument types and lists the signatures', () => {
    const e = compileError('  lower(1)');
    expect(e.code).toBe('wrong_arguments');
    expect(e.offset).toBe(2);
    expect(e.message).toContain('lower(string)');
  });

  it('rejects wrong argument counts', () => {
    expect(compileError('uuid_v4(1)').code).toBe('wrong_arguments');
    expect(compileError('trim()').code).toBe('wrong_arguments');
  });

  it('type-checks literals', () => {
    const e = compileError('1 + "a"');
    expect(e.code).toBe('type');
    expect(e.message).toBe('no such overload: int + string');
  });

  it('explains has() on a bare name', () => {
    const e = compileError('has(x)');
    expect(e.message).toContain('has(record.x)');
    expect(e.offset).toBe(4);
  });

  it('points out fields that collide with CEL type names', () => {
    const e = compileError('status == "ok" && type == "order"');
    expect(e.code).toBe('type_name');
    expect(e.offset).toBe(18);
    expect(e.message).toContain('record.type');
    expect(compile('record.type == "order"').evaluate({ type: 'order' })).toBe(true);
    expect(compile('type(x) == int').evaluate({ x: 1 })).toBe(false);
  });

  it('accepts fields of any type without declaring them', () => {
    expect(() => compile('a.b.c + d[0] + size(e)')).not.toThrow();
  });
});
