/**
 * Record field values → statement parameters for the postgres sink. The rules are the SQL
 * sinks' (../sql/convert.ts: strict by default, a value that would change on its way in fails
 * its record); this module only maps PostgreSQL's type names onto those rules and adds the two
 * kinds MySQL lacks: boolean and array columns.
 *
 * - boolean: true/false, 0/1 and the texts PostgreSQL reads as booleans (true, false, t, f,
 *   yes, no, on, off, 1, 0); anything else fails its record when strict.
 * - arrays (`int[]`, `text[]` …): a JSON array of scalars, bound as an array parameter; the
 *   server judges its elements. Any other value fails its record when strict.
 * Times go out as UTC (the session's TimeZone is UTC), so timestamptz columns get the instant.
 */
import { ConversionError, convert, type Kind, kindOf, type SqlParam } from '../sql/convert.ts';

export type PgKind = Kind | 'boolean' | 'array';
export type PgParam = SqlParam | boolean | readonly unknown[];

/**
 * PostgreSQL takes years past 9999, but the time text this sink writes has four digits for the
 * year: the message names the sink's limit, not the server's.
 */
const TIME_RANGE = 'times the postgres sink writes (years 0000 to 9999)';
const BOOLEAN_TEXT = /^\s*(true|false|t|f|yes|no|on|off|1|0)\s*$/i;

/** Conversion class of a PostgreSQL type name (`integer`, `TIMESTAMPTZ`, `varchar(20)`, `jsonb`, `int[]`). */
export function pgKindOf(sqlType: string): PgKind {
  const t = sqlType.trim().toLowerCase();
  if (t.endsWith('[]') || t === 'array') return 'array';
  const base = t.replace(/\(.*$/, '').trim();
  switch (base) {
    case 'jsonb':
    case 'json':
      return 'json';
    case 'bytea':
      return 'binary';
    case 'bool':
    case 'boolean':
      return 'boolean';
    case 'int2':
    case 'int4':
    case 'int8':
    case 'smallserial':
    case 'bigserial':
      return 'integer';
    case 'float4':
    case 'float8':
      return 'decimal';
    case 'timestamptz':
      return 'datetime';
    case 'timetz':
      return 'text';
  }
  return kindOf(base);
}

export function convertPg(v: unknown, kind: PgKind, strict: boolean): PgParam {
  if (v === undefined || v === null) return null;
  if (kind === 'boolean') return toBoolean(v, strict);
  if (kind === 'array') {
    if (Array.isArray(v) && v.every((e) => e === null || typeof e !== 'object')) return v;
    if (strict)
      throw new ConversionError(`${describe(v)} does not fit an array column: give a JSON array of scalars`);
    return Array.isArray(v) ? v : [v];
  }
  return convert(v, kind, strict, TIME_RANGE);
}

function toBoolean(v: unknown, strict: boolean): PgParam {
  if (typeof v === 'boolean') return v;
  if (v === 0 || v === 1) return v === 1;
  if (typeof v === 'string' && BOOLEAN_TEXT.test(v)) return v.trim();
  if (!strict) return typeof v === 'object' ? JSON.stringify(v) : String(v);
  throw new ConversionError(`${describe(v)} is not a boolean`);
}

function describe(v: unknown): string {
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `'${v.length > 40 ? `${v.slice(0, 40)}…` : v}'`;
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${String(v)}`;
}
