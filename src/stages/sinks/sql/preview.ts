/**
 * The SQL sinks with their database replaced (`sluice test`): the table's columns come from
 * `columns` or the test's `tables`, and each row is captured as the statement would bind it.
 */
import type { PreviewContext, WriteResult } from '../../define.ts';
import { type PreparedBatch, resultOf } from './rows.ts';

/** The table as its database would describe it, from what the spec or the test declares. */
export function declaredTable(
  system: string,
  opts: { table: string; columns?: Record<string, string>; key?: string[] },
  ctx: PreviewContext,
): Map<string, { type: string; key: boolean }> {
  const declared = opts.columns ?? ctx.tables?.[opts.table];
  if (!declared) {
    throw new Error(
      `${system}: the columns of table ${opts.table} are unknown without a database: give \`columns\` in the spec or \`tables: { ${opts.table}: { column: TYPE } }\` in the test`,
    );
  }
  const key = new Set(opts.key ?? []);
  return new Map(Object.entries(declared).map(([c, type]) => [c, { type, key: key.has(c) }]));
}

/** Captures each row of a prepared batch (bytes as text) instead of writing it. */
export function captureRows<K, P>(
  ctx: PreviewContext,
  table: string,
  { failed, columns, rows }: PreparedBatch<K, P>,
): WriteResult {
  for (const r of rows) {
    const row: Record<string, unknown> = {};
    for (let c = 0; c < columns.length; c++) {
      const p = r.params[c];
      row[columns[c].name] = Buffer.isBuffer(p) ? p.toString('utf8') : p;
    }
    ctx.capture({ kind: 'row', table, row });
  }
  return resultOf(failed);
}
