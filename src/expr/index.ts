// Expressions in sluice specs: CEL (Common Expression Language) evaluated per record.
//
// compile() parses and type-checks once, when a spec is validated; evaluate() runs per
// record. The record's fields are top-level variables, `record` is the whole value and
// `meta` the source metadata. See docs/expressions.md for the language as users see it.

import type { ASTNode, ParseResult } from '@marcbachmann/cel-js';
import { TypeError as CelTypeError, EvaluationError, ParseError } from '@marcbachmann/cel-js';
import { CodeGenerator, type EvalScope, type Evaluate, type Evaluator } from './codegen.ts';
import { toPlain } from './convert.ts';
import { createEnvironment } from './environment.ts';
import { ExprError, ExprEvalError, tidyMessage } from './errors.ts';
import { BUILTIN_DOCS, FUNCTIONS, type FunctionDoc } from './functions.ts';

export { inBatch } from './batch.ts';
export { ExprError, ExprEvalError } from './errors.ts';
export { SLUICE_NAMESPACE } from './uuid.ts';

export type Meta = Readonly<Record<string, unknown>>;

export interface CompiledExpr {
  readonly source: string;
  /**
   * Evaluates against one record: its fields are top-level variables, `record` is the whole
   * value, `meta` the source metadata. Returns plain JS values: CEL ints as numbers (bigint
   * beyond 2^53), timestamps as ISO-8601 strings, durations as CEL text ("90s"), maps as
   * objects. Throws ExprEvalError (e.g. "no such field 'x'") when the record cannot be evaluated.
   */
  evaluate(value: unknown, meta?: Meta): unknown;
}

/** How an expression is evaluated: compiled to a JavaScript function (the default), or by the library's interpreter. */
export type ExprEngine = 'compiled' | 'interpreter';

export interface CompileOptions {
  /** The interpreter is the reference the compiled functions are tested against. */
  engine?: ExprEngine;
}

const env = createEnvironment();

const EMPTY_META: Meta = Object.freeze({});

/** Signatures per function name, for compile errors about wrong arguments. */
const signatures = new Map<string, string[]>();
for (const f of env.getDefinitions().functions) {
  const list = signatures.get(f.name) ?? [];
  if (!f.params.some((p) => p.type === 'ast')) list.push(f.signature);
  signatures.set(f.name, list);
}

/**
 * Variable lookup handed to the library for every evaluation: resolves names against the
 * current record without copying it. The library only calls get() on a Map context.
 */
class Scope extends Map<string, unknown> implements EvalScope {
  value: unknown = undefined;
  meta: Meta = EMPTY_META;
  /** The library's context over this scope, for the nodes a compiled expression leaves to the interpreter. */
  readonly ctx: unknown = runtime.context(this);

  override get(key: string): unknown {
    if (key === 'record') return this.value;
    if (key === 'meta') return this.meta;
    const v = this.value;
    if (typeof v !== 'object' || v === null) return undefined;
    if (v instanceof Map) return v.get(key);
    return Object.hasOwn(v, key) ? (v as Record<string, unknown>)[key] : undefined;
  }
}

/**
 * The library's evaluator and a constructor of its root context, which it does not export:
 * both are taken from one evaluation of a probe expression whose root node reports them.
 */
const runtime = (() => {
  const probe = env.parse('x');
  probe.check();
  let ev: Evaluator | undefined;
  let Context: (new (registry: unknown, scope: Map<string, unknown>) => unknown) | undefined;
  const root = probe.ast as unknown as { evaluate(e: Evaluator, node: unknown, ctx: object): unknown };
  root.evaluate = (e, _node, ctx) => {
    ev = e;
    Context = ctx.constructor as typeof Context;
    return null;
  };
  probe(new Map());
  if (!ev || !Context) throw new Error('the CEL library did not evaluate the probe expression');
  const evaluator = ev;
  const RootContext = Context;
  const registry = (evaluator as unknown as { registry: unknown }).registry;
  return {
    compiler: new CodeGenerator(evaluator),
    context: (scope: Map<string, unknown>) => new RootContext(registry, scope),
  };
})();

class Compiled implements CompiledExpr {
  readonly source: string;
  readonly evaluate: (value: unknown, meta?: Meta) => unknown;

  constructor(source: string, run: ParseResult, engine: ExprEngine) {
    this.source = source;
    // Evaluation is synchronous (no async functions are registered), so one scope per
    // expression can be reused for every record.
    const scope = new Scope();
    const wiring = {
      scope,
      emptyMeta: EMPTY_META,
      toPlain,
      fail: (e: unknown) => toEvalError(e, source),
    };
    this.evaluate =
      engine === 'interpreter'
        ? interpreted(run, wiring)
        : (generated(run, wiring) ?? interpreted(run, wiring));
  }
}

/** The library's interpreter behind the same evaluate() as generated code. */
function interpreted(run: ParseResult, w: { scope: Scope; fail(e: unknown): Error }): Evaluate {
  const scope = w.scope;
  return (value, meta) => {
    scope.value = value;
    scope.meta = (meta as Meta | undefined) ?? EMPTY_META;
    try {
      const out = run(scope);
      return out === undefined ? null : toPlain(out);
    } catch (e) {
      throw w.fail(e);
    } finally {
      // Do not keep the last record alive.
      scope.value = undefined;
      scope.meta = EMPTY_META;
    }
  };
}

/** The expression as generated code; undefined where the process forbids code generation (node --disallow-code-generation-from-strings). */
function generated(run: ParseResult, wiring: Parameters<CodeGenerator['compile']>[1]): Evaluate | undefined {
  try {
    return runtime.compiler.compile(run.ast, wiring);
  } catch (e) {
    if (e instanceof EvalError) return undefined;
    throw e;
  }
}

/** Parses and type-checks `source`; throws ExprError pointing at the offending character. */
export function compile(source: string, options?: CompileOptions): CompiledExpr {
  if (typeof source !== 'string') throw new ExprError('expression must be a string', 0, 0);
  let run: ParseResult;
  try {
    run = env.parse(source);
  } catch (e) {
    throw toExprError(e, source);
  }
  checkTypeNames(run.ast, source);
  const checked = run.check();
  if (!checked.valid) throw toExprError(checked.error, source);
  return new Compiled(source, run, options?.engine ?? 'compiled');
}

/** Documentation of the sluice functions and the most useful CEL built-ins. */
export function functionDocs(): Array<{
  name: string;
  signature: string;
  description: string;
  example: string;
}> {
  const docs: FunctionDoc[] = FUNCTIONS.map(({ name, signature, description, example }) => ({
    name,
    signature,
    description,
    example,
  }));
  return docs.concat(BUILTIN_DOCS.map((d) => ({ ...d })));
}

// CEL predeclares identifiers for its type names, so a bare `type` means the CEL type
// `type`, not a record field called "type" (a common JSON key). Unless the expression
// actually works with types (calls type()), such a name is almost certainly meant as a field.
const TYPE_NAMES = new Set([
  'type',
  'int',
  'uint',
  'double',
  'string',
  'bool',
  'bytes',
  'list',
  'map',
  'null_type',
]);

function visit(x: unknown, fn: (n: ASTNode) => void): void {
  if (Array.isArray(x)) {
    for (const item of x) visit(item, fn);
  } else if (typeof x === 'object' && x !== null && 'op' in x && 'args' in x) {
    fn(x as ASTNode);
    visit(x.args, fn);
  }
}

function checkTypeNames(ast: ASTNode, source: string): void {
  let typeCall = false;
  let first: ASTNode | undefined;
  visit(ast, (n) => {
    if (n.op === 'call' && n.args[0] === 'type') typeCall = true;
    else if (n.op === 'id' && TYPE_NAMES.has(n.args) && !first) first = n;
  });
  if (!first || typeCall) return;
  const name = first.args as string;
  throw new ExprError(
    `'${name}' is a CEL type name, not a field; write record.${name} to read a field called '${name}'`,
    first.start,
    Math.min(first.end, source.length) - first.start,
    'type_name',
  );
}

// --- error translation

type CelError = ParseError | EvaluationError | CelTypeError;

function isCelError(e: unknown): e is CelError {
  return e instanceof ParseError || e instanceof EvaluationError || e instanceof CelTypeError;
}

function rangeOf(e: CelError, source: string): { offset: number; length: number } {
  const r = e.range;
  if (!r) return { offset: 0, length: source.length };
  const offset = Math.min(Math.max(r.start, 0), source.length);
  return { offset, length: Math.max(0, Math.min(r.end, source.length) - offset) };
}

function toExprError(e: unknown, source: string): ExprError {
  if (!isCelError(e)) {
    return new ExprError(e instanceof Error ? e.message : String(e), 0, source.length, 'invalid');
  }
  const { offset, length } = rangeOf(e, source);
  const node = e.node as ASTNode | undefined;
  if (e.code === 'no_matching_overload' && node && (node.op === 'call' || node.op === 'rcall')) {
    const name = node.args[0];
    const at = node.op === 'call' ? node.start : source.indexOf(name, node.args[1].end);
    const nameOffset = at >= 0 ? at : offset;
    const known = signatures.get(name);
    if (!known) {
      return new ExprError(`unknown function '${name}'`, nameOffset, name.length, 'unknown_function');
    }
    const hint = known.length ? `; available: ${known.map((s) => s.replace(/: [^:]+$/, '')).join(', ')}` : '';
    return new ExprError(tidyMessage(e.summary) + hint, nameOffset, name.length, 'wrong_arguments');
  }
  if (e.code === 'invalid_macro_argument' && e.summary.startsWith('has()')) {
    return new ExprError(
      'has() needs a field selection such as has(record.x) or has(meta.key)',
      offset,
      length,
      'type',
    );
  }
  const code = e instanceof ParseError ? 'syntax' : 'type';
  return new ExprError(tidyMessage(e.summary), offset, length, code);
}

/** `record.a.b` -> "a.b"; `record["x-y"]` -> "x-y"; `meta.x` -> "meta.x"; else undefined. */
function fieldPath(node: ASTNode | undefined): string | undefined {
  const parts: string[] = [];
  let n = node;
  for (;;) {
    if (n?.op === '.') {
      parts.unshift(n.args[1]);
      n = n.args[0];
    } else if (n?.op === '[]' && n.args[1].op === 'value' && typeof n.args[1].args === 'string') {
      parts.unshift(n.args[1].args);
      n = n.args[0];
    } else {
      break;
    }
  }
  if (n?.op !== 'id') return undefined;
  if (n.args !== 'record' || parts.length === 0) parts.unshift(n.args);
  return parts.join('.');
}

function toEvalError(e: unknown, source: string): Error {
  if (e instanceof ExprEvalError) return e;
  if (!isCelError(e)) {
    const message = e instanceof Error ? e.message : String(e);
    return new ExprEvalError(message, 'evaluation_error', 0, source.length, e);
  }
  const { offset, length } = rangeOf(e, source);
  const node = e.node as ASTNode | undefined;
  if (e.code === 'unknown_variable' && node?.op === 'id') {
    return new ExprEvalError(`no such field '${node.args}'`, 'no_such_field', offset, length, e);
  }
  if (e.code === 'no_such_key') {
    const path = fieldPath(node);
    if (path) {
      const start = node ? node.start : offset;
      return new ExprEvalError(`no such field '${path}'`, 'no_such_field', start, offset + length - start, e);
    }
  }
  return new ExprEvalError(tidyMessage(e.summary), e.code, offset, length, e);
}
