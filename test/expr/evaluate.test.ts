import { describe, expect, it } from 'vitest';
import { compile, ExprEvalError } from '../../src/expr/index.ts';
import { run, thrown } from './helpers.ts';

describe('variables', () => {
  const rec = { name: 'Ana', nested: { a: { b: 2 } }, tags: ['x', 'y'], nothing: null };

  it('exposes record fields as top-level variables', () => {
    expect(run('name + "!"', rec)).toBe('Ana!');
    expect(run('nested.a.b', rec)).toBe(2);
    expect(run('tags[1]', rec)).toBe('y');
    expect(run('nothing == null', rec)).toBe(true);
  });

  it('exposes the whole value as record', () => {
    expect(run('record.name', rec)).toBe('Ana');
    expect(run('record["name"]', rec)).toBe('Ana');
    expect(run('record', rec)).toBe(rec);
    expect(run('record + "!"', 'plain text')).toBe('plain text!');
  });

  it('exposes source metadata as meta', () => {
    const meta = { partition_key: 'pk-7', sequence_number: '4959033827' };
    expect(run('meta.partition_key', rec, meta)).toBe('pk-7');
    expect(run('meta.sequence_number + "/" + name', rec, meta)).toBe('4959033827/Ana');
    expect(run('has(meta.partition_key)', rec, meta)).toBe(true);
    expect(run('has(meta.partition_key)', rec)).toBe(false);
  });

  it('reads records stored in a Map', () => {
    expect(run('a + 1', new Map([['a', 2]]))).toBe(3);
  });

  it('ignores inherited properties of the record', () => {
    expect(thrown(() => run('toString', {})).message).toBe("no such field 'toString'");
  });

  it('supports has() for optional fields', () => {
    expect(run('has(record.name)', rec)).toBe(true);
    expect(run('has(record.age)', rec)).toBe(false);
    expect(run('has(record.age) ? age : 0', rec)).toBe(0);
    expect(run('has(record.age) ? age : 0', { age: 30 })).toBe(30);
    expect(run('has(nested.a.b)', rec)).toBe(true);
  });

  it('evaluates many records with one compiled expression', () => {
    const expr = compile('x * 2');
    expect([1, 2, 3].map((x) => expr.evaluate({ x }))).toEqual([2, 4, 6]);
  });
});

describe('evaluation errors', () => {
  it('names a missing field', () => {
    const e = thrown(() => run('peso * 2 + x', { peso: 1 }));
    expect(e).toBeInstanceOf(ExprEvalError);
    expect(e.message).toBe("no such field 'x'");
    expect(e.code).toBe('no_such_field');
    expect(e.offset).toBe(11);
    expect(e.length).toBe(1);
  });

  it('names missing nested fields by path', () => {
    expect(thrown(() => run('a.b.c', { a: { b: {} } })).message).toBe("no such field 'a.b.c'");
    expect(thrown(() => run('record.x', {})).message).toBe("no such field 'x'");
    expect(thrown(() => run('record["x-y"]', {})).message).toBe("no such field 'x-y'");
    expect(thrown(() => run('meta.shard', {}, {})).message).toBe("no such field 'meta.shard'");
  });

  it('reports wrong runtime types without library type wrappers', () => {
    const e = thrown(() => run('lower(x)', { x: 1 }));
    expect(e.code).toBe('no_matching_overload');
    expect(e.message).not.toContain('dyn<');
  });

  it('keeps the original error as cause', () => {
    expect(thrown(() => run('x', {})).cause).toBeInstanceOf(Error);
  });

  it('leaves the compiled expression usable after an error', () => {
    const expr = compile('x + 1');
    expect(() => expr.evaluate({})).toThrow(ExprEvalError);
    expect(expr.evaluate({ x: 1 })).toBe(2);
  });
});

describe('result values', () => {
  it('returns timestamps as ISO strings and durations as text', () => {
    expect(run('timestamp("2024-03-05T14:07:09Z")')).toBe('2024-03-05T14:07:09.000Z');
    expect(run('duration("90m")')).toBe('5400s');
    expect(run('{"at": parse_time("2024-03-05")}')).toEqual({ at: '2024-03-05T00:00:00.000Z' });
  });

  it('builds objects and lists', () => {
    expect(run('{"id": id, "tags": [lower(n), 1, true, null]}', { id: 'a', n: 'X' })).toEqual({
      id: 'a',
      tags: ['x', 1, true, null],
    });
  });

  it('converts bigints and dates found inside records', () => {
    const out = run('record', { a: 1n, b: [new Date(0)] });
    expect(out).toEqual({ a: 1, b: ['1970-01-01T00:00:00.000Z'] });
  });

  it('supports CEL macros over record lists', () => {
    const rec = {
      items: [
        { q: 2, p: 1.5 },
        { q: 1, p: 10 },
      ],
    };
    expect(run('items.map(i, i.q * i.p)', rec)).toEqual([3, 10]);
    expect(run('items.exists(i, i.p > 5)', rec)).toBe(true);
    expect(run('items.filter(i, i.q > 1).size()', rec)).toBe(1);
  });
});
