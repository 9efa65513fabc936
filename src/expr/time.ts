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

export function formatTime(date: Date, format: string, timeZone?: string): string {
  const f = fieldsOf(date, timeZone);
  let out = '';
  for (const p of compileFormat(format)) {
    if ('literal' in p) {
      out += p.literal;
      continue;
    }
    switch (p.token) {
      case 'yyyy':
        out += pad(f.year, 4);
        break;
      case 'MM':
        out += pad(f.month, 2);
        break;
      case 'dd':
        out += pad(f.day, 2);
        break;
      case 'HH':
        out += pad(f.hour, 2);
        break;
      case 'mm':
        out += pad(f.minute, 2);
        break;
      case 'ss':
        out += pad(f.second, 2);
        break;
      case 'SSS':
        out += pad(f.millisecond, 3);
        break;
    }
  }
  return out;
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
