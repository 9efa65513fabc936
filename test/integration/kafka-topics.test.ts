/**
 * pipelines/kafka-topics.yaml (seed 003) end to end through the CLI: topics created,
 * generators produce into them, three consumers print, two of them sharing vale3 in one group.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BROKERS, deleteTopic, endOffsets, requireKafka, runSluice, suffix } from './kafka-harness.ts';

const prefix = `t${suffix()}-`;

beforeAll(async () => {
  await requireKafka();
});

afterAll(async () => {
  await deleteTopic(`${prefix}petr4`);
  await deleteTopic(`${prefix}vale3`);
});

describe('pipelines/kafka-topics.yaml', () => {
  it('creates petr4 and vale3, produces quotes, and prints each once: petr4 by one consumer, vale3 split by a group of two', async () => {
    const quotes = 40;
    const state = await mkdtemp(join(tmpdir(), 'sluice-kt-'));
    const res = await runSluice(
      'pipelines/kafka-topics.yaml',
      {
        KAFKA_BROKERS: BROKERS,
        KAFKA_TOPIC_PREFIX: prefix,
        KAFKA_GROUP: `vale3-${suffix()}`,
        KAFKA_PETR4_GROUP: `petr4-${suffix()}`,
        QUOTES: String(quotes),
        QUOTE_RATE: '100',
      },
      ['--exit-idle', '3s', '--state-dir', state],
    );
    expect(res.code, res.stderr).toBe(0);
    const lines = res.stdout
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map(
        (l) =>
          JSON.parse(l) as {
            ticker: string;
            seq: number;
            consumer: string;
            topic: string;
            partition: number;
            offset: number;
          },
      );
    const petr4 = lines.filter((l) => l.ticker === 'PETR4');
    const vale3 = lines.filter((l) => l.ticker === 'VALE3');
    expect(petr4.map((l) => l.seq).sort((a, b) => a - b)).toEqual([...Array(quotes).keys()]);
    expect(vale3.map((l) => l.seq).sort((a, b) => a - b)).toEqual([...Array(quotes).keys()]);
    expect(new Set(petr4.map((l) => l.consumer))).toEqual(new Set(['consumidor_3']));
    expect(petr4.every((l) => l.topic === `${prefix}petr4`)).toBe(true);
    // vale3 has two partitions; the two members of one group end up with one each. A member
    // that joins late may read a partition before the rebalance, so the split is read from the
    // members' last assignment rather than from which member printed which record.
    const lastAssignment = new Map<string, string[]>();
    for (const l of res.stderr.split('\n')) {
      if (!l.startsWith('{')) continue;
      const entry = JSON.parse(l) as { msg?: string; stage?: string; partitions?: string[] };
      if (entry.msg === 'kafka group joined' && entry.stage)
        lastAssignment.set(entry.stage, entry.partitions ?? []);
    }
    expect(lastAssignment.get('consumidor_1')).toHaveLength(1);
    expect(lastAssignment.get('consumidor_2')).toHaveLength(1);
    expect(
      [...(lastAssignment.get('consumidor_1') ?? []), ...(lastAssignment.get('consumidor_2') ?? [])].sort(),
    ).toEqual([`${prefix}vale3/0`, `${prefix}vale3/1`]);
    const readers = new Set(vale3.map((l) => l.consumer));
    expect([...readers].every((c) => c === 'consumidor_1' || c === 'consumidor_2')).toBe(true);
    expect((await endOffsets(`${prefix}vale3`, 2)).reduce((a, b) => a + b)).toBe(quotes);
  });
});
