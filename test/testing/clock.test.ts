/** A fixed clock and seed make now(), uuid_v4() and {uuid} reproducible; the system clock comes back after. */
import { afterEach, describe, expect, it } from 'vitest';
import { fixClock, restoreSystemClock } from '../../src/expr/clock.ts';
import { compile } from '../../src/expr/index.ts';
import { compileTemplate } from '../../src/runtime/template.ts';

afterEach(() => restoreSystemClock());

describe('fixed clock', () => {
  it('fixes now() and repeats the same uuid_v4() sequence for the same seed', () => {
    const now = compile('now()');
    const uuid = compile('uuid_v4()');
    fixClock(Date.parse('2024-03-20T12:00:00Z'), 7);
    const first = [uuid.evaluate({}), uuid.evaluate({})];
    expect(now.evaluate({})).toBe('2024-03-20T12:00:00.000Z');
    fixClock(Date.parse('2024-03-20T12:00:00Z'), 7);
    expect([uuid.evaluate({}), uuid.evaluate({})]).toEqual(first);
    expect(first[0]).not.toBe(first[1]);
    expect(first[0]).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    fixClock(0, 8);
    expect(uuid.evaluate({})).not.toBe(first[0]);
  });

  it('renders {uuid} from the seed', () => {
    const t = compileTemplate('x/{uuid}');
    fixClock(0, 1);
    const a = t.render({});
    fixClock(0, 1);
    expect(t.render({})).toBe(a);
  });

  it('is the system clock again after restoreSystemClock', () => {
    fixClock(0, 1);
    restoreSystemClock();
    expect(Math.abs(Date.parse(String(compile('now()').evaluate({}))) - Date.now())).toBeLessThan(60_000);
  });
});
