// Time helpers behind now(), format_time() and parse_time().
//
// Formats use the tokens yyyy MM dd HH mm ss SSS; every other character is copied
// literally. Times are UTC unless an IANA time zone name is given (resolved with Intl).

import { fail } from './errors.ts';

type Token = 'yyyy' | 'MM' | 'dd' | 'HH' | 'mm' | 'ss' | 'SSS';
type Part = { token: Token } | { literal: string };

const TOKENS: readonly Token[] = ['yyyy', 'SSS', 'MM', 'dd', 'HH', 'mm', 'ss'];

interface Fields {
  year: number;
  month: number; // 1-12
  day: number;
  hour: number;
  minute: number;
  second: number;
  millisecond: number;
}

const formatCache = new Map<string, Part[]>();
const parserCache = new Map<string, { re: RegExp; tokens: Token[] }>();
const zoneCache = new Map<string, Intl.DateTimeFormat>();
const CACHE_LIMIT = 256;

function remember<V>(cache: Map<string, V>, key: string, value: V): V {
  if (cache.size >= CACHE_LIMIT) cache.clear();
  cache.set(key, value);
  return value;
}

function compileFormat(format: string): Part[] {
  const cached = formatCache.get(format);
  if (cached) return cached;
  const parts: Part[] = [];
  let literal = '';
  for (let i = 0; i < format.length; ) {
    const token = TOKENS.find((t) => format.startsWith(t, i));
    if (token) {
      if (literal) parts.push({ literal });
      literal = '';
      parts.push({ token });
      i += token.length;
    } else {
      literal += format[i];
      i++;
    }
  }
  if (literal) parts.push({ literal });
  return remember(formatCache, format, parts);
}

function zoneFormatter(timeZone: string): Intl.DateTimeFormat {
  let f = zoneCache.get(timeZone);
  if (f) return f;
  try {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
      era: 'short',
    });
  } catch {
    throw fail('invalid_timezone', `unknown time zone '${timeZone}'`);
  }
  return remember(zoneCache, timeZone, f);
}

function isUtc(timeZone: string | undefined): boolean {
  return timeZone === undefined || timeZone === 'UTC' || timeZone === 'Z';
}

function fieldsOf(date: Date, timeZone?: string): Fields {
  if (isUtc(timeZone)) {
    return {
      year: date.getUTCFullYear(),
      month: date.getUTCMonth() + 1,
      day: date.getUTCDate(),
      hour: date.getUTCHours(),
      minute: date.getUTCMinutes(),
      second: date.getUTCSeconds(),
      millisecond: date.getUTCMilliseconds(),
    };
  }
  const f: Fields = { year: 0, month: 1, day: 1, hour: 0, minute: 0, second: 0, millisecond: 0 };
  let bce = false;
  for (const p of zoneFormatter(timeZone as string).formatToParts(date)) {
    switch (p.type) {
      case 'year':
        f.year = Number(p.value);
        break;
      case 'month':
        f.month = Number(p.value);
        break;
      case 'day':
        f.day = Number(p.value);
        break;
      case 'hour':
        f.hour = Number(p.value);
        break;
      case 'minute':
        f.minute = Number(p.value);
        break;
      case 'second':
        f.second = Number(p.value);
        break;
      case 'era':
        bce = p.value.startsWith('B');
        break;
    }
  }
  if (bce) f.year = 1 - f.year;
  f.millisecond = date.getUTCMilliseconds();
  return f;
}

function utcMillis(f: Fields): number {
  const d = new Date(0);
  d.setUTCFullYear(f.year, f.month - 1, f.day);
  d.setUTCHours(f.hour, f.minute, f.second, f.millisecond);
  return d.getTime();
}

/** Offset of `timeZone` from UTC at the instant `ms`, in milliseconds. */
function zoneOffset(ms: number, timeZone: string): number {
  const f = fieldsOf(new Date(ms), timeZone);
  f.millisecond = 0;
  return utcMillis(f) - (ms - (((ms % 1000) + 1000) % 1000));
}

const DAY = 86_400_000;

/**
 * Converts a wall-clock time in `timeZone` to epoch millis. A time that occurs twice (clocks
 * turned back) resolves to the earlier instant; a time skipped by a daylight-saving gap is
 * moved forward by the length of the gap (02:30 becomes 03:30).
 */
function wallClockToUtc(wall: number, timeZone: string | undefined): number {
  if (isUtc(timeZone)) return wall;
  const tz = timeZone as string;
  const before = zoneOffset(wall - DAY, tz);
  const offsets = new Set([before, zoneOffset(wall, tz), zoneOffset(wall + DAY, tz)]);
  let best: number | undefined;
  for (const o of offsets) {
    const t = wall - o;
    if (zoneOffset(t, tz) === o && (best === undefined || t < best)) best = t;
  }
  return best ?? wall - before;
}

function pad(n: number, width: number): string {
  const s = String(Math.abs(n)).padStart(width, '0');
  return n < 0 ? `-${s}` : s;
}

function checkDate(ms: number, what: string): Date {
  const d = new Date(ms);
  if (Number.isNaN(d.getTime()))
    throw fail('invalid_timestamp', `${what} is out of the supported time range`);
  return d;
}

/** Accepts a timestamp, an ISO-8601 string or epoch milliseconds. */
export function toDate(v: unknown, fn: string): Date {
  if (v instanceof Date) return v;
  switch (typeof v) {
    case 'string':
      return parseIso(v);
    case 'number':
      if (!Number.isFinite(v))
        throw fail('invalid_timestamp', `${fn}: ${v} is not a valid epoch millis value`);
      return checkDate(v, `${fn}: ${v}`);
    case 'bigint':
      return checkDate(Number(v), `${fn}: ${v}`);
    default:
      throw fail('invalid_timestamp', `${fn}: expected a timestamp, ISO-8601 string or epoch millis`);
  }
}

type Formatter = (f: Fields) => string;

const formatterCache = new Map<string, Formatter>();
let lastFormat: string | undefined;
let lastFormatter: Formatter | undefined;

/** The format compiled once into one function per part, appended in order. */
function formatter(format: string): Formatter {
  if (format === lastFormat && lastFormatter) return lastFormatter;
  let fn = formatterCache.get(format);
  if (!fn) {
    const parts = compileFormat(format).map(partWriter);
    fn = (f) => {
      let out = '';
      for (let i = 0; i < parts.length; i++) out += parts[i](f);
      return out;
    };
    remember(formatterCache, format, fn);
  }
  lastFormat = format;
  lastFormatter = fn;
  return fn;
}

function partWriter(p: Part): Formatter {
  if ('literal' in p) {
    const text = p.literal;
    return () => text;
  }
  switch (p.token) {
    case 'yyyy':
      return (f) => (f.year >= 0 && f.year <= 9999 ? DIGITS4[f.year] : pad(f.year, 4));
    case 'MM':
      return (f) => DIGITS2[f.month];
    case 'dd':
      return (f) => DIGITS2[f.day];
    case 'HH':
      return (f) => DIGITS2[f.hour];
    case 'mm':
      return (f) => DIGITS2[f.minute];
    case 'ss':
      return (f) => DIGITS2[f.second];
    default:
      return (f) => pad(f.millisecond, 3);
  }
}

// Zero-padded texts of every value a two- or four-digit field takes, made once.
const DIGITS2 = Array.from({ length: 100 }, (_, i) => String(i).padStart(2, '0'));
const DIGITS4 = Array.from({ length: 10_000 }, (_, i) => String(i).padStart(4, '0'));

export function formatTime(date: Date, format: string, timeZone?: string): string {
  return formatter(format)(fieldsOf(date, timeZone));
}

/**
 * format_time of an ISO-like text in UTC without building a Date: the fields are read from the
 * text itself when it is laid out exactly as `yyyy-MM-dd[( |T)HH:mm:ss[.SSS]][Z]` and valid;
 * any other text goes through parseIso as before (same result, same errors).
 */
export function formatIsoText(text: string, format: string, timeZone?: string): string | undefined {
  if (!isUtc(timeZone)) return undefined;
  const f = isoFields(text);
  return f ? formatter(format)(f) : undefined;
}

const scratch: Fields = { year: 0, month: 1, day: 1, hour: 0, minute: 0, second: 0, millisecond: 0 };

function digit(s: string, i: number): number {
  const c = s.charCodeAt(i) - 48;
  return c >= 0 && c <= 9 ? c : -1000;
}

function two(s: string, i: number): number {
  return digit(s, i) * 10 + digit(s, i + 1);
}

/** Fields of a strictly laid out, valid ISO date-time in UTC (into a reused object), or undefined. */
function isoFields(s: string): Fields | undefined {
  let n = s.length;
  if (n === 11 || n === 20 || n === 24) {
    const z = s.charCodeAt(n - 1);
    if (z !== 90 && z !== 122) return undefined; // Z, z
    n--;
  }
  if (n !== 10 && n !== 19 && n !== 23) return undefined;
  if (s.charCodeAt(4) !== 45 || s.charCodeAt(7) !== 45) return undefined; // -
  const century = two(s, 0);
  const yy = two(s, 2);
  if (century < 0 || yy < 0) return undefined;
  const year = century * 100 + yy;
  const month = two(s, 5);
  const day = two(s, 8);
  let hour = 0;
  let minute = 0;
  let second = 0;
  let millisecond = 0;
  if (n > 10) {
    const sep = s.charCodeAt(10);
    if (sep !== 84 && sep !== 32 && sep !== 116) return undefined; // T, space, t
    if (s.charCodeAt(13) !== 58 || s.charCodeAt(16) !== 58) return undefined; // :
    hour = two(s, 11);
    minute = two(s, 14);
    second = two(s, 17);
    if (n === 23) {
      if (s.charCodeAt(19) !== 46) return undefined; // .
      millisecond = digit(s, 20) * 100 + two(s, 21);
    }
  }
  if (
    millisecond < 0 ||
    month < 1 ||
    month > 12 ||
    day < 1 ||
    day > monthDays(year, month) ||
    hour < 0 ||
    hour > 23 ||
    minute < 0 ||
    minute > 59 ||
    second < 0 ||
    second > 59
  ) {
    return undefined;
  }
  scratch.year = year;
  scratch.month = month;
  scratch.day = day;
  scratch.hour = hour;
  scratch.minute = minute;
  scratch.second = second;
  scratch.millisecond = millisecond;
  return scratch;
}

const MONTH_DAYS = [0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function monthDays(year: number, month: number): number {
  if (month !== 2) return MONTH_DAYS[month];
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
}

const ISO_RE =
  /^([+-]\d{6}|\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?\s*([Zz]|[+-]\d{2}(?::?\d{2})?)?$/;

function daysInMonth(year: number, month: number): number {
  const d = new Date(0);
  d.setUTCFullYear(year, month, 0);
  return d.getUTCDate();
}

function validate(f: Fields, input: string): void {
  if (
    f.month < 1 ||
    f.month > 12 ||
    f.day < 1 ||
    f.day > daysInMonth(f.year, f.month) ||
    f.hour > 23 ||
    f.minute > 59 ||
    f.second > 59
  ) {
    throw fail('invalid_timestamp', `'${input}' is not a valid date/time`);
  }
}

/** ISO-8601 / RFC 3339 date or date-time; without an offset the time is taken as UTC. */
export function parseIso(input: string): Date {
  const fast = isoFields(input);
  // Date.UTC reads years below 100 as 19xx: those take the general path.
  if (fast && fast.year >= 100) {
    return new Date(
      Date.UTC(fast.year, fast.month - 1, fast.day, fast.hour, fast.minute, fast.second, fast.millisecond),
    );
  }
  const m = ISO_RE.exec(input.trim());
  if (!m) throw fail('invalid_timestamp', `'${input}' is not an ISO-8601 date/time`);
  const f: Fields = {
    year: Number(m[1]),
    month: Number(m[2]),
    day: Number(m[3]),
    hour: m[4] ? Number(m[4]) : 0,
    minute: m[5] ? Number(m[5]) : 0,
    second: m[6] ? Number(m[6]) : 0,
    millisecond: m[7] ? Number(m[7].slice(0, 3).padEnd(3, '0')) : 0,
  };
  validate(f, input);
  let ms = utcMillis(f);
  const zone = m[8];
  if (zone && zone !== 'Z' && zone !== 'z') {
    const sign = zone[0] === '-' ? -1 : 1;
    const digits = zone.slice(1).replace(':', '');
    const minutes = Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2) || '0');
    ms -= sign * minutes * 60_000;
  }
  return checkDate(ms, `'${input}'`);
}

const TOKEN_PATTERN: Record<Token, string> = {
  yyyy: '(\\d{4})',
  MM: '(\\d{2})',
  dd: '(\\d{2})',
  HH: '(\\d{2})',
  mm: '(\\d{2})',
  ss: '(\\d{2})',
  SSS: '(\\d{3})',
};

function compileParser(format: string): { re: RegExp; tokens: Token[] } {
  const cached = parserCache.get(format);
  if (cached) return cached;
  let source = '^';
  const tokens: Token[] = [];
  for (const p of compileFormat(format)) {
    if ('literal' in p) {
      source += p.literal.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    } else {
      source += TOKEN_PATTERN[p.token];
      tokens.push(p.token);
    }
  }
  return remember(parserCache, format, { re: new RegExp(`${source}$`), tokens });
}

/** Parses `input` laid out as `format`; missing parts default to the start of their unit. */
export function parseWithFormat(input: string, format: string, timeZone?: string): Date {
  const { re, tokens } = compileParser(format);
  const m = re.exec(input);
  if (!m) throw fail('invalid_timestamp', `'${input}' does not match the format '${format}'`);
  const f: Fields = { year: 1970, month: 1, day: 1, hour: 0, minute: 0, second: 0, millisecond: 0 };
  tokens.forEach((t, i) => {
    const n = Number(m[i + 1]);
    if (t === 'yyyy') f.year = n;
    else if (t === 'MM') f.month = n;
    else if (t === 'dd') f.day = n;
    else if (t === 'HH') f.hour = n;
    else if (t === 'mm') f.minute = n;
    else if (t === 'ss') f.second = n;
    else f.millisecond = n;
  });
  validate(f, input);
  if (!isUtc(timeZone)) zoneFormatter(timeZone as string);
  return checkDate(wallClockToUtc(utcMillis(f), timeZone), `'${input}'`);
}
