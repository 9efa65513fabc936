/**
 * The Kafka broker answers clients that are not sluice's own: Kafka's TopicCommand creates the
 * topic, kcat (librdkafka) produces and consumes.
 */
import { describe, expect, it } from 'vitest';
import { kafkaBrokers, requireService, runCommand, runKafkaTool, uniqueSuffix } from './services.ts';

// Each test probes first, so a missing service fails it (with a hint) instead of skipping it.
describe('Kafka with TopicCommand and kcat', () => {
  it('100 messages produced by kcat into a 3-partition topic all come back', async () => {
    await requireService('kafka');
    const brokers = kafkaBrokers();
    const topic = `smoke-${uniqueSuffix()}`;

    await runKafkaTool('org.apache.kafka.tools.TopicCommand', [
      '--bootstrap-server',
      brokers,
      '--create',
      '--topic',
      topic,
      '--partitions',
      '3',
      '--replication-factor',
      '1',
    ]);
    const { stdout: meta } = await runCommand('kcat', ['-b', brokers, '-L', '-t', topic]);
    expect(meta).toContain(`topic "${topic}" with 3 partitions`);

    const sent = Array.from({ length: 100 }, (_, i) => `msg-${String(i).padStart(3, '0')}`);
    // key:value per line; distinct keys spread the messages over the partitions.
    const input = sent.map((value, i) => `farm-${i}:${value}`).join('\n') + '\n';
    await runCommand('kcat', ['-P', '-b', brokers, '-t', topic, '-K', ':'], { input });

    const { stdout } = await runCommand('kcat', [
      '-C',
      '-b',
      brokers,
      '-t',
      topic,
      '-e',
      '-o',
      'beginning',
      '-q',
      '-f',
      '%p\t%k\t%s\n',
    ]);
    const got = stdout
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => {
        const [partition, key, value] = line.split('\t');
        return { partition: Number(partition), key, value };
      });

    expect(got).toHaveLength(100);
    expect(got.map((m) => m.value).sort()).toEqual(sent);
    for (const m of got) expect(m.key).toBe(`farm-${Number(m.value.slice(4))}`);
    expect(new Set(got.map((m) => m.partition))).toEqual(new Set([0, 1, 2]));
    // Within a partition, order is the order of production.
    for (const p of [0, 1, 2]) {
      const values = got.filter((m) => m.partition === p).map((m) => m.value);
      expect(values).toEqual([...values].sort());
    }
  });
});
