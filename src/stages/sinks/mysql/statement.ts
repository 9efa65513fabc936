/** The INSERT statements of the mysql sink, cached by row count and column list. */
import { quoteName } from './table.ts';

export type WriteMode = 'insert' | 'insert_ignore' | 'upsert';

export class Statements {
  private readonly cache = new Map<string, string>();
  private readonly tableSql: string;
  private readonly mode: WriteMode;
  private readonly keys: ReadonlySet<string>;

  constructor(tableSql: string, mode: WriteMode, keyColumns: readonly string[]) {
    this.tableSql = tableSql;
    this.mode = mode;
    this.keys = new Set(keyColumns);
  }

  /** A multi-row INSERT of `rowCount` rows of `columns` (as placeholders), in the sink's mode. */
  insert(columns: readonly string[], rowCount: number): string {
    const cacheKey = `${rowCount}|${columns.join('\u0000')}`;
    const cached = this.cache.get(cacheKey);
    if (cached) return cached;
    const names = columns.map(quoteName);
    const tuple = `(${columns.map(() => '?').join(',')})`;
    let sql = `INSERT INTO ${this.tableSql} (${names.join(',')}) VALUES ${new Array(rowCount).fill(tuple).join(',')}`;
    if (this.mode === 'upsert') {
      const update = columns.filter((c) => !this.keys.has(c)).map(quoteName);
      // With nothing but key columns an upsert is an insert that skips existing keys.
      const set = update.length > 0 ? update.map((n) => `${n}=VALUES(${n})`) : [`${names[0]}=${names[0]}`];
      sql += ` ON DUPLICATE KEY UPDATE ${set.join(',')}`;
    } else if (this.mode === 'insert_ignore') {
      // Not INSERT IGNORE: that would also truncate too-long values and turn NULLs into defaults.
      sql += ` ON DUPLICATE KEY UPDATE ${names[0]}=${names[0]}`;
    }
    if (this.cache.size > 64) this.cache.clear();
    this.cache.set(cacheKey, sql);
    return sql;
  }
}
