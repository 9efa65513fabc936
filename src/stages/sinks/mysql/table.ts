/**
 * Identifiers and the target table of the mysql sink.
 *
 * Every identifier is quoted as one name: a `.`, a backtick or a space is part of the name, so a
 * column called `a.b` is the column `a.b`, never column `b` of table `a` (the driver's escapeId
 * splits at dots unless told not to; quoting here keeps that decision in one place).
 *
 * The table is `table` in the URL's database, or in `database` when that is set. For specs
 * written before `database` existed, `table: db.t` without `database` still names table `t` of
 * database `db`, but only when that reading is unambiguous: a table literally named `db.t` in
 * the URL's database wins if it exists, both existing is an error, and creating needs `database`.
 */
import type { Pool } from 'mysql2/promise';

/** `name` as one quoted identifier (backticks doubled), whatever it contains. */
export function quoteName(name: string): string {
  return `\`${name.replaceAll('`', '``')}\``;
}

/** A table; `database` undefined means the URL's database. */
export interface TableRef {
  database: string | undefined;
  name: string;
  /** Read from a dotted `table` without `database` (the form before `database` existed). */
  legacy?: boolean;
}

export function tableSql(t: TableRef): string {
  return t.database === undefined ? quoteName(t.name) : `${quoteName(t.database)}.${quoteName(t.name)}`;
}

/** The tables `table` (and `database`) can mean, the literal reading first. */
export function candidateTables(table: string, database: string | undefined): TableRef[] {
  const literal: TableRef = { database, name: table };
  const dot = table.indexOf('.');
  if (database !== undefined || dot <= 0 || dot === table.length - 1) return [literal];
  return [literal, { database: table.slice(0, dot), name: table.slice(dot + 1), legacy: true }];
}

export interface ColumnInfo {
  type: string;
  key: boolean;
}

/** The table's columns in table order; empty when the table does not exist. */
export async function describeTable(pool: Pool, t: TableRef): Promise<Map<string, ColumnInfo>> {
  const [rows] = await pool.query(
    `SELECT COLUMN_NAME AS name, DATA_TYPE AS type, COLUMN_KEY AS ckey FROM information_schema.COLUMNS
     WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`,
    [t.database ?? null, t.name],
  );
  const out = new Map<string, ColumnInfo>();
  for (const r of rows as { name: string; type: string; ckey: string }[]) {
    out.set(r.name, { type: r.type, key: r.ckey === 'PRI' });
  }
  if (out.size > 0) {
    for (const name of await jsonChecked(pool, t)) {
      const info = out.get(name);
      if (info) info.type = 'json';
    }
  }
  return out;
}

const JSON_VALID = /json_valid\(`((?:[^`]|``)+)`\)/gi;

/**
 * Columns MariaDB declares JSON: it stores them as LONGTEXT with a CHECK (json_valid(col)), and
 * information_schema.COLUMNS says longtext. MySQL has a real JSON type and no TABLE_NAME in
 * CHECK_CONSTRAINTS, so there the query fails and COLUMNS already said json.
 */
async function jsonChecked(pool: Pool, t: TableRef): Promise<string[]> {
  let rows: unknown;
  try {
    [rows] = await pool.query(
      `SELECT CHECK_CLAUSE AS clause FROM information_schema.CHECK_CONSTRAINTS
       WHERE CONSTRAINT_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ?`,
      [t.database ?? null, t.name],
    );
  } catch {
    return [];
  }
  const names: string[] = [];
  for (const { clause } of rows as { clause: string }[]) {
    for (const m of clause.matchAll(JSON_VALID)) names.push(m[1].replaceAll('``', '`'));
  }
  return names;
}

/** The database the session uses when none is named (the URL's), or undefined. */
export async function currentDatabase(pool: Pool): Promise<string | undefined> {
  const [rows] = await pool.query('SELECT DATABASE() AS db');
  const db = (rows as { db: string | null }[])[0]?.db;
  return db ?? undefined;
}

/** How messages name a table: `db`.`t` with the database spelled out. */
export function displayTable(t: TableRef, urlDatabase: string | undefined): string {
  const db = t.database ?? urlDatabase;
  return db === undefined ? quoteName(t.name) : `${quoteName(db)}.${quoteName(t.name)}`;
}
