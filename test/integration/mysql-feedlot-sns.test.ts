/**
 * pipelines/feedlot-sns-mysql-s3.yaml (the whole of seed 004) through the CLI: moto's SNS
 * delivers to sluice over HTTP; the mariadb CLI reads the warehouse table and boto3 the lake.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MYSQL_URL, requireMysql, sql, suffix } from './mysql-harness.ts';
import { boto3, freePort, REGION, requireMoto, runCli, unique } from './sns-harness.ts';

const tables: string[] = [];

beforeAll(async () => {
  await requireMoto();
  await requireMysql();
});

afterAll(async () => {
  for (const t of tables) await sql(`DROP TABLE IF EXISTS \`${t}\``);
});

function message(i: number): Record<string, unknown> {
  return {
    id_curral: `C${(i % 40) + 1}`,
    id_raca: i === 3 ? "ang'us `x`; --" : ['nelore', 'angus'][i % 2],
    id_lote: `L${i}`,
    peso_entrada: 300 + (i % 50),
    peso_medio: 410.5 + (i % 30),
    quantidade_animais: 20 + (i % 100),
    dia_confinamento: 1 + (i % 110),
    consumo_real: 980.25 + i,
    data: `2024-03-${20 + (i % 3)} 10:${String(i % 60).padStart(2, '0')}:00`,
    cod_cliente: String((i % 2) + 1),
  };
}

describe('pipelines/feedlot-sns-mysql-s3.yaml', () => {
  it('writes every SNS message once to MySQL (upsert) and to the partitioned S3 lake, redeliveries included', async () => {
    const table = `historico_consumo_${suffix()}`;
    tables.push(table);
    const bucket = unique('lake');
    const arn = await boto3<string>(
      'out = boto3.client("sns").create_topic(Name=arg)["TopicArn"]',
      unique('consumo'),
    );
    await boto3('boto3.client("s3").create_bucket(Bucket=arg)', bucket);
    const port = await freePort();
    const run = runCli(
      'pipelines/feedlot-sns-mysql-s3.yaml',
      {
        SNS_TOPIC_ARN: arn,
        SNS_LISTEN_PORT: String(port),
        SNS_VERIFY: 'false',
        SNS_SUBSCRIBE_URL: `http://127.0.0.1:${port}/sns`,
        S3_BUCKET: bucket,
        LAKE_MAX_AGE: '300ms',
        MYSQL_URL,
        MYSQL_TABLE: table,
        AWS_REGION: REGION,
      },
      ['--exit-idle', '4s', '--state-dir', join(mkdtempSync(join(tmpdir(), 'sluice-sns-mysql-')), 'state')],
    );
    await run.waitFor('subscribed to sns topic');
    const messages = Array.from({ length: 120 }, (_, i) => message(i));
    // Eight messages published twice (a new MessageId, the same content): one row each all the same.
    await boto3(
      `
from concurrent.futures import ThreadPoolExecutor
sns = boto3.client("sns")
bodies = [json.dumps(m) for m in arg["m"]] + [json.dumps(m) for m in arg["m"][:8]]
with ThreadPoolExecutor(8) as pool:
    list(pool.map(lambda b: sns.publish(TopicArn=arg["t"], Message=b), bodies))
`,
      { t: arn, m: messages },
    );
    expect(await run.exited, run.stderr()).toBe(0);

    const rows = await sql(
      `SELECT id_lote, id_raca, id_treated_data, quantidade_animais, consumo_meta, DATE_FORMAT(data, '%Y-%m-%d %H:%i:%s'), row_ts IS NOT NULL FROM \`${table}\``,
    );
    expect(rows).toHaveLength(120);
    const byLote = new Map(rows.map((r) => [r[0], r]));
    for (const m of messages) {
      const r = byLote.get(m.id_lote as string);
      expect(r, String(m.id_lote)).toBeDefined();
      expect(r?.[1]).toBe(m.id_raca);
      expect(Number(r?.[3])).toBe(m.quantidade_animais);
      expect(Number(r?.[4])).toBeCloseTo(
        (m.peso_medio as number) * 0.025 * (m.quantidade_animais as number),
        1,
      );
      expect(r?.[5]).toBe(m.data);
      expect(r?.[6]).toBe('1');
    }
    // The lake has the same records, and the same deterministic ids as the warehouse.
    const lake = await boto3<{ key: string; id: string; lote: string }[]>(
      `
s3 = boto3.client("s3")
out = []
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=arg, Prefix="historico_diario/"):
    for o in page.get("Contents", []):
        for line in s3.get_object(Bucket=arg, Key=o["Key"])["Body"].read().decode("utf-8").splitlines():
            r = json.loads(line)
            out.append({"key": o["Key"], "id": r["id_treated_data"], "lote": r["id_lote"]})
`,
      bucket,
    );
    expect(lake).toHaveLength(120);
    const idOf = new Map(rows.map((r) => [r[0], r[2]]));
    for (const l of lake) {
      expect(l.id).toBe(idOf.get(l.lote));
      expect(l.key).toMatch(/^historico_diario\/fazenda_(um|dois)\/2024\/03\/2[012]\/historico_consumo_/);
    }
  });
});
