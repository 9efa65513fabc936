/**
 * The S3 sink against moto: what it writes is read back with boto3. Contract-level tests call
 * `write` directly; pipeline tests run the CLI as a child process.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AckGroup } from '../../src/runtime/ack.ts';
import type { SluiceRecord } from '../../src/runtime/record.ts';
import { type SinkBatch, StageError } from '../../src/stages/define.ts';
import { s3Sink } from '../../src/stages/sinks/s3.ts';
import { boto3, requireMoto, runCli, stageContext, unique } from './sns-harness.ts';

const MiB = 1024 * 1024;
let bucket: string;
const dirs: string[] = [];

beforeAll(async () => {
  await requireMoto();
  bucket = unique('sluice-s3');
  await boto3('boto3.client("s3").create_bucket(Bucket=arg)', bucket);
});

afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function records(n: number, partition?: string, from = 0): SluiceRecord[] {
  const ack = new AckGroup(n);
  return Array.from({ length: n }, (_, k) => {
    const i = from + k;
    const value = {
      id: i,
      id_lote: `L${i}`,
      peso_medio: 400 + (i % 50),
      obs: i % 7 === 0 ? 'a, "quoted"\nline' : 'ok',
    };
    return { value, meta: {}, partition, position: `shard-1:${1000 + i}`, size: 60, ack };
  });
}

function batch(recs: SluiceRecord[], partition?: string, seq = 0): SinkBatch {
  return {
    records: recs,
    partition,
    startedAt: Date.parse('2024-03-20T10:30:45.123Z'),
    bytes: recs.length * 60,
    seq,
  };
}

function sink(options: Record<string, unknown>) {
  const ctx = stageContext('lake', 'sink', 's3');
  const s = s3Sink.create({ bucket, key: 'x/{first_position}{ext}', ...options } as never, ctx);
  return { s, ctx };
}

interface ObjectInfo {
  key: string;
  type: string;
  encoding: string | null;
  etag: string;
  size: number;
  text: string;
}

/** Every object under `prefix`, with its body (gunzipped when Content-Encoding says gzip). */
function objects(prefix: string, b = bucket): Promise<ObjectInfo[]> {
  return boto3<ObjectInfo[]>(
    `
s3 = boto3.client("s3")
out = []
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=arg["b"], Prefix=arg["p"]):
    for o in page.get("Contents", []):
        r = s3.get_object(Bucket=arg["b"], Key=o["Key"])
        body = r["Body"].read()
        if r.get("ContentEncoding") == "gzip":
            body = gzip.decompress(body)
        out.append({"key": o["Key"], "type": r.get("ContentType"), "encoding": r.get("ContentEncoding"),
                    "etag": r["ETag"], "size": o["Size"], "text": body.decode("utf-8")})
`,
    { b, p: prefix },
  );
}

describe('s3 sink: objects', () => {
  it('writes one ndjson object per batch with the exact records, under the rendered key', async () => {
    const prefix = unique('nd');
    const { s, ctx } = sink({
      key: `${prefix}/{partition}/part_{first_position}_{last_position}_{count}{ext}`,
    });
    const recs = records(250, 'fazenda_um/2024/03/20');
    await s.write(batch(recs, 'fazenda_um/2024/03/20'));
    const objs = await objects(prefix);
    expect(objs.map((o) => o.key)).toEqual([
      `${prefix}/fazenda_um/2024/03/20/part_shard-1_1000_shard-1_1249_250.ndjson`,
    ]);
    expect(objs[0].type).toBe('application/x-ndjson');
    expect(objs[0].encoding).toBeNull();
    const lines = objs[0].text
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines).toEqual(recs.map((r) => r.value));
    expect(ctx.metrics.extra.get('objects')).toBe(1);
    await s.close?.();
  });

  it('overwrites the same object when the same source range is written again (deterministic key)', async () => {
    const prefix = unique('det');
    const { s } = sink({ key: `${prefix}/{partition}/{first_position}-{last_position}{ext}` });
    await s.write(batch(records(10, 'p'), 'p', 0));
    // A replay after a crash: same positions, a later flush number and start time.
    await s.write({ ...batch(records(10, 'p'), 'p', 7), startedAt: Date.now() });
    const objs = await objects(prefix);
    expect(objs).toHaveLength(1);
    expect(objs[0].text.trimEnd().split('\n')).toHaveLength(10);
    await s.close?.();
  });

  it('writes gzip csv with a header, Content-Encoding gzip and a .csv.gz key', async () => {
    const prefix = unique('csv');
    const { s } = sink({ key: `${prefix}/{first_position}{ext}`, format: 'csv', compression: 'gzip' });
    const recs = records(20);
    await s.write(batch(recs));
    const objs = await objects(prefix);
    expect(objs).toHaveLength(1);
    expect(objs[0].key).toMatch(/\.csv\.gz$/);
    expect(objs[0].encoding).toBe('gzip');
    expect(objs[0].type).toBe('text/csv');
    // Parse with Python's csv module: a reader that is not ours.
    const rows = await boto3<Record<string, string>[]>(
      'import csv, io\nout = list(csv.DictReader(io.StringIO(arg)))',
      objs[0].text,
    );
    expect(rows).toHaveLength(20);
    expect(rows.map((r) => Number(r.id))).toEqual(recs.map((_, i) => i));
    expect(rows[0].obs).toBe('a, "quoted"\nline');
    expect(Object.keys(rows[0])).toEqual(['id', 'id_lote', 'peso_medio', 'obs']);
    await s.close?.();
  });

  it('uploads large objects in parts of at least 5 MiB', async () => {
    const prefix = unique('mp');
    const { s, ctx } = sink({
      key: `${prefix}/{first_position}{ext}`,
      multipart_threshold: 5 * MiB,
      part_size: 5 * MiB,
    });
    const ack = new AckGroup(1);
    const big: SluiceRecord[] = Array.from({ length: 12 }, (_, i) => ({
      value: { i, pad: 'x'.repeat(MiB) },
      meta: {},
      position: `p:${i}`,
      size: MiB,
      ack,
    }));
    await s.write(batch(big));
    expect(ctx.metrics.extra.get('multipart_uploads')).toBe(1);
    const head = await boto3<{ etag: string; length: number; parts: number }>(
      `
s3 = boto3.client("s3")
h = s3.head_object(Bucket=arg["b"], Key=arg["k"], PartNumber=1)
full = s3.head_object(Bucket=arg["b"], Key=arg["k"])
out = {"etag": full["ETag"], "length": full["ContentLength"], "parts": h.get("PartsCount", 0)}
`,
      { b: bucket, k: `${prefix}/p_0.ndjson` },
    );
    // A multipart ETag is "<md5 of part md5s>-<parts>".
    expect(head.etag).toMatch(/-3"$/);
    expect(head.length).toBeGreaterThan(12 * MiB);
    const objs = await objects(prefix);
    const lines = objs[0].text
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as { i: number });
    expect(lines.map((l) => l.i)).toEqual(Array.from({ length: 12 }, (_, i) => i));
    await s.close?.();
  });

  it('fails the batch with a retryable error when the bucket does not exist', async () => {
    const ctx = stageContext('lake', 'sink', 's3');
    const s = s3Sink.create({ bucket: unique('missing'), key: '{first_position}{ext}' } as never, ctx);
    const e = await s.write(batch(records(3))).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(e).toBeInstanceOf(StageError);
    expect((e as StageError).retryable).toBe(true);
    expect((e as Error).message).toMatch(/bucket/i);
    expect(ctx.metrics.extra.get('objects')).toBeUndefined();
  });
});

function specFile(text: string): { dir: string; file: string } {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-s3-'));
  dirs.push(dir);
  const file = join(dir, 'pipeline.yaml');
  writeFileSync(file, text);
  return { dir, file };
}

describe('s3 sink in a pipeline', () => {
  it('writes 100,000 records over 5 partitions as few objects holding exactly those records', async () => {
    const prefix = unique('bulk');
    const { dir, file } = specFile(`
version: 1
name: ${prefix}
sources:
  gen:
    type: generate
    count: 100000
    fields:
      id: 'i'
      fazenda: '"f" + string(i % 5)'
      peso_medio: 'round(300.0 + rand * 150.0, 1)'
transforms:
  parts:
    type: partition
    from: [gen]
    by: 'fazenda'
sinks:
  lake:
    type: s3
    from: [parts]
    bucket: ${bucket}
    key: '${prefix}/{partition}/{first_position}-{last_position}{ext}'
    compression: gzip
`);
    const run = runCli(file, {}, ['--exit-idle', '2s', '--state-dir', join(dir, 'state')]);
    expect(await run.exited, run.stderr()).toBe(0);
    const objs = await objects(prefix);
    // Default buffer: 100,000 records / 16 MiB / 60 s per partition, so one object each.
    expect(objs.length).toBeGreaterThanOrEqual(5);
    expect(objs.length).toBeLessThanOrEqual(10);
    const ids: number[] = [];
    for (const o of objs) {
      const part = o.key.split('/')[1];
      for (const line of o.text.trimEnd().split('\n')) {
        const v = JSON.parse(line) as { id: number; fazenda: string };
        expect(v.fazenda).toBe(part);
        ids.push(v.id);
      }
    }
    expect(ids).toHaveLength(100_000);
    expect(new Set(ids).size).toBe(100_000);
    expect(Math.min(...ids)).toBe(0);
    expect(Math.max(...ids)).toBe(99_999);
  });

  it('loses nothing when killed before a flush: the records were never acked, so they come again', async () => {
    const prefix = unique('crash');
    const { dir, file } = specFile(`
version: 1
name: ${prefix}
sources:
  gen:
    type: generate
    count: 3000
    rate: \${GEN_RATE}
    fields:
      id: 'i'
sinks:
  lake:
    type: s3
    from: [gen]
    bucket: ${bucket}
    key: '${prefix}/{first_position}-{last_position}{ext}'
    buffer: { max_records: 1000000, max_age: 10m }
`);
    const state = join(dir, 'state');
    // Slow enough that the run is killed mid-way, with records buffered in the sink.
    const first = runCli(file, { GEN_RATE: '500' }, ['--state-dir', state, '--metrics-interval', '200ms']);
    // At least 500 records in the sink (the plain line counts them as 500…999, then 1.00k…).
    await first.waitFor(
      /^lake\s+sink\/s3\s+in\s+\S+\s+out\s+\S+\s+\S+ \S+\s+total\s+([5-9]\d\d|[\d.]+[kM])\s/m,
    );
    first.child.kill('SIGKILL');
    await first.exited;
    expect(await objects(prefix)).toEqual([]);

    const second = runCli(file, { GEN_RATE: '100000' }, ['--state-dir', state, '--exit-idle', '2s']);
    expect(await second.exited, second.stderr()).toBe(0);
    const objs = await objects(prefix);
    const ids = objs.flatMap((o) =>
      o.text
        .trimEnd()
        .split('\n')
        .map((l) => (JSON.parse(l) as { id: number }).id),
    );
    expect(ids.sort((a, b) => a - b)).toEqual(Array.from({ length: 3000 }, (_, i) => i));
  });
});
