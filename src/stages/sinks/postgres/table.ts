/**
 * Identifiers, the target table and the INSERT statements of the postgres sink.
 *
 * Every identifier is quoted as one name: a `.`, a `"` or a space is part of it, and its case is
 * kept (`Consumo` is not `consumo`), so `table: a.b` is the table named `a.b`; another schema
 * than the connection's current one is `schema`.
 */
import type { Pool } from 'pg';

/** `name` as one quoted identifier (double quotes doubled), whatever it contains. */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

export interface PgTable {
  /** Undefined: the connection's current schema (the first of its search_path that exists). */
  schema: string | undefined;
  name: string;
}

export function tableSql(t: PgTable): string {
  return t.schema === undefined ? quoteIdent(t.name) : `${quoteIdent(t.schema)}.${quoteIdent(t.name)}`;
}

export interface PgColumnInfo {
  /** The type's name (`integer`, `character varying`, `jsonb`; `int4[]` for arrays). */
  type: string;
  /** Part of the primary key. */
  key: boolean;
}

/** The schema a table without `schema` is looked up and created in. */
export async function currentSchema(pool: Pool): Promise<string | undefined> {
  const { rows } = await pool.query<{ schema: string | null }>('SELECT current_schema() AS schema');
  return rows[0]?.schema ?? undefined;
}

/** The table's columns in table order; empty when the table does not exist (or shows no column to this user). */
export async function describeTable(
  pool: Pool,
  schema: string,
  name: string,
): Promise<Map<string, PgColumnInfo>> {
  const { rows } = await pool.query<{ name: string; type: string; udt: string; key: boolean }>(
    `SELECT c.column_name AS name, c.data_type AS type, c.udt_name AS udt,
       EXISTS (
         SELECT 1 FROM pg_index i
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
         WHERE i.indisprimary AND i.indrelid = format('%I.%I', c.table_schema, c.table_name)::regclass
           AND a.attname = c.column_name
       ) AS key
     FROM information_schema.columns c
     WHERE c.table_schema = $1 AND c.table_name = $2
     ORDER BY c.ordinal_position`,
    [schema, name],
  );
  const out = new Map<string, PgColumnInfo>();
  for (const r of rows) {
    // Arrays say ARRAY (udt _int4), enums and domains USER-DEFINED (udt their name).
    const type =
      r.type === 'ARRAY' ? `${r.udt.replace(/^_/, '')}[]` : r.type === 'USER-DEFINED' ? r.udt : r.type;
    out.set(r.name, { type, key: r.key });
  }
  return out;
}

export type WriteMode = 'insert' | 'insert_ignore' | 'upsert';

/** Multi-row INSERT statements, cached by row count and column list. */
export class Statements {
  private readonly cache = new Map<string, string>();
  private readonly tableSql: string;
  private readonly mode: WriteMode;
  private readonly keys: readonly string[];

  constructor(tableSql: string, mode: WriteMode, keyColumns: readonly string[]) {
    this.tableSql = tableSql;
    this.mode = mode;
    this.keys = keyColumns;
  }

  insert(columns: readonly string[], rowCount: number): string {
    const cacheKey = `${rowCount}|${columns.join('\u0000')}`;
    const cached = this.cache.get(cacheKey);
    if (cached) return cached;
    const tuples: string[] = new Array(rowCount);
    let n = 0;
    for (let r = 0; r < rowCount; r++) {
      const placeholders: string[] = new Array(columns.length);
      for (let c = 0; c < columns.length; c++) placeholders[c] = `$${++n}`;
      tuples[r] = `(${placeholders.join(',')})`;
    }
    const sql = `INSERT INTO ${this.tableSql} (${columns.map(quoteIdent).join(',')}) VALUES ${tuples.join(',')}${this.onConflict(columns)}`;
    if (this.cache.size > 64) this.cache.clear();
    this.cache.set(cacheKey, sql);
    return sql;
  }

  private onConflict(columns: readonly string[]): string {
    // insert_ignore: any unique or exclusion conflict skips the row, as MySQL's duplicate key does.
    if (this.mode === 'insert_ignore') return ' ON CONFLICT DO NOTHING';
    if (this.mode !== 'upsert') return '';
    const target = `(${this.keys.map(quoteIdent).join(',')})`;
    const keys = new Set(this.keys);
    const update = columns.filter((c) => !keys.has(c)).map(quoteIdent);
    // With nothing but key columns an upsert is an insert that skips existing keys.
    if (update.length === 0) return ` ON CONFLICT ${target} DO NOTHING`;
    return ` ON CONFLICT ${target} DO UPDATE SET ${update.map((c) => `${c} = EXCLUDED.${c}`).join(', ')}`;
  }
}
