/**
 * `sluice eval '<expr>' --record '{…}' [--meta '{…}']`: one expression against one record, to
 * check it while writing a spec. Prints the value (as a sink would see it) and its CEL type, or
 * the error with a caret under the offending part of the expression.
 */
import { type CompiledExpr, compile, ExprError, ExprEvalError } from '../expr/index.ts';

export interface EvalFlags {
  record?: string;
  meta?: string;
}

export interface EvalOutcome {
  code: number;
  stdout: string;
  stderr: string;
}

export function evalCommand(expr: string, flags: EvalFlags): EvalOutcome {
  let record: unknown;
  let meta: Record<string, unknown> | undefined;
  try {
    record = flags.record === undefined ? {} : JSON.parse(flags.record);
    meta = flags.meta === undefined ? undefined : JSON.parse(flags.meta);
  } catch (err) {
    return {
      code: 2,
      stdout: '',
      stderr: `sluice: --record and --meta take JSON: ${(err as Error).message}\n`,
    };
  }
  if (meta !== undefined && (typeof meta !== 'object' || meta === null || Array.isArray(meta)))
    return { code: 2, stdout: '', stderr: 'sluice: --meta takes a JSON object\n' };
  let compiled: CompiledExpr;
  let typed: CompiledExpr;
  try {
    compiled = compile(expr);
    // type() of the same expression gives the CEL type of the value, which the plain JS value hides.
    typed = compile(`type(${expr})`);
  } catch (err) {
    if (err instanceof ExprError)
      return failure(expr, 'does not compile', err.message, err.offset, err.length);
    throw err;
  }
  try {
    const value = compiled.evaluate(record, meta);
    const type = String(typed.evaluate(record, meta)).replace(/^Type<(.*)>$/, '$1');
    return { code: 0, stdout: `${show(value)}\n${type}\n`, stderr: '' };
  } catch (err) {
    if (err instanceof ExprEvalError)
      return failure(expr, 'fails on this record', err.message, err.offset, err.length);
    throw err;
  }
}

function show(value: unknown): string {
  return JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)) ?? 'null';
}

/** The error, the expression and a caret under the part at fault (offsets are 0-based). */
function failure(expr: string, what: string, message: string, offset: number, length: number): EvalOutcome {
  const oneLine = expr.replace(/[\r\n\t]/g, ' ');
  const caret = `${' '.repeat(Math.max(0, offset))}${'^'.repeat(Math.max(1, Math.min(length, oneLine.length - offset)))}`;
  return { code: 1, stdout: '', stderr: `error: expression ${what}: ${message}\n  ${oneLine}\n  ${caret}\n` };
}
