import { compile, type Meta } from '../../src/expr/index.ts';

/** Compiles and evaluates in one go. */
export function run(source: string, record: unknown = {}, meta?: Meta): unknown {
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
