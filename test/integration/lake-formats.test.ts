/**
 * The lake in columnar form against moto's S3, read back by readers that are not ours: pyarrow for
 * Parquet (every value and its Arrow type compared with the input), Python's zstandard for zstd
 * ndjson and csv. Contract-level tests call the S3 sink's `write`; the last runs the
 * feedlot-to-lake-parquet pipeline as a child process with moto's SNS delivering to it.
 *
 * The Python is the one scripts/services.sh prepares beside moto (SERVICES_PYTHON), which has
 * boto3, pyarrow and zstandard.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AckGroup } from '../../src/runtime/ack.ts';
import type { SluiceRecord } from '../../src/runtime/record.ts';
import type { SinkBatch } from '../../src/stages/define.ts';
import { s3Sink } from '../../src/stages/sinks/s3.ts';
import { awsEnv, freePort, requireMoto, runCli, stageContext, unique } from './sns-harness.ts';

const PYTHON = process.env.SERVICES_PYTHON || 'python3';
const HINT = 'run `scripts/services.sh up` and `eval "$(scripts/services.sh env)"` (SERVICES_PYTHON)';

/** Reads S3 objects with boto3 and decodes them with pyarrow or zstandard: JSON of what they hold. */
const PRELUDE = `
import boto3, datetime, decimal, io, json, os, sys, zstandard
arg = json.load(sys.stdin)
s3 = boto3.client("s3")
def plain(v):
    if isinstance(v, datetime.datetime): return v.isoformat(timespec="milliseconds")
    if isinstance(v, datetime.date): return v.isoformat()
    if isinstance(v, decimal.Decimal): return str(v)
    raise TypeError(repr(v))
def objects(bucket, prefix):
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            yield o["Key"], s3.get_object(Bucket=bucket, Key=o["Key"])
def parquet(body):
    import pyarrow.parquet as pq
    f = pq.ParquetFile(io.BytesIO(body))
    t = f.read()
    return {
        "types": {field.name: str(field.type) for field in t.schema},
        "rows": t.to_pylist(),
        "row_groups": f.metadata.num_row_groups,
        "codec": f.metadata.row_group(0).column(0).compression,
    }
out = None
`;

function py<T>(code: string, arg: unknown = null): Promise<T> {
  // Exits without interpreter teardown once the answer is out: pyarrow's thread pools can abort
  // there on a loaded machine ("terminate called without an active exception").
  const script = `${PRELUDE}\n${code}\nprint(json.dumps(out, default=plain))\nsys.stdout.flush()\nos._exit(0)\n`;
  return new Promise((resolve, reject) => {
    const child = execFile(
      PYTHON,
      ['-c', script],
      { env: { ...process.env, ...awsEnv }, maxBuffer: 256 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (!err) return resolve(JSON.parse(stdout) as T);
        const missing = /No module named '(pyarrow|zstandard|boto3)'/.exec(stderr);
        reject(
          new Error(
            missing ? `${PYTHON} has no ${missing[1]}: ${HINT}` : `python failed: ${stderr || err.message}`,
          ),
        );
      },
    );
    child.stdin?.end(JSON.stringify(arg));
  });
}

interface ParquetObject {
  key: string;
  types: Record<string, string>;
  rows: Record<string, unknown>[];
  row_groups: number;
  codec: string;
}

const readParquet = (bucket: string, prefix: string) =>
  py<ParquetObject[]>(
    'out = [dict(key=k, **parquet(r["Body"].read())) for k, r in objects(arg["b"], arg["p"])]',
    { b: bucket, p: prefix },
  );

let bucket: string;
const dirs: string[] = [];

beforeAll(async () => {
  await requireMoto();
  bucket = unique('sluice-lake');
  await py('s3.create_bucket(Bucket=arg)', bucket);
});

afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function batch(values: unknown[], from = 0): SinkBatch {
  const ack = new AckGroup(values.length);
  const records: SluiceRecord[] = values.map((value, i) => ({
    value,
    meta: {},
    position: `shard-1:${from + i}`,
    size: 100,
    ack,
  }));
  return {
    records,
    partition: undefined,
    startedAt: Date.parse('2024-03-20T10:30:45.123Z'),
    bytes: 0,
    seq: 0,
  };
}

function sink(options: Record<string, unknown>) {
  return s3Sink.create(
    { bucket, key: 'x/{first_position}{ext}', ...options } as never,
    stageContext('lake', 'sink', 's3'),
  );
}

/** A feedlot-shaped value of every kind a lake column holds, nulls included. */
function lakeRecord(i: number): Record<string, unknown> {
  return {
    id_lote: `L${i}`,
    obs: i % 3 === 0 ? null : `ração "${i}", ç`,
    quantidade_animais: 20 + i,
    grande: i === 1 ? 9_007_199_254_740_993n : i,
    dia_confinamento: i % 110,
    peso_medio: 410.5 + i / 4,
    ativo: i % 2 === 0,
    data: `2024-03-${String(20 + (i % 3))}T10:${String(i % 60).padStart(2, '0')}:00.125Z`,
    dia: `2024-03-${String(20 + (i % 3))}`,
    preco: (12.5 + i).toFixed(2),
    tags: i % 4 === 0 ? [] : ['nelore', `c${i}`],
    pos: i % 5 === 0 ? null : { lat: -15.5 - i, lon: -47.25 },
    extra: { i, nested: [i, 'x'] },
  };
}

const LAKE_SCHEMA = {
  id_lote: 'string',
  obs: 'string',
  quantidade_animais: 'int',
  grande: 'bigint',
  dia_confinamento: 'int',
  peso_medio: 'double',
  ativo: 'boolean',
  data: 'timestamp',
  dia: 'date',
  preco: 'decimal(10,2)',
  tags: 'array<string>',
  pos: 'struct<lat:double,lon:double>',
  extra: 'json',
};

/** The value pyarrow gives back for each input field, as JSON. */
function expectedRow(v: Record<string, unknown>): Record<string, unknown> {
  return {
    ...v,
    grande: Number(v.grande),
    data: (v.data as string).replace('Z', '+00:00'),
    extra: JSON.stringify(v.extra),
  };
}

describe('s3 sink, format parquet, read by pyarrow', () => {
  it('writes every value with its declared type, one row group per object', async () => {
    const values = Array.from({ length: 40 }, (_, i) => lakeRecord(i));
    for (const compression of ['zstd', 'snappy'] as const) {
      const s = sink({
        key: `typed-${compression}/{first_position}{ext}`,
        format: 'parquet',
        compression,
        schema: LAKE_SCHEMA,
      });
      expect(await s.write(batch(values))).toBeUndefined();
      const [object, ...more] = await readParquet(bucket, `typed-${compression}/`);
      expect(more).toEqual([]);
      expect(object.key).toBe(`typed-${compression}/shard-1_0.parquet`);
      expect(object.row_groups).toBe(1);
      expect(object.codec).toBe(compression.toUpperCase());
      expect(object.types).toEqual({
        id_lote: 'string',
        obs: 'string',
        quantidade_animais: 'int32',
        grande: 'int64',
        dia_confinamento: 'int32',
        peso_medio: 'double',
        ativo: 'bool',
        data: 'timestamp[ms, tz=UTC]',
        dia: 'date32[day]',
        preco: 'decimal128(10, 2)',
        tags: 'list<element: string>',
        pos: 'struct<lat: double, lon: double>',
        extra: expect.stringMatching(/^(string|large_string|extension<arrow\.json>)$/),
      });
      expect(object.rows).toEqual(values.map(expectedRow));
    }
    // 2^53 + 1 survives: int64 is written from a bigint, not through a double.
    const [object] = await readParquet(bucket, 'typed-zstd/');
    expect(
      await py(
        'import pyarrow.parquet as pq\nout = str(pq.read_table(io.BytesIO(s3.get_object(Bucket=arg["b"], Key=arg["k"])["Body"].read()))["grande"][1])',
        { b: bucket, k: object.key },
      ),
    ).toBe('9007199254740993');
  });

  it('infers the schema from the first batch and rejects what does not fit it later', async () => {
    const s = sink({ key: 'inferred/{first_position}{ext}', format: 'parquet' });
    const first = [
      { id: 1, peso: 400, at: '2024-03-20T12:00:00Z', nome: 'a', ok: true, pos: { lat: 1.5 }, tags: ['x'] },
      { id: 2, peso: 400.5, at: '2024-03-20T13:00:00.000-03:00', nome: null, ok: false, pos: null, tags: [] },
    ];
    expect(await s.write(batch(first))).toBeUndefined();
    const second = await s.write(batch([{ id: 3, peso: 1 }, { id: 'four' }, { id: 5, novo: true }], 10));
    expect(second?.failed.map((f) => [f.index, f.retryable, f.reason])).toEqual([
      [1, false, 's3: record does not fit the parquet schema: id is the text "four", not bigint'],
      [2, false, 's3: record does not fit the parquet schema: novo is not in the schema'],
    ]);
    const objects = await readParquet(bucket, 'inferred/');
    expect(objects.map((o) => o.key)).toEqual(['inferred/shard-1_0.parquet', 'inferred/shard-1_10.parquet']);
    for (const o of objects) {
      expect(o.types).toEqual({
        id: 'int64',
        peso: 'double',
        at: 'timestamp[ms, tz=UTC]',
        nome: 'string',
        ok: 'bool',
        pos: 'struct<lat: double>',
        tags: 'list<element: string>',
      });
    }
    expect(objects[0].rows).toEqual([
      { ...first[0], at: '2024-03-20T12:00:00.000+00:00' },
      { ...first[1], at: '2024-03-20T16:00:00.000+00:00' },
    ]);
    expect(objects[1].rows).toEqual([
      { id: 3, peso: 1, at: null, nome: null, ok: null, pos: null, tags: null },
    ]);
  });
});

describe('s3 sink, compression zstd, read by zstandard', () => {
  it('ndjson and csv objects end in .zst, carry Content-Encoding zstd and decompress to the records', async () => {
    const values = Array.from({ length: 500 }, (_, i) => ({
      id: i,
      obs: i % 7 ? 'ok' : 'a, "quoted"\nline',
    }));
    for (const format of ['ndjson', 'csv'] as const) {
      const s = sink({ key: `zst-${format}/{first_position}{ext}`, format, compression: 'zstd' });
      expect(await s.write(batch(values))).toBeUndefined();
    }
    const read = await py<{ key: string; encoding: string; type: string; text: string; size: number }[]>(
      `
out = []
for prefix in ("zst-ndjson/", "zst-csv/"):
    for k, r in objects(arg, prefix):
        body = r["Body"].read()
        text = zstandard.ZstdDecompressor().decompressobj().decompress(body).decode("utf-8")
        out.append({"key": k, "encoding": r.get("ContentEncoding"), "type": r.get("ContentType"), "text": text, "size": len(body)})
`,
      bucket,
    );
    expect(read.map((o) => [o.key, o.encoding, o.type])).toEqual([
      ['zst-ndjson/shard-1_0.ndjson.zst', 'zstd', 'application/x-ndjson'],
      ['zst-csv/shard-1_0.csv.zst', 'zstd', 'text/csv'],
    ]);
    expect(
      read[0].text
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l)),
    ).toEqual(values);
    const csv = await py<Record<string, string>[]>(
      'import csv\nout = list(csv.DictReader(io.StringIO(arg)))',
      read[1].text,
    );
    expect(csv).toEqual(values.map((v) => ({ id: String(v.id), obs: v.obs })));
    expect(read[0].size).toBeLessThan(read[0].text.length / 5);
  });
});

describe('feedlot-to-lake-parquet pipeline', () => {
  it('lands what moto delivers as typed parquet; a message that does not fit goes to the zstd errors', async () => {
    const lakeBucket = unique('lake-parquet');
    const arn = await py<string>(
      's3.create_bucket(Bucket=arg["b"])\nout = boto3.client("sns").create_topic(Name=arg["t"])["TopicArn"]',
      { b: lakeBucket, t: unique('consumo') },
    );
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'sluice-lake-'));
    dirs.push(dir);
    const lake = runCli(
      'pipelines/feedlot-to-lake-parquet.yaml',
      {
        SNS_TOPIC_ARN: arn,
        SNS_LISTEN_PORT: String(port),
        SNS_VERIFY: 'false',
        SNS_SUBSCRIBE_URL: `http://127.0.0.1:${port}/sns`,
        S3_BUCKET: lakeBucket,
        LAKE_MAX_AGE: '300ms',
      },
      ['--exit-idle', '4s', '--state-dir', join(dir, 'state')],
    );
    await lake.waitFor('subscribed to sns topic');
    const messages = Array.from({ length: 30 }, (_, i) => ({
      id_curral: `C${(i % 4) + 1}`,
      id_raca: ['nelore', 'angus'][i % 2],
      id_lote: `L${i}`,
      peso_entrada: 300 + (i % 50),
      peso_medio: 410.5 + i,
      quantidade_animais: 20 + i,
      dia_confinamento: 1 + i,
      consumo_real: 980.25 + i,
      data: `2024-03-${20 + (i % 2)} 10:${String(i).padStart(2, '0')}:00`,
      cod_cliente: String((i % 2) + 1),
    }));
    const misfit = { ...messages[0], id_lote: 'L-bad', dia_confinamento: 'terceiro' };
    await py(
      'sns = boto3.client("sns")\nfor m in arg["m"]: sns.publish(TopicArn=arg["t"], Message=json.dumps(m))',
      { t: arn, m: [...messages, misfit] },
    );
    // 3: completed, with a record in the error output.
    expect(await lake.exited, lake.stderr()).toBe(3);

    const objects = await readParquet(lakeBucket, 'historico_parquet/');
    expect(objects.length).toBeGreaterThanOrEqual(4); // two farms × two days
    for (const o of objects) {
      expect(o.key).toMatch(
        /^historico_parquet\/fazenda_(um|dois)\/2024\/03\/2[01]\/historico_consumo_[0-9a-f-]{36}\.parquet$/,
      );
      expect(o.codec).toBe('ZSTD');
      expect(o.types).toEqual({
        id_curral: 'string',
        id_raca: 'string',
        id_lote: 'string',
        cod_cliente: 'string',
        data: 'timestamp[ms, tz=UTC]',
        peso_entrada: 'double',
        peso_medio: 'double',
        quantidade_animais: 'int64',
        dia_confinamento: 'int32',
        consumo_real: 'double',
        fazenda: 'string',
        consumo_meta: 'double',
        id_treated_data: 'string',
        row_ts: 'timestamp[ms, tz=UTC]',
      });
    }
    const rows = objects.flatMap((o) => o.rows);
    expect(rows.map((r) => r.id_lote).sort()).toEqual(messages.map((m) => m.id_lote).sort());
    for (const m of messages) {
      const row = rows.find((r) => r.id_lote === m.id_lote) as Record<string, unknown>;
      expect(row).toMatchObject({ ...m, data: `${m.data.replace(' ', 'T')}.000+00:00` });
      expect(row.fazenda).toBe(m.cod_cliente === '1' ? 'fazenda_um' : 'fazenda_dois');
      expect(row.consumo_meta as number).toBeCloseTo(m.peso_medio * 0.025 * m.quantidade_animais, 9);
      expect(row.row_ts).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$/);
    }

    const errors = await py<{ key: string; lines: Record<string, unknown>[] }[]>(
      `
out = []
for k, r in objects(arg, "errors/"):
    text = zstandard.ZstdDecompressor().decompressobj().decompress(r["Body"].read()).decode("utf-8")
    out.append({"key": k, "lines": [json.loads(l) for l in text.splitlines()]})
`,
      lakeBucket,
    );
    expect(errors).toHaveLength(1);
    expect(errors[0].key).toMatch(/^errors\/feedlot_parquet_[0-9a-f-]{36}\.ndjson\.zst$/);
    expect(errors[0].lines).toEqual([
      expect.objectContaining({
        stage: 'lake',
        reason:
          's3: record does not fit the parquet schema: dia_confinamento is the text "terceiro", not int',
        value: expect.objectContaining({ id_lote: 'L-bad', dia_confinamento: 'terceiro' }),
      }),
    ]);
  });
});
