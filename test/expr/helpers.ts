import { expect } from 'vitest';
import { clock, fixClock, restoreSystemClock } from '../../src/expr/clock.ts';
import { compile, type ExprEngine, type Meta } from '../../src/expr/index.ts';

type Outcome = { value: unknown } | { error: Record<string, unknown> };

export function outcome(engine: ExprEngine, source: string, record: unknown, meta?: Meta): Outcome {
  try {
    return { value: compile(source, { engine }).evaluate(record, meta) };
  } catch (e) {
    const err = e as Error & Record<string, unknown>;
    return {
      error: {
        type: err.constructor.name,
        message: err.message,
        code: err.code,
        offset: err.offset,
        length: err.length,
      },
    };
  }
}

/**
 * Compiles and evaluates in one go. Every call also evaluates the expression with the
 * interpreter and with the generated code, under the same fixed clock, and asserts that
 * they agree: the same value, or the same error (message, code and position). So every
 * expression test checks both engines.
 */
export function run(source: string, record: unknown = {}, meta?: Meta): unknown {
  if (!clock().fixed) {
    fixClock(Date.UTC(2024, 2, 5, 14, 7, 9, 123), 7);
    const reference = outcome('interpreter', source, record, meta);
    fixClock(Date.UTC(2024, 2, 5, 14, 7, 9, 123), 7);
    const compiled = outcome('compiled', source, record, meta);
    restoreSystemClock();
    expect(compiled, `compiled and interpreted evaluation of ${source} differ`).toStrictEqual(reference);
  }
  return compile(source).evaluate(record, meta);
}

/** The error thrown by fn, for asserting on its fields. */
export function thrown(fn: () => unknown): Error & Record<string, unknown> {
  try {
    fn();
  } catch (e) {
    return e as Error & Record<string, unknown>;
  }
  throw new Error('expected an error');
}
