// Compiles a checked CEL AST into one JavaScript function per expression.
//
// The library's interpreter walks the AST for every record: each node dispatches through its
// operator table, resolves overloads by the runtime types of its operands and allocates on
// the way. Here the AST becomes the source of one function, compiled by the engine like any
// other: the function has its own type feedback, so V8 inlines the field reads, the number
// arithmetic and the handlers each call site actually meets (a tree of closures shares one
// body per operator among all expressions, and its calls stay generic).
//
// The generated code takes the fast path when operands are the plain values records are made
// of (numbers, strings, bools, ints) and otherwise hands the values it already computed to
// the very handler the interpreter would have called (`node.handle`, set by the type check),
// so results and errors are the interpreter's own. Nodes with no fast path (comprehension
// macros, optionals, `in`, constants of library types) are evaluated by the interpreter
// itself, subtree and all.
//
// Safety: the source is built from the AST's structure only. The expression's text never
// reaches it. What the generated text contains is:
// - fragments written in this file, and names made here (v0, k0, L0, ...);
// - field names, as JSON string literals (JSON.stringify, with U+2028/U+2029 escaped too);
// - numbers, ints, bools and null printed from their values (checked against a pattern);
// - nothing else: string constants, AST nodes and handlers are parameters (k0, k1, ...).
// So a field called `"]; process.exit(); ["` is a property key like any other (see the
// hostile-names test).
//
// Evaluation order follows the interpreter's, which matters for errors (which one is
// reported) and for now()/uuid_v4(): operands left to right, call arguments and list items
// from last to first.

import type { ASTNode } from '@marcbachmann/cel-js';
import { EvaluationError } from '@marcbachmann/cel-js';

/** What the interpreter's fallbacks read: the record, its metadata, and the interpreter's context over both. */
export interface EvalScope {
  value: unknown;
  meta: unknown;
  /** The library's root context over this scope, for nodes the interpreter evaluates. */
  readonly ctx: unknown;
}

/** The parts of the library's evaluator generated code hands values to (duck-typed: it is not exported). */
export interface Evaluator {
  debugRuntimeType(value: unknown, checkedType: unknown): unknown;
  debugType(value: unknown): { fieldLazy(obj: unknown, key: string, node: unknown, ev: Evaluator): unknown };
  createError(code: string, message: string, node: unknown): Error;
}

/** One expression's evaluation: plain value out, or the error `fail` makes of what went wrong. */
export type Evaluate = (value: unknown, meta?: unknown) => unknown;

/** What one compiled expression is wired to. */
export interface Wiring {
  /** Set to the record and metadata during an evaluation, for the interpreter's fallbacks. */
  scope: EvalScope;
  emptyMeta: unknown;
  /** CEL value -> plain JavaScript value. */
  toPlain(v: unknown): unknown;
  /** Any error of an evaluation -> the error evaluate() throws. */
  fail(e: unknown): Error;
}

/** The fields the type check leaves on a node (library internals, stable within a major version). */
interface CheckedNode {
  op: string;
  args: unknown;
  checkedType?: unknown;
  handle?: (...a: unknown[]) => unknown;
  candidates?: { findFunction(types: unknown[], receiver?: unknown): { handler: Handler } | null };
  readonly meta: { alternate?: unknown; macro?: { macroHasProps?: CheckedNode[]; args?: CheckedNode[] } };
  evaluate(ev: Evaluator, node: CheckedNode, ctx: unknown): unknown;
}

type Handler = (this: Evaluator, ...args: unknown[]) => unknown;

/** A node's value in generated code: a JS expression without effects (a name or a literal). */
interface Operand {
  ref: string;
  /** The value is known at compile time (a primitive or null); `ref` spells it. */
  known: boolean;
  value?: unknown;
}

/** A node as built, before folding: `constant` when it yields the same value on every evaluation and reads no record. */
interface Built {
  ref: string;
  constant: boolean;
}

type Primitive = 'string' | 'number' | 'bigint' | 'boolean';
const PRIMITIVES: readonly Primitive[] = ['string', 'number', 'bigint', 'boolean'];
/** A value of each primitive type, to resolve overloads by type at compile time. */
const SAMPLE: Record<Primitive, unknown> = { string: '', number: 0, bigint: 0n, boolean: false };

const MAX_INT = 9223372036854775807n;
const MIN_INT = -9223372036854775808n;
const hasOwn = Object.hasOwn;

/** Missing-value errors that `coalesce` treats as null (kept in step with its macro in functions.ts). */
const MISSING_CODES = new Set(['unknown_variable', 'no_such_key', 'index_out_of_bounds']);

/** Functions whose value changes between calls: never folded into constants. */
const IMPURE = new Set(['now', 'uuid_v4']);

/** Call sites with more type combinations than this resolve their overload at run time instead. */
const MAX_COMBINATIONS = 64;

/** Int operations computed in doubles while the values are safe integers (not `/`: a rounded quotient can truncate wrong). */
const INT_OPS = new Set(['+', '-', '*', '%']);

function isSafeInt(v: bigint): boolean {
  return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER);
}

/** `check()` is true and does not throw. */
function behaves(check: () => boolean): boolean {
  try {
    return check();
  } catch {
    return false;
  }
}

/** An index read that is not a plain value, left to the library. */
const MISS = Symbol('miss');

function isPrimitive(v: unknown): boolean {
  const t = typeof v;
  return t === 'string' || t === 'number' || t === 'boolean' || t === 'bigint';
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null) return false;
  const c = (v as object).constructor;
  return c === Object || c === undefined;
}

const ObjectPrototype = Object.prototype;
const getPrototypeOf = Object.getPrototypeOf;

/**
 * An object whose prototype is Object.prototype or null: what JSON and the sources' decoders
 * make. `__proto__` is read through Object.prototype's accessor, which V8 inlines (unlike
 * Object.getPrototypeOf, asked only when that accessor is absent). An own `__proto__` key
 * (JSON may carry one) hides the accessor: such an object is not taken as ordinary, and its
 * fields are read by the interpreter (unless that key holds Object.prototype itself, which no
 * decoder produces).
 */
function isOrdinaryObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null) return false;
  // biome-ignore lint/suspicious/noProto: measured: V8 inlines this accessor, not Object.getPrototypeOf
  const p = (v as { __proto__?: unknown }).__proto__;
  return p === ObjectPrototype || (p === undefined && !hasOwn(v, '__proto__') && getPrototypeOf(v) === null);
}

/** The helpers generated code calls, by the names it calls them. */
const HELPERS = {
  ObjectPrototype,
  isOrdinaryObject,
  isPlainObject,
  MAX_INT,
  MIN_INT,
  MISS,
  indexRead,
  mapSet,
  isMissing,
  logicalOutcome,
};
const HELPER_NAMES = Object.keys(HELPERS).join(', ');

/** `typeof x` is one of the record's plain kinds, or x is null (x: a name). */
function plain(x: string): string {
  return `(typeof ${x} === "string" || typeof ${x} === "number" || typeof ${x} === "boolean" || typeof ${x} === "bigint" || ${x} === null)`;
}

/** A property key as a JSON string literal, the line and paragraph separators escaped as well. */
function keyLiteral(key: unknown): string {
  if (typeof key !== 'string') throw new Error(`field name is not a string: ${typeof key}`);
  return JSON.stringify(key)
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

const NUMBER_TEXT = /^-?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?$/;

/** JS source for a primitive value, printed from the value; undefined for what must be a parameter. */
function literal(v: unknown): string | undefined {
  if (v === null) return 'null';
  if (v === true || v === false) return String(v);
  if (typeof v === 'number' || typeof v === 'bigint') {
    if (typeof v === 'number' && !Number.isFinite(v)) return undefined;
    const text = Object.is(v, -0) ? '-0' : String(v);
    if (!NUMBER_TEXT.test(text)) return undefined;
    const suffixed = typeof v === 'bigint' ? `${text}n` : text;
    return text.startsWith('-') ? `(${suffixed})` : suffixed;
  }
  return undefined;
}

export class CodeGenerator {
  readonly #ev: Evaluator;

  constructor(ev: Evaluator) {
    this.#ev = ev;
  }

  compile(ast: ASTNode, wiring: Wiring): Evaluate {
    return new Unit(this.#ev, wiring).compile(ast as unknown as CheckedNode);
  }
}

/** The generation of one expression's function. */
class Unit {
  readonly #ev: Evaluator;
  readonly #wiring: Wiring;
  readonly #params: unknown[] = [];
  readonly #paramNames = new Map<unknown, string>();
  #out: string[] = [];
  #names = 0;
  /** Whether the body reads fields of the record, through `o` (the record when it is a plain object). */
  #readsRecord = false;

  constructor(ev: Evaluator, wiring: Wiring) {
    this.#ev = ev;
    this.#wiring = wiring;
  }

  compile(root: CheckedNode): Evaluate {
    const result = this.#node(root);
    const body = this.#out;
    const r = result.ref;
    const lines = [
      'return function evaluate(rec, meta) {',
      's.value = rec;',
      's.meta = meta ?? EMPTY;',
      'try {',
      this.#readsRecord ? 'const o = isOrdinaryObject(rec) ? rec : undefined;' : '',
      ...body,
      `return typeof ${r} === "string" || typeof ${r} === "number" || typeof ${r} === "boolean" ? ${r} : ${r} === undefined ? null : toPlain(${r});`,
      '} catch (e) {',
      'throw fail(e);',
      '} finally {',
      's.value = undefined;',
      's.meta = EMPTY;',
      '}',
      '};',
    ];
    return this.#assemble(lines) as Evaluate;
  }

  /** The outer function: helpers and parameters bound to names, then `lines`. */
  #assemble(lines: string[]): unknown {
    const bind = this.#params.map((_, i) => `k${i} = k[${i}]`);
    const source = [
      '"use strict";',
      `const { ${HELPER_NAMES} } = helpers;`,
      'const s = wiring.scope, EMPTY = wiring.emptyMeta, toPlain = wiring.toPlain, fail = wiring.fail;',
      bind.length ? `const ${bind.join(', ')};` : '',
      ...lines,
    ].join('\n');
    const outer = new Function('ev', 'helpers', 'wiring', 'k', source);
    return outer(this.#ev, HELPERS, this.#wiring, this.#params);
  }

  #name(prefix = 'v'): string {
    return `${prefix}${this.#names++}`;
  }

  #param(v: unknown): string {
    let name = this.#paramNames.get(v);
    if (name === undefined) {
      name = `k${this.#params.length}`;
      this.#params.push(v);
      this.#paramNames.set(v, name);
    }
    return name;
  }

  #emit(line: string): void {
    this.#out.push(line);
  }

  /** Emits `fn`'s statements into a buffer of their own and returns them with its result. */
  #capture<T>(fn: () => T): { code: string[]; result: T } {
    const saved = this.#out;
    this.#out = [];
    try {
      const result = fn();
      return { code: this.#out, result };
    } finally {
      this.#out = saved;
    }
  }

  /** A node's code emitted in place; constant subtrees computed now and spelled as their value. */
  #node(n: CheckedNode): Operand {
    const { code, result } = this.#capture(() => this.#build(n));
    if (result.constant) {
      const folded = this.#fold(code, result.ref);
      if (folded) return folded;
    }
    this.#out.push(...code);
    return { ref: result.ref, known: false };
  }

  /** Runs a constant subtree's code once; a subtree that fails stays code and fails per record. */
  #fold(code: string[], ref: string): Operand | undefined {
    try {
      const run = this.#assemble([
        'return function constant() {',
        'const rec = undefined;',
        ...code,
        `return ${ref};`,
        '};',
      ]) as () => unknown;
      const v = run();
      return isPrimitive(v) || v === null ? this.#constant(v) : undefined;
    } catch {
      return undefined;
    }
  }

  #constant(v: unknown): Operand {
    return { ref: literal(v) ?? this.#param(v), known: true, value: v };
  }

  #build(n: CheckedNode): Built {
    const meta = n.meta;
    if (meta.alternate !== undefined) return this.#interpreted(n);
    if (meta.macro !== undefined) return this.#macro(n);
    if (!this.#plainOnly && INT_OPS.has(n.op) && this.#intInDoubles(n)) {
      return this.#viaDoubles(
        n,
        (x) => `BigInt(${x})`,
        () => this.#build(n),
      );
    }
    if (!this.#plainOnly && this.#toText(n)) {
      const arg = (n.args as [string, CheckedNode[]])[1][0];
      return this.#viaDoubles(
        arg,
        (x) => `String(${x})`,
        () => this.#build(n),
      );
    }
    switch (n.op) {
      case 'value': {
        const v = n.args;
        if (isPrimitive(v) || v === null) return { ref: this.#constant(v).ref, constant: true };
        return { ref: this.#param(v), constant: false };
      }
      case 'id':
        return this.#id(n);
      case '.':
        return this.#field(n);
      case '[]':
        return this.#index(n);
      case '&&':
      case '||':
        return this.#logical(n);
      case '?:':
        return this.#ternary(n);
      case '!_':
      case '-_':
        return this.#unary(n);
      case 'call':
        return this.#call(n, false);
      case 'rcall':
        return this.#call(n, true);
      case 'list':
        return this.#list(n);
      case 'map':
        return this.#map(n);
      case '+':
      case '-':
      case '*':
      case '/':
      case '%':
      case '==':
      case '!=':
      case '<':
      case '<=':
      case '>':
      case '>=':
        return this.#binary(n);
      default:
        // `in`, optionals, comprehensions: the interpreter's business.
        return this.#interpreted(n);
    }
  }

  // --- ints in doubles
  //
  // CEL ints are bigints, and each bigint operation allocates. An int-typed subtree made of
  // int literals, int(double) and + - * % is computed in doubles instead, which is exact while
  // every step is a safe integer (|x| < 2^53; checked after each step). When a step is not
  // (or int() gets no double), the subtree is evaluated again the general way: until then only
  // the operands' own general code ran, in the general order, so values and errors are the same.

  /** Set while emitting either path of a subtree in doubles: one level of that is enough. */
  #plainOnly = false;

  /** Whether the int-typed subtree `n` can be computed in doubles. */
  #intInDoubles(n: CheckedNode): boolean {
    if (n.meta.alternate !== undefined || n.meta.macro !== undefined) return false;
    switch (n.op) {
      case 'value':
        return typeof n.args === 'bigint' && isSafeInt(n.args);
      case 'call':
        return this.#intOfDouble(n) !== undefined;
      case '-_':
        return this.#intInDoubles(n.args as CheckedNode);
      default: {
        if (!INT_OPS.has(n.op)) return false;
        const [l, r] = n.args as [CheckedNode, CheckedNode];
        return this.#intInDoubles(l) && this.#intInDoubles(r);
      }
    }
  }

  /** `int(x)` when its overload for a double truncates as the library's does; else undefined. */
  #intOfDouble(n: CheckedNode): CheckedNode | undefined {
    const [name, args] = n.args as [string, CheckedNode[]];
    if (n.op !== 'call' || name !== 'int' || args.length !== 1) return undefined;
    const h = this.#overload(n, args[0], 0);
    return h && behaves(() => h.call(this.#ev, 2.7) === 2n && h.call(this.#ev, -2.7) === -2n)
      ? args[0]
      : undefined;
  }

  /** `string(i)` / `to_string(i)` of an int subtree computed in doubles (the decimal text of a safe integer is the same). */
  #toText(n: CheckedNode): boolean {
    if (n.op !== 'call') return false;
    const [name, args] = n.args as [string, CheckedNode[]];
    if ((name !== 'string' && name !== 'to_string') || args.length !== 1) return false;
    if (args[0].op === 'value' || !this.#intInDoubles(args[0])) return false;
    const h = this.#overload(n, args[0], 0n);
    return (
      h !== undefined && behaves(() => h.call(this.#ev, 123n) === '123' && h.call(this.#ev, -45n) === '-45')
    );
  }

  /** The handler the library picks for a one-argument call given `sample`. */
  #overload(n: CheckedNode, arg: CheckedNode, sample: unknown): Handler | undefined {
    const types = [this.#ev.debugRuntimeType(sample, arg.checkedType)];
    return n.candidates?.findFunction(types)?.handler;
  }

  /** `exit(double)` of `n` computed in doubles, or `general()` when a step leaves the safe integers. */
  #viaDoubles(n: CheckedNode, exit: (x: string) => string, general: () => Built): Built {
    const v = this.#name();
    const label = this.#name('L');
    this.#plainOnly = true;
    try {
      this.#emit(`let ${v};`);
      this.#emit(`${label}: {`);
      const x = this.#double(n, label);
      this.#emit(`${v} = ${exit(x)};`);
      this.#emit('}');
      const g = this.#capture(general);
      this.#emit(`if (${v} === undefined) { ${g.code.join('\n')}\n${v} = ${g.result.ref}; }`);
      return { ref: v, constant: g.result.constant };
    } finally {
      this.#plainOnly = false;
    }
  }

  /** Emits `n` (see #intInDoubles) as a double; `break label` where the general way must take over. */
  #double(n: CheckedNode, label: string): string {
    if (n.op === 'value') return literal(Number(n.args as bigint)) as string;
    const v = this.#name();
    if (n.op === 'call') {
      const x = this.#node(this.#intOfDouble(n) as CheckedNode).ref;
      this.#emit(`if (typeof ${x} !== "number") break ${label};`);
      this.#emit(`const ${v} = Math.trunc(${x});`);
    } else if (n.op === '-_') {
      this.#emit(`const ${v} = -${this.#double(n.args as CheckedNode, label)};`);
      return v;
    } else {
      const [l, r] = n.args as [CheckedNode, CheckedNode];
      const a = this.#double(l, label);
      const b = this.#double(r, label);
      if (n.op === '%') this.#emit(`if (${b} === 0) break ${label};`);
      this.#emit(`const ${v} = ${a} ${n.op} ${b};`);
    }
    this.#emit(`if (!Number.isSafeInteger(${v})) break ${label};`);
    return v;
  }

  #interpreted(n: CheckedNode): Built {
    const node = this.#param(n);
    const v = this.#name();
    this.#emit(`const ${v} = ${node}.evaluate(ev, ${node}, s.ctx);`);
    return { ref: v, constant: false };
  }

  /** A record field (or `record`, `meta`): plain values straight from the object, the rest as the interpreter does. */
  #id(n: CheckedNode): Built {
    const name = n.args as string;
    if (name === 'meta') return this.#interpreted(n);
    const node = this.#param(n);
    const slow = `${node}.evaluate(ev, ${node}, s.ctx)`;
    const v = this.#name();
    if (name === 'record') {
      this.#emit(
        `const ${v} = typeof rec === "string" || typeof rec === "number" || typeof rec === "boolean" || typeof rec === "bigint" || isPlainObject(rec) ? rec : ${slow};`,
      );
      return { ref: v, constant: false };
    }
    this.#readsRecord = true;
    const key = keyLiteral(name);
    // `o` inherits from Object.prototype at most, so a plain value under a name Object.prototype
    // lacks is the record's own (what the interpreter reads); Object.hasOwn is not inlined.
    this.#emit(`let ${v} = o === undefined ? undefined : o[${key}];`);
    this.#emit(`if (!(${plain(v)} && !(${key} in ObjectPrototype))) ${v} = ${slow};`);
    return { ref: v, constant: false };
  }

  #field(n: CheckedNode): Built {
    const [left, key] = n.args as [CheckedNode, string];
    const l = this.#node(left).ref;
    const k = keyLiteral(key);
    const handle = this.#param(n.handle);
    const node = this.#param(n);
    const v = this.#name();
    this.#emit(`let ${v} = isOrdinaryObject(${l}) ? ${l}[${k}] : undefined;`);
    this.#emit(
      `if (!(${plain(v)} && !(${k} in ObjectPrototype))) ${v} = ${handle}(${l}, ${k}, ${node}, ev);`,
    );
    return { ref: v, constant: false };
  }

  #index(n: CheckedNode): Built {
    const [left, right] = n.args as [CheckedNode, CheckedNode];
    const l = this.#node(left).ref;
    const r = this.#node(right).ref;
    const handle = this.#param(n.handle);
    const node = this.#param(n);
    const v = this.#name();
    this.#emit(`let ${v} = indexRead(${l}, ${r});`);
    this.#emit(`if (${v} === MISS) ${v} = ${handle}(${l}, ${r}, ${node}, ev);`);
    return { ref: v, constant: false };
  }

  #logical(n: CheckedNode): Built {
    const [left, right] = n.args as [CheckedNode, CheckedNode];
    // `||` is decided by a true operand, `&&` by a false one, even when the other fails.
    const decisive = n.op === '||';
    const a = this.#name();
    const v = this.#name();
    const e = this.#name('e');
    const l = this.#capture(() => this.#node(left));
    this.#emit(`let ${a};`);
    this.#emit(`try { ${l.code.join('\n')}\n${a} = ${l.result.ref}; } catch (${e}) { ${a} = ${e}; }`);
    this.#emit(`let ${v};`);
    this.#emit(`if (${a} === ${decisive}) ${v} = ${a};`);
    const r = this.#capture(() => this.#node(right));
    const b = r.result.ref;
    const leftNode = this.#param(left);
    this.#emit(`else { ${r.code.join('\n')}`);
    this.#emit(
      `${v} = ${a} === ${!decisive} && typeof ${b} === "boolean" ? ${b} : logicalOutcome(ev, ${decisive}, ${leftNode}, ${a}, ${b}); }`,
    );
    return { ref: v, constant: l.result.known && r.result.known };
  }

  #ternary(n: CheckedNode): Built {
    const [cond, yes, no] = n.args as [CheckedNode, CheckedNode, CheckedNode];
    const c = this.#node(cond);
    const v = this.#name();
    const a = this.#capture(() => this.#node(yes));
    const b = this.#capture(() => this.#node(no));
    const handle = this.#param(n.handle);
    const node = this.#param(n);
    this.#emit(`let ${v};`);
    this.#emit(`if (${c.ref} === true) { ${a.code.join('\n')}\n${v} = ${a.result.ref}; }`);
    this.#emit(`else if (${c.ref} === false) { ${b.code.join('\n')}\n${v} = ${b.result.ref}; }`);
    this.#emit(`else ${v} = ${handle}(${c.ref}, ev, ${node}, s.ctx);`);
    return { ref: v, constant: c.known && a.result.known && b.result.known };
  }

  #unary(n: CheckedNode): Built {
    const operand = this.#node(n.args as CheckedNode);
    const x = operand.ref;
    const handle = this.#param(n.handle);
    const node = this.#param(n);
    const v = this.#name();
    const fast =
      n.op === '!_'
        ? `typeof ${x} === "boolean" ? !${x}`
        : // `-int` does not check the range either (the library's own handler is `-a`).
          `typeof ${x} === "number" || typeof ${x} === "bigint" ? -${x}`;
    this.#emit(`const ${v} = ${fast} : ${handle}(${x}, ${node}, ev);`);
    return { ref: v, constant: operand.known };
  }

  #binary(n: CheckedNode): Built {
    const [left, right] = n.args as [CheckedNode, CheckedNode];
    const a = this.#node(left);
    const b = this.#node(right);
    const handle = this.#param(n.handle);
    const node = this.#param(n);
    const v = this.#name();
    const slow = `${handle}(${a.ref}, ${b.ref}, ${node}, ev)`;
    this.#emit(`let ${v};`);
    const branches = binaryBranches(n.op, a, b, v, slow);
    this.#emit(branches.length ? `${branches.join('\nelse ')}\nelse ${v} = ${slow};` : `${v} = ${slow};`);
    return { ref: v, constant: a.known && b.known };
  }

  #call(n: CheckedNode, receiver: boolean): Built {
    const name = (n.args as [string])[0];
    const argNodes = receiver
      ? [
          (n.args as [string, CheckedNode, CheckedNode[]])[1],
          ...(n.args as [string, CheckedNode, CheckedNode[]])[2],
        ]
      : (n.args as [string, CheckedNode[]])[1];
    // Last to first, as the interpreter evaluates them.
    const args = new Array<Operand>(argNodes.length);
    for (let i = argNodes.length - 1; i >= 0; i--) args[i] = this.#node(argNodes[i]);
    const refs = args.map((a) => a.ref).join(', ');
    const handle = this.#param(n.handle);
    const node = this.#param(n);
    // The library's entry point for this call site, with its error positions.
    const viaLibrary = receiver ? `${handle}([${refs}], ev, ${node})` : `${handle}([${refs}], ${node}, ev)`;
    const v = this.#name();
    this.#emit(`let ${v};`);
    const branches = this.#overloadBranches(n, argNodes, args, receiver, v, viaLibrary);
    this.#emit(
      branches.length ? `${branches.join('\nelse ')}\nelse ${v} = ${viaLibrary};` : `${v} = ${viaLibrary};`,
    );
    return { ref: v, constant: !IMPURE.has(name) && args.every((a) => a.known) };
  }

  /**
   * One branch per handler: the overload the library picks for each combination of primitive
   * argument types, resolved now as the library resolves it at run time. A handler that
   * throws is run again by the library, which attaches the call's position to the error.
   */
  #overloadBranches(
    n: CheckedNode,
    argNodes: CheckedNode[],
    args: Operand[],
    receiver: boolean,
    v: string,
    viaLibrary: string,
  ): string[] {
    const candidates = n.candidates;
    if (!candidates) return [];
    const typesPerArg = args.map((a): readonly Primitive[] => {
      if (!a.known) return PRIMITIVES;
      const t = typeof a.value;
      return isPrimitive(a.value) ? [t as Primitive] : [];
    });
    const count = typesPerArg.reduce((p, ts) => p * ts.length, 1);
    if (count === 0) return [];
    const refs = args.map((a) => a.ref);
    const call = (h: string) =>
      `{ try { ${v} = ${h}.call(ev${refs.map((r) => `, ${r}`).join('')}); } catch { ${v} = ${viaLibrary}; } }`;
    if (count > MAX_COMBINATIONS) {
      const resolver = this.#param(this.#runtimeResolver(n, argNodes, receiver));
      const h = this.#name('h');
      this.#emit(`let ${h};`);
      return [`if ((${h} = ${resolver}([${refs.join(', ')}])) !== undefined) ${call(h)}`];
    }
    const ev = this.#ev;
    const byHandler = new Map<Handler, Primitive[][]>();
    for (const combo of combinations(typesPerArg)) {
      const types = combo.map((t, i) => ev.debugRuntimeType(SAMPLE[t], argNodes[i].checkedType));
      const decl = receiver
        ? candidates.findFunction(types.slice(1), types[0])
        : candidates.findFunction(types);
      if (!decl) continue;
      const list = byHandler.get(decl.handler) ?? [];
      list.push(combo);
      byHandler.set(decl.handler, list);
    }
    const branches: string[] = [];
    for (const [handler, combos] of byHandler) {
      const cond = comboCondition(combos, args);
      branches.push(`if (${cond}) ${call(this.#param(handler))}`);
    }
    return branches;
  }

  /** For call sites with many arguments: the overload per combination of primitive types, found at first use. */
  #runtimeResolver(
    n: CheckedNode,
    argNodes: CheckedNode[],
    receiver: boolean,
  ): (values: unknown[]) => Handler | undefined {
    const ev = this.#ev;
    const candidates = n.candidates;
    const cache = new Map<string, Handler | null>();
    return (values) => {
      let key = '';
      for (const x of values) {
        if (!isPrimitive(x)) return undefined;
        key += (typeof x)[1];
      }
      let h = cache.get(key);
      if (h === undefined) {
        const types = values.map((x, i) => ev.debugRuntimeType(x, argNodes[i].checkedType));
        const decl = receiver
          ? candidates?.findFunction(types.slice(1), types[0])
          : candidates?.findFunction(types);
        h = decl ? decl.handler : null;
        cache.set(key, h);
      }
      return h ?? undefined;
    };
  }

  #list(n: CheckedNode): Built {
    const items = n.args as CheckedNode[];
    const refs = new Array<string>(items.length);
    for (let i = items.length - 1; i >= 0; i--) refs[i] = this.#node(items[i]).ref;
    const v = this.#name();
    this.#emit(`const ${v} = [${refs.join(', ')}];`);
    return { ref: v, constant: false };
  }

  #map(n: CheckedNode): Built {
    const v = this.#name();
    this.#emit(`const ${v} = {};`);
    for (const [key, value] of n.args as [CheckedNode, CheckedNode][]) {
      const k = this.#node(key).ref;
      const x = this.#node(value).ref;
      this.#emit(`mapSet(${v}, ${k}, ${x});`);
    }
    return { ref: v, constant: false };
  }

  #macro(n: CheckedNode): Built {
    const macro = n.meta.macro;
    const name = n.op === 'call' ? (n.args as [string])[0] : undefined;
    if (name === 'has' && macro?.macroHasProps) return this.#has(macro.macroHasProps);
    if (name === 'coalesce' && macro?.args) return this.#coalesce(macro.args);
    return this.#interpreted(n);
  }

  /** `has(a.b.c)`: the interpreter's walk, with plain objects read directly. */
  #has(props: CheckedNode[]): Built {
    const root = this.#node(props[props.length - 1]).ref;
    const walk = this.#param(hasWalk(this.#ev, props.slice(0, -1)));
    const v = this.#name();
    this.#emit(`const ${v} = ${walk}(${root});`);
    return { ref: v, constant: false };
  }

  /** `coalesce(a, b, ...)`: the first argument that is neither null nor missing. */
  #coalesce(argNodes: CheckedNode[]): Built {
    const v = this.#name();
    const label = this.#name('L');
    this.#emit(`let ${v} = null;`);
    this.#emit(`${label}: {`);
    for (const argNode of argNodes) {
      const x = this.#name();
      const e = this.#name('e');
      const arg = this.#capture(() => this.#node(argNode));
      this.#emit(`let ${x};`);
      this.#emit(
        `try { ${arg.code.join('\n')}\n${x} = ${arg.result.ref}; } catch (${e}) { if (!isMissing(${e})) throw ${e}; }`,
      );
      this.#emit(`if (${x} !== null && ${x} !== undefined) { ${v} = ${x}; break ${label}; }`);
    }
    this.#emit('}');
    return { ref: v, constant: false };
  }
}

function* combinations(typesPerArg: readonly (readonly Primitive[])[]): Generator<Primitive[]> {
  if (typesPerArg.length === 0) {
    yield [];
    return;
  }
  const [first, ...rest] = typesPerArg;
  for (const t of first) for (const tail of combinations(rest)) yield [t, ...tail];
}

/** The test that the arguments have one of `combos`' types (arguments known at compile time need none). */
function comboCondition(combos: Primitive[][], args: Operand[]): string {
  const perArg = args.map((_, i) => new Set(combos.map((c) => c[i])));
  const product = perArg.reduce((p, s) => p * s.size, 1);
  const test = (i: number, ts: Iterable<Primitive>) =>
    `(${[...ts].map((t) => `typeof ${args[i].ref} === "${t}"`).join(' || ')})`;
  if (product === combos.length) {
    const parts = args.flatMap((a, i) => (a.known ? [] : [test(i, perArg[i])]));
    return parts.length ? parts.join(' && ') : 'true';
  }
  return combos
    .map((c) => {
      const parts = args.flatMap((a, i) => (a.known ? [] : [test(i, [c[i]])]));
      return parts.length ? `(${parts.join(' && ')})` : 'true';
    })
    .join(' || ');
}

interface FastCase {
  a: Primitive;
  b: Primitive;
  /** The value, from the operands' names. */
  value: (a: string, b: string) => string;
  /** Further condition on the operands (a zero divisor goes to the library for its error). */
  when?: (a: string, b: string) => string;
  /** Condition on the result `v`; false sends the operands to the library (int overflow). */
  check?: (v: string) => string;
}

const inRange = (v: string) => `${v} <= MAX_INT && ${v} >= MIN_INT`;

/** Arithmetic as the registered overloads compute it: double with int in double (see environment.ts). */
function arithmetic(op: '+' | '-' | '*'): FastCase[] {
  const cases: FastCase[] = [
    { a: 'number', b: 'number', value: (a, b) => `${a} ${op} ${b}` },
    { a: 'number', b: 'bigint', value: (a, b) => `${a} ${op} Number(${b})` },
    { a: 'bigint', b: 'number', value: (a, b) => `Number(${a}) ${op} ${b}` },
    { a: 'bigint', b: 'bigint', value: (a, b) => `${a} ${op} ${b}`, check: inRange },
  ];
  if (op === '+') cases.push({ a: 'string', b: 'string', value: (a, b) => `${a} + ${b}` });
  return cases;
}

const NUMERIC: readonly Primitive[] = ['number', 'bigint'];

function comparisonCases(op: string): FastCase[] {
  const cases: FastCase[] = [];
  for (const a of NUMERIC) for (const b of NUMERIC) cases.push({ a, b, value: (x, y) => `${x} ${op} ${y}` });
  cases.push({ a: 'string', b: 'string', value: (x, y) => `${x} ${op} ${y}` });
  return cases;
}

const FAST_CASES: Record<string, FastCase[]> = {
  '+': arithmetic('+'),
  '-': arithmetic('-'),
  '*': arithmetic('*'),
  '/': [
    { a: 'number', b: 'number', value: (a, b) => `${a} / ${b}` },
    { a: 'number', b: 'bigint', value: (a, b) => `${a} / Number(${b})` },
    { a: 'bigint', b: 'number', value: (a, b) => `Number(${a}) / ${b}` },
    // The library's `int / int` checks the divisor only.
    { a: 'bigint', b: 'bigint', value: (a, b) => `${a} / ${b}`, when: (_a, b) => `${b} !== 0n` },
  ],
  '%': [
    { a: 'number', b: 'number', value: (a, b) => `${a} % ${b}`, when: (_a, b) => `${b} !== 0` },
    { a: 'number', b: 'bigint', value: (a, b) => `${a} % Number(${b})`, when: (_a, b) => `${b} !== 0n` },
    { a: 'bigint', b: 'number', value: (a, b) => `Number(${a}) % ${b}`, when: (_a, b) => `${b} !== 0` },
    { a: 'bigint', b: 'bigint', value: (a, b) => `${a} % ${b}`, when: (_a, b) => `${b} !== 0n` },
  ],
  '<': comparisonCases('<'),
  '<=': comparisonCases('<='),
  '>': comparisonCases('>'),
  '>=': comparisonCases('>='),
};

/**
 * `if (...) v = ...` per pairing of operand types with a fast path; an operand known at compile
 * time drops the pairings it cannot be and needs no test.
 */
function binaryBranches(op: string, a: Operand, b: Operand, v: string, slow: string): string[] {
  if (op === '==' || op === '!=') return equalityBranches(op === '==' ? '===' : '!==', a, b, v);
  const typeOf = (x: Operand) => (x.known ? (x.value === null ? 'null' : typeof x.value) : undefined);
  const ta = typeOf(a);
  const tb = typeOf(b);
  const out: string[] = [];
  for (const c of FAST_CASES[op] ?? []) {
    if ((ta !== undefined && ta !== c.a) || (tb !== undefined && tb !== c.b)) continue;
    const cond: string[] = [];
    if (ta === undefined) cond.push(`typeof ${a.ref} === "${c.a}"`);
    if (tb === undefined) cond.push(`typeof ${b.ref} === "${c.b}"`);
    if (c.when) cond.push(c.when(a.ref, b.ref));
    const test = cond.length ? cond.join(' && ') : 'true';
    const value = c.value(a.ref, b.ref);
    out.push(
      c.check
        ? `if (${test}) { ${v} = ${value}; if (!(${c.check(v)})) ${v} = ${slow}; }`
        : `if (${test}) ${v} = ${value};`,
    );
  }
  return out;
}

/** Equality of two values of one primitive type is `===`; any other pairing is the library's. */
function equalityBranches(js: '===' | '!==', a: Operand, b: Operand, v: string): string[] {
  const known = a.known ? a : b.known ? b : undefined;
  const other = known === a ? b : a;
  if (known === undefined) {
    return [
      `if (typeof ${a.ref} === typeof ${b.ref} && typeof ${a.ref} !== "object" && typeof ${a.ref} !== "function") ${v} = ${a.ref} ${js} ${b.ref};`,
    ];
  }
  if (!isPrimitive(known.value)) return [];
  if (other.known)
    return typeof other.value === typeof known.value ? [`if (true) ${v} = ${a.ref} ${js} ${b.ref};`] : [];
  return [`if (typeof ${other.ref} === "${typeof known.value}") ${v} = ${a.ref} ${js} ${b.ref};`];
}

// --- helpers the generated code calls

/** A list item or map entry that is a plain value, or MISS. */
function indexRead(obj: unknown, k: unknown): unknown {
  if (typeof k === 'bigint') {
    if (Array.isArray(obj) && k >= 0n && k < BigInt(obj.length)) {
      const v: unknown = obj[Number(k)];
      if (isPrimitive(v) || v === null) return v;
    }
  } else if (typeof k === 'string' && isPlainObject(obj) && hasOwn(obj, k)) {
    const v = obj[k];
    if (isPrimitive(v) || v === null) return v;
  }
  return MISS;
}

/** An entry of a map literal; keys that would reach the prototype are left out, as the library does. */
function mapSet(out: Record<string, unknown>, key: unknown, value: unknown): void {
  const k = key as string;
  if (k === '__proto__' || k === 'constructor' || k === 'prototype') return;
  out[k] = value;
}

function isMissing(e: unknown): boolean {
  return e instanceof EvaluationError && MISSING_CODES.has(e.code);
}

/** The walk of `has(a.b.c)` below its root, as the interpreter does it. */
function hasWalk(ev: Evaluator, steps: CheckedNode[]): (root: unknown) => boolean {
  return (root) => {
    let obj = root;
    for (let i = steps.length - 1; i >= 0; i--) {
      const node = steps[i];
      const key = (node.args as [unknown, string])[1];
      obj = isPlainObject(obj)
        ? hasOwn(obj, key)
          ? obj[key]
          : undefined
        : ev.debugType(obj).fieldLazy(obj, key, node, ev);
      if (obj !== undefined) continue;
      if (i > 0 && node.op === '.') throw ev.createError('no_such_key', `No such key: ${key}`, node);
      break;
    }
    return obj !== undefined;
  };
}

/** The interpreter's verdict on `&&`/`||` when an operand is not a bool (or failed). */
function logicalOutcome(
  ev: Evaluator,
  decisive: boolean,
  left: CheckedNode,
  a: unknown,
  b: unknown,
): unknown {
  if (b === decisive) return b;
  if (b === !decisive) {
    if (a === b) return b;
    throw a instanceof Error ? a : logicalOperandError(ev, a, left);
  }
  // The library names the left operand here too.
  throw logicalOperandError(ev, b, left);
}

function logicalOperandError(ev: Evaluator, v: unknown, node: CheckedNode): Error {
  return ev.createError(
    'invalid_logical_operand',
    `Logical operator requires bool operands, got '${ev.debugRuntimeType(v, undefined)}'`,
    node,
  );
}
