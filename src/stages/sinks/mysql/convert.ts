/**
 * Record field values → statement parameters for the mysql sink: the SQL sinks' rules and
 * type names (../sql/convert.ts) with MySQL's range of times.
 */
import { convert as convertSql, type Kind, type SqlParam } from '../sql/convert.ts';

export { ConversionError, type Kind, kindOf, type SqlParam } from '../sql/convert.ts';

/** A record field's value for a MySQL column; throws `ConversionError` when it cannot go in. */
export function convert(v: unknown, kind: Kind, strict = true): SqlParam {
  return convertSql(v, kind, strict, 'MySQL times');
}
