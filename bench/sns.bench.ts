// SNS source requests/s: the real endpoint (parse, topic check, RSA signature verification,
// emit, 200 after the ack) next to a bare node:http server that reads the body and answers 200,
// and the source with verification off, all measured in the same run with the same client.
//
//   node bench/sns.bench.ts [seconds-per-case] [concurrency]

import { execFileSync } from 'node:child_process';
import { randomUUID, sign } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent, createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { MetricsRegistry } from '../src/runtime/metrics.ts';
import type { SourceContext } from '../src/stages/define.ts';
import { SnsHttpSource } from '../src/stages/sources/sns.ts';

const seconds = Number(process.argv[2] ?? 3);
const concurrency = Number(process.argv[3] ?? 32);
const TOPIC = 'arn:aws:sns:us-east-1:123456789012:consumo';
const CERT_URL = 'https://sns.us-east-1.amazonaws.com/SimpleNotificationService-bench.pem';

// A signing key and certificate of our own (SNS's are not ours to sign with).
const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-'));
execFileSync(
  'openssl',
  [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    join(dir, 'k.pem'),
    '-out',
    join(dir, 'c.pem'),
    '-days',
    '2',
    '-subj',
    '/CN=sns.amazonaws.com',
  ],
  { stdio: 'ignore' },
);
const key = readFileSync(join(dir, 'k.pem'), 'utf8');
const cert = readFileSync(join(dir, 'c.pem'), 'utf8');
rmSync(dir, { recursive: true, force: true });

/** 256 distinct signed notifications, reused round-robin. */
const bodies = Array.from({ length: 256 }, (_, i) => {
  const m: Record<string, string> = {
    Type: 'Notification',
    MessageId: randomUUID(),
    TopicArn: TOPIC,
    Message: JSON.stringify({
      id_lote: `L${i}`,
      peso_medio: 401.5,
      quantidade_animais: 80,
      data: '2024-03-20 10:30:45',
      cod_cliente: '1',
    }),
    Timestamp: new Date().toISOString(),
    SignatureVersion: '2',
    SigningCertURL: CERT_URL,
  };
  const text = ['Message', 'MessageId', 'Timestamp', 'TopicArn', 'Type']
    .map((f) => `${f}\n${m[f]}\n`)
    .join('');
  m.Signature = sign('sha256', Buffer.from(text), key).toString('base64');
  return Buffer.from(JSON.stringify(m));
});

/** Closed loop: `concurrency` clients each post, wait for the answer, post again. */
async function load(port: number): Promise<{ rps: number; non200: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  let done = 0;
  let non200 = 0;
  let n = 0;
  const end = Date.now() + seconds * 1000;
  const one = () =>
    new Promise<void>((resolve, reject) => {
      const body = bodies[n++ & 255];
      const req = request(
        {
          host: '127.0.0.1',
          port,
          path: '/sns',
          method: 'POST',
          agent,
          headers: { 'content-type': 'text/plain; charset=UTF-8', 'content-length': body.length },
        },
        (res) => {
          if (res.statusCode !== 200) non200++;
          res.resume();
          res.on('end', resolve);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < end) {
        await one();
        done++;
      }
    }),
  );
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  agent.destroy();
  return { rps: done / secs, non200 };
}

async function bare(): Promise<number> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      Buffer.concat(chunks);
      res.end('ok\n');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { rps } = await load((server.address() as AddressInfo).port);
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  return rps;
}

async function source(verify: boolean): Promise<{ rps: number; non200: number }> {
  const metrics = new MetricsRegistry('bench').stage('sns', 'source', 'sns');
  const src = new SnsHttpSource(
    {
      listen: { port: 0, path: '/sns' },
      topic_arn: TOPIC,
      verify,
      region: 'us-east-1',
      max_concurrent: 4096,
    },
    { name: 'sns', pipeline: 'bench', log: pino({ level: 'silent' }), metrics, stateDir: '.' },
    { fetchCert: async () => cert },
  );
  const abort = new AbortController();
  // A pipeline that accepts at once and acks on the next turn of the event loop.
  const sc: SourceContext = {
    signal: abort.signal,
    emit: async (_records, onAck) => {
      setImmediate(() => onAck?.());
    },
    fail: async (_input, _reason, onAck) => {
      setImmediate(() => onAck?.());
    },
    checkpoints: { load: async () => undefined, commit() {}, flush: async () => {} },
  };
  const running = src.run(sc);
  const { port } = await src.listening;
  const result = await load(port);
  abort.abort();
  await running;
  await src.close();
  return result;
}

// Warm up JIT and the certificate cache.
await bare();
await source(true);

const base = await bare();
const verified = await source(true);
const unverified = await source(false);
const line = (label: string, rps: number) => `${label.padEnd(40)} ${rps.toFixed(0).padStart(8)} requests/s`;
console.log(`SNS HTTP endpoint, ${concurrency} concurrent keep-alive clients, ${seconds}s per case`);
console.log(line('bare node:http server answering 200', base));
console.log(line('sns source, verify: true (SHA256 RSA)', verified.rps));
console.log(line('sns source, verify: false', unverified.rps));
console.log(
  `ratio verified / bare: ${(verified.rps / base).toFixed(2)}   unverified / bare: ${(unverified.rps / base).toFixed(2)}`,
);
if (verified.non200 + unverified.non200 > 0)
  console.log(`non-200 answers: ${verified.non200 + unverified.non200}`);
