import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fixClock, restoreSystemClock } from '../../src/expr/clock.ts';
import { roundThroughText, roundTo } from '../../src/expr/functions.ts';
import { compile, inBatch } from '../../src/expr/index.ts';
import { sha1Into } from '../../src/expr/sha1.ts';
import { formatTime, parseIso } from '../../src/expr/time.ts';
import { uuidV5 } from '../../src/expr/uuid.ts';
import { run, thrown } from './helpers.ts';

describe('round computed in doubles', () => {
  const reference = (x: number, d: number) =>
    d === 0 ? roundTo(x, 0) : roundThroughText(Math.abs(x), Math.sign(x) || 1, d);

  it('agrees with rounding through the decimal text on ties and near-ties', () => {
    for (const [x, d] of [
      [1.005, 2],
      [2.675, 2],
      [1.0005, 3],
      [-1.005, 2],
      [0.285, 2],
      [1.45, 1],
      [8.345, 2],
      [103.1255, 3],
      [5e-324, 3],
      [123456.0000005, 6],
      [0.1 + 0.2, 15],
    ] as const) {
      expect(roundTo(x, d), `round(${x}, ${d})`).toBe(reference(x, d));
    }
  });

  it('agrees with rounding through the decimal text for any double and digits', () => {
    fc.assert(
      fc.property(
        fc.double({ noNaN: true, min: -1e12, max: 1e12 }),
        fc.integer({ min: 0, max: 16 }),
        (x, d) => {
          expect(roundTo(x, d)).toBe(reference(x, d));
        },
      ),
      { numRuns: 20_000 },
    );
    // Values with few decimals, where ties are frequent.
    fc.assert(
      fc.property(fc.integer({ min: -1e7, max: 1e7 }), fc.integer({ min: 1, max: 4 }), (k, d) => {
        const x = k / 10 ** (d + 1);
        expect(roundTo(x, d)).toBe(reference(x, d));
      }),
      { numRuns: 20_000 },
    );
  });
});

describe('format_time and parse_time on ISO-like text', () => {
  const text = fc
    .tuple(
      fc.integer({ min: 0, max: 9999 }),
      fc.integer({ min: 0, max: 13 }),
      fc.integer({ min: 0, max: 32 }),
      fc.integer({ min: 0, max: 24 }),
      fc.integer({ min: 0, max: 60 }),
      fc.integer({ min: 0, max: 60 }),
      fc.integer({ min: 0, max: 999 }),
      fc.constantFrom('date', 'T', ' ', 't', 'ms', 'Z', 'msZ', 'z', 'short'),
    )
    .map(([y, mo, d, h, mi, s, ms, form]) => {
      const p = (n: number, w = 2) => String(n).padStart(w, '0');
      const date = `${p(y, 4)}-${p(mo)}-${p(d)}`;
      const time = `${p(h)}:${p(mi)}:${p(s)}`;
      switch (form) {
        case 'date':
          return date;
        case 'short':
          return `${date}T${p(h)}:${p(mi)}`;
        case 'ms':
          return `${date} ${time}.${p(ms, 3)}`;
        case 'msZ':
          return `${date}T${time}.${p(ms, 3)}Z`;
        case 'Z':
          return `${date}T${time}Z`;
        case 'z':
          return `${date}T${time}z`;
        default:
          return `${date}${form}${time}`;
      }
    });

  const outcome = (fn: () => unknown) => {
    try {
      return { value: fn() };
    } catch (e) {
      return { error: (e as Error).message };
    }
  };

  it('the text fast path gives what parsing into a Date and formatting it gives, errors included', () => {
    const format = 'yyyy/MM/dd HH:mm:ss.SSS [yyyy]';
    const expr = compile(`format_time(t, "${format}")`);
    fc.assert(
      fc.property(text, (t) => {
        const fast = outcome(() => expr.evaluate({ t }));
        const general = outcome(() => formatTime(parseIso(` ${t} `), format));
        if ('error' in general) expect(fast).toHaveProperty('error');
        else expect(fast).toEqual(general);
      }),
      { numRuns: 5000 },
    );
  });

  it('parse_time of such text is the instant Date.parse reads from its RFC 3339 form', () => {
    fc.assert(
      fc.property(text, (t) => {
        const parsed = outcome(() => compile('parse_time(t)').evaluate({ t }));
        if ('value' in parsed && !/^\d{4}-\d\d-\d\d$/.test(t)) {
          const rfc = `${t.slice(0, 10)}T${t.slice(11).replace(/[Zz]$/, '')}Z`;
          expect(parsed.value).toBe(new Date(Date.parse(rfc)).toISOString());
        }
      }),
      { numRuns: 5000 },
    );
  });

  it('keeps years below 100 and rejects impossible dates', () => {
    expect(run('parse_time("0099-12-31T10:00:00Z")')).toBe('0099-12-31T10:00:00.000Z');
    expect(run('format_time(t, "yyyy")', { t: '0042-01-01' })).toBe('0042');
    expect(thrown(() => run('format_time(t, "dd")', { t: '2023-02-29' })).message).toContain(
      'not a valid date/time',
    );
    expect(run('format_time(t, "dd")', { t: '2024-02-29' })).toBe('29');
    expect(thrown(() => run('format_time(t, "dd")', { t: '2024-0a-01' })).code).toBe('invalid_timestamp');
  });
});

describe('uuid_v5 hashed in one call', () => {
  it('matches SHA-1 over namespace and name for short, long and non-ASCII names', () => {
    const ns = Buffer.from('dcd8fece294342bda2003d9bc10fdc51', 'hex');
    for (const name of ['', 'x', 'água', 'a'.repeat(300), '\uD800 lone', '😀'.repeat(100)]) {
      const h = createHash('sha1').update(ns).update(name, 'utf8').digest();
      h[6] = (h[6] & 0x0f) | 0x50;
      h[8] = (h[8] & 0x3f) | 0x80;
      const hex = h.subarray(0, 16).toString('hex');
      const want = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
      expect(uuidV5(name)).toBe(want);
    }
  });
});

describe('sha1Into (the hash under uuid_v5)', () => {
  it('equals node:crypto at every length across block boundaries, and reads only `length` bytes', () => {
    const out = new Uint8Array(20);
    for (let len = 0; len <= 200; len++) {
      for (const fill of [0x00, 0xff, 0x5a]) {
        const data = Buffer.alloc(len + 7, 0xee); // bytes past `length` must not count
        for (let i = 0; i < len; i++) data[i] = (fill + i * 31) & 0xff;
        sha1Into(data, len, out);
        expect(Buffer.from(out).toString('hex'), `length ${len}`).toBe(
          createHash('sha1').update(data.subarray(0, len)).digest('hex'),
        );
      }
    }
  });
});

describe('errors inside a batch', () => {
  it('capture no stack trace, keep their message, and the limit comes back even when the batch throws', () => {
    const before = Error.stackTraceLimit;
    const expr = compile('to_double(x)');
    const err = inBatch(() => thrown(() => expr.evaluate({ x: 'n/a' })));
    expect(err.message).toContain('n/a');
    expect(err.stack?.split('\n').filter((l) => l.trim().startsWith('at ')) ?? []).toEqual([]);
    expect(Error.stackTraceLimit).toBe(before);
    expect(() =>
      inBatch(() => {
        throw new Error('whole batch');
      }),
    ).toThrow('whole batch');
    expect(Error.stackTraceLimit).toBe(before);
    // Outside a batch, errors keep their stacks.
    expect(new Error('x').stack).toContain(' at ');
  });
});

describe('now() once per batch', () => {
  it('gives every record of a batch the same instant, and the next batch a later one', async () => {
    const expr = compile('now()');
    const first = inBatch(() => [1, 2, 3].map(() => expr.evaluate({})));
    expect(new Set(first).size).toBe(1);
    await new Promise((r) => setTimeout(r, 5));
    const second = inBatch(() => expr.evaluate({})) as string;
    expect(Date.parse(second)).toBeGreaterThan(Date.parse(first[0] as string));
  });

  it('reads the fixed clock of a test run', () => {
    fixClock(Date.UTC(2024, 0, 2, 3, 4, 5), 1);
    try {
      expect(inBatch(() => compile('format_time(now(), "yyyy-MM-dd HH:mm:ss")').evaluate({}))).toBe(
        '2024-01-02 03:04:05',
      );
      expect(compile('now()').evaluate({})).toBe('2024-01-02T03:04:05.000Z');
    } finally {
      restoreSystemClock();
    }
  });
});
