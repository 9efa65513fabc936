/**
 * A copy of any value that can always be encoded: the error path writes records that failed,
 * often because they could not be encoded (nested too deep for JSON.stringify, a cycle a
 * transform made, a BigInt, a 10 MB string). Writing the error record itself must never fail on
 * the same content, so it gets a plain JSON tree bounded in depth and size, marked when cut.
 */

export interface SafeValueLimits {
  /** Deeper objects and arrays are replaced by a marker string. */
  maxDepth: number;
  /** Rough budget of encoded characters; past it strings are cut and members left out. */
  maxBytes: number;
}

export interface SafeValue {
  value: unknown;
  /** True when anything was cut, replaced or left out: the copy is not the original. */
  truncated: boolean;
}

export const ERROR_OUTPUT_LIMITS: SafeValueLimits = { maxDepth: 64, maxBytes: 1024 * 1024 };

export function safeValue(input: unknown, limits: SafeValueLimits = ERROR_OUTPUT_LIMITS): SafeValue {
  const state = { budget: limits.maxBytes, truncated: false, seen: new Set<object>() };
  const value = copy(input, 0, limits, state);
  return { value, truncated: state.truncated };
}

interface State {
  budget: number;
  truncated: boolean;
  seen: Set<object>;
}

function copy(v: unknown, depth: number, limits: SafeValueLimits, st: State): unknown {
  switch (typeof v) {
    case 'string':
      return copyString(v, st);
    case 'number':
      st.budget -= 8;
      if (Number.isFinite(v)) return v;
      st.truncated = true;
      return String(v);
    case 'boolean':
      st.budget -= 5;
      return v;
    case 'bigint':
      st.truncated = true; // now a string: not the original type
      return copyString(v.toString(), st);
    case 'undefined':
    case 'function':
    case 'symbol':
      return undefined;
  }
  if (v === null) {
    st.budget -= 4;
    return null;
  }
  const o = v as object;
  if (o instanceof Date) return Number.isNaN(o.getTime()) ? null : copyString(o.toISOString(), st);
  if (o instanceof Uint8Array)
    return copyString(Buffer.from(o.buffer, o.byteOffset, o.byteLength).toString('base64'), st);
  if (depth >= limits.maxDepth) {
    st.truncated = true;
    return `[cut: nested deeper than ${limits.maxDepth} levels]`;
  }
  if (st.seen.has(o)) {
    st.truncated = true;
    return '[cut: circular reference]';
  }
  st.seen.add(o);
  try {
    if (Array.isArray(o) || o instanceof Set)
      return copyArray([...(o as Iterable<unknown>)], depth, limits, st);
    const entries =
      o instanceof Map ? [...o.entries()].map(([k, x]) => [String(k), x] as const) : Object.entries(o);
    return copyObject(entries, depth, limits, st);
  } finally {
    st.seen.delete(o);
  }
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const LONE_SURROGATE_ALL = new RegExp(LONE_SURROGATE.source, 'g');

function copyString(s: string, st: State): string {
  // Lone surrogates are legal in JS strings but not in UTF-8: databases and readers reject them.
  const text = LONE_SURROGATE.test(s) ? s.replace(LONE_SURROGATE_ALL, '\uFFFD') : s;
  if (text !== s) st.truncated = true;
  const room = Math.max(0, st.budget - 2);
  st.budget -= text.length + 2;
  if (text.length <= room) return text;
  st.truncated = true;
  return `${text.slice(0, room)}…[cut: ${text.length - room} more characters]`;
}

function copyArray(items: unknown[], depth: number, limits: SafeValueLimits, st: State): unknown[] {
  const out: unknown[] = [];
  for (let i = 0; i < items.length; i++) {
    if (st.budget <= 0) {
      st.truncated = true;
      out.push(`[cut: ${items.length - i} more items]`);
      break;
    }
    const x = copy(items[i], depth + 1, limits, st);
    out.push(x === undefined ? null : x);
    st.budget -= 1;
  }
  return out;
}

function copyObject(
  entries: readonly (readonly [string, unknown])[],
  depth: number,
  limits: SafeValueLimits,
  st: State,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (let i = 0; i < entries.length; i++) {
    if (st.budget <= 0) {
      st.truncated = true;
      out['…'] = `[cut: ${entries.length - i} more members]`;
      break;
    }
    const [k, x] = entries[i];
    const key = copyString(k, st);
    const value = copy(x, depth + 1, limits, st);
    if (value !== undefined) out[key] = value;
    st.budget -= 2;
  }
  return out;
}
