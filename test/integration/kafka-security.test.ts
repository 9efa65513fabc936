/**
 * The Kafka source and sink through the broker's secured listeners from scripts/services.sh:
 * SASL_SSL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512; the broker's certificate signed by the test CA)
 * and SSL with a required client certificate. Foreign clients check both directions: kcat for
 * PLAIN and the client certificate; Kafka's own console producer and consumer for SCRAM (Debian
 * 12's kcat links librdkafka 2.0.2, whose SCRAM proof Kafka 4 refuses; fixed in librdkafka 2.6.1).
 * A wrong password and an untrusted certificate fail at start with a message naming the broker
 * and the reason, never the password. The example pipeline runs end to end.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KafkaSink } from '../../src/stages/sinks/kafka.ts';
import { kafkaSink } from '../../src/stages/sinks/kafka.ts';
import type { KafkaSource } from '../../src/stages/sources/kafka.ts';
import { kafkaSource } from '../../src/stages/sources/kafka.ts';
import {
  CollectingContext,
  createTopic,
  deleteTopic,
  SluiceProcess,
  stageContext,
  suffix,
  until,
} from './kafka-harness.ts';
import { batchOf } from './mysql-harness.ts';
import { kafkaLibs, requireService, runCommand } from './services.ts';

const root = join(import.meta.dirname, '..', '..');
const env = (name: string, fallback: string): string => process.env[name] || fallback;
const SASL_SSL = env('KAFKA_SASL_SSL_BROKERS', '127.0.0.1:9094');
const SSL = env('KAFKA_SSL_BROKERS', '127.0.0.1:9095');
const CA = env('SLUICE_TEST_CA', join(root, '.services/tls/ca.pem'));
const CLIENT_CERT = env('SLUICE_TEST_CLIENT_CERT', join(root, '.services/tls/client.pem'));
const CLIENT_KEY = env('SLUICE_TEST_CLIENT_KEY', join(root, '.services/tls/client.key'));
const USER = env('KAFKA_SASL_USERNAME', 'sluice');
const PASSWORD = env('KAFKA_SASL_PASSWORD', 'sluice-test-secret');
const JAVA = env('KAFKA_JAVA', 'java');
const HINT = 'start them with `scripts/services.sh up` and `eval "$(scripts/services.sh env)"`';

type Mechanism = 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512';

const topics: string[] = [];
const dir = mkdtempSync(join(tmpdir(), 'sluice-kafka-security-'));

/** Fails (never skips) when a secured listener is missing, with the hint to start it. */
async function requireListener(address: string, what: string): Promise<void> {
  const [host, port] = address.split(':');
  const { connect } = await import('node:net');
  const problem = await new Promise<string | undefined>((resolve) => {
    const s = connect({ host, port: Number(port) });
    s.setTimeout(3000, () => {
      s.destroy();
      resolve('timed out');
    });
    s.on('connect', () => {
      s.destroy();
      resolve(undefined);
    });
    s.on('error', (e) => resolve(e.message));
  });
  if (problem)
    throw new Error(`Kafka's ${what} listener is not reachable at ${address} (${problem}): ${HINT}`);
}

beforeAll(async () => {
  await requireService('kafka');
  await requireListener(SASL_SSL, 'SASL_SSL');
  await requireListener(SSL, 'SSL');
}, 30_000);

afterAll(async () => {
  for (const t of topics) await deleteTopic(t);
});

async function newTopic(): Promise<string> {
  const t = `sluice-secure-${suffix()}`;
  topics.push(t);
  await createTopic(t, 2);
  return t;
}

const sasl = (mechanism: Mechanism, password = PASSWORD) => ({
  brokers: SASL_SSL,
  tls: { ca_file: CA },
  sasl: { mechanism, username: USER, password },
});

async function openSink(options: Record<string, unknown>): Promise<KafkaSink> {
  const sink = kafkaSink.create(options as never, stageContext('out')) as KafkaSink;
  try {
    await sink.open();
  } catch (err) {
    await sink.close();
    throw err;
  }
  return sink;
}

/** Runs the source until it has `count` records (or fails), then stops it. */
async function readWithSource(options: Record<string, unknown>, count: number): Promise<unknown[]> {
  const src = kafkaSource.create(
    { group: `g-${suffix()}`, start: 'earliest', ...options } as never,
    stageContext('in'),
  ) as KafkaSource;
  const c = new CollectingContext();
  const running = src.run(c.ctx);
  let failed: unknown;
  running.catch((err) => {
    failed = err;
  });
  try {
    await until(() => failed !== undefined || c.records.length >= count, 30_000, `${count} records`);
  } finally {
    c.abort.abort();
    await running.catch(() => undefined);
    await src.close();
  }
  if (failed) throw failed;
  return c.records.map((r) => r.value);
}

// ---------------------------------------------------------------- foreign clients

function kcatArgs(brokers: string, mode: 'sasl' | 'cert'): string[] {
  const common = ['-b', brokers, '-X', `ssl.ca.location=${CA}`];
  return mode === 'sasl'
    ? [
        ...common,
        '-X',
        'security.protocol=SASL_SSL',
        '-X',
        'sasl.mechanisms=PLAIN',
        '-X',
        `sasl.username=${USER}`,
        '-X',
        `sasl.password=${PASSWORD}`,
      ]
    : [
        ...common,
        '-X',
        'security.protocol=SSL',
        '-X',
        `ssl.certificate.location=${CLIENT_CERT}`,
        '-X',
        `ssl.key.location=${CLIENT_KEY}`,
      ];
}

async function kcatRead(topic: string, mode: 'sasl' | 'cert', brokers: string): Promise<unknown[]> {
  const { stdout } = await runCommand('kcat', ['-C', ...kcatArgs(brokers, mode), '-t', topic, '-e', '-q'], {
    timeoutMs: 30_000,
  });
  return lines(stdout);
}

async function kcatWrite(topic: string, mode: 'sasl' | 'cert', brokers: string, values: unknown[]) {
  await runCommand('kcat', ['-P', ...kcatArgs(brokers, mode), '-t', topic], {
    input: `${values.map((v) => JSON.stringify(v)).join('\n')}\n`,
    timeoutMs: 30_000,
  });
}

/** Client properties for Kafka's console tools: SASL_SSL with SCRAM, trusting the test CA. */
function scramProperties(mechanism: Mechanism): string {
  const file = join(dir, `${mechanism}.properties`);
  const login =
    mechanism === 'PLAIN'
      ? 'org.apache.kafka.common.security.plain.PlainLoginModule'
      : 'org.apache.kafka.common.security.scram.ScramLoginModule';
  writeFileSync(
    file,
    [
      'security.protocol=SASL_SSL',
      `sasl.mechanism=${mechanism}`,
      `sasl.jaas.config=${login} required username="${USER}" password="${PASSWORD}";`,
      'ssl.truststore.type=PEM',
      `ssl.truststore.location=${CA}`,
      '',
    ].join('\n'),
  );
  return file;
}

function javaTool(main: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(
      JAVA,
      [
        '-Xmx256m',
        '-Dorg.slf4j.simpleLogger.defaultLogLevel=error',
        '-cp',
        `${kafkaLibs()}/*`,
        main,
        ...args,
      ],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('error', reject);
    p.on('close', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`${main} exited ${code}: ${err}`)),
    );
    p.stdin.end(input ?? '');
  });
}

async function javaRead(topic: string, mechanism: Mechanism, count: number): Promise<unknown[]> {
  const out = await javaTool('org.apache.kafka.tools.consumer.ConsoleConsumer', [
    '--bootstrap-server',
    SASL_SSL,
    '--topic',
    topic,
    '--from-beginning',
    '--max-messages',
    String(count),
    '--timeout-ms',
    '30000',
    '--consumer.config',
    scramProperties(mechanism),
  ]);
  return lines(out);
}

async function javaWrite(topic: string, mechanism: Mechanism, values: unknown[]): Promise<void> {
  await javaTool(
    'org.apache.kafka.tools.ConsoleProducer',
    ['--bootstrap-server', SASL_SSL, '--topic', topic, '--producer.config', scramProperties(mechanism)],
    `${values.map((v) => JSON.stringify(v)).join('\n')}\n`,
  );
}

function lines(text: string): unknown[] {
  return text
    .split('\n')
    .filter((l) => l.trim().startsWith('{'))
    .map((l) => JSON.parse(l));
}

const byId = (values: unknown[]) =>
  [...values].sort((a, b) =>
    String((a as { id: string }).id).localeCompare(String((b as { id: string }).id)),
  );

const lots = (tag: string, n: number) =>
  Array.from({ length: n }, (_, i) => ({ id: `${tag}-${String(i).padStart(2, '0')}`, peso: 380 + i }));

// ---------------------------------------------------------------- tests

describe.each<Mechanism>(['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512'])('SASL_SSL with %s', (mechanism) => {
  // kcat speaks PLAIN; SCRAM goes through Kafka's own console tools (see the file comment).
  const foreignRead = (topic: string, n: number) =>
    mechanism === 'PLAIN' ? kcatRead(topic, 'sasl', SASL_SSL) : javaRead(topic, mechanism, n);
  const foreignWrite = (topic: string, values: unknown[]) =>
    mechanism === 'PLAIN' ? kcatWrite(topic, 'sasl', SASL_SSL, values) : javaWrite(topic, mechanism, values);

  it('sluice writes, a foreign client reads', async () => {
    const topic = await newTopic();
    const sink = await openSink({ ...sasl(mechanism), topic });
    const values = lots('w', 12);
    try {
      expect(await sink.write(batchOf(values))).toBeUndefined();
    } finally {
      await sink.close();
    }
    expect(byId(await foreignRead(topic, values.length))).toEqual(values);
  }, 60_000);

  it('a foreign client writes, sluice reads', async () => {
    const topic = await newTopic();
    const values = lots('r', 12);
    await foreignWrite(topic, values);
    expect(byId(await readWithSource({ ...sasl(mechanism), topics: [topic] }, values.length))).toEqual(
      values,
    );
  }, 60_000);
});

describe('SSL with a client certificate', () => {
  it('sluice writes and reads with the certificate and key (the key from the environment as PEM text)', async () => {
    const topic = await newTopic();
    const tls = { ca_file: CA, cert_file: CLIENT_CERT, key: readFileSync(CLIENT_KEY, 'utf8') };
    const sink = await openSink({ brokers: SSL, tls, topic });
    const values = lots('c', 8);
    try {
      await sink.write(batchOf(values));
    } finally {
      await sink.close();
    }
    expect(byId(await kcatRead(topic, 'cert', SSL))).toEqual(values);
    const more = lots('k', 5);
    const second = await newTopic();
    await kcatWrite(second, 'cert', SSL, more);
    expect(byId(await readWithSource({ brokers: SSL, tls, topics: [second] }, more.length))).toEqual(more);
  }, 60_000);

  it('without a client certificate the broker refuses, and start fails naming the broker', async () => {
    await expect(openSink({ brokers: SSL, tls: { ca_file: CA }, topic: 'any' })).rejects.toThrow(
      `kafka: no answer from ${SSL} within 15s; check \`brokers\` and that Kafka is up (a broker that requires a client certificate closes connections without one: set tls.cert_file and tls.key_file)`,
    );
  }, 30_000);
});

describe('start-up failures', () => {
  it('a wrong password fails open() with the broker, the mechanism and the user, not the password', async () => {
    const wrong = 'not-the-password-4711';
    const err = await openSink({ ...sasl('SCRAM-SHA-512', wrong), topic: 'any' }).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).toContain(`SASL SCRAM-SHA-512 login to ${SASL_SSL} as user '${USER}' was refused`);
    expect(err?.message).toMatch(/invalid credentials/i);
    expect(err?.message).not.toContain(wrong);
  }, 30_000);

  it('the source fails at start the same way', async () => {
    const wrong = 'not-the-password-0815';
    const err = await readWithSource({ ...sasl('PLAIN', wrong), topics: ['any'] }, 1).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).toContain(`SASL PLAIN login to ${SASL_SSL} as user '${USER}' was refused`);
    expect(err?.message).not.toContain(wrong);
  }, 30_000);

  it('a certificate from an untrusted CA fails open() saying so', async () => {
    // No ca_file: the system's CAs, which never signed the test CA.
    const err = await openSink({ ...sasl('SCRAM-SHA-512'), tls: true, topic: 'any' }).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).toContain(
      `kafka: TLS to ${SASL_SSL} failed: the server certificate is not signed by a trusted CA`,
    );
    expect(err?.message).not.toContain(PASSWORD);
  }, 30_000);

  it('a certificate for another name fails open() saying so', async () => {
    const err = await openSink({
      ...sasl('SCRAM-SHA-512'),
      tls: { ca_file: CA, server_name: 'kafka.elsewhere.example' },
      topic: 'any',
    }).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).toContain('the server certificate does not name this host');
  }, 30_000);
});

describe('pipelines/kafka-secure.yaml', () => {
  it('produces lots and reads them back through SCRAM-SHA-512 over TLS', async () => {
    const topic = `sluice-secure-pipeline-${suffix()}`;
    topics.push(topic);
    const run = new SluiceProcess(
      'pipelines/kafka-secure.yaml',
      {
        KAFKA_SECURE_BROKERS: SASL_SSL,
        KAFKA_CA_FILE: CA,
        KAFKA_USERNAME: USER,
        KAFKA_PASSWORD: PASSWORD,
        KAFKA_SECURE_TOPIC: topic,
        KAFKA_SECURE_GROUP: `g-${suffix()}`,
        LOTS: '20',
      },
      // A state directory of its own: the generator's position from another run would make it write nothing.
      ['--exit-idle', '3s', '--state-dir', mkdtempSync(join(dir, 'state-'))],
    );
    const result = await run.done;
    expect(result.code, result.stderr).toBe(0);
    const printed = lines(result.stdout) as { id_lote: string }[];
    expect(new Set(printed.map((p) => p.id_lote)).size).toBe(20);
    expect(result.stderr).not.toContain(PASSWORD);
    expect(await javaRead(topic, 'SCRAM-SHA-512', 20)).toHaveLength(20);
  }, 90_000);
});
