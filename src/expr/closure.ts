// Compiles a checked CEL AST into a tree of JavaScript closures.
//
// The library's interpreter walks the AST for every record: each node dispatches through
// its operator table, resolves overloads by the runtime types of its operands and allocates
// on the way. Here each node becomes one closure built once, from the AST only (never from
// the expression's text: nothing is eval'ed). A closure takes the fast path when its operands
// are the plain values records are made of (numbers, strings, bools, ints) and otherwise hands
// the values it already computed to the very handler the interpreter would have called
// (`node.handle`, set by the type check), so results and errors are the interpreter's own.
// Nodes with no fast path (comprehension macros, optionals, constants of library types) are
// evaluated by the interpreter itself, subtree and all.
//
// Evaluation order follows the interpreter's, which matters for errors (which one is
// reported) and for now()/uuid_v4(): operands left to right, call arguments and list items
// from last to first.

import type { ASTNode } from '@marcbachmann/cel-js';
import { EvaluationError } from '@marcbachmann/cel-js';

/** What a compiled closure reads: the record, its metadata, and the interpreter's context over both. */
export interface EvalScope {
  value: unknown;
  meta: unknown;
  /** The library's root context over this scope, for nodes the interpreter evaluates. */
  readonly ctx: unknown;
}

export type Closure = (s: EvalScope) => unknown;

/** The parts of the library's evaluator a closure hands values to (duck-typed: it is not exported). */
export interface Evaluator {
  debugRuntimeType(value: unknown, checkedType: unknown): unknown;
  debugType(value: unknown): { fieldLazy(obj: unknown, key: string, node: unknown, ev: Evaluator): unknown };
  createError(code: string, message: string, node: unknown): Error;
}

/** The fields the type check leaves on a node (library internals, stable within a major version). */
interface CheckedNode {
  op: string;
  args: unknown;
  checkedType?: unknown;
  handle?: (...a: unknown[]) => unknown;
  candidates?: { findFunction(types: unknown[], receiver?: unknown): { handler: Handler } | null };
  macroHasProps?: CheckedNode[];
  readonly meta: { alternate?: unknown; macro?: { macroHasProps?: CheckedNode[]; args?: CheckedNode[] } };
  evaluate(ev: Evaluator, node: CheckedNode, ctx: unknown): unknown;
}

type Handler = (this: Evaluator, ...args: unknown[]) => unknown;

const MAX_INT = 9223372036854775807n;
const MIN_INT = -9223372036854775808n;
const hasOwn = Object.hasOwn;

/** Missing-value errors that `coalesce` treats as null (kept in step with its macro in functions.ts). */
const MISSING_CODES = new Set(['unknown_variable', 'no_such_key', 'index_out_of_bounds']);

/** Functions whose value changes between calls: never folded into constants. */
const IMPURE = new Set(['now', 'uuid_v4']);

function isPrimitive(v: unknown): boolean {
  const t = typeof v;
  return t === 'string' || t === 'number' || t === 'boolean' || t === 'bigint';
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null) return false;
  const c = (v as object).constructor;
  return c === Object || c === undefined;
}

/** `true` when the subtree yields the same value on every evaluation and needs no record. */
interface Compiled {
  fn: Closure;
  constant: boolean;
}

export class ClosureCompiler {
  readonly #ev: Evaluator;

  constructor(ev: Evaluator) {
    this.#ev = ev;
  }

  compile(ast: ASTNode): Closure {
    return this.#node(ast as unknown as CheckedNode).fn;
  }

  #node(n: CheckedNode): Compiled {
    const c = this.#build(n);
    if (!c.constant) return c;
    return fold(c.fn) ?? { fn: c.fn, constant: false };
  }

  #build(n: CheckedNode): Compiled {
    const meta = n.meta;
    if (meta.alternate !== undefined) return this.#interpreted(n);
    if (meta.macro !== undefined) return this.#macro(n);
    switch (n.op) {
      case 'value': {
        const v = n.args;
        return { fn: () => v, constant: isPrimitive(v) || v === null };
      }
      case 'id':
        return { fn: this.#id(n), constant: false };
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

  #interpreted(n: CheckedNode): Compiled {
    const ev = this.#ev;
    return { fn: (s) => n.evaluate(ev, n, s.ctx), constant: false };
  }

  /** A record field (or `record`, `meta`): primitives straight from the object, the rest as the interpreter does. */
  #id(n: CheckedNode): Closure {
    const ev = this.#ev;
    const name = n.args as string;
    const slow: Closure = (s) => n.evaluate(ev, n, s.ctx);
    if (name === 'record') {
      return (s) => (isPrimitive(s.value) || isPlainObject(s.value) ? s.value : slow(s));
    }
    if (name === 'meta') return slow;
    return (s) => {
      const rec = s.value;
      if (isPlainObject(rec) && hasOwn(rec, name)) {
        const v = rec[name];
        if (isPrimitive(v) || v === null) return v;
      }
      return slow(s);
    };
  }

  #field(n: CheckedNode): Compiled {
    const ev = this.#ev;
    const [left, key] = n.args as [CheckedNode, string];
    const l = this.#node(left).fn;
    const handle = n.handle as (o: unknown, k: string, node: CheckedNode, ev: Evaluator) => unknown;
    return {
      fn: (s) => {
        const obj = l(s);
        if (isPlainObject(obj) && hasOwn(obj, key)) {
          const v = obj[key];
          if (isPrimitive(v) || v === null) return v;
        }
        return handle(obj, key, n, ev);
      },
      constant: false,
    };
  }

  #index(n: CheckedNode): Compiled {
    const ev = this.#ev;
    const [left, right] = n.args as [CheckedNode, CheckedNode];
    const l = this.#node(left).fn;
    const r = this.#node(right).fn;
    const handle = n.handle as (o: unknown, k: unknown, node: CheckedNode, ev: Evaluator) => unknown;
    return {
      fn: (s) => {
        const obj = l(s);
        const k = r(s);
        if (typeof k === 'bigint' && Array.isArray(obj) && k >= 0n && k < BigInt(obj.length)) {
          const v = obj[Number(k)];
          if (isPrimitive(v) || v === null) return v;
        } else if (typeof k === 'string' && isPlainObject(obj) && hasOwn(obj, k)) {
          const v = obj[k];
          if (isPrimitive(v) || v === null) return v;
        }
        return handle(obj, k, n, ev);
      },
      constant: false,
    };
  }

  #logical(n: CheckedNode): Compiled {
    const ev = this.#ev;
    const [left, right] = n.args as [CheckedNode, CheckedNode];
    const lc = this.#node(left);
    const rc = this.#node(right);
    const l = lc.fn;
    const r = rc.fn;
    // `||` is decided by a true operand, `&&` by a false one, even when the other fails.
    const decisive = n.op === '||';
    const fn: Closure = (s) => {
      let a: unknown;
      try {
        a = l(s);
      } catch (e) {
        a = e;
      }
      if (a === decisive) return a;
      const b = r(s);
      if (a === !decisive && typeof b === 'boolean') return b;
      return logicalOutcome(ev, decisive, left, a, b);
    };
    return { fn, constant: lc.constant && rc.constant };
  }

  #ternary(n: CheckedNode): Compiled {
    const ev = this.#ev;
    const [cond, yes, no] = n.args as [CheckedNode, CheckedNode, CheckedNode];
    const cc = this.#node(cond);
    const yc = this.#node(yes);
    const nc = this.#node(no);
    const c = cc.fn;
    const a = yc.fn;
    const b = nc.fn;
    const handle = n.handle as (v: unknown, ev: Evaluator, node: CheckedNode, ctx: unknown) => unknown;
    return {
      fn: (s) => {
        const v = c(s);
        if (v === true) return a(s);
        if (v === false) return b(s);
        return handle(v, ev, n, s.ctx);
      },
      constant: cc.constant && yc.constant && nc.constant,
    };
  }

  #unary(n: CheckedNode): Compiled {
    const ev = this.#ev;
    const operand = this.#node(n.args as CheckedNode);
    const a = operand.fn;
    const handle = n.handle as (v: unknown, node: CheckedNode, ev: Evaluator) => unknown;
    const fn: Closure =
      n.op === '!_'
        ? (s) => {
            const v = a(s);
            return typeof v === 'boolean' ? !v : handle(v, n, ev);
          }
        : (s) => {
            const v = a(s);
            return typeof v === 'number' ? -v : handle(v, n, ev);
          };
    return { fn, constant: operand.constant };
  }

  #binary(n: CheckedNode): Compiled {
    const ev = this.#ev;
    const [left, right] = n.args as [CheckedNode, CheckedNode];
    const lc = this.#node(left);
    const rc = this.#node(right);
    const l = lc.fn;
    const r = rc.fn;
    const handle = n.handle as (a: unknown, b: unknown, node: CheckedNode, ev: Evaluator) => unknown;
    const slow = (a: unknown, b: unknown) => handle(a, b, n, ev);
    return { fn: binaryClosure(n.op, l, r, slow), constant: lc.constant && rc.constant };
  }

  #call(n: CheckedNode, receiver: boolean): Compiled {
    const ev = this.#ev;
    const name = (n.args as [string])[0];
    const argNodes = receiver
      ? [
          (n.args as [string, CheckedNode, CheckedNode[]])[1],
          ...(n.args as [string, CheckedNode, CheckedNode[]])[2],
        ]
      : (n.args as [string, CheckedNode[]])[1];
    const parts = argNodes.map((a) => this.#node(a));
    const args = parts.map((p) => p.fn);
    const handle = n.handle as (...a: unknown[]) => unknown;
    // The library's entry point for this call site, with its error positions.
    const viaLibrary = receiver
      ? (values: unknown[]) => handle(values, ev, n)
      : (values: unknown[]) => handle(values, n, ev);
    const resolve = this.#resolver(n, argNodes, receiver);
    const fn: Closure = (s) => {
      const values = evaluateAll(args, s);
      const h = resolve(values);
      if (h === undefined) return viaLibrary(values);
      try {
        return h.apply(ev, values);
      } catch {
        // The library runs it again and attaches the call's position to the error.
        return viaLibrary(values);
      }
    };
    const constant = !IMPURE.has(name) && parts.every((p) => p.constant);
    return { fn, constant };
  }

  /**
   * Per call site, the overload for the primitive types of the arguments, resolved once per
   * combination as the library resolves it at run time; undefined for other values.
   */
  #resolver(
    n: CheckedNode,
    argNodes: CheckedNode[],
    receiver: boolean,
  ): (values: unknown[]) => Handler | undefined {
    const ev = this.#ev;
    const candidates = n.candidates;
    const cache = new Map<number, Handler | null>();
    if (!candidates) return () => undefined;
    return (values) => {
      let key = 0;
      for (let i = 0; i < values.length; i++) {
        const t = TYPE_CODE[typeof values[i]];
        if (t === undefined) return undefined;
        key = key * 8 + t;
      }
      let h = cache.get(key);
      if (h === undefined) {
        const types = values.map((v, i) => ev.debugRuntimeType(v, argNodes[i].checkedType));
        const decl = receiver
          ? candidates.findFunction(types.slice(1), types[0])
          : candidates.findFunction(types);
        h = decl ? decl.handler : null;
        cache.set(key, h);
      }
      return h ?? undefined;
    };
  }

  #list(n: CheckedNode): Compiled {
    const parts = (n.args as CheckedNode[]).map((a) => this.#node(a));
    const items = parts.map((p) => p.fn);
    return { fn: (s) => evaluateAll(items, s), constant: false };
  }

  #map(n: CheckedNode): Compiled {
    const entries = (n.args as [CheckedNode, CheckedNode][]).map(
      ([k, v]) => [this.#node(k).fn, this.#node(v).fn] as const,
    );
    return {
      fn: (s) => {
        const out: Record<string, unknown> = {};
        for (const [k, v] of entries) {
          const key = k(s) as string;
          const value = v(s);
          if (key === '__proto__' || key === 'constructor' || key === 'prototype') continue;
          out[key] = value;
        }
        return out;
      },
      constant: false,
    };
  }

  #macro(n: CheckedNode): Compiled {
    const macro = n.meta.macro;
    const name = n.op === 'call' ? (n.args as [string])[0] : undefined;
    if (name === 'has' && macro?.macroHasProps)
      return { fn: this.#has(macro.macroHasProps), constant: false };
    if (name === 'coalesce' && macro?.args) return { fn: this.#coalesce(macro.args), constant: false };
    return this.#interpreted(n);
  }

  /** `has(a.b.c)`: the interpreter's walk, with plain objects read directly. */
  #has(props: CheckedNode[]): Closure {
    const ev = this.#ev;
    const root = this.#node(props[props.length - 1]).fn;
    const steps = props.slice(0, -1);
    return (s) => {
      let obj = root(s);
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

  #coalesce(argNodes: CheckedNode[]): Closure {
    const args = argNodes.map((a) => this.#node(a).fn);
    return (s) => {
      for (const a of args) {
        let v: unknown;
        try {
          v = a(s);
        } catch (e) {
          if (e instanceof EvaluationError && MISSING_CODES.has(e.code)) continue;
          throw e;
        }
        if (v !== null && v !== undefined) return v;
      }
      return null;
    };
  }
}

const TYPE_CODE: Record<string, number | undefined> = { string: 1, number: 2, bigint: 3, boolean: 4 };

/** Call arguments and list items, evaluated last to first as the interpreter does. */
function evaluateAll(fns: Closure[], s: EvalScope): unknown[] {
  let i = fns.length;
  const out = new Array<unknown>(i);
  while (i--) out[i] = fns[i](s);
  return out;
}

/** Evaluates a constant subtree once; a subtree that fails stays a closure and fails per record. */
function fold(fn: Closure): Compiled | undefined {
  const none: EvalScope = { value: undefined, meta: undefined, ctx: undefined };
  try {
    const v = fn(none);
    if (!(isPrimitive(v) || v === null)) return undefined;
    return { fn: () => v, constant: true };
  } catch {
    return undefined;
  }
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

function inIntRange(v: bigint): boolean {
  return v <= MAX_INT && v >= MIN_INT;
}

type Slow = (a: unknown, b: unknown) => unknown;

/**
 * Arithmetic and comparison on doubles (JSON numbers), strings, bools and ints, as the
 * registered overloads compute them (double with int in double, see environment.ts); any
 * other pairing, a zero divisor of `%` or an int overflow goes to the library for its error.
 */
function binaryClosure(op: string, l: Closure, r: Closure, slow: Slow): Closure {
  switch (op) {
    case '+':
      return (s) => {
        const a = l(s);
        const b = r(s);
        if (typeof a === 'number') {
          if (typeof b === 'number') return a + b;
          if (typeof b === 'bigint') return a + Number(b);
        } else if (typeof a === 'string') {
          if (typeof b === 'string') return a + b;
        } else if (typeof a === 'bigint') {
          if (typeof b === 'number') return Number(a) + b;
          if (typeof b === 'bigint') {
            const v = a + b;
            if (inIntRange(v)) return v;
          }
        }
        return slow(a, b);
      };
    case '-':
      return (s) => {
        const a = l(s);
        const b = r(s);
        if (typeof a === 'number') {
          if (typeof b === 'number') return a - b;
          if (typeof b === 'bigint') return a - Number(b);
        } else if (typeof a === 'bigint') {
          if (typeof b === 'number') return Number(a) - b;
          if (typeof b === 'bigint') {
            const v = a - b;
            if (inIntRange(v)) return v;
          }
        }
        return slow(a, b);
      };
    case '*':
      return (s) => {
        const a = l(s);
        const b = r(s);
        if (typeof a === 'number') {
          if (typeof b === 'number') return a * b;
          if (typeof b === 'bigint') return a * Number(b);
        } else if (typeof a === 'bigint') {
          if (typeof b === 'number') return Number(a) * b;
          if (typeof b === 'bigint') {
            const v = a * b;
            if (inIntRange(v)) return v;
          }
        }
        return slow(a, b);
      };
    case '/':
      return (s) => {
        const a = l(s);
        const b = r(s);
        if (typeof a === 'number') {
          if (typeof b === 'number') return a / b;
          if (typeof b === 'bigint') return a / Number(b);
        } else if (typeof a === 'bigint' && typeof b === 'number') return Number(a) / b;
        return slow(a, b);
      };
    case '%':
      return (s) => {
        const a = l(s);
        const b = r(s);
        if (typeof a === 'number' && b !== 0 && b !== 0n) {
          if (typeof b === 'number') return a % b;
          if (typeof b === 'bigint') return a % Number(b);
        } else if (typeof a === 'bigint' && typeof b === 'number' && b !== 0) return Number(a) % b;
        return slow(a, b);
      };
    case '==':
      return (s) => {
        const a = l(s);
        const b = r(s);
        return typeof a === typeof b && typeof a !== 'object' && typeof a !== 'function'
          ? a === b
          : slow(a, b);
      };
    case '!=':
      return (s) => {
        const a = l(s);
        const b = r(s);
        return typeof a === typeof b && typeof a !== 'object' && typeof a !== 'function'
          ? a !== b
          : slow(a, b);
      };
    case '<':
      return comparison(l, r, slow, (a, b) => a < b);
    case '<=':
      return comparison(l, r, slow, (a, b) => a <= b);
    case '>':
      return comparison(l, r, slow, (a, b) => a > b);
    default:
      return comparison(l, r, slow, (a, b) => a >= b);
  }
}

type Ordered = number | bigint | string;

function comparison(l: Closure, r: Closure, slow: Slow, cmp: (a: Ordered, b: Ordered) => boolean): Closure {
  return (s) => {
    const a = l(s);
    const b = r(s);
    const ta = typeof a;
    const tb = typeof b;
    if (
      (ta === 'number' || ta === 'bigint') && (tb === 'number' || tb === 'bigint')
        ? true
        : ta === 'string' && tb === 'string'
    ) {
      return cmp(a as Ordered, b as Ordered);
    }
    return slow(a, b);
  };
}
