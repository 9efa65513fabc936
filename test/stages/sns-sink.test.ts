import type { SNSClient } from '@aws-sdk/client-sns';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { AckGroup } from '../../src/runtime/ack.ts';
import { MetricsRegistry } from '../../src/runtime/metrics.ts';
import type { SluiceRecord } from '../../src/runtime/record.ts';
import { SnsSink } from '../../src/stages/sinks/sns.ts';

/**
 * moto answers a PublishBatch whose HTTP deliveries failed with fewer Successful entries and
 * an empty Failed list. An entry reported neither way must not count as published.
 */
describe('sns sink, entries SNS does not report', () => {
  it('returns entries missing from both Successful and Failed as retryable failures', async () => {
    const client = {
      send: async () => ({ Successful: [{ Id: '0' }, { Id: '2' }], Failed: [] }),
    } as unknown as SNSClient;
    const metrics = new MetricsRegistry('t').stage('topic', 'sink', 'sns');
    const sink = new SnsSink(client, { topic_arn: 'arn:aws:sns:us-east-1:1:t' } as never, {
      name: 'topic',
      pipeline: 't',
      log: pino({ level: 'silent' }),
      metrics,
      stateDir: '.',
    });
    const ack = new AckGroup(3);
    const records: SluiceRecord[] = [0, 1, 2].map((i) => ({ value: { i }, meta: {}, size: 8, ack }));
    const result = await sink.write({
      records,
      partition: undefined,
      startedAt: Date.now(),
      bytes: 24,
      seq: 0,
    });
    expect(result?.failed).toEqual([
      { index: 1, reason: 'sns did not report this entry as published', retryable: true },
    ]);
    expect(metrics.snapshot().extra.messages_published).toBe(2);
  });
});
