import { describe, expect, it } from 'vitest';
import { convert, kindOf, mysqlSink } from '../../src/stages/sinks/mysql.ts';

describe('mysql sink: type conversion', () => {
  it('classifies SQL types', () => {
    expect(kindOf('VARCHAR(255)')).toBe('text');
    expect(kindOf('datetime')).toBe('datetime');
    expect(kindOf('DATETIME(3)')).toBe('datetime');
    expect(kindOf('timestamp')).toBe('datetime');
    expect(kindOf('DATE')).toBe('date');
    expect(kindOf('INT')).toBe('number');
    expect(kindOf('bigint unsigned')).toBe('number');
    expect(kindOf('DECIMAL(10,2)')).toBe('number');
    expect(kindOf('FLOAT')).toBe('number');
    expect(kindOf('json')).toBe('json');
    expect(kindOf('LONGBLOB')).toBe('binary');
    expect(kindOf('text')).toBe('text');
  });

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

  it('keeps numbers, maps null and undefined to NULL, serialises objects', () => {
    expect(convert(1.5, 'number')).toBe(1.5);
    expect(convert('42', 'number')).toBe('42');
    expect(convert(true, 'number')).toBe(1);
    expect(convert(12345678901234567890n, 'number')).toBe('12345678901234567890');
    expect(convert(null, 'number')).toBeNull();
    expect(convert(undefined, 'text')).toBeNull();
    expect(convert({ a: [1] }, 'json')).toBe('{"a":[1]}');
    expect(convert('already text', 'json')).toBe('"already text"');
    expect(convert({ a: 1 }, 'text')).toBe('{"a":1}');
    expect(convert(7, 'text')).toBe('7');
    expect(convert(new Uint8Array([1, 2]), 'binary')).toEqual(Buffer.from([1, 2]));
  });
});

describe('mysql sink: static checks', () => {
  const check = (opts: Record<string, unknown>) => {
    const reports: string[] = [];
    mysqlSink.check?.({ url: 'mysql://root@h/db', table: 't', ...opts } as never, (path, _code, message) => {
      reports.push(`${path.join('.')}: ${message}`);
    });
    return reports;
  };

  it('wants columns to create a table, and key columns among them', () => {
    expect(check({ create_table: true })).toEqual([expect.stringMatching(/^create_table: .*columns/)]);
    expect(check({ columns: { a: 'INT' }, key: ['a', 'b'] })).toEqual([
      "key.1: key column 'b' is not in `columns`",
    ]);
    expect(check({ columns: { a: 'INT' }, key: ['a'], create_table: true })).toEqual([]);
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
