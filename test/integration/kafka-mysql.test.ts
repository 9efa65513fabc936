/**
 * pipelines/feedlot-kafka-mysql.yaml end to end through the CLI, against the real broker and
 * MariaDB: kcat writes the input, the mariadb CLI and Kafka's ConsumerGroupCommand check what
 * sluice did. Loads, crashes (SIGKILL) and restarts, a group of two processes, rejected rows.
 */
import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
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
  SluiceProcess,
  suffix,
  until,
} from './kafka-harness.ts';
import { MYSQL_URL, requireMysql, sql } from './mysql-harness.ts';

const PIPELINE = 'pipelines/feedlot-kafka-mysql.yaml';
const topics: string[] = [];
const tables: string[] = [];
const running: SluiceProcess[] = [];

beforeAll(async () => {
  await requireKafka();
  await requireMysql();
});

afterAll(async () => {
  for (const p of running) p.kill('SIGKILL');
  for (const t of topics) await deleteTopic(t);
  for (const t of tables) await sql(`DROP TABLE IF EXISTS \`${t}\``);
});

interface Consumption {
  id_curral: string;
  id_raca: string;
  id_lote: string;
  peso_entrada: number;
  peso_medio: number;
  quantidade_animais: number | null;
  dia_confinamento: number;
  consumo_real: number;
  data: string;
  cod_cliente: string;
}

const BASE = Date.UTC(2024, 2, 20, 0, 0, 0);

/** The i-th consumption reading; (id_lote, data) is unique, so each makes its own row. */
function reading(i: number): Consumption {
  const d = new Date(BASE + i * 1000).toISOString();
  return {
    id_curral: `C${(i % 40) + 1}`,
    id_raca: ['nelore', 'angus', 'brahman', 'senepol'][i % 4],
    id_lote: `L${i}`,
    peso_entrada: 280 + (i % 80),
    peso_medio: 400 + (i % 150),
    quantidade_animais: 20 + (i % 120),
    dia_confinamento: 1 + (i % 110),
    consumo_real: 10 + (i % 7),
    data: `${d.slice(0, 10)} ${d.slice(11, 19)}`,
    cod_cliente: String((i % 2) + 1),
  };
}

/** Order-independent checksum of the columns that came from the input. */
function checksumOf(rows: Consumption[]): bigint {
  let sum = 0n;
  for (const r of rows) {
    sum += BigInt(
      crc32(
        `${r.id_lote}|${r.id_curral}|${r.id_raca}|${r.quantidade_animais}|${r.dia_confinamento}|${r.data}|${r.cod_cliente}`,
      ),
    );
  }
  return sum;
}

async function tableChecksum(table: string): Promise<{ count: number; distinct: number; checksum: bigint }> {
  const [[count, distinct, checksum]] = await sql(
    `SELECT COUNT(*), COUNT(DISTINCT id_treated_data),
       COALESCE(SUM(CRC32(CONCAT_WS('|', id_lote, id_curral, id_raca, quantidade_animais, dia_confinamento,
         DATE_FORMAT(data, '%Y-%m-%d %H:%i:%s'), cod_cliente))), 0)
     FROM \`${table}\``,
  );
  return { count: Number(count), distinct: Number(distinct), checksum: BigInt(checksum) };
}

async function tableCount(table: string): Promise<number> {
  try {
    return Number((await sql(`SELECT COUNT(*) FROM \`${table}\``))[0][0]);
  } catch {
    return 0; // not created yet
  }
}

async function setup(count: number, partitions = 3) {
  const id = suffix();
  const topic = `feedlot-${id}`;
  const table = `historico_consumo_${id}`;
  topics.push(topic);
  tables.push(table);
  await createTopic(topic, partitions);
  const rows = Array.from({ length: count }, (_, i) => reading(i));
  const env = {
    KAFKA_BROKERS: BROKERS,
    KAFKA_TOPIC: topic,
    KAFKA_GROUP: `warehouse-${id}`,
    MYSQL_URL,
    MYSQL_TABLE: table,
    ERRORS_DIR: await mkdtemp(join(tmpdir(), 'sluice-errors-')),
  };
  const state = await mkdtemp(join(tmpdir(), 'sluice-state-'));
  return { topic, table, rows, env, state, group: env.KAFKA_GROUP };
}

const produce = (topic: string, rows: Consumption[]) =>
  kcatProduce(
    topic,
    rows.map((r) => `${r.id_lote}\t${JSON.stringify(r)}`),
  );

async function expectCommittedAtEnd(group: string, topic: string, partitions: number): Promise<void> {
  const committed = await committedOffsets(group, topic);
  const ends = await endOffsets(topic, partitions);
  for (let p = 0; p < partitions; p++) expect(committed.get(p), `partition ${p}`).toBe(ends[p]);
}

describe('pipelines/feedlot-kafka-mysql.yaml', () => {
  it('loads 50,000 records from a 3-partition topic into MariaDB: count and checksum match', async () => {
    const s = await setup(50_000);
    await produce(s.topic, s.rows);
    const started = Date.now();
    const res = await runSluice(PIPELINE, s.env, ['--exit-idle', '3s', '--state-dir', s.state]);
    expect(res.code, res.stderr.slice(-3000)).toBe(0);
    const got = await tableChecksum(s.table);
    expect(got.count).toBe(50_000);
    expect(got.distinct).toBe(50_000);
    expect(got.checksum).toBe(checksumOf(s.rows));
    // consumo_meta and fazenda-independent enrichment landed too.
    const [[meta]] = await sql(`SELECT consumo_meta FROM \`${s.table}\` WHERE id_lote = 'L7'`);
    expect(Number(meta)).toBeCloseTo(407 * 0.025 * 27, 3);
    await expectCommittedAtEnd(s.group, s.topic, 3);
    console.log(
      `feedlot-kafka-mysql: 50,000 records loaded in ${((Date.now() - started) / 1000).toFixed(1)} s (incl. start and 3 s idle exit)`,
    );
  });

  it('SIGKILL at three random instants, restart each time: every record exactly once, group offsets at the end', async () => {
    const s = await setup(50_000);
    await produce(s.topic, s.rows);
    // Each kill comes at a random row count, one in each of three stretches of the load.
    const thresholds = [0, 1, 2].map((k) => 2_000 + k * 15_000 + Math.floor(Math.random() * 10_000));
    for (const threshold of thresholds) {
      const p = new SluiceProcess(PIPELINE, s.env, ['--state-dir', s.state]);
      running.push(p);
      await until(
        async () => (await tableCount(s.table)) >= threshold || p.child.exitCode !== null,
        90_000,
        `${threshold} rows`,
      );
      p.kill('SIGKILL');
      const end = await p.done;
      expect(end.signal, end.stderr.slice(-2000)).toBe('SIGKILL');
    }
    // The last run first waits for the group to drop the killed member (its session timeout),
    // so no --exit-idle here: stop it once everything is in, with SIGTERM (drain, commit, leave).
    const last = new SluiceProcess(PIPELINE, s.env, ['--state-dir', s.state]);
    running.push(last);
    await until(
      async () => (await tableCount(s.table)) >= 50_000 || last.child.exitCode !== null,
      90_000,
      'all rows',
    );
    last.kill('SIGTERM');
    const res = await last.done;
    expect(res.code, res.stderr.slice(-3000)).toBe(0);
    const got = await tableChecksum(s.table);
    expect(got.count).toBe(50_000);
    expect(got.distinct).toBe(50_000);
    expect(got.checksum).toBe(checksumOf(s.rows));
    await expectCommittedAtEnd(s.group, s.topic, 3);
  });

  it('two processes in one group share the partitions; stopping one moves its partitions to the other, nothing lost', async () => {
    const s = await setup(30_000);
    await produce(s.topic, s.rows.slice(0, 10_000));
    const a = new SluiceProcess(PIPELINE, s.env, ['--state-dir', `${s.state}/a`]);
    const b = new SluiceProcess(PIPELINE, s.env, ['--state-dir', `${s.state}/b`]);
    running.push(a, b);
    const assigned = (p: SluiceProcess) => {
      const joins = p.logs().filter((l) => l.msg === 'kafka group joined');
      return (joins.at(-1)?.partitions as string[] | undefined) ?? [];
    };
    await until(() => assigned(a).length > 0 && assigned(b).length > 0, 60_000, 'both processes assigned');
    await until(
      () => assigned(a).length + assigned(b).length === 3,
      30_000,
      'the 3 partitions split over both',
    );
    expect(assigned(a).filter((x) => assigned(b).includes(x))).toEqual([]);
    await produce(s.topic, s.rows.slice(10_000, 20_000));
    // Graceful stop of a: it drains, commits and leaves; b takes all three partitions.
    a.kill('SIGTERM');
    const endA = await a.done;
    expect(endA.code, endA.stderr.slice(-2000)).toBe(0);
    await until(() => assigned(b).length === 3, 30_000, 'b owns every partition');
    await produce(s.topic, s.rows.slice(20_000));
    await until(async () => (await tableCount(s.table)) >= 30_000, 60_000, 'all 30,000 rows');
    b.kill('SIGTERM');
    const endB = await b.done;
    expect(endB.code, endB.stderr.slice(-2000)).toBe(0);
    const got = await tableChecksum(s.table);
    expect(got.count).toBe(30_000);
    expect(got.checksum).toBe(checksumOf(s.rows));
    await expectCommittedAtEnd(s.group, s.topic, 3);
  });

  it('rejected rows go to the error output with the reason while the rest commits; quotes, backticks and semicolons stay verbatim', async () => {
    const s = await setup(0, 1);
    // The table exists already, stricter than the seed's: id_curral NOT NULL.
    await sql(
      `CREATE TABLE \`${s.table}\` (id_treated_data VARCHAR(255) PRIMARY KEY, id_curral VARCHAR(255) NOT NULL,
        id_raca VARCHAR(255), id_lote VARCHAR(255), peso_entrada FLOAT, peso_medio FLOAT, quantidade_animais INT,
        dia_confinamento INT, consumo_real FLOAT, consumo_meta FLOAT, data DATETIME, cod_cliente VARCHAR(255), row_ts DATETIME)`,
    );
    const nasty = 'O\'Brien `x`; DROP TABLE historico_consumo; -- "q" \\';
    const rows = Array.from({ length: 100 }, (_, i) => reading(i));
    rows[10] = { ...rows[10], id_raca: 'x'.repeat(300) }; // too long for VARCHAR(255)
    rows[55] = { ...rows[55], id_curral: null as unknown as string }; // NOT NULL
    rows[70] = { ...rows[70], id_raca: nasty };
    await produce(s.topic, rows);
    await kcatProduce(s.topic, ['bad\t{not json']);
    const res = await runSluice(PIPELINE, s.env, ['--exit-idle', '3s', '--state-dir', s.state]);
    // Completed, but records failed: exit 3 and the count on the last line.
    expect(res.code, res.stderr.slice(-3000)).toBe(3);
    expect(res.stderr).toMatch(/3 records failed: 3 to error outputs, 0 to dead letters/);
    expect(await tableCount(s.table)).toBe(98);
    expect(await sql(`SELECT id_raca FROM \`${s.table}\` WHERE id_lote = 'L70'`)).toEqual([[nasty]]);
    expect(await sql(`SELECT COUNT(*) FROM \`${s.table}\` WHERE id_lote IN ('L10', 'L55')`)).toEqual([['0']]);
    // Every rejected record is in the error files, with its reason.
    const files = (await readdir(s.env.ERRORS_DIR, { recursive: true })).filter((f) => f.endsWith('.ndjson'));
    const errors: { stage: string; reason: string; value: unknown }[] = [];
    for (const f of files) {
      for (const line of (await readFile(join(s.env.ERRORS_DIR, f), 'utf8')).split('\n')) {
        if (line.trim()) errors.push(JSON.parse(line));
      }
    }
    const reasonFor = (lote: string) =>
      errors.find((e) => (e.value as { id_lote?: string }).id_lote === lote)?.reason;
    expect(reasonFor('L10')).toMatch(/Data too long for column 'id_raca'/);
    expect(reasonFor('L55')).toMatch(/Column 'id_curral' cannot be null/);
    expect(errors.find((e) => e.stage === 'consumption')?.reason).toMatch(/invalid JSON/);
    expect(errors).toHaveLength(3);
    await expectCommittedAtEnd(s.group, s.topic, 1);
  });
});
