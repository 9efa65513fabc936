/**
 * MariaDB answers the `mariadb` command-line client: rows written come back as written.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { mysqlConfig, requireService, runMariadb, uniqueSuffix } from './services.ts';

const table = `smoke_${uniqueSuffix().replace(/-/g, '_')}`;

// Each test probes first, so a missing service fails it (with a hint) instead of skipping it.
afterAll(async () => {
  await runMariadb(`DROP TABLE IF EXISTS ${table};`).catch(() => undefined);
});

describe('MariaDB with the mariadb client', () => {
  it('the database from MYSQL_URL exists', async () => {
    await requireService('mysql');
    const rows = await runMariadb('SELECT DATABASE(), 1 + 1;');
    expect(rows).toEqual([[mysqlConfig().database, '2']]);
  });

  it('creates a table, inserts rows and selects them back', async () => {
    await requireService('mysql');
    await runMariadb(`
      CREATE TABLE ${table} (
        id INT PRIMARY KEY,
        fazenda VARCHAR(100) NOT NULL,
        hectares DECIMAL(10, 2) NOT NULL
      ) DEFAULT CHARSET = utf8mb4;
      INSERT INTO ${table} (id, fazenda, hectares) VALUES
        (1, 'Boa Vista', 1234.50),
        (2, 'São João', 99.00),
        (3, 'Três Marias', 0.25);
    `);
    const rows = await runMariadb(`SELECT id, fazenda, hectares FROM ${table} ORDER BY id;`);
    expect(rows).toEqual([
      ['1', 'Boa Vista', '1234.50'],
      ['2', 'São João', '99.00'],
      ['3', 'Três Marias', '0.25'],
    ]);
    const [[count, total]] = await runMariadb(`SELECT COUNT(*), SUM(hectares) FROM ${table};`);
    expect(count).toBe('3');
    expect(total).toBe('1333.75');
  });
});
