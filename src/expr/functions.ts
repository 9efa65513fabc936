// The functions sluice adds to CEL. One table drives both registration in the
// environment and the documentation returned by functionDocs(), so they cannot drift.

import { createHash } from 'node:crypto';
import type { ASTNode, RegisteredFunctionHandler } from '@marcbachmann/cel-js';
import { EvaluationError } from '@marcbachmann/cel-js';
import { Duration, UnsignedInt } from '@marcbachmann/cel-js/evaluator';
import { currentTime } from './batch.ts';
import { toPlain } from './convert.ts';
import { fail } from './errors.ts';
import { formatIsoText, formatTime, parseIso, parseWithFormat, toDate } from './time.ts';
import { uuidV4, uuidV5 } from './uuid.ts';

export interface FunctionDoc {
  name: string;
  signature: string;
  description: string;
  example: string;
}

interface Overload {
  /** CEL signature, e.g. `lower(string): string`. */
  sig: string;
  fn: RegisteredFunctionHandler;
}

export interface FunctionDef extends FunctionDoc {
  overloads: Overload[];
}

const TS = 'google.protobuf.Timestamp';
const MAX_INT = 9223372036854775807n;
const MIN_INT = -9223372036854775808n;
const utf8 = new TextDecoder();

function checkInt(v: bigint, fn: string): bigint {
  if (v > MAX_INT || v < MIN_INT) throw fail('numeric_overflow', `${fn}: ${v} does not fit a 64-bit int`);
  return v;
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'list';
  if (v instanceof Date) return 'timestamp';
  if (typeof v === 'number') return 'double';
  if (typeof v === 'bigint') return 'int';
  if (typeof v === 'object') return 'map';
  return typeof v;
}

function numericString(s: string): string | undefined {
  const t = s.trim();
  return t !== '' && Number.isFinite(Number(t)) ? t : undefined;
}

export function toInt(v: unknown): bigint {
  switch (typeof v) {
    case 'bigint':
      return checkInt(v, 'to_int');
    case 'number':
      if (!Number.isFinite(v)) throw fail('invalid_argument', `to_int: cannot convert ${v} to int`);
      return checkInt(BigInt(Math.trunc(v)), 'to_int');
    case 'boolean':
      return v ? 1n : 0n;
    case 'string': {
      const t = numericString(v);
      if (t === undefined) throw fail('invalid_argument', `to_int: '${v}' is not a number`);
      if (/^[+-]?\d+$/.test(t)) return checkInt(BigInt(t), 'to_int');
      return checkInt(BigInt(Math.trunc(Number(t))), 'to_int');
    }
  }
  if (v instanceof Date) return BigInt(v.getTime());
  if (v instanceof UnsignedInt) return checkInt(v.valueOf(), 'to_int');
  throw fail('invalid_argument', `to_int: cannot convert ${typeName(v)} to int`);
}

export function toDouble(v: unknown): number {
  switch (typeof v) {
    case 'number':
      return v;
    case 'bigint':
      return Number(v);
    case 'boolean':
      return v ? 1 : 0;
    case 'string': {
      const t = numericString(v);
      if (t === undefined) throw fail('invalid_argument', `to_double: '${v}' is not a number`);
      return Number(t);
    }
  }
  if (v instanceof Date) return v.getTime();
  if (v instanceof UnsignedInt) return Number(v.valueOf());
  throw fail('invalid_argument', `to_double: cannot convert ${typeName(v)} to double`);
}

export function toStringValue(v: unknown): string {
  switch (typeof v) {
    case 'string':
      return v;
    case 'number':
    case 'bigint':
    case 'boolean':
      return String(v);
  }
  if (v === null || v === undefined) return 'null';
  if (v instanceof Date) return v.toISOString();
  if (v instanceof Uint8Array) return utf8.decode(v);
  if (v instanceof Duration || v instanceof UnsignedInt) return v.toString();
  return JSON.stringify(toPlain(v), (_k, x) => (typeof x === 'bigint' ? x.toString() : x));
}

/**
 * Rounds half away from zero at `digits` decimals as the decimal text of `x` reads: round(1.005, 2)
 * is 1.01 although the double nearest 1.005 lies just below it. In doubles, `x * 10^digits` is
 * off the exact decimal shift by an ulp or two at most, which changes the rounding only when it
 * lands next to a tie: those cases (and large shifts) take the exact path through the text.
 */
export function roundTo(x: number, digits: number): number {
  if (!Number.isFinite(x) || digits > 20) return x;
  const sign = x < 0 ? -1 : 1;
  const abs = Math.abs(x);
  if (digits === 0) return sign * Math.round(abs);
  if (digits > 0 && digits <= 15) {
    const f = POWERS[digits];
    const shifted = abs * f;
    // Below 1e9 two ulps are under 3e-7, far inside the margin kept around the tie.
    if (shifted < 1e9) {
      const frac = shifted - Math.floor(shifted);
      // Division of two exact integers by IEEE rounding gives the double nearest the decimal.
      if (Math.abs(frac - 0.5) > 1e-6) return (sign * Math.round(shifted)) / f;
    }
  }
  return roundThroughText(abs, sign, digits);
}

const POWERS = Array.from({ length: 16 }, (_, i) => 10 ** i);

/** The reference rounding: shift and unshift through the decimal text. */
export function roundThroughText(abs: number, sign: number, digits: number): number {
  const shifted = Number(`${abs}e${digits}`);
  if (Number.isFinite(shifted)) return sign * Number(`${Math.round(shifted)}e${-digits}`);
  const f = 10 ** digits;
  return (sign * Math.round(abs * f)) / f;
}

function roundInt(v: bigint, digits: bigint): bigint {
  if (digits >= 0n) return v;
  const f = 10n ** -digits;
  const r = v % f;
  const down = v - r;
  const away = 2n * (r < 0n ? -r : r) >= f;
  return checkInt(away ? down + (v < 0n ? -f : f) : down, 'round');
}

function sha256(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

function formatFn(ts: unknown, format: string, tz?: string): string {
  if (typeof ts === 'string') {
    const text = formatIsoText(ts, format, tz);
    if (text !== undefined) return text;
  }
  return formatTime(toDate(ts, 'format_time'), format, tz);
}

const TIME_INPUTS = [TS, 'string', 'double', 'int'];

// --- coalesce: a macro, so that each argument is evaluated lazily and a missing field
// (unknown variable, missing key, index out of range) can count as null.

interface MacroChecker {
  check(node: ASTNode, ctx: unknown): unknown;
  getType(name: string): unknown;
}
interface MacroEvaluator {
  tryEval(node: ASTNode, ctx: unknown): unknown;
}
interface CoalesceMacro {
  args: ASTNode[];
}

const MISSING_CODES = new Set(['unknown_variable', 'no_such_key', 'index_out_of_bounds']);

function coalesceMacro({ args }: { args: ASTNode[] }) {
  return {
    args,
    async: false,
    typeCheck(checker: MacroChecker, macro: CoalesceMacro, ctx: unknown) {
      const types = macro.args.map((a) => checker.check(a, ctx));
      return types.every((t) => t === types[0]) ? types[0] : checker.getType('dyn');
    },
    evaluate(ev: MacroEvaluator, macro: CoalesceMacro, ctx: unknown) {
      for (const node of macro.args) {
        const v = ev.tryEval(node, ctx);
        if (v instanceof EvaluationError && MISSING_CODES.has(v.code)) continue;
        if (v instanceof Error) throw v;
        if (v !== null && v !== undefined) return v;
      }
      return null;
    },
  };
}

export const COALESCE_MAX_ARGS = 16;
const coalesceOverloads: Overload[] = [];
for (let n = 1; n <= COALESCE_MAX_ARGS; n++) {
  coalesceOverloads.push({ sig: `coalesce(${Array(n).fill('ast').join(', ')}): dyn`, fn: coalesceMacro });
}

export const FUNCTIONS: FunctionDef[] = [
  {
    name: 'uuid_v5',
    signature: 'uuid_v5(name: string) / uuid_v5(namespace: string, name: string) -> string',
    description:
      'Deterministic name-based UUID (version 5, SHA-1). With one argument the namespace is the ' +
      'fixed sluice namespace dcd8fece-2943-42bd-a200-3d9bc10fdc51, so the same input always ' +
      'gives the same id.',
    example: 'uuid_v5(to_string(id) + ":" + email)',
    overloads: [
      { sig: 'uuid_v5(string): string', fn: (name: string) => uuidV5(name) },
      { sig: 'uuid_v5(string, string): string', fn: (ns: string, name: string) => uuidV5(name, ns) },
    ],
  },
  {
    name: 'uuid_v4',
    signature: 'uuid_v4() -> string',
    description: 'Random UUID (version 4); different on every evaluation.',
    example: 'uuid_v4()',
    overloads: [{ sig: 'uuid_v4(): string', fn: uuidV4 }],
  },
  {
    name: 'now',
    signature: 'now() -> timestamp',
    description:
      'The current time as a CEL timestamp, read once per batch: every record of a batch gets ' +
      'the same instant. Works with format_time(), timestamp arithmetic (now() - duration("1h")) ' +
      'and comparisons; in output records it becomes an ISO-8601 string.',
    example: 'format_time(now(), "yyyy-MM-dd HH:mm:ss")',
    overloads: [{ sig: `now(): ${TS}`, fn: currentTime }],
  },
  {
    name: 'format_time',
    signature: 'format_time(time, format: string [, timezone: string]) -> string',
    description:
      'Formats a time given as a timestamp, an ISO-8601 string or epoch milliseconds. Tokens: ' +
      'yyyy MM dd HH mm ss SSS; other characters are copied. UTC unless an IANA time zone ' +
      'name such as "America/Sao_Paulo" is given.',
    example: 'format_time(created_at, "yyyy/MM/dd")',
    overloads: TIME_INPUTS.flatMap((t) => [
      { sig: `format_time(${t}, string): string`, fn: (ts: unknown, f: string) => formatFn(ts, f) },
      {
        sig: `format_time(${t}, string, string): string`,
        fn: (ts: unknown, f: string, tz: string) => formatFn(ts, f, tz),
      },
    ]),
  },
  {
    name: 'parse_time',
    signature: 'parse_time(text: string [, format: string [, timezone: string]]) -> timestamp',
    description:
      'Parses text into a timestamp. Without a format it accepts ISO-8601 / RFC 3339 ' +
      '("2024-03-05", "2024-03-05T14:07:09Z", "2024-03-05 14:07:09.123-03:00"; no offset means ' +
      'UTC). With a format it uses the format_time tokens; the optional time zone says where ' +
      'the wall-clock time was read (UTC by default).',
    example: 'parse_time("05/03/2024 14:07", "dd/MM/yyyy HH:mm", "America/Sao_Paulo")',
    overloads: [
      { sig: `parse_time(string): ${TS}`, fn: (s: string) => parseIso(s) },
      { sig: `parse_time(string, string): ${TS}`, fn: (s: string, f: string) => parseWithFormat(s, f) },
      {
        sig: `parse_time(string, string, string): ${TS}`,
        fn: (s: string, f: string, tz: string) => parseWithFormat(s, f, tz),
      },
    ],
  },
  {
    name: 'lower',
    signature: 'lower(text: string) -> string',
    description: 'Lower-case (Unicode aware).',
    example: 'lower(email)',
    overloads: [{ sig: 'lower(string): string', fn: (s: string) => s.toLowerCase() }],
  },
  {
    name: 'upper',
    signature: 'upper(text: string) -> string',
    description: 'Upper-case (Unicode aware).',
    example: 'upper(uf)',
    overloads: [{ sig: 'upper(string): string', fn: (s: string) => s.toUpperCase() }],
  },
  {
    name: 'trim',
    signature: 'trim(text: string) -> string',
    description: 'Removes leading and trailing whitespace.',
    example: 'trim(name)',
    overloads: [{ sig: 'trim(string): string', fn: (s: string) => s.trim() }],
  },
  {
    name: 'to_int',
    signature: 'to_int(value) -> int',
    description:
      'Converts a number (truncating toward zero), a numeric string, a bool (1/0) or a ' +
      'timestamp (epoch milliseconds) to an int. Arithmetic on two ints is integer arithmetic, ' +
      'so to_int(x) / 2 divides without a fraction.',
    example: 'to_int(quantidade_animais) / 2',
    overloads: [{ sig: 'to_int(dyn): int', fn: toInt }],
  },
  {
    name: 'to_double',
    signature: 'to_double(value) -> double',
    description: 'Converts a number, a numeric string, a bool (1/0) or a timestamp (epoch ms) to a double.',
    example: 'to_double(preco_texto) * 1.1',
    overloads: [{ sig: 'to_double(dyn): double', fn: toDouble }],
  },
  {
    name: 'to_string',
    signature: 'to_string(value) -> string',
    description:
      'Text form of any value: numbers as JavaScript prints them (25, 0.5), timestamps as ' +
      'ISO-8601, null as "null", lists and maps as JSON.',
    example: '"lote-" + to_string(lote_id)',
    overloads: [{ sig: 'to_string(dyn): string', fn: toStringValue }],
  },
  {
    name: 'coalesce',
    signature: `coalesce(a, b, ...) -> value   (1 to ${COALESCE_MAX_ARGS} arguments)`,
    description:
      'The first argument that is not null. An argument that refers to a missing field (or ' +
      'a missing map key or list index) counts as null instead of failing the record.',
    example: 'coalesce(nickname, name, "anonymous")',
    overloads: coalesceOverloads,
  },
  {
    name: 'split',
    signature: 'split(text: string, separator: string) -> list<string>',
    description: 'Splits text at every occurrence of separator (also available as text.split(sep)).',
    example: 'split("a,b,c", ",")',
    overloads: [{ sig: 'split(string, string): list<string>', fn: (s: string, sep: string) => s.split(sep) }],
  },
  {
    name: 'join',
    signature: 'join(items: list [, separator: string]) -> string',
    description: 'Joins list items into one string; non-string items are converted with to_string().',
    example: 'join(tags, ", ")',
    overloads: [
      { sig: 'join(list): string', fn: (l: unknown[]) => l.map(toStringValue).join('') },
      {
        sig: 'join(list, string): string',
        fn: (l: unknown[], sep: string) => l.map(toStringValue).join(sep),
      },
    ],
  },
  {
    name: 'replace',
    signature: 'replace(text: string, old: string, new: string) -> string',
    description: 'Replaces every occurrence of old (plain text, not a pattern). Also text.replace(old, new).',
    example: 'replace(cpf, ".", "")',
    overloads: [
      {
        sig: 'replace(string, string, string): string',
        fn: (s: string, a: string, b: string) => s.split(a).join(b),
      },
      {
        sig: 'string.replace(string, string): string',
        fn: (s: string, a: string, b: string) => s.split(a).join(b),
      },
    ],
  },
  {
    name: 'contains',
    signature: 'contains(text: string, part: string) -> bool',
    description: 'True if text contains part. CEL spelling: text.contains(part).',
    example: 'contains(email, "@")',
    overloads: [{ sig: 'contains(string, string): bool', fn: (s: string, p: string) => s.includes(p) }],
  },
  {
    name: 'starts_with',
    signature: 'starts_with(text: string, prefix: string) -> bool',
    description: 'True if text starts with prefix. CEL spelling: text.startsWith(prefix).',
    example: 'starts_with(sku, "BR-")',
    overloads: [{ sig: 'starts_with(string, string): bool', fn: (s: string, p: string) => s.startsWith(p) }],
  },
  {
    name: 'ends_with',
    signature: 'ends_with(text: string, suffix: string) -> bool',
    description: 'True if text ends with suffix. CEL spelling: text.endsWith(suffix).',
    example: 'ends_with(email, ".br")',
    overloads: [{ sig: 'ends_with(string, string): bool', fn: (s: string, p: string) => s.endsWith(p) }],
  },
  {
    name: 'sha256',
    signature: 'sha256(data: string | bytes) -> string',
    description: 'SHA-256 digest as lower-case hex (strings are hashed as UTF-8).',
    example: 'sha256(lower(trim(email)))',
    overloads: [
      { sig: 'sha256(string): string', fn: sha256 },
      { sig: 'sha256(bytes): string', fn: sha256 },
    ],
  },
  {
    name: 'round',
    signature: 'round(number [, digits: int]) -> number',
    description:
      'Rounds half away from zero to the given number of decimal digits (default 0; negative ' +
      'digits round to tens, hundreds...). Doubles stay doubles, ints stay ints.',
    example: 'round(peso_medio * 0.025, 2)',
    overloads: [
      { sig: 'round(double): double', fn: (x: number) => roundTo(x, 0) },
      { sig: 'round(double, int): double', fn: (x: number, d: bigint) => roundTo(x, Number(d)) },
      { sig: 'round(int): int', fn: (x: bigint) => x },
      { sig: 'round(int, int): int', fn: roundInt },
    ],
  },
  {
    name: 'abs',
    signature: 'abs(number) -> number',
    description: 'Absolute value.',
    example: 'abs(saldo)',
    overloads: [
      { sig: 'abs(double): double', fn: Math.abs },
      { sig: 'abs(int): int', fn: (x: bigint) => checkInt(x < 0n ? -x : x, 'abs') },
    ],
  },
  {
    name: 'floor',
    signature: 'floor(number) -> number',
    description: 'Largest whole number not greater than the argument.',
    example: 'floor(peso_medio)',
    overloads: [
      { sig: 'floor(double): double', fn: Math.floor },
      { sig: 'floor(int): int', fn: (x: bigint) => x },
    ],
  },
  {
    name: 'ceil',
    signature: 'ceil(number) -> number',
    description: 'Smallest whole number not less than the argument.',
    example: 'ceil(peso_medio)',
    overloads: [
      { sig: 'ceil(double): double', fn: Math.ceil },
      { sig: 'ceil(int): int', fn: (x: bigint) => x },
    ],
  },
];

/** CEL built-ins worth listing next to the sluice functions (not registered here). */
export const BUILTIN_DOCS: FunctionDoc[] = [
  {
    name: 'has',
    signature: 'has(record.field) / has(map.key) -> bool',
    description:
      'CEL macro: true if the field is present. Use it for optional fields; the argument must be ' +
      'a field selection, so write has(record.x) rather than has(x).',
    example: 'has(record.desconto) ? preco - desconto : preco',
  },
  {
    name: 'size',
    signature: 'size(string | list | map) -> int',
    description: 'Number of characters, items or entries. Also value.size().',
    example: 'size(tags) > 0',
  },
  {
    name: 'matches',
    signature: 'text.matches(regex: string) -> bool',
    description: 'True if the regular expression matches anywhere in text.',
    example: 'cep.matches("^[0-9]{5}-?[0-9]{3}$")',
  },
  {
    name: 'timestamp',
    signature: 'timestamp(text: string) -> timestamp',
    description: 'CEL conversion of a strict RFC 3339 string to a timestamp (parse_time is more lenient).',
    example: 'timestamp("2024-03-05T14:07:09Z") < now()',
  },
  {
    name: 'duration',
    signature: 'duration(text: string) -> duration',
    description: 'A duration such as "90s", "1h30m" or "250ms"; add to or subtract from timestamps.',
    example: 'format_time(now() - duration("24h"), "yyyy-MM-dd")',
  },
];
