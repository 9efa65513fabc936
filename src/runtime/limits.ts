/**
 * Input limits, checked where records enter a pipeline. A value nested too deep or a record
 * too large is not a record: the source routes its raw text to `<source>.errors` instead, so
 * it can never reach a sink batch. Depth matters because every later step that re-encodes a
 * value (JSON.stringify in sinks and on the error path, CEL, MySQL JSON columns) is recursive
 * and fails, or throws RangeError, somewhere between a hundred and a few thousand levels.
 */
import { Type } from '@sinclair/typebox';
import { Size } from '../spec/types.ts';

/**
 * 64 levels: far beyond real records (a few levels), under MySQL's JSON limit (100), and far
 * from the recursion limits of JSON.stringify, so a record plus the error envelope around it
 * can always be encoded again.
 */
export const DEFAULT_MAX_DEPTH = 64;
/** 1 MiB: the largest record Kinesis accepts and Kafka's default message.max.bytes. */
export const DEFAULT_MAX_RECORD_BYTES = 1024 * 1024;
/** How much of a refused input's text goes to the error output. */
export const EXCERPT_CHARS = 1024;

export interface InputLimits {
  maxDepth: number;
  maxRecordBytes: number;
}

/** Source options for the limits; spread into a source's option schema. */
export const LimitOptions = {
  max_depth: Type.Optional(
    Type.Integer({
      minimum: 1,
      maximum: 1000,
      default: DEFAULT_MAX_DEPTH,
      description:
        'Deepest nesting of objects and arrays a JSON record may have; a deeper value goes to the error output (sinks and the error path re-encode every value, and deep values break encoders)',
    }),
  ),
  max_record_bytes: Type.Optional(
    Size({
      default: '1MiB',
      description:
        'Largest record accepted, in bytes as received; a larger one goes to the error output with the first KiB of its text',
    }),
  ),
};

export function inputLimits(o: { max_depth?: number; max_record_bytes?: number }): InputLimits {
  return {
    maxDepth: o.max_depth ?? DEFAULT_MAX_DEPTH,
    maxRecordBytes: o.max_record_bytes ?? DEFAULT_MAX_RECORD_BYTES,
  };
}

// Scratch stacks shared by every call: the walk runs to completion synchronously, so one pair
// serves all sources, and flat values never touch them.
const pending: object[] = [];
const depths: number[] = [];

/**
 * Whether `value` nests objects/arrays deeper than `max` (a scalar is depth 0, `{}` and `[]`
 * depth 1). Iterative, so no value can overflow the call stack; stops at the first container
 * past the limit. Its scratch stack is shared, but `for…in` allocates a little per object:
 * callers that have the text try `fewBrackets` first, which settles flat records for free.
 */
export function deeperThan(value: unknown, max: number): boolean {
  if (typeof value !== 'object' || value === null) return false;
  if (max < 1) return true;
  let top = 0;
  let current: object = value;
  let depth = 1;
  try {
    for (;;) {
      if (Array.isArray(current)) {
        for (let i = 0; i < current.length; i++) {
          const child: unknown = current[i];
          if (typeof child !== 'object' || child === null) continue;
          if (depth >= max) return true;
          pending[top] = child;
          depths[top++] = depth + 1;
        }
      } else {
        const obj = current as Record<string, unknown>;
        for (const k in obj) {
          const child = obj[k];
          if (typeof child !== 'object' || child === null) continue;
          if (depth >= max) return true;
          pending[top] = child;
          depths[top++] = depth + 1;
        }
      }
      if (top === 0) return false;
      current = pending[--top];
      pending[top] = EMPTY;
      depth = depths[top];
    }
  } finally {
    // Drop references so the scratch stack never keeps a record alive (popped slots already are).
    for (let i = 0; i < top; i++) pending[i] = EMPTY;
    if (pending.length > 1024) {
      pending.length = 0;
      depths.length = 0;
    }
  }
}

const EMPTY = {};

/**
 * Whether `text` has at most `max` opening brackets (`{` or `[`, inside strings too). Such a
 * text cannot nest deeper than `max`, so its parsed value needs no walk. Native scans with an
 * early exit, allocation-free: a flat record costs three `indexOf` calls.
 */
export function fewBrackets(text: string, max: number): boolean {
  let n = 0;
  for (const bracket of BRACKETS) {
    for (let at = text.indexOf(bracket); at >= 0; at = text.indexOf(bracket, at + 1)) {
      if (++n > max) return false;
    }
  }
  return true;
}

const BRACKETS = ['{', '['] as const;

/** UTF-8 bytes of `text`, computed only when its length alone cannot decide against `max`. */
export function textTooLarge(text: string, max: number): number | undefined {
  // A UTF-16 unit is 1 to 3 UTF-8 bytes: most texts are decided without counting.
  if (text.length * 3 <= max) return undefined;
  if (text.length > max) return Buffer.byteLength(text, 'utf8');
  const bytes = Buffer.byteLength(text, 'utf8');
  return bytes > max ? bytes : undefined;
}

export const tooLargeReason = (bytes: number, max: number): string =>
  `record of ${bytes} bytes is larger than max_record_bytes (${max})`;

export const tooDeepReason = (max: number): string =>
  `value nested deeper than ${max} level${max === 1 ? '' : 's'}`;

export type Decoded =
  | { ok: true; value: unknown }
  | {
      ok: false;
      /** malformed: not JSON (`detail` is the parser's message); too-deep and too-large: a limit. */
      kind: 'malformed' | 'too-deep' | 'too-large';
      reason: string;
      detail: string;
    };

/**
 * Parses one record's JSON text under `limits`. `bytes` is the size as received when the
 * caller knows it (saves counting). Failure reasons name the limit, not the caller's position:
 * callers append their own (line, offset, sequence number).
 */
export function decodeJson(text: string, limits: InputLimits, bytes?: number): Decoded {
  const max = limits.maxRecordBytes;
  const size = bytes !== undefined ? (bytes > max ? bytes : undefined) : textTooLarge(text, max);
  if (size !== undefined) {
    const reason = tooLargeReason(size, max);
    return { ok: false, kind: 'too-large', reason, detail: reason };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    const detail = (err as Error).message;
    return { ok: false, kind: 'malformed', reason: `malformed JSON: ${detail}`, detail };
  }
  if (!fewBrackets(text, limits.maxDepth) && deeperThan(value, limits.maxDepth)) {
    const reason = tooDeepReason(limits.maxDepth);
    return { ok: false, kind: 'too-deep', reason, detail: reason };
  }
  return { ok: true, value };
}

/** The start of a refused input, so the error output stays small whatever came in. */
export function excerpt(text: string, chars = EXCERPT_CHARS): string {
  return text.length <= chars ? text : `${text.slice(0, chars)}…`;
}
