import { Environment, EvaluationError } from '@marcbachmann/cel-js';
import { FUNCTIONS } from './functions.ts';

// Numbers from JSON are JavaScript numbers, which CEL types as double, while integer
// literals in an expression are CEL ints. CEL has no mixed overloads, so without these
// `quantidade_animais + 1` fails with "no such overload: double + int". Mixed arithmetic
// is done in double (the int is converted) and yields a double. Ordering comparisons
// between int and double are built in; equality needs `int == double` (the library
// derives the mirrored and != forms from it).

function moduloByZero(): never {
  throw new EvaluationError({ code: 'modulo_by_zero', message: 'modulo by zero' });
}

function registerNumberMixing(env: Environment): void {
  const n = (v: number | bigint) => (typeof v === 'bigint' ? Number(v) : v);
  const ops: Record<string, (a: number, b: number) => number> = {
    '+': (a, b) => a + b,
    '-': (a, b) => a - b,
    '*': (a, b) => a * b,
    '/': (a, b) => a / b,
    '%': (a, b) => (b === 0 ? moduloByZero() : a % b),
  };
  for (const [op, fn] of Object.entries(ops)) {
    env.registerOperator(`double ${op} int: double`, (a: number, b: bigint) => fn(a, n(b)));
    env.registerOperator(`int ${op} double: double`, (a: bigint, b: number) => fn(n(a), b));
  }
  env.registerOperator('double % double: double', ops['%']);
  // Exact numeric comparison (no rounding of large ints through double).
  env.registerOperator('int == double', (a: bigint, b: number) => Number.isInteger(b) && a === BigInt(b));
}

export function createEnvironment(): Environment {
  const env = new Environment({ unlistedVariablesAreDyn: true, homogeneousAggregateLiterals: false });
  env.registerVariable('record', 'dyn', { description: 'The whole record value' });
  env.registerVariable('meta', 'map', {
    description: 'Metadata of the record from its source (partition_key, sequence_number, ...)',
  });
  registerNumberMixing(env);
  for (const def of FUNCTIONS) {
    for (const o of def.overloads) env.registerFunction(o.sig, o.fn, { description: def.description });
  }
  return env;
}
