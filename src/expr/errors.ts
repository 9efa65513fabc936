import { EvaluationError } from '@marcbachmann/cel-js';

/** Thrown by compile(): position is a 0-based character offset into the expression source. */
export class ExprError extends Error {
  readonly offset: number;
  readonly length: number;
  /** Short machine-readable reason, e.g. `syntax`, `unknown_function`, `type`. */
  readonly code: string;

  constructor(message: string, offset: number, length: number, code = 'syntax') {
    super(message);
    this.name = 'ExprError';
    this.offset = offset;
    this.length = length;
    this.code = code;
  }
}

/**
 * Thrown by CompiledExpr.evaluate() when one record cannot be evaluated (missing field,
 * wrong value type, bad argument...). The pipeline routes the record to its error output.
 */
export class ExprEvalError extends Error {
  /** e.g. `no_such_field`, `no_such_overload`, `invalid_timestamp`, `division_by_zero`. */
  readonly code: string;
  /** 0-based offset of the failing sub-expression within the source, when known. */
  readonly offset: number;
  readonly length: number;

  constructor(message: string, code: string, offset: number, length: number, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'ExprEvalError';
    this.code = code;
    this.offset = offset;
    this.length = length;
  }
}

/** Error for function handlers: the library attaches the position of the call to it. */
export function fail(code: string, message: string): EvaluationError {
  return new EvaluationError({ code, message });
}

/** The library spells runtime types as `dyn<double>`; users only care about `double`. */
export function tidyMessage(message: string): string {
  return message.replace(/dyn<([^<>]+)>/g, '$1').replace(' >= size undefined', ' >= size 0');
}
