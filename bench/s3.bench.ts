// S3 sink throughput against moto: records/s and MiB/s of `write` (encode + upload), next to
// a bare PutObject loop uploading the same bytes already encoded, measured in the same run.
//
//   scripts/services.sh up
//   node bench/s3.bench.ts [batches] [records-per-batch]
//
// Environment: AWS_ENDPOINT_URL (default http://127.0.0.1:5000), AWS_REGION (us-east-1).

import { randomBytes } from 'node:crypto';
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import pino from 'pino';
import { AckGroup } from '../src/runtime/ack.ts';
import { MetricsRegistry } from '../src/runtime/metrics.ts';
import { encodeBatch } from '../src/runtime/objects.ts';
import type { SluiceRecord } from '../src/runtime/record.ts';
import { awsClientConfig } from '../src/stages/aws/clients.ts';
import type { SinkBatch } from '../src/stages/define.ts';
import { s3Sink } from '../src/stages/sinks/s3.ts';

process.env.AWS_ENDPOINT_URL ??= 'http://127.0.0.1:5000';
process.env.AWS_REGION ??= 'us-east-1';
process.env.AWS_ACCESS_KEY_ID ??= 'test';
process.env.AWS_SECRET_ACCESS_KEY ??= 'test';

const batches = Number(process.argv[2] ?? 20);
const perBatch = Number(process.argv[3] ?? 10_000);
const MiB = 1024 * 1024;

function makeBatch(seq: number): SinkBatch {
  const ack = new AckGroup(perBatch);
  const records: SluiceRecord[] = [];
  for (let k = 0; k < perBatch; k++) {
    const i = seq * perBatch + k;
    records.push({
      value: {
        id_treated_data: `00000000-0000-5000-8000-${String(i).padStart(12, '0')}`,
        id_curral: `C${i % 40}`,
        id_lote: `L${i % 997}`,
        peso_medio: 400 + (i % 150) * 0.5,
        quantidade_animais: 20 + (i % 100),
        consumo_real: 980.25 + (i % 300),
        data: '2024-03-20 10:30:45',
        cod_cliente: String((i % 2) + 1),
      },
      meta: {},
      partition: `fazenda_${i % 2 ? 'um' : 'dois'}/2024/03/20`,
      position: `shard-0:${i}`,
      size: 200,
      ack,
    });
  }
  return { records, partition: 'fazenda_um/2024/03/20', startedAt: Date.now(), bytes: perBatch * 200, seq };
}

const config = awsClientConfig({}, { forcePathStyle: true });
const client = new S3Client({ ...config, requestChecksumCalculation: 'WHEN_REQUIRED' });
const bucket = `bench-s3-${randomBytes(4).toString('hex')}`;
try {
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
} catch (e) {
  console.error(
    `cannot reach S3 at ${process.env.AWS_ENDPOINT_URL}: run scripts/services.sh up (${(e as Error).message})`,
  );
  process.exit(1);
}

const data = Array.from({ length: batches }, (_, s) => makeBatch(s));
const bodies = data.map((b) => encodeBatch(b.records, { format: 'ndjson', compression: 'none' }).body);
const totalBytes = bodies.reduce((n, b) => n + b.length, 0);
const totalRecords = batches * perBatch;

async function time(fn: () => Promise<void>): Promise<number> {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e9;
}

// Warm both paths (connections, JIT) before measuring.
await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'warm', Body: bodies[0] }));
const ctx = {
  name: 'lake',
  pipeline: 'bench',
  log: pino({ level: 'silent' }),
  metrics: new MetricsRegistry('bench').stage('lake', 'sink', 's3'),
  stateDir: '.',
};
const sink = s3Sink.create(
  { bucket, key: 'sink/{partition}/{first_position}{ext}', force_path_style: true } as never,
  ctx,
);
await sink.write({ ...data[0], seq: -1 });

const baseline = await time(async () => {
  for (let i = 0; i < batches; i++) {
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: `bare/${i}.ndjson`, Body: bodies[i] }));
  }
});
const viaSink = await time(async () => {
  for (const b of data) await sink.write(b);
});
const viaSinkGzip = await time(async () => {
  const gz = s3Sink.create(
    {
      bucket,
      key: 'gz/{partition}/{first_position}{ext}',
      force_path_style: true,
      compression: 'gzip',
    } as never,
    ctx,
  );
  for (const b of data) await gz.write(b);
  await gz.close?.();
});

const encodeOnly = await time(async () => {
  for (const b of data) encodeBatch(b.records, { format: 'ndjson', compression: 'none' });
});

const fmt = (label: string, secs: number) =>
  `${label.padEnd(34)} ${(totalRecords / secs).toFixed(0).padStart(9)} records/s  ${(totalBytes / MiB / secs)
    .toFixed(1)
    .padStart(7)} MiB/s (uncompressed)  ${secs.toFixed(2)} s`;
console.log(
  `S3 to ${process.env.AWS_ENDPOINT_URL}: ${batches} objects × ${perBatch} records, ${(totalBytes / MiB).toFixed(1)} MiB ndjson`,
);
console.log(fmt('bare PutObject loop (pre-encoded)', baseline));
console.log(fmt('s3 sink write (encode + put)', viaSink));
console.log(fmt('s3 sink write, gzip', viaSinkGzip));
console.log(fmt('encoding alone (no upload)', encodeOnly));
console.log(
  `ratio sink / baseline: ${(baseline / viaSink).toFixed(2)}  (gzip: ${(baseline / viaSinkGzip).toFixed(2)})`,
);
await sink.close?.();
client.destroy();
