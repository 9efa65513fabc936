/**
 * pipelines/feedlot-sns-mysql-s3.yaml run as two processes subscribed to one topic, so every
 * message reaches both, with 30 % of the messages published a second time (a new MessageId,
 * the same content) and one process restarted mid-run. With `store: dynamodb` the two
 * deduplicate together: every id is once in the S3 lake (read back with boto3) and once in MySQL.
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
    id_raca: ['nelore', 'angus'][i % 2],
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

/**
 * Publishes messages [from, to) and, for 30 % of them, the same content again. moto delivers
 * within Publish and fails it when a subscriber is down (after delivering to the others): like
 * the project's producer, a failed publish is sent again, as a new message.
 */
function publish(arn: string, from: number, to: number): Promise<null> {
  const messages = Array.from({ length: to - from }, (_, i) => message(from + i));
  return boto3(
    `
import time
from concurrent.futures import ThreadPoolExecutor
sns = boto3.client("sns")
bodies = [json.dumps(m) for m in arg["m"]]
again = [b for i, b in enumerate(bodies) if i % 10 < 3]
def send(b):
    for attempt in range(240):
        try:
            return sns.publish(TopicArn=arg["t"], Message=b)
        except Exception:
            time.sleep(0.25)
    raise RuntimeError("publish kept failing")
with ThreadPoolExecutor(6) as pool:
    list(pool.map(send, bodies + again))
`,
    { t: arn, m: messages },
  );
}

describe('dedup store: dynamodb, two instances behind one SNS topic', () => {
  it('every id once in the lake and in MySQL, across a restart', async () => {
    const table = `historico_consumo_${suffix()}`;
    tables.push(table);
    const bucket = unique('lake');
    const dedupTable = unique('dedup');
    const arn = await boto3<string>(
      'out = boto3.client("sns").create_topic(Name=arg)["TopicArn"]',
      unique('consumo'),
    );
    await boto3('boto3.client("s3").create_bucket(Bucket=arg)', bucket);
    const ports = [await freePort(), await freePort()];
    const start = (port: number) =>
      runCli(
        'pipelines/feedlot-sns-mysql-s3.yaml',
        {
          SNS_TOPIC_ARN: arn,
          SNS_LISTEN_PORT: String(port),
          SNS_VERIFY: 'false',
          SNS_SUBSCRIBE_URL: `http://127.0.0.1:${port}/sns`,
          S3_BUCKET: bucket,
          LAKE_MAX_AGE: '200ms',
          MYSQL_URL,
          MYSQL_TABLE: table,
          DEDUP_STORE: 'dynamodb',
          DEDUP_TABLE: dedupTable,
          AWS_REGION: REGION,
        },
        ['--state-dir', join(mkdtempSync(join(tmpdir(), 'sluice-dedup-scale-')), 'state')],
      );
    const a = start(ports[0]);
    await a.waitFor('subscribed to sns topic');
    const b = start(ports[1]);
    await b.waitFor('subscribed to sns topic');

    await publish(arn, 0, 100);
    // A graceful restart of one instance mid-run: it drains, and the other goes on meanwhile.
    b.child.kill('SIGTERM');
    expect(await b.exited, b.stderr()).toBe(0);
    // Published while it is down: each reaches the other instance, and again once it is back.
    const during = publish(arn, 100, 130);
    await new Promise((r) => setTimeout(r, 1_000));
    const b2 = start(ports[1]);
    await b2.waitFor('subscribed to sns topic');
    await during;
    await publish(arn, 130, 200);

    for (const p of [a, b2]) p.child.kill('SIGTERM');
    expect(await a.exited, a.stderr()).toBe(0);
    expect(await b2.exited, b2.stderr()).toBe(0);

    const rows = await sql(`SELECT id_lote, id_treated_data FROM \`${table}\``);
    expect(rows).toHaveLength(200);
    const lake = await boto3<{ id: string; lote: string }[]>(
      `
s3 = boto3.client("s3")
out = []
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=arg, Prefix="historico_diario/"):
    for o in page.get("Contents", []):
        for line in s3.get_object(Bucket=arg, Key=o["Key"])["Body"].read().decode("utf-8").splitlines():
            r = json.loads(line)
            out.append({"id": r["id_treated_data"], "lote": r["id_lote"]})
`,
      bucket,
    );
    const lots = lake.map((l) => l.lote).sort();
    expect(lots).toEqual(Array.from({ length: 200 }, (_, i) => `L${i}`).sort());
    const idOf = new Map(rows.map((r) => [r[0], r[1]]));
    for (const l of lake) expect(l.id).toBe(idOf.get(l.lote));
  });
});
