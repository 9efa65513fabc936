import { describe, expect, it } from 'vitest';
import {
  decodeJson,
  deeperThan,
  excerpt,
  fewBrackets,
  inputLimits,
  textTooLarge,
} from '../../src/runtime/limits.ts';

const nest = (levels: number, leaf = '1'): string => '['.repeat(levels) + leaf + ']'.repeat(levels);
const nestObj = (levels: number): string => '{"a":'.repeat(levels) + '1' + '}'.repeat(levels);

describe('input limits', () => {
  it('counts depth as nested containers: scalars 0, {} 1, and accepts exactly the limit', () => {
    expect(deeperThan(5, 0)).toBe(false);
    expect(deeperThan(null, 1)).toBe(false);
    expect(deeperThan({}, 1)).toBe(false);
    expect(deeperThan({ a: {} }, 1)).toBe(true);
    expect(deeperThan(JSON.parse(nest(64)), 64)).toBe(false);
    expect(deeperThan(JSON.parse(nest(65)), 64)).toBe(true);
    expect(deeperThan(JSON.parse(nestObj(64)), 64)).toBe(false);
    expect(deeperThan(JSON.parse(nestObj(65)), 64)).toBe(true);
  });

  it('finds the deep branch among wide siblings, in objects and arrays alike', () => {
    const v: Record<string, unknown> = {};
    for (let i = 0; i < 50; i++) v[`f${i}`] = i % 2 ? { x: [1, 2, { y: i }] } : i;
    expect(deeperThan(v, 4)).toBe(false);
    v.f49 = [{ a: [JSON.parse(nest(3))] }];
    expect(deeperThan(v, 6)).toBe(true);
    expect(deeperThan(v, 7)).toBe(false);
    // The walk keeps no state between calls: a flat value right after a deep one is fine.
    expect(deeperThan({ a: 1 }, 1)).toBe(false);
  });

  it('settles texts with few brackets without a walk, and walks when brackets are many but shallow', () => {
    expect(fewBrackets('{"a":1,"b":"x"}', 1)).toBe(true);
    expect(fewBrackets('{"a":[1]}', 1)).toBe(false);
    expect(fewBrackets(nest(64), 64)).toBe(true);
    expect(fewBrackets(nest(65), 64)).toBe(false);
    // Brackets inside strings count too: many of them only cost the precise walk.
    const text = JSON.stringify({ s: '{'.repeat(100), list: Array.from({ length: 100 }, (_, i) => ({ i })) });
    expect(fewBrackets(text, 64)).toBe(false);
    expect(decodeJson(text, inputLimits({}))).toMatchObject({ ok: true });
    // {list: [{i}]} is 3 levels deep.
    expect(decodeJson(text, inputLimits({ max_depth: 3 }))).toMatchObject({ ok: true });
    expect(decodeJson(text, inputLimits({ max_depth: 2 }))).toMatchObject({ ok: false, kind: 'too-deep' });
  });

  it('refuses a value JSON.stringify could not encode again, without overflowing the stack itself', () => {
    const text = nest(200_000);
    const value = JSON.parse(text);
    expect(() => JSON.stringify(value)).toThrow(RangeError);
    const d = decodeJson(text, inputLimits({}));
    expect(d).toMatchObject({ ok: false, kind: 'too-deep', reason: 'value nested deeper than 64 levels' });
  });

  it('refuses records over max_record_bytes, counting UTF-8 bytes, before parsing', () => {
    const limits = inputLimits({ max_record_bytes: 10 });
    expect(decodeJson('"abcdefgh"', limits)).toEqual({ ok: true, value: 'abcdefgh' });
    // 7 characters, 12 bytes.
    expect(decodeJson('"çãéõú"', limits)).toMatchObject({ ok: false, kind: 'too-large' });
    expect(textTooLarge('çãé', 6)).toBeUndefined();
    expect(textTooLarge('ççç', 5)).toBe(6);
    expect(textTooLarge('abc', 3)).toBeUndefined();
    // A caller that knows the received size passes it: that one counts.
    expect(decodeJson('{}', limits, 11)).toMatchObject({
      ok: false,
      reason: 'record of 11 bytes is larger than max_record_bytes (10)',
    });
    // Too large wins over malformed: the text is never parsed.
    expect(decodeJson('{'.repeat(20), limits)).toMatchObject({ kind: 'too-large' });
  });

  it('reports malformed JSON with the parser message', () => {
    const d = decodeJson('{"a":', inputLimits({}));
    expect(d.ok).toBe(false);
    if (!d.ok) {
      expect(d.kind).toBe('malformed');
      expect(d.reason).toBe(`malformed JSON: ${d.detail}`);
    }
  });

  it('keeps excerpts short', () => {
    expect(excerpt('abc')).toBe('abc');
    expect(excerpt('x'.repeat(5000))).toHaveLength(1025);
  });
});
