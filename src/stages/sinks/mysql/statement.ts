/**
 * The INSERT statements of the mysql sink: a frame per column list, rows as SQL text (see
 * literal.ts), and batches cut into statements by bytes so none exceeds what the server accepts.
 */
import { quoteName } from './table.ts';

export type WriteMode = 'insert' | 'insert_ignore' | 'upsert';

/** One record's values as SQL text (see literal.ts), its index in the batch, and its size. */
export interface TextRow {
  index: number;
  /** `1,'a',NULL`: the inside of the row's tuple. */
  text: string;
  /** UTF-8 bytes the row adds to a statement: its text, parentheses and comma. */
  bytes: number;
}

/** What goes around the rows of a multi-row INSERT: `INSERT … VALUES (` and `) ON DUPLICATE KEY UPDATE …`. */
export interface Frame {
  head: string;
  tail: string;
  /** UTF-8 bytes of head and tail together. */
  bytes: number;
}

export class Statements {
  private readonly cache = new Map<string, Frame>();
  private readonly tableSql: string;
  private readonly mode: WriteMode;
  private readonly keys: ReadonlySet<string>;

  constructor(tableSql: string, mode: WriteMode, keyColumns: readonly string[]) {
    this.tableSql = tableSql;
    this.mode = mode;
    this.keys = new Set(keyColumns);
  }

  /** The frame of a multi-row INSERT of `columns` in the sink's mode. */
  frame(columns: readonly string[]): Frame {
    const cacheKey = columns.join('\u0000');
    const cached = this.cache.get(cacheKey);
    if (cached) return cached;
    const names = columns.map(quoteName);
    const head = `INSERT INTO ${this.tableSql} (${names.join(',')}) VALUES (`;
    let tail = ')';
    if (this.mode === 'upsert') {
      const update = columns.filter((c) => !this.keys.has(c)).map(quoteName);
      // With nothing but key columns an upsert is an insert that skips existing keys.
      const set = update.length > 0 ? update.map((n) => `${n}=VALUES(${n})`) : [`${names[0]}=${names[0]}`];
      tail += ` ON DUPLICATE KEY UPDATE ${set.join(',')}`;
    } else if (this.mode === 'insert_ignore') {
      // Not INSERT IGNORE: that would also truncate too-long values and turn NULLs into defaults.
      tail += ` ON DUPLICATE KEY UPDATE ${names[0]}=${names[0]}`;
    }
    const frame = { head, tail, bytes: Buffer.byteLength(head) + Buffer.byteLength(tail) };
    if (this.cache.size > 64) this.cache.clear();
    this.cache.set(cacheKey, frame);
    return frame;
  }
}

/** The statement that writes `rows`: their texts joined by one join, each in its parentheses. */
export function insertOf(frame: Frame, rows: readonly TextRow[]): string {
  const texts: string[] = new Array(rows.length);
  for (let i = 0; i < rows.length; i++) texts[i] = rows[i].text;
  return frame.head + texts.join('),(') + frame.tail;
}

/** What a row of `text` adds to a statement: `(`, `)` and a comma besides its UTF-8 bytes. */
export function rowBytes(text: string): number {
  return Buffer.byteLength(text) + 3;
}

/**
 * `rows` cut, in order, into statements of at most `maxBytes` each (the frame counted, and a comma
 * for every row: one more than there is). A row that does not fit a statement even alone is
 * returned in `tooLarge` instead.
 */
export function statementsBySize(
  rows: readonly TextRow[],
  frameBytes: number,
  maxBytes: number,
): { statements: TextRow[][]; tooLarge: TextRow[] } {
  const statements: TextRow[][] = [];
  const tooLarge: TextRow[] = [];
  let current: TextRow[] = [];
  let bytes = frameBytes;
  for (const row of rows) {
    if (frameBytes + row.bytes > maxBytes) {
      tooLarge.push(row);
      continue;
    }
    if (bytes + row.bytes > maxBytes) {
      statements.push(current);
      current = [];
      bytes = frameBytes;
    }
    bytes += row.bytes;
    current.push(row);
  }
  if (current.length > 0) statements.push(current);
  return { statements, tooLarge };
}
