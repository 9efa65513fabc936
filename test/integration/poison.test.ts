/**
 * Poison records and dead letters end to end, through the CLI, against the real Kafka broker and
 * MariaDB (input written with kcat, rows read with the mariadb client, group offsets read with
 * Kafka's own ConsumerGroupCommand): one bad record fails alone with its reason, the rest is
 * written, the group commits to the end, and the exit code says records failed. With no error
 * output wired, the failure becomes a dead letter that `sluice dead-letter replay` puts back once
 * the table is fixed.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BROKERS,
  committedOffsets,
  createTopic,
  deleteTopic,
  endOffsets,
  kcatProduce,
  requireKafka,
  runSluice,
} from './kafka-harness.ts';
import { MYSQL_URL, requireMysql, sql, suffix } from './mysql-harness.ts';

const topics: string[] = [];
const tables: string[] = [];

beforeAll(async () => {
  await requireKafka();
  await requireMysql();
});

afterAll(async () => {
  for (const t of topics) await deleteTopic(t);
  for (const t of tables) await sql(`DROP TABLE IF EXISTS \`${t}\``);
});

function reading(i: number): Record<string, unknown> {
  return {
    id_curral: `C${(i % 40) + 1}`,
    id_raca: ['nelore', 'angus', 'brahman'][i % 3],
    id_lote: `L${i}`,
    peso_entrada: 280 + (i % 80),
    peso_medio: 400 + (i % 150),
    quantidade_animais: 20 + (i % 120),
    dia_confinamento: 1 + (i % 110),
    consumo_real: 10 + (i % 7),
    data: `2024-03-20 00:${String(Math.floor(i / 60) % 60).padStart(2, '0')}:${String(i % 60).padStart(2, '0')}`,
    cod_cliente: String((i % 2) + 1),
  };
}

/** A JSON text nested `depth` levels deep (what made JSON.stringify throw in the sink before). */
const deep = (depth: number) => `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;

async function lagZero(group: string, topic: string): Promise<void> {
  const committed = await committedOffsets(group, topic);
  const [end] = await endOffsets(topic, 1);
  expect(committed.get(0)).toBe(end);
}

async function errorLines(
  dir: string,
): Promise<{ stage: string; reason: string; value: unknown; truncated?: boolean }[]> {
  const out = [];
  for (const f of (await readdir(dir, { recursive: true })).filter((x) => x.endsWith('.ndjson'))) {
    for (const line of (await readFile(join(dir, f), 'utf8')).split('\n'))
      if (line.trim()) out.push(JSON.parse(line));
  }
  return out;
}

function cli(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync('node_modules/.bin/node', ['src/cli.ts', ...args], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('a poison record among 3,000', () => {
  it('fails alone: 2,999 rows, 1 error record with its reason, group lag 0, exit 3', async () => {
    const id = suffix();
    const topic = `poison-${id}`;
    const table = `poison_${id}`;
    topics.push(topic);
    tables.push(table);
    await createTopic(topic, 1);
    const lines = Array.from({ length: 3_000 }, (_, i) => {
      const r = reading(i);
      // Record 1,500's value nests 100,000 levels deep.
      const text = i === 1_500 ? JSON.stringify(r).replace('"nelore"', deep(100_000)) : JSON.stringify(r);
      return `${r.id_lote}\t${text}`;
    });
    await kcatProduce(topic, lines);
    const errorsDir = await mkdtemp(join(tmpdir(), 'sluice-poison-'));
    const group = `poison-${id}`;
    const res = await runSluice(
      'pipelines/feedlot-kafka-mysql.yaml',
      {
        KAFKA_BROKERS: BROKERS,
        KAFKA_TOPIC: topic,
        KAFKA_GROUP: group,
        MYSQL_URL,
        MYSQL_TABLE: table,
        ERRORS_DIR: errorsDir,
      },
      ['--exit-idle', '3s', '--state-dir', join(errorsDir, 'state')],
    );
    expect(res.code, res.stderr.slice(-3000)).toBe(3);
    expect(res.stderr).toMatch(
      /exit 3: completed, but 1 record failed: 1 to error outputs, 0 to dead letters/,
    );
    expect(Number((await sql(`SELECT COUNT(*) FROM \`${table}\``))[0][0])).toBe(2_999);
    expect(await sql(`SELECT COUNT(*) FROM \`${table}\` WHERE id_lote = 'L1500'`)).toEqual([['0']]);
    const errors = await errorLines(errorsDir);
    expect(errors).toHaveLength(1);
    expect(errors[0].reason).toMatch(/deep|nest/i);
    await lagZero(group, topic);
  });
});

describe('a permanent failure with no error output wired', () => {
  it('becomes a dead letter, the rest is committed, and replay puts it back once the table is fixed', async () => {
    const id = suffix();
    const topic = `deadletter-${id}`;
    const table = `deadletter_${id}`;
    topics.push(topic);
    tables.push(table);
    await createTopic(topic, 1);
    await sql(
      `CREATE TABLE \`${table}\` (id_lote VARCHAR(32) PRIMARY KEY, id_raca VARCHAR(10), peso_medio DOUBLE, data DATETIME)`,
    );
    const rows = Array.from({ length: 500 }, (_, i) => reading(i));
    rows[123] = { ...rows[123], id_raca: 'nelore-cruzado-com-angus' }; // 24 characters: too long for VARCHAR(10)
    await kcatProduce(
      topic,
      rows.map((r) => `${r.id_lote}\t${JSON.stringify(r)}`),
    );
    const dir = await mkdtemp(join(tmpdir(), 'sluice-dl-'));
    const spec = join(dir, 'dl.yaml');
    await writeFile(
      spec,
      `version: 1
name: dl-${id}
sources:
  readings: { type: kafka, brokers: '${BROKERS}', topics: [${topic}], group: dl-${id}, start: earliest, codec: json }
sinks:
  warehouse:
    type: mysql
    from: [readings]
    url: \${MYSQL_URL}
    table: ${table}
    mode: upsert
    columns: { id_lote: VARCHAR(32), id_raca: VARCHAR(10), peso_medio: DOUBLE, data: DATETIME }
`,
    );
    const state = join(dir, 'state');
    const run = await runSluice(spec, { MYSQL_URL }, ['--exit-idle', '3s', '--state-dir', state]);
    expect(run.code, run.stderr.slice(-3000)).toBe(3);
    expect(run.stderr).toMatch(/1 record failed: 0 to error outputs, 1 to dead letters/);
    expect(Number((await sql(`SELECT COUNT(*) FROM \`${table}\``))[0][0])).toBe(499);
    await lagZero(`dl-${id}`, topic);

    const ls = cli(['dead-letter', 'ls', spec, '--state-dir', state, '--format', 'json']);
    expect(ls.code, ls.stderr).toBe(0);
    const listed = JSON.parse(ls.stdout) as {
      stages: { stage: string; records: number; reasons: { reason: string }[] }[];
    };
    expect(listed.stages).toHaveLength(1);
    expect(listed.stages[0]).toMatchObject({ stage: 'warehouse', records: 1 });
    expect(listed.stages[0].reasons[0].reason).toMatch(/Data too long for column 'id_raca'/);

    // The fix: a wider column. Replay writes the row; nothing is left.
    await sql(`ALTER TABLE \`${table}\` MODIFY id_raca VARCHAR(64)`);
    const replay = spawnSync(
      'node_modules/.bin/node',
      ['src/cli.ts', 'dead-letter', 'replay', spec, '--state-dir', state],
      {
        encoding: 'utf8',
        env: { ...process.env, MYSQL_URL },
        timeout: 120_000,
      },
    );
    expect(replay.status, replay.stderr).toBe(0);
    expect(replay.stdout).toMatch(/warehouse: replayed 1 record: 1 delivered, 0 failed again/);
    expect(await sql(`SELECT id_raca FROM \`${table}\` WHERE id_lote = 'L123'`)).toEqual([
      ['nelore-cruzado-com-angus'],
    ]);
    expect(Number((await sql(`SELECT COUNT(*) FROM \`${table}\``))[0][0])).toBe(500);
    expect(cli(['dead-letter', 'ls', spec, '--state-dir', state]).stdout).toMatch(/no dead letters/);
  });
});
