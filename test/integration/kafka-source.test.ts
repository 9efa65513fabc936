/**
 * The kafka source against the real broker, driven through the stage contract: kcat writes,
 * the test plays the pipeline (collects batches, acks when it chooses), and Kafka's own
 * ConsumerGroupCommand reads back what the group committed.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StageContext } from '../../src/stages/define.ts';
import { type KafkaSource, kafkaSource } from '../../src/stages/sources/kafka.ts';
import {
  BROKERS,
  CollectingContext,
  committedOffsets,
  createTopic,
  deleteTopic,
  endOffsets,
  kcatProduce,
  produceInBatches,
  requireKafka,
  stageContext,
  suffix,
  until,
} from './kafka-harness.ts';

const topics: string[] = [];

beforeAll(async () => {
  await requireKafka();
});

afterAll(async () => {
  for (const t of topics) await deleteTopic(t);
});

async function topicWith(
  partitions: number,
  count: number,
  line = (i: number) => `k${i}\t${JSON.stringify({ i })}`,
) {
  const topic = `sluice-src-${suffix()}`;
  topics.push(topic);
  await createTopic(topic, partitions);
  await kcatProduce(
    topic,
    Array.from({ length: count }, (_, i) => line(i)),
  );
  return topic;
}

function source(
  topic: string,
  group: string,
  extra: Record<string, unknown> = {},
  ctx: StageContext = stageContext(),
): KafkaSource {
  return kafkaSource.create(
    {
      brokers: BROKERS,
      topics: [topic],
      group,
      start: 'earliest',
      codec: 'json',
      max_batch: 100,
      commit_interval: 200,
      session_timeout: 6000,
      heartbeat_interval: 500,
      drain_timeout: 5000,
      ...extra,
    } as never,
    ctx,
  ) as KafkaSource;
}

describe('kafka source', () => {
  it('reads every record with key, headers and position in meta, and commits group offsets only once acked', async () => {
    const topic = await topicWith(3, 300);
    const group = `g-${suffix()}`;
    const src = source(topic, group);
    const c = new CollectingContext();
    c.autoAck = false;
    const running = src.run(c.ctx);
    await until(() => c.records.length === 300, 30_000, '300 records');
    const r = c.records.find((x) => (x.value as { i: number }).i === 7);
    expect(r?.key).toBe('k7');
    expect(r?.meta).toMatchObject({ topic, key: 'k7', headers: {} });
    expect(typeof r?.meta?.partition).toBe('number');
    expect(typeof r?.meta?.offset).toBe('number');
    expect(r?.position).toBe(`${topic}/${r?.meta?.partition}/${r?.meta?.offset}`);
    expect(r?.time).toBeGreaterThan(Date.now() - 120_000);

    // Nothing acked yet: after a few commit intervals the group still has no offsets past the start.
    await new Promise((res) => setTimeout(res, 800));
    const before = await committedOffsets(group, topic);
    for (const v of before.values()) expect(v).toBe(0);

    c.ackAll();
    c.abort.abort();
    await running;
    await src.close();
    const committed = await committedOffsets(group, topic);
    const ends = await endOffsets(topic, 3);
    expect(ends.reduce((a, b) => a + b, 0)).toBe(300);
    for (let p = 0; p < 3; p++) expect(committed.get(p)).toBe(ends[p]);
  });

  it('commits only the contiguous acked prefix of a partition', async () => {
    const topic = await topicWith(1, 50);
    const group = `g-${suffix()}`;
    const src = source(topic, group, { max_batch: 10 });
    const c = new CollectingContext();
    c.autoAck = false;
    const running = src.run(c.ctx);
    await until(() => c.records.length === 50, 30_000, '50 records');
    expect(c.batches.length).toBeGreaterThanOrEqual(5);
    // Ack batches 0, 1 and 3: the commit may pass batch 1 but not the unacked batch 2.
    for (const i of [0, 1, 3]) {
      c.batches[i].acked = true;
      c.batches[i].ack();
    }
    const lastOf = (i: number) => Math.max(...c.batches[i].records.map((x) => x.meta?.offset as number));
    c.abort.abort();
    await running;
    await src.close();
    const committed = await committedOffsets(group, topic);
    expect(committed.get(0)).toBe(lastOf(1) + 1);

    // A new member of the group starts at that commit: batch 2 comes again.
    const again = source(topic, group);
    const c2 = new CollectingContext();
    const running2 = again.run(c2.ctx);
    await until(() => c2.records.length === 50 - (lastOf(1) + 1), 30_000, 'redelivery');
    expect(c2.records[0].meta?.offset).toBe(lastOf(1) + 1);
    c2.abort.abort();
    await running2;
    await again.close();
  });

  it('sends undecodable JSON to the error output and still commits past it once handled', async () => {
    const topic = await topicWith(1, 5, (i) => (i === 2 ? 'bad\t{not json' : `k${i}\t{"i":${i}}`));
    const group = `g-${suffix()}`;
    const src = source(topic, group);
    const c = new CollectingContext();
    const running = src.run(c.ctx);
    await until(() => c.records.length === 4 && c.failures.length === 1, 30_000, 'records and failure');
    expect(c.failures[0].reason).toMatch(/invalid JSON/);
    expect(c.failures[0].input.value).toBe('{not json');
    c.abort.abort();
    await running;
    await src.close();
    expect((await committedOffsets(group, topic)).get(0)).toBe(5);
  });

  it('routes values past max_depth or max_record_bytes to the error output and commits past them', async () => {
    const deep = `${'{"a":'.repeat(70)}1${'}'.repeat(70)}`;
    const big = JSON.stringify({ pad: 'x'.repeat(5000) });
    const topic = await topicWith(1, 4, (i) => `k${i}\t${[deep, big, '{"ok":1}', '[[[1]]]'][i]}`);
    const group = `g-${suffix()}`;
    const src = source(topic, group, { max_record_bytes: 4096 });
    const c = new CollectingContext();
    const running = src.run(c.ctx);
    await until(() => c.records.length + c.failures.length === 4, 30_000, 'records and failures');
    expect(c.records.map((r) => r.value)).toEqual([{ ok: 1 }, [[[1]]]]);
    expect(c.failures.map((f) => f.reason)).toEqual([
      'value nested deeper than 64 levels',
      'record of 5010 bytes is larger than max_record_bytes (4096)',
    ]);
    expect(c.failures[0].input.value).toBe(deep);
    expect(String(c.failures[1].input.value)).toHaveLength(1025);
    c.abort.abort();
    await running;
    await src.close();
    expect((await committedOffsets(group, topic)).get(0)).toBe(4);
  });

  it('says per assigned partition whether it resumes at a committed offset or at the start policy', async () => {
    const topic = await topicWith(2, 10);
    const group = `g-${suffix()}`;
    const run = async (records: number) => {
      const lines: string[] = [];
      const ctx = stageContext();
      ctx.log = pino({ level: 'info' }, { write: (l: string) => lines.push(JSON.parse(l).msg) });
      const src = source(topic, group, {}, ctx);
      const c = new CollectingContext();
      const running = src.run(c.ctx);
      await until(
        () => lines.filter((l) => l.includes('partition')).length === 2 && c.records.length >= records,
        30_000,
        'start lines',
      );
      c.abort.abort();
      await running;
      await src.close();
      return lines.filter((l) => l.includes('partition')).sort();
    };
    expect(await run(10)).toEqual([
      `no committed offset for partition ${topic}/0 in group ${group}: starting at the earliest offset (start: earliest)`,
      `no committed offset for partition ${topic}/1 in group ${group}: starting at the earliest offset (start: earliest)`,
    ]);
    const ends = await endOffsets(topic, 2);
    expect(await run(0)).toEqual([
      `resuming partition ${topic}/0 at offset ${ends[0]} (committed by group ${group})`,
      `resuming partition ${topic}/1 at offset ${ends[1]} (committed by group ${group})`,
    ]);
  });

  it('`sluice state show` reads the group offsets from the broker', async () => {
    const topic = await topicWith(2, 20);
    const group = `g-${suffix()}`;
    const src = source(topic, group);
    const c = new CollectingContext();
    const running = src.run(c.ctx);
    await until(() => c.records.length === 20, 30_000, '20 records');
    c.abort.abort();
    await running;
    await src.close();

    const dir = mkdtempSync(join(tmpdir(), 'sluice-state-'));
    const spec = join(dir, 'group.yaml');
    writeFileSync(
      spec,
      `version: 1
name: group-offsets
sources:
  orders: { type: kafka, brokers: '${BROKERS}', topics: [${topic}], group: ${group} }
sinks:
  out: { type: stdout, from: [orders] }
`,
    );
    const root = resolve(import.meta.dirname, '../..');
    const r = spawnSync(
      join(root, 'node_modules/.bin/node'),
      ['src/cli.ts', 'state', 'show', spec, '--state-dir', dir, '--format', 'json'],
      { cwd: root, encoding: 'utf8' },
    );
    expect(r.status, r.stderr).toBe(0);
    const ends = await endOffsets(topic, 2);
    expect(JSON.parse(r.stdout).sources).toEqual([
      {
        name: 'orders',
        type: 'kafka',
        store: 'kafka-group',
        location: `kafka:${group}`,
        positions: [0, 1].map((p) => ({
          partition: `${topic}/${p}`,
          position: String(ends[p]),
          meaning: `at offset ${ends[p]}`,
        })),
      },
    ]);
  });

  it('reports lag per partition: records read but not yet acked count until they are', async () => {
    const topic = await topicWith(2, 200);
    const ctx = stageContext();
    const src = source(topic, `g-${suffix()}`, {}, ctx);
    const c = new CollectingContext();
    c.autoAck = false;
    const running = src.run(c.ctx);
    await until(() => c.records.length === 200, 30_000, '200 records');
    const lag = () => Object.values(ctx.metrics.snapshot().lagByPartition).reduce((a, b) => a + b, 0);
    await until(() => lag() === 200, 10_000, 'lag 200 before acks');
    expect(Object.keys(ctx.metrics.snapshot().lagByPartition).sort()).toEqual([`${topic}/0`, `${topic}/1`]);
    expect(ctx.metrics.snapshot().lagUnit).toBe('records');
    c.ackAll();
    await until(() => lag() === 0, 10_000, 'lag 0 after acks');
    c.abort.abort();
    await running;
    await src.close();
  });

  it('stops fetching while the pipeline is full instead of buffering the topic', async () => {
    // Kafka hands out whole record batches, so the input comes in batches of 100.
    const topic = `sluice-src-${suffix()}`;
    topics.push(topic);
    await createTopic(topic, 1);
    await produceInBatches(
      topic,
      Array.from({ length: 20_000 }, (_, i) => `{"i":${i},"pad":"${randomBytes(48).toString('hex')}"}`),
      100,
    );
    const src = source(topic, `g-${suffix()}`, { max_batch: 100, max_buffered: 300, fetch_max_bytes: 65536 });
    const c = new CollectingContext();
    let release: () => void = () => undefined;
    const blocked = new Promise<void>((r) => {
      release = r;
    });
    const ctx = c.ctx;
    // A full pipeline: the first emit never returns until released.
    const gated = {
      ...ctx,
      emit: async (...args: Parameters<typeof ctx.emit>) => {
        await ctx.emit(...args);
        await blocked;
      },
    };
    const running = src.run(gated);
    await until(() => c.records.length === 100, 30_000, 'first batch');
    await new Promise((r) => setTimeout(r, 2000));
    // One batch handed over, at most max_buffered plus one fetch response waiting: not the topic.
    expect(c.records.length).toBe(100);
    expect(src.buffered).toBeGreaterThan(0);
    expect(src.buffered).toBeLessThan(2_000);
    release();
    await until(() => c.records.length === 20_000, 30_000, 'the rest once released');
    c.abort.abort();
    await running;
    await src.close();
  });

  it('fails clearly when a topic does not exist', async () => {
    const missing = `missing-${suffix()}`;
    const src = source(missing, `g-${suffix()}`);
    await expect(src.run(new CollectingContext().ctx)).rejects.toThrow(`topic '${missing}' does not exist`);
  });

  it('hands partitions over in a rebalance: the leaving member drains and commits, nothing is lost', async () => {
    const topic = await topicWith(3, 600);
    const group = `g-${suffix()}`;
    const a = source(topic, group, { max_batch: 20 });
    const ca = new CollectingContext();
    ca.autoAck = false;
    const runA = a.run(ca.ctx);
    await until(() => ca.records.length > 0, 30_000, 'first records on a');
    // b joins: a must drain in-flight batches before giving partitions up. Ack them slowly.
    const b = source(topic, group, { max_batch: 20 });
    const cb = new CollectingContext();
    const runB = b.run(cb.ctx);
    const acker = setInterval(() => ca.ackAll(), 300);
    await until(() => b.assigned.length > 0 && a.assigned.length > 0, 30_000, 'both members assigned');
    const aParts = a.assigned;
    const bParts = b.assigned;
    expect(aParts.length + bParts.length).toBe(3);
    expect(aParts.filter((p) => bParts.includes(p))).toEqual([]);
    // Stop a: b takes over its partitions and reads on from a's commits.
    clearInterval(acker);
    ca.ackAll();
    ca.abort.abort();
    await runA;
    await a.close();
    await until(() => b.assigned.length === 3, 30_000, 'b owns all partitions');
    const seen = () => new Set([...ca.records, ...cb.records].map((r) => (r.value as { i: number }).i));
    await until(() => seen().size === 600, 30_000, 'all 600 records across both members');
    cb.abort.abort();
    await runB;
    await b.close();
    const committed = await committedOffsets(group, topic);
    const ends = await endOffsets(topic, 3);
    for (let p = 0; p < 3; p++) expect(committed.get(p)).toBe(ends[p]);
  });
});
