/**
 * Record field values → statement parameters for the SQL sinks (mysql, postgres), by the
 * column's SQL type. `kindOf` reads the type names of standard SQL and MySQL; the postgres sink
 * maps PostgreSQL's own onto the same kinds (postgres/convert.ts). Each sink says how its range
 * of times is described (mysql/convert.ts, postgres/convert.ts).
 *
 * Strict (the default, `strict: true`), a value that would change on its way into the column is
 * a permanent failure of its record instead of being rounded or re-typed:
 * - integer columns (TINYINT … BIGINT, BIT, YEAR, BOOL): integral numbers, bigints and strings
 *   holding an integral number; true/false are 1/0. 1.5, '1.5', NaN, Infinity, other strings,
 *   objects and arrays are rejected.
 * - decimal columns (DECIMAL, NUMERIC, FLOAT, DOUBLE, REAL): finite numbers, bigints and
 *   numeric strings; true/false are 1/0; the server rounds to the column's scale as usual.
 * - JSON columns: any value, as its JSON text (a string becomes a JSON string).
 * - text and binary columns: strings, numbers, booleans and bigints as text, times as ISO 8601
 *   text, bytes as bytes (binary columns). Objects and arrays are rejected: declare the column
 *   JSON, or serialise the field with a transform first.
 * - DATETIME, TIMESTAMP, DATE: ISO 8601 text (converted to UTC when it has a zone, taken as
 *   written when it has none), epoch milliseconds or Date; other text is passed on for the
 *   server to judge. Booleans, objects and arrays are rejected.
 * With `strict: false` numbers and strings reach the server as they are (it rounds 1.5 into an
 * INT, as non-strict SQL modes do) and objects or arrays become JSON text in any column.
 * In both modes a value JSON cannot encode (nested too deep, a bigint inside, a cycle) and a
 * time that is not a valid date fail their record alone.
 */

export type Kind = 'datetime' | 'date' | 'time' | 'integer' | 'decimal' | 'json' | 'binary' | 'text';

export type SqlParam = string | number | Buffer | null;

/** A value that cannot go into its column; the caller names the column. */
export class ConversionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConversionError';
  }
}

const INTEGER_TYPES = /^(tiny|small|medium|big)?int(eger)?$|^(bit|year|bool|boolean|serial)$/;
const DECIMAL_TYPES = /^(decimal|dec|numeric|fixed|float|double|real)$/;

/** Conversion class of a SQL type (`VARCHAR(255)`, `datetime`, `DECIMAL(10,2)`, `int unsigned` …). */
export function kindOf(sqlType: string): Kind {
  const t = sqlType.trim().toLowerCase().replace(/\(.*$/, '').split(/\s+/)[0];
  if (t === 'datetime' || t === 'timestamp') return 'datetime';
  if (t === 'date') return 'date';
  if (t === 'time') return 'time';
  if (t === 'json') return 'json';
  if (INTEGER_TYPES.test(t)) return 'integer';
  if (DECIMAL_TYPES.test(t)) return 'decimal';
  if (/blob$|binary$/.test(t)) return 'binary';
  return 'text';
}

const ISO_WITH_ZONE = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/i;
const ISO_LOCAL_T = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/;
/** What the servers read as a number from text (surrounding blanks allowed, as MySQL does). */
const NUMERIC_TEXT = /^\s*[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?\s*$/i;
const INTEGER_TEXT = /^\s*[+-]?\d+\s*$/;

/**
 * A record field's value as a statement parameter for a column of the given kind. Throws
 * `ConversionError` when the value cannot go into the column. `timeRange` ends the message of a
 * time whose year has more than four digits ('MySQL times').
 */
export function convert(v: unknown, kind: Kind, strict: boolean, timeRange: string): SqlParam {
  if (v === undefined || v === null) return null;
  switch (kind) {
    case 'datetime':
    case 'date':
      return toTime(v, kind, strict, timeRange);
    case 'integer':
      return strict ? toInteger(v) : toNumberLenient(v);
    case 'decimal':
      return strict ? toDecimal(v) : toNumberLenient(v);
    case 'json':
      return toJson(v);
    case 'binary':
      if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
      return toText(v, strict);
    default:
      return toText(v, strict);
  }
}

function toInteger(v: unknown): SqlParam {
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'number') {
    if (Number.isInteger(v)) return v;
    throw new ConversionError(`${v} is not an integer`);
  }
  if (typeof v === 'string') {
    if (INTEGER_TEXT.test(v)) return v.trim();
    // '1.0' or '1e3' hold an integer too; '1.5' would be rounded by the server.
    if (NUMERIC_TEXT.test(v) && Number.isInteger(Number(v))) return v.trim();
    throw new ConversionError(`${quoteSample(v)} is not an integer`);
  }
  throw new ConversionError(`${describeType(v)} is not an integer`);
}

function toDecimal(v: unknown): SqlParam {
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'number') {
    if (Number.isFinite(v)) return v;
    throw new ConversionError(`${v} is not a finite number`);
  }
  if (typeof v === 'string') {
    if (NUMERIC_TEXT.test(v)) return v.trim();
    throw new ConversionError(`${quoteSample(v)} is not a number`);
  }
  throw new ConversionError(`${describeType(v)} is not a number`);
}

/** Non-strict numbers: what the server makes of them (rounding, its own text parsing). */
function toNumberLenient(v: unknown): SqlParam {
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'number' || typeof v === 'string') return v;
  return toJson(v);
}

function toText(v: unknown, strict: boolean): SqlParam {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  if (v instanceof Date) return isoOf(v);
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  if (strict) {
    throw new ConversionError(
      `${describeType(v)} does not fit a text column: declare the column JSON, or turn the field into text with a transform`,
    );
  }
  return toJson(v);
}

function toTime(v: unknown, kind: 'datetime' | 'date', strict: boolean, timeRange: string): SqlParam {
  if (v instanceof Date) return formatDate(v, kind, timeRange);
  if (typeof v === 'number') return formatDate(new Date(v), kind, timeRange);
  if (typeof v === 'string') {
    if (ISO_WITH_ZONE.test(v)) {
      const d = new Date(v);
      if (!Number.isNaN(d.getTime())) return formatDate(d, kind, timeRange);
    }
    // A zone-less ISO time is taken as written (the DB reads 'YYYY-MM-DD HH:MM:SS').
    if (ISO_LOCAL_T.test(v)) return v.replace('T', ' ');
    // Anything else goes to the server, which rejects it with its own message.
    return v;
  }
  if (strict) throw new ConversionError(`${describeType(v)} is not a time`);
  return typeof v === 'object' ? toJson(v) : String(v);
}

/** JSON text of any value; a value JSON cannot encode fails with the reason in words. */
export function toJson(v: unknown): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(v);
  } catch (err) {
    throw new ConversionError(`value cannot be encoded as JSON: ${jsonFailure(err)}`);
  }
  if (text === undefined) throw new ConversionError(`${describeType(v)} cannot be encoded as JSON`);
  return text;
}

function jsonFailure(err: unknown): string {
  if (err instanceof RangeError) return 'nesting too deep';
  const message = err instanceof Error ? err.message : String(err);
  if (/bigint/i.test(message)) return 'it holds a BigInt';
  if (/circular|cyclic/i.test(message)) return 'it refers to itself (a cycle)';
  return message;
}

/**
 * The last time formatted: the records of a batch stamped by now() share one instant, and
 * toISOString is among the dearest steps of a row.
 */
const lastFormatted = { ms: Number.NaN, kind: '', text: '' };

function formatDate(d: Date, kind: 'datetime' | 'date', timeRange: string): string {
  const ms = d.getTime();
  if (ms === lastFormatted.ms && kind === lastFormatted.kind) return lastFormatted.text;
  const iso = isoOf(d); // 2024-03-20T10:30:45.123Z
  // Years beyond 9999 or before 0 give ±YYYYYY text, which the time text written here cannot hold.
  if (iso.length !== 24) throw new ConversionError(`${iso} is out of the range of ${timeRange}`);
  const text = kind === 'date' ? iso.slice(0, 10) : `${iso.slice(0, 10)} ${iso.slice(11, 23)}`;
  lastFormatted.ms = ms;
  lastFormatted.kind = kind;
  lastFormatted.text = text;
  return text;
}

function isoOf(d: Date): string {
  if (Number.isNaN(d.getTime())) throw new ConversionError('not a valid time');
  return d.toISOString();
}

function describeType(v: unknown): string {
  if (Array.isArray(v)) return 'an array';
  if (v instanceof Uint8Array) return 'bytes';
  if (v instanceof Date) return 'a time';
  if (typeof v === 'object') return 'an object';
  return `a ${typeof v}`;
}

/** A short, printable sample of a rejected text value (record data, not secrets). */
function quoteSample(s: string): string {
  const sample = s.length > 40 ? `${s.slice(0, 40)}…` : s;
  return `'${sample}'`;
}
