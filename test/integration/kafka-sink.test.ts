/**
 * The kafka sink against the real broker; kcat reads back what it produced.
 */
import { execFile } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type KafkaSink, kafkaSink } from '../../src/stages/sinks/kafka.ts';
import {
  BROKERS,
  createTopic,
  deleteTopic,
  kcatConsume,
  requireKafka,
  stageContext,
  suffix,
} from './kafka-harness.ts';
import { batchOf } from './mysql-harness.ts';

const topics: string[] = [];
const sinks: KafkaSink[] = [];

beforeAll(async () => {
  await requireKafka();
});

afterAll(async () => {
  for (const s of sinks) await s.close();
  for (const t of topics) await deleteTopic(t);
});

async function newTopic(partitions: number): Promise<string> {
  const t = `sluice-sink-${suffix()}`;
  topics.push(t);
  await createTopic(t, partitions);
  return t;
}

async function openSink(options: Record<string, unknown>): Promise<KafkaSink> {
  const sink = kafkaSink.create({ brokers: BROKERS, ...options } as never, stageContext('out')) as KafkaSink;
  sinks.push(sink);
  await sink.open();
  return sink;
}

describe('kafka sink', () => {
  it('produces JSON values with key and headers from expressions; resolves once the broker has them', async () => {
    const topic = await newTopic(3);
    const sink = await openSink({
      topic,
      key: 'id_lote',
      headers: { origin: '"sluice"', curral: 'id_curral' },
    });
    const values = Array.from({ length: 30 }, (_, i) => ({
      id_lote: `lote-${i % 5}`,
      id_curral: i,
      peso: 1.5 * i,
    }));
    expect(await sink.write(batchOf(values))).toBeUndefined();
    // No waiting: write() resolved, so every message is already readable.
    const got = await kcatConsume(topic);
    expect(got).toHaveLength(30);
    const byValue = new Map(got.map((m) => [JSON.parse(m.payload).id_curral as number, m]));
    const m7 = byValue.get(7);
    expect(m7?.key).toBe('lote-2');
    expect(JSON.parse(m7?.payload ?? '')).toEqual({ id_lote: 'lote-2', id_curral: 7, peso: 10.5 });
    expect(m7?.headers).toEqual(['origin', 'sluice', 'curral', '7']);
    // One key, one partition.
    const partitionsOfKey = new Set(got.filter((m) => m.key === 'lote-2').map((m) => m.partition));
    expect(partitionsOfKey.size).toBe(1);
  });

  it('puts a key on the partition Java clients (murmur2) pick for it', async () => {
    const topic = await newTopic(6);
    const sink = await openSink({ topic, key: 'k' });
    const keys = Array.from({ length: 40 }, (_, i) => `key-${i}`);
    await sink.write(batchOf(keys.map((k) => ({ k, from: 'sluice' }))));
    // kcat with librdkafka's Java-compatible partitioner writes the same keys.
    await new Promise<void>((resolve, reject) => {
      const p = execFile(
        'kcat',
        ['-P', '-b', BROKERS, '-t', topic, '-K', '\t', '-X', 'partitioner=murmur2_random'],
        (err) => (err ? reject(err) : resolve()),
      );
      p.stdin?.end(`${keys.map((k) => `${k}\t{"from":"kcat"}`).join('\n')}\n`);
    });
    const got = await kcatConsume(topic);
    for (const k of keys) {
      const parts = new Set(got.filter((m) => m.key === k).map((m) => m.partition));
      expect(parts.size, `key ${k}`).toBe(1);
    }
  });

  it('routes by topic_expr and sends records it cannot address to the error output', async () => {
    const a = await newTopic(1);
    const b = await newTopic(1);
    const sink = await openSink({ topic_expr: 'dest', codec: 'text' });
    const res = await sink.write(
      batchOf([{ dest: a, n: 1 }, { dest: b, n: 2 }, { n: 3 }, { dest: a, n: 4 }]),
    );
    expect(res?.failed).toEqual([{ index: 2, reason: expect.stringMatching(/^kafka: /), retryable: false }]);
    expect((await kcatConsume(a)).map((m) => JSON.parse(m.payload).n)).toEqual([1, 4]);
    expect((await kcatConsume(b)).map((m) => JSON.parse(m.payload).n)).toEqual([2]);
  });

  it('fails at open on a missing topic or broker, and a batch as retryable when its topic is missing', async () => {
    const missing = `missing-${suffix()}`;
    await expect(openSink({ topic: missing })).rejects.toThrow(`topic '${missing}' does not exist`);
    const sink = await openSink({ topic_expr: 'dest' });
    await expect(sink.write(batchOf([{ dest: missing }]))).rejects.toMatchObject({ retryable: true });
    const dead = kafkaSink.create(
      { brokers: '127.0.0.1:1', topic: 'x' } as never,
      stageContext('dead'),
    ) as KafkaSink;
    sinks.push(dead);
    await expect(dead.open()).rejects.toThrow(/cannot reach 127.0.0.1:1/);
  });
});
