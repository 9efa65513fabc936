/**
 * The postgres sink against a real PostgreSQL server, through the stage contract and through the
 * engine; rows are read back with psql.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Pipeline } from '../../src/runtime/engine.ts';
import { validateText } from '../../src/spec/validate.ts';
import { StageError } from '../../src/stages/define.ts';
import { type PostgresSink, postgresSink } from '../../src/stages/sinks/postgres/index.ts';
import { tempDir } from '../runtime/helpers.ts';
import { batchOf, sinkContext } from './mysql-harness.ts';
import { ident, POSTGRES_URL, psql, requirePostgres, urlVia } from './postgres-harness.ts';
import { TcpProxy } from './tcp-proxy.ts';

const suffix = (): string => randomBytes(4).toString('hex');
const dropped: string[] = [];
const sinks: PostgresSink[] = [];

beforeAll(async () => {
  await requirePostgres();
});

afterAll(async () => {
  for (const s of sinks) await s.close();
  for (const t of dropped) await psql(`DROP TABLE IF EXISTS ${t}`);
});

async function table(name: string, ddl: string): Promise<string> {
  const qualified = ident(name);
  await psql(`CREATE TABLE ${qualified} (${ddl})`);
  dropped.push(qualified);
  return qualified;
}

async function openSink(options: Record<string, unknown>): Promise<PostgresSink> {
  const sink = postgresSink.create({ url: POSTGRES_URL, ...options } as never, sinkContext()) as PostgresSink;
  sinks.push(sink);
  await sink.open();
  return sink;
}

describe('postgres sink', () => {
  it('writes a batch of 1000 with poison rows among them: only those fail, with the server’s reason', async () => {
    const name = `lots_${suffix()}`;
    const t = await table(
      name,
      'id int PRIMARY KEY, lote varchar(8) NOT NULL, peso double precision CHECK (peso >= 0)',
    );
    const sink = await openSink({ table: name });
    const values = Array.from({ length: 1000 }, (_, i) => ({ id: i, lote: `L${i}`, peso: i / 4 }));
    values[137] = { id: 137, lote: 'much too long for eight', peso: 1 };
    values[500] = { id: 500, lote: null, peso: 1 } as never;
    values[901] = { id: 901, lote: 'L901', peso: -1 };
    values[902] = { id: 902, lote: 'L902', peso: 1.5, extra: 'ignored' } as never;
    values[903] = { id: 903.5, lote: 'L903', peso: 1 };
    const result = await sink.write(batchOf(values));
    const failed = result?.failed ?? [];
    expect(failed.map((f) => f.index)).toEqual([137, 500, 901, 903]);
    expect(failed.every((f) => f.retryable === false)).toBe(true);
    expect(failed[0].reason).toMatch(/too long .*22001/);
    expect(failed[1].reason).toMatch(/null value in column "lote".*23502/);
    expect(failed[2].reason).toMatch(/check constraint.*23514/);
    expect(failed[3].reason).toBe("postgres: column 'id': 903.5 is not an integer");
    const [[count, sum]] = await psql(`SELECT count(*), sum(id) FROM ${t}`);
    expect(Number(count)).toBe(996);
    expect(Number(sum)).toBe((999 * 1000) / 2 - 137 - 500 - 901 - 903);
    expect(await psql(`SELECT lote, peso FROM ${t} WHERE id = 902`)).toEqual([['L902', '1.5']]);
  });

  it('upsert is idempotent and updates the non-key columns; insert_ignore keeps the first row', async () => {
    const name = `upsert_${suffix()}`;
    const t = await table(
      name,
      'id text PRIMARY KEY, peso numeric(10,2), data timestamptz, ok boolean, tags text[], doc jsonb',
    );
    const upsert = await openSink({ table: name, mode: 'upsert' });
    const rows = (peso: number) =>
      Array.from({ length: 50 }, (_, i) => ({
        id: `k${i}`,
        peso: peso + i,
        data: '2024-03-20T10:30:00-03:00',
        ok: i % 2 === 0,
        tags: ['a', `t${i}`],
        doc: { n: i, nested: { s: 'x' } },
      }));
    expect(await upsert.write(batchOf(rows(1)))).toBeUndefined();
    expect(await upsert.write(batchOf(rows(1)))).toBeUndefined();
    expect(await upsert.write(batchOf(rows(100)))).toBeUndefined();
    expect(await psql(`SELECT count(*), sum(peso) FROM ${t}`)).toEqual([
      ['50', String(50 * 100 + (49 * 50) / 2 + '.00')],
    ]);
    expect(
      await psql(
        `SELECT id, peso, data AT TIME ZONE 'UTC', ok, tags[2], doc->'nested'->>'s' FROM ${t} WHERE id = 'k3'`,
      ),
    ).toEqual([['k3', '103.00', '2024-03-20 13:30:00', 'f', 't3', 'x']]);

    const ignore = await openSink({ table: name, mode: 'insert_ignore' });
    expect(
      await ignore.write(
        batchOf([
          { id: 'k3', peso: 0 },
          { id: 'new', peso: 7 },
        ]),
      ),
    ).toBeUndefined();
    expect(await psql(`SELECT id, peso FROM ${t} WHERE id IN ('k3', 'new') ORDER BY id`)).toEqual([
      ['k3', '103.00'],
      ['new', '7.00'],
    ]);

    // Plain insert: the duplicate key is a rejected row, the new one commits.
    const insert = await openSink({ table: name });
    const result = await insert.write(
      batchOf([
        { id: 'k4', peso: 0 },
        { id: 'newer', peso: 8 },
      ]),
    );
    expect(result?.failed.map((f) => [f.index, f.retryable])).toEqual([[0, false]]);
    expect(result?.failed[0].reason).toMatch(/duplicate key.*23505.*Key \(id\)=\(k4\)/);
    expect(await psql(`SELECT peso FROM ${t} WHERE id = 'newer'`)).toEqual([['8.00']]);
  });

  it('quotes dotted, quoted and mixed-case identifiers as one name each', async () => {
    const schema = `My Schema ${suffix()}`;
    await psql(`CREATE SCHEMA ${ident(schema)}`);
    try {
      const name = 'consumo.diário "v2"';
      const t = `${ident(schema)}.${ident(name)}`;
      await psql(`CREATE TABLE ${t} ("Id" int PRIMARY KEY, "peso.medio" real, "a""b" text)`);
      const sink = await openSink({ schema, table: name, mode: 'upsert' });
      expect(
        await sink.write(batchOf([{ Id: 1, 'peso.medio': 2.5, 'a"b': 'x; DROP TABLE t' }])),
      ).toBeUndefined();
      expect(await psql(`SELECT "Id", "peso.medio", "a""b" FROM ${t}`)).toEqual([
        ['1', '2.5', 'x; DROP TABLE t'],
      ]);
      // Lower-case `id` is another column: the record has no field that is one.
      const result = await sink.write(batchOf([{ id: 2 }]));
      expect(result?.failed[0].reason).toMatch(/no field of the record is a column/);
    } finally {
      await psql(`DROP SCHEMA ${ident(schema)} CASCADE`);
    }
  });

  it('fails at start with what to create when the table is missing, and creates it when asked', async () => {
    const name = `missing_${suffix()}`;
    const columns = { id: 'bigint', lote: 'text' };
    await expect(openSink({ table: name, columns, key: ['id'] })).rejects.toThrow(
      `postgres: table "public"."${name}" does not exist in 127.0.0.1:${new URL(POSTGRES_URL).port || 5432}/sluice: CREATE TABLE IF NOT EXISTS "public"."${name}" ("id" bigint, "lote" text, PRIMARY KEY ("id")), or set create_table: true`,
    );
    dropped.push(ident(name));
    const sink = await openSink({ table: name, columns, key: ['id'], create_table: true, mode: 'upsert' });
    expect(await sink.write(batchOf([{ id: 1, lote: 'a' }]))).toBeUndefined();
    expect(await psql(`SELECT id, lote FROM ${ident(name)}`)).toEqual([['1', 'a']]);
  });

  it('a server that is down is a transient failure of the whole batch', async () => {
    const name = `down_${suffix()}`;
    await table(name, 'id int PRIMARY KEY');
    const proxy = new TcpProxy('127.0.0.1', Number(new URL(POSTGRES_URL).port || 5432));
    await proxy.start();
    try {
      const sink = await openSink({ url: urlVia(proxy.port), table: name, timeout: 2000 });
      await proxy.refuse();
      const err = await sink.write(batchOf([{ id: 1 }])).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StageError);
      expect((err as StageError).retryable).toBe(true);
      expect((err as Error).message).not.toContain('postgres://');
    } finally {
      await proxy.stop();
    }
  });
});

describe('postgres sink in a pipeline', () => {
  it('waits out an outage (refused, then silent) through a relay: every row lands once, nothing is diverted', async () => {
    const name = `outage_${suffix()}`;
    dropped.push(ident(name));
    const proxy = new TcpProxy('127.0.0.1', Number(new URL(POSTGRES_URL).port || 5432));
    await proxy.start();
    const yaml = `
version: 1
name: pg-outage
runtime: { batch_size: 100 }
sources:
  gen: { type: generate, count: 3000, rate: 500, fields: { id: 'i', lote: '"L" + string(i)' } }
sinks:
  warehouse:
    type: postgres
    from: [gen]
    url: \${POSTGRES_URL}
    table: ${name}
    mode: upsert
    key: [id]
    create_table: true
    timeout: 2s
    columns: { id: bigint, lote: text }
    buffer: { max_records: 200, max_age: 100ms, max_total_records: 1000 }
    retry: { backoff: 100ms, max_backoff: 1s }
`;
    const { spec, diagnostics } = validateText('pg-outage.yaml', yaml, { POSTGRES_URL: urlVia(proxy.port) });
    if (!spec) throw new Error(diagnostics.map((d) => `${d.line}:${d.column} ${d.message}`).join('\n'));
    const pipeline = new Pipeline(spec, { stateDir: tempDir() });
    const done = pipeline.run();
    const sinkOut = () =>
      pipeline.metrics.snapshot().stages.find((s) => s.name === 'warehouse')?.recordsOut ?? 0;
    while (sinkOut() < 500) await new Promise((r) => setTimeout(r, 50));
    await proxy.refuse();
    await new Promise((r) => setTimeout(r, 2500));
    await proxy.heal();
    while (sinkOut() < 1500) await new Promise((r) => setTimeout(r, 50));
    proxy.blackhole();
    await new Promise((r) => setTimeout(r, 3500));
    await proxy.heal();
    const result = await done;
    await proxy.stop();
    expect(result.ok, result.error).toBe(true);
    expect(result.errorRecords).toBe(0);
    const warehouse = pipeline.metrics.snapshot().stages.find((s) => s.name === 'warehouse');
    expect(warehouse?.retries).toBeGreaterThan(0);
    expect(await psql(`SELECT count(*), count(DISTINCT id), min(id), max(id) FROM ${ident(name)}`)).toEqual([
      ['3000', '3000', '0', '2999'],
    ]);
  }, 60_000);
});
