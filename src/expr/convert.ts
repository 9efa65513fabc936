// Conversion of CEL runtime values back into plain JavaScript values.
//
// Inside an expression CEL ints are bigints, timestamps are Dates and durations/uints are
// library classes. Callers of CompiledExpr.evaluate() get JSON-friendly values instead:
// ints become numbers (bigint only beyond 2^53), timestamps ISO-8601 strings, durations
// their CEL text form ("90s"), maps plain objects, sets arrays. Containers are copied only
// when something inside them needs converting, so returning `record` unchanged is cheap.

import { Optional } from '@marcbachmann/cel-js';
import { Duration, UnsignedInt } from '@marcbachmann/cel-js/evaluator';

export function intToPlain(v: bigint): number | bigint {
  return v >= Number.MIN_SAFE_INTEGER && v <= Number.MAX_SAFE_INTEGER ? Number(v) : v;
}

export function toPlain(v: unknown): unknown {
  switch (typeof v) {
    case 'number':
    case 'string':
    case 'boolean':
      return v;
    case 'bigint':
      return intToPlain(v);
    case 'object':
      return v === null ? null : objectToPlain(v);
    default:
      return v;
  }
}

function objectToPlain(v: object): unknown {
  if (Array.isArray(v)) return arrayToPlain(v);
  if (v instanceof Date) return isoText(v);
  if (ArrayBuffer.isView(v)) return v;
  if (v instanceof Map) {
    const out: Record<string, unknown> = {};
    for (const [k, val] of v) out[String(k)] = toPlain(val);
    return out;
  }
  if (v instanceof Set) return Array.from(v, toPlain);
  if (v instanceof UnsignedInt) return intToPlain(v.valueOf());
  if (v instanceof Duration) return v.toString();
  if (v instanceof Optional) return v.hasValue() ? toPlain(v.value()) : null;
  const proto = Object.getPrototypeOf(v);
  if (proto === Object.prototype || proto === null) return recordToPlain(v as Record<string, unknown>);
  // CEL type values (`type(x)`) and anything exotic: their text form.
  return String(v);
}

// now() gives one Date per batch: its text is made once, not once per record.
let lastDate: Date | undefined;
let lastTime = Number.NaN;
let lastIso = '';

function isoText(d: Date): string {
  const t = d.getTime();
  if (d !== lastDate || t !== lastTime) {
    lastIso = d.toISOString();
    lastDate = d;
    lastTime = t;
  }
  return lastIso;
}

function arrayToPlain(a: unknown[]): unknown[] {
  for (let i = 0; i < a.length; i++) {
    const item = a[i];
    const conv = toPlain(item);
    if (conv !== item) {
      const out = a.slice(0, i);
      out.push(conv);
      for (let j = i + 1; j < a.length; j++) out.push(toPlain(a[j]));
      return out;
    }
  }
  return a;
}

function recordToPlain(o: Record<string, unknown>): Record<string, unknown> {
  let out: Record<string, unknown> | undefined;
  for (const k in o) {
    if (!Object.hasOwn(o, k)) continue;
    const item = o[k];
    const conv = toPlain(item);
    if (out === undefined) {
      if (conv === item) continue;
      out = {};
      for (const k2 in o) {
        if (k2 === k) break;
        if (Object.hasOwn(o, k2)) out[k2] = o[k2];
      }
    }
    out[k] = conv;
  }
  return out ?? o;
}
