import pino from 'pino';
import { describe, expect, it } from 'vitest';
import {
  ConversionError,
  candidateTables,
  convert,
  IgnoredFields,
  isDataError,
  isTransient,
  kindOf,
  mysqlSink,
  quoteName,
  tableSql,
  targetOf,
  withDeadline,
} from '../../src/stages/sinks/mysql/index.ts';
import { literalOf, valuesOf } from '../../src/stages/sinks/mysql/literal.ts';
import {
  insertOf,
  rowBytes,
  Statements,
  statementsBySize,
  type TextRow,
} from '../../src/stages/sinks/mysql/statement.ts';

/** An object nested `depth` levels deep, built without recursion. */
function deep(depth: number): Record<string, unknown> {
  const root: Record<string, unknown> = {};
  let at = root;
  for (let i = 0; i < depth; i++) {
    const next: Record<string, unknown> = {};
    at.a = next;
    at = next;
  }
  return root;
}

const conversionError = (f: () => unknown): string => {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(ConversionError);
    return (err as Error).message;
  }
  throw new Error('expected a ConversionError');
};

describe('mysql sink: type classes', () => {
  it('tells integer kinds from decimal and float kinds', () => {
    for (const t of [
      'INT',
      'int(11)',
      'bigint unsigned',
      'TINYINT(1)',
      'smallint',
      'mediumint',
      'BIT(3)',
      'year',
    ]) {
      expect(kindOf(t), t).toBe('integer');
    }
    for (const t of ['DECIMAL(10,2)', 'numeric', 'FLOAT', 'double', 'double precision', 'real']) {
      expect(kindOf(t), t).toBe('decimal');
    }
    expect(kindOf('VARCHAR(255)')).toBe('text');
    expect(kindOf('datetime')).toBe('datetime');
    expect(kindOf('DATETIME(3)')).toBe('datetime');
    expect(kindOf('timestamp')).toBe('datetime');
    expect(kindOf('DATE')).toBe('date');
    expect(kindOf('json')).toBe('json');
    expect(kindOf('LONGBLOB')).toBe('binary');
    expect(kindOf('text')).toBe('text');
  });
});

describe('mysql sink: strict conversions', () => {
  it('turns ISO timestamps with a zone into UTC DATETIME text, and epoch ms too', () => {
    expect(convert('2024-03-20T10:30:45.123Z', 'datetime')).toBe('2024-03-20 10:30:45.123');
    expect(convert('2024-03-20T10:30:45-03:00', 'datetime')).toBe('2024-03-20 13:30:45.000');
    expect(convert('2024-03-20T10:30:45', 'datetime')).toBe('2024-03-20 10:30:45');
    expect(convert('2024-03-20 10:30:45', 'datetime')).toBe('2024-03-20 10:30:45');
    expect(convert(Date.UTC(2024, 2, 20, 1, 2, 3), 'datetime')).toBe('2024-03-20 01:02:03.000');
    expect(convert('2024-03-20T23:30:00-03:00', 'date')).toBe('2024-03-21');
    // Not a time at all: passed through for the database to reject the row with its message.
    expect(convert('yesterday', 'datetime')).toBe('yesterday');
  });

  it('rejects times that are not valid dates or not times at all', () => {
    expect(conversionError(() => convert(new Date(Number.NaN), 'datetime'))).toBe('not a valid time');
    expect(conversionError(() => convert(8.64e15 + 1, 'datetime'))).toBe('not a valid time');
    expect(conversionError(() => convert(true, 'datetime'))).toBe('a boolean is not a time');
    expect(conversionError(() => convert({ at: 1 }, 'date'))).toBe('an object is not a time');
  });

  it('integer columns take integral values only; booleans are 0/1', () => {
    expect(convert(42, 'integer')).toBe(42);
    expect(convert(-7, 'integer')).toBe(-7);
    expect(convert(true, 'integer')).toBe(1);
    expect(convert(false, 'integer')).toBe(0);
    expect(convert(12345678901234567890n, 'integer')).toBe('12345678901234567890');
    expect(convert(' 42 ', 'integer')).toBe('42');
    expect(convert('1.0', 'integer')).toBe('1.0');
    expect(convert('1e3', 'integer')).toBe('1e3');
    expect(conversionError(() => convert(1.5, 'integer'))).toBe('1.5 is not an integer');
    expect(conversionError(() => convert('1.5', 'integer'))).toBe("'1.5' is not an integer");
    expect(conversionError(() => convert('12abc', 'integer'))).toBe("'12abc' is not an integer");
    expect(conversionError(() => convert(Number.NaN, 'integer'))).toBe('NaN is not an integer');
    expect(conversionError(() => convert(Number.POSITIVE_INFINITY, 'integer'))).toBe(
      'Infinity is not an integer',
    );
    expect(conversionError(() => convert({ n: 1 }, 'integer'))).toBe('an object is not an integer');
    expect(conversionError(() => convert([1], 'integer'))).toBe('an array is not an integer');
  });

  it('decimal columns take finite numbers and numeric text', () => {
    expect(convert(1.5, 'decimal')).toBe(1.5);
    expect(convert('-0.25', 'decimal')).toBe('-0.25');
    expect(convert('1e-3', 'decimal')).toBe('1e-3');
    expect(convert('.5', 'decimal')).toBe('.5');
    expect(convert(true, 'decimal')).toBe(1);
    expect(conversionError(() => convert('abc', 'decimal'))).toBe("'abc' is not a number");
    expect(conversionError(() => convert(Number.NaN, 'decimal'))).toBe('NaN is not a finite number');
    expect(conversionError(() => convert({ n: 1 }, 'decimal'))).toBe('an object is not a number');
  });

  it('text columns take scalars as text and refuse objects and arrays', () => {
    expect(convert(7, 'text')).toBe('7');
    expect(convert(true, 'text')).toBe('true');
    expect(convert(10n, 'text')).toBe('10');
    expect(convert(new Date(Date.UTC(2024, 0, 2)), 'text')).toBe('2024-01-02T00:00:00.000Z');
    expect(convert(new Uint8Array([1, 2]), 'binary')).toEqual(Buffer.from([1, 2]));
    expect(conversionError(() => convert({ a: 1 }, 'text'))).toMatch(/^an object does not fit a text column/);
    expect(conversionError(() => convert([1], 'binary'))).toMatch(/^an array does not fit a text column/);
  });

  it('JSON columns take any value as JSON text, and say why one cannot be encoded', () => {
    expect(convert({ a: [1] }, 'json')).toBe('{"a":[1]}');
    expect(convert('already text', 'json')).toBe('"already text"');
    expect(convert(3, 'json')).toBe('3');
    expect(conversionError(() => convert(deep(100_000), 'json'))).toBe(
      'value cannot be encoded as JSON: nesting too deep',
    );
    expect(conversionError(() => convert({ n: 1n }, 'json'))).toBe(
      'value cannot be encoded as JSON: it holds a BigInt',
    );
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(conversionError(() => convert(cyclic, 'json'))).toBe(
      'value cannot be encoded as JSON: it refers to itself (a cycle)',
    );
  });

  it('maps null and undefined to NULL in every kind', () => {
    for (const kind of ['integer', 'decimal', 'text', 'json', 'datetime', 'binary'] as const) {
      expect(convert(null, kind)).toBeNull();
      expect(convert(undefined, kind)).toBeNull();
    }
  });
});

describe('mysql sink: strict: false leaves rounding and re-typing to the server', () => {
  it('passes numbers and text on, and serialises objects in any column', () => {
    expect(convert(1.5, 'integer', false)).toBe(1.5);
    expect(convert('12abc', 'integer', false)).toBe('12abc');
    expect(convert({ a: 1 }, 'text', false)).toBe('{"a":1}');
    expect(convert([1, 2], 'integer', false)).toBe('[1,2]');
    // Still fails its record: there is no text to send at all.
    expect(conversionError(() => convert(deep(100_000), 'text', false))).toBe(
      'value cannot be encoded as JSON: nesting too deep',
    );
  });
});

describe('mysql sink: identifiers', () => {
  it('quotes every name as one identifier', () => {
    expect(quoteName('a.b')).toBe('`a.b`');
    expect(quoteName('we`ird name')).toBe('`we``ird name`');
    expect(quoteName('x->y')).toBe('`x->y`');
    expect(tableSql({ database: 'db', name: 'a.b' })).toBe('`db`.`a.b`');
    expect(tableSql({ database: undefined, name: 'a.b' })).toBe('`a.b`');
  });

  it('reads a dotted table without database first as one name, then as database.table', () => {
    expect(candidateTables('t', undefined)).toEqual([{ database: undefined, name: 't' }]);
    expect(candidateTables('a.b', 'db')).toEqual([{ database: 'db', name: 'a.b' }]);
    expect(candidateTables('db.a.b', undefined)).toEqual([
      { database: undefined, name: 'db.a.b' },
      { database: 'db', name: 'a.b', legacy: true },
    ]);
    expect(candidateTables('.hidden', undefined)).toEqual([{ database: undefined, name: '.hidden' }]);
  });

  it('builds statements with quoted names in each mode', () => {
    const rows = (...texts: string[]): TextRow[] =>
      texts.map((text, index) => ({ index, text, bytes: rowBytes(text) }));
    const upsert = new Statements('`db`.`t.1`', 'upsert', ['id']);
    expect(insertOf(upsert.frame(['id', 'a.b']), rows("1,'x'", "2,'y'"))).toBe(
      "INSERT INTO `db`.`t.1` (`id`,`a.b`) VALUES (1,'x'),(2,'y') ON DUPLICATE KEY UPDATE `a.b`=VALUES(`a.b`)",
    );
    expect(insertOf(new Statements('`t`', 'insert_ignore', ['id']).frame(['id']), rows('1'))).toBe(
      'INSERT INTO `t` (`id`) VALUES (1) ON DUPLICATE KEY UPDATE `id`=`id`',
    );
    const insert = new Statements('`t`', 'insert', []).frame(['x`y']);
    expect(insertOf(insert, rows('1'))).toBe('INSERT INTO `t` (`x``y`) VALUES (1)');
    expect(insert.bytes).toBe(Buffer.byteLength('INSERT INTO `t` (`x``y`) VALUES ()'));
    // A row counts its UTF-8 bytes, its parentheses and a comma.
    expect(rowBytes("'ção'")).toBe(10);
  });

  it('writes values as literals that no value can end early, in either backslash mode', () => {
    expect(valuesOf([1, -2.5, null, 'a', 1e21])).toBe("1,-2.5,NULL,'a',1e+21");
    expect(literalOf("it's")).toBe("'it''s'");
    // A backslash survives as itself whether or not the server reads backslashes as escapes.
    expect(literalOf('a\\')).toBe("REPLACE('a\\%', '\\%', LEFT('\\%', 1))");
    expect(literalOf(Buffer.from([0, 255]))).toBe("X'00ff'");
    expect(literalOf(Buffer.alloc(0))).toBe("X''");
    // Only `strict: false` lets these through; as numbers they would be column names.
    expect(literalOf(Number.NaN)).toBe("'NaN'");
    expect(literalOf(Number.NEGATIVE_INFINITY)).toBe("'-Infinity'");
  });

  it('cuts rows into statements by bytes, frame counted; a row too large alone is set apart', () => {
    const row = (index: number, bytes: number): TextRow => ({ index, text: '', bytes });
    // Frame 10 bytes, statements of at most 30: 10 + 10 + 10 fits, one more row does not.
    const cut = statementsBySize([row(0, 10), row(1, 10), row(2, 10), row(3, 21), row(4, 20)], 10, 30);
    expect(cut.statements.map((s) => s.map((r) => r.index))).toEqual([[0, 1], [2], [4]]);
    expect(cut.tooLarge.map((r) => r.index)).toEqual([3]);
    expect(statementsBySize([row(0, 20)], 10, 30).statements).toEqual([[row(0, 20)]]);
  });
});

describe('mysql sink: error classes', () => {
  it('treats outages, failovers and contention as transient and row errors as data', () => {
    for (const errno of [1040, 1053, 1205, 1213, 1290, 1792, 1836, 1927, 2006, 2013, 4031]) {
      expect(isTransient({ name: 'E', message: '', errno }), String(errno)).toBe(true);
    }
    for (const code of [
      'ECONNREFUSED',
      'ECONNRESET',
      'ETIMEDOUT',
      'ENOTFOUND',
      'EAI_AGAIN',
      'PROTOCOL_CONNECTION_LOST',
    ]) {
      expect(isTransient({ name: 'E', message: '', code }), code).toBe(true);
    }
    for (const errno of [1048, 1062, 1264, 1265, 1292, 1364, 1366, 1406, 1452, 1644, 4025]) {
      expect(isDataError({ name: 'E', message: '', errno }), String(errno)).toBe(true);
    }
    // Neither: a dropped table, a revoked grant. The sink retries them (see the integration test).
    for (const errno of [1146, 1142, 1054]) {
      const e = { name: 'E', message: '', errno };
      expect(isTransient(e) || isDataError(e), String(errno)).toBe(false);
    }
  });

  it('gives up on work that gets no answer, as a lost connection', async () => {
    const never = new Promise<never>(() => undefined);
    const started = Date.now();
    const err = await withDeadline(never, 50, 'no answer').catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(err).toMatchObject({ message: 'no answer', code: 'PROTOCOL_SEQUENCE_TIMEOUT' });
    expect(isTransient(err as Error)).toBe(true);
    expect(await withDeadline(Promise.resolve(3), 1000, 'x')).toBe(3);
  });

  it('names the server as host:port, never the credentials', () => {
    expect(targetOf('mysql://user:s3cret@db.example:3307/x')).toBe('db.example:3307');
    expect(targetOf('mysql://user:s3cret@db.example/x')).toBe('db.example:3306');
    expect(targetOf('not a url s3cret')).not.toContain('s3cret');
  });
});

describe('mysql sink: ignored fields are reported with bounded memory and log lines', () => {
  function recorder() {
    const lines: Record<string, unknown>[] = [];
    const stream = { write: (s: string) => lines.push(JSON.parse(s)) };
    return { lines, log: pino({ level: 'warn' }, stream) };
  }

  it('logs the first occurrence, then at most one summary per interval', () => {
    const { lines, log } = recorder();
    let now = 0;
    const ignored = new IgnoredFields(log, 'mysql', 't', () => now, 60_000);
    ignored.note(['extra']);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ table: 't', records: 1, fields: ['extra'], distinct_fields: 1 });
    for (let i = 0; i < 10_000; i++) {
      now += 1;
      ignored.note([`f${i}`, 'extra']);
    }
    // 10 s of records: nothing more yet.
    expect(lines).toHaveLength(1);
    now = 60_000;
    ignored.note(['late']);
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatchObject({ records: 10_001, distinct_fields: '100+' });
    expect((lines[1].fields as string[]).length).toBeLessThanOrEqual(5);
    ignored.note(['x']);
    ignored.flush();
    expect(lines).toHaveLength(3);
    expect(lines[2]).toMatchObject({ records: 1 });
    ignored.flush();
    expect(lines).toHaveLength(3);
  });

  it('cuts long field names', () => {
    const { lines, log } = recorder();
    new IgnoredFields(log, 'mysql', 't').note(['x'.repeat(10_000)]);
    expect((lines[0].fields as string[])[0].length).toBeLessThanOrEqual(65);
  });
});

describe('mysql sink: static checks', () => {
  const check = (opts: Record<string, unknown>) => {
    const reports: string[] = [];
    mysqlSink.check?.(
      { url: 'mysql://root@h/db', table: 't', ...opts } as never,
      (path, _code, message, severity) => {
        reports.push(`${severity ?? 'error'} ${path.join('.')}: ${message}`);
      },
    );
    return reports;
  };

  it('wants columns to create a table, and key columns among them', () => {
    expect(check({ create_table: true })).toEqual([expect.stringMatching(/^error create_table: .*columns/)]);
    expect(check({ columns: { a: 'INT' }, key: ['a', 'b'] })).toEqual([
      "error key.1: key column 'b' is not in `columns`",
    ]);
    expect(check({ columns: { a: 'INT' }, key: ['a'], create_table: true })).toEqual([]);
  });

  it('warns about a dotted table without database', () => {
    expect(check({ table: 'db.t' })).toEqual([expect.stringMatching(/^warning table: .*set `database`/)]);
    expect(check({ table: 'db.t', database: 'db' })).toEqual([]);
    expect(check({ table: 'db.t', columns: { a: 'INT' }, create_table: true })).toEqual([
      expect.stringMatching(/^warning table: .*cannot be created without `database`/),
    ]);
  });

  it('reports a URL whose password is not percent-encoded without printing any of it', () => {
    const reports = check({ url: 'mysql://u:p@ss#1@host/db' });
    expect(reports).toEqual([expect.stringMatching(/^error url: .*percent-encode/)]);
    expect(reports[0]).not.toMatch(/p@ss|ss#1|#1/);
  });

  it('rejects SQL types that could carry more SQL', () => {
    const schema = mysqlSink.options.properties.columns;
    const pattern = new RegExp(
      (schema as unknown as { patternProperties: Record<string, { pattern: string }> }).patternProperties[
        '^(.*)$'
      ].pattern,
    );
    expect(pattern.test('VARCHAR(255)')).toBe(true);
    expect(pattern.test('DECIMAL(10,2)')).toBe(true);
    expect(pattern.test('INT; DROP TABLE x')).toBe(false);
    expect(pattern.test("INT DEFAULT 'x'")).toBe(false);
  });
});
