/**
 * Converted values (../sql/convert.ts) as SQL text: one row's values as `v1,v2,…`, so a multi-row
 * INSERT is its rows' text joined, sent as one plain query. Cheaper for the client than binding
 * tens of thousands of parameters (no per-value packet encoding, no statement to prepare per row
 * count), and a statement is sized by bytes instead of by placeholders.
 *
 * Text with a quote or a backslash is quoted by sql-escaper (the escaper of the mysql2 driver) as
 * for a server in NO_BACKSLASH_ESCAPES mode: quotes doubled, a backslash kept by an expression
 * that reads the same in either mode. Text with neither cannot end its literal or escape
 * anything. So a literal means the same value whatever the session's sql_mode is, and no value
 * can change the statement.
 */
import type * as SqlEscaper from 'sql-escaper';
import { lazy } from '../../../runtime/lazy.ts';
import type { SqlParam } from './convert.ts';

// Needed only for text with a quote or a backslash, and only once a sink writes (runtime/lazy.ts).
const escaper = lazy<typeof SqlEscaper>('sql-escaper');

const MODE_INDEPENDENT = { noBackslashEscapes: true } as const;

/** One value as a SQL literal. */
export function literalOf(p: SqlParam): string {
  if (typeof p === 'string') {
    if (p.indexOf("'") === -1 && p.indexOf('\\') === -1) return `'${p}'`;
    return escaper().escape(p, false, undefined, MODE_INDEPENDENT);
  }
  if (typeof p === 'number') {
    // NaN and Infinity (possible only with `strict: false`) are not number literals: as text the
    // server judges them like any other text for a numeric column.
    return Number.isFinite(p) ? String(p) : `'${p}'`;
  }
  if (p === null) return 'NULL';
  return `X'${p.toString('hex')}'`;
}

/** Reused by every row: the row's text is made by one join, not by a chain of concatenations. */
const literals: string[] = [];

/** One row's values as the inside of its tuple in a multi-row INSERT: `1,'a',NULL`. */
export function valuesOf(params: readonly SqlParam[]): string {
  literals.length = params.length;
  for (let i = 0; i < params.length; i++) literals[i] = literalOf(params[i]);
  return literals.join(',');
}
