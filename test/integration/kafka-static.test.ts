/**
 * Static group membership (`group_instance_id`): a consumer killed with SIGKILL and started
 * again gets its partitions back at once, instead of waiting for the dead member's session
 * (10 s) to expire. Measured both ways: time from the restart to its first record.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  BROKERS,
  createTopic,
  kcatProduce,
  requireKafka,
  SluiceProcess,
  suffix,
  until,
} from './kafka-harness.ts';

beforeAll(async () => {
  await requireKafka();
});

const SESSION = 10_000;

/** Starts a consumer, kills it with SIGKILL once it read, restarts it; ms from restart to a new record. */
async function restartDelay(instance: string | undefined): Promise<number> {
  const topic = `static-${suffix()}`;
  await createTopic(topic, 2);
  const dir = mkdtempSync(join(tmpdir(), 'sluice-static-'));
  const spec = join(dir, 'static.yaml');
  const member = instance ? `, group_instance_id: ${instance}` : '';
  writeFileSync(
    spec,
    `version: 1
name: static
sources:
  in: { type: kafka, brokers: '${BROKERS}', topics: [${topic}], group: g-${topic}, start: earliest, session_timeout: ${SESSION}ms${member} }
sinks:
  out: { type: stdout, from: [in] }
`,
  );
  const args = ['--state-dir', dir];
  const first = new SluiceProcess(spec, {}, args);
  await kcatProduce(topic, ['{"n":1}', '{"n":2}', '{"n":3}', '{"n":4}']);
  await until(() => first.stdout.split('\n').filter(Boolean).length >= 4, 30_000, 'first records');
  first.kill('SIGKILL');
  await first.done;
  const restartedAt = Date.now();
  const second = new SluiceProcess(spec, {}, args);
  await kcatProduce(topic, ['{"n":5}', '{"n":6}', '{"n":7}', '{"n":8}']);
  await until(() => /"n":[5-8]/.test(second.stdout), 60_000, 'a record after the restart');
  const delay = Date.now() - restartedAt;
  second.kill('SIGTERM');
  await second.done;
  return delay;
}

describe('kafka source: static group membership', () => {
  it('a member restarted after SIGKILL reads again before the dead session would expire', {
    timeout: 120_000,
  }, async () => {
    const staticMs = await restartDelay(`it-${suffix()}`);
    const dynamicMs = await restartDelay(undefined);
    console.log(
      `kafka restart after SIGKILL, time to first record: ${staticMs} ms with group_instance_id, ${dynamicMs} ms without (session_timeout ${SESSION} ms)`,
    );
    // Without it the join waits for the dead member's session; with it, no wait at all.
    expect(dynamicMs).toBeGreaterThan(SESSION * 0.6);
    expect(staticMs).toBeLessThan(SESSION * 0.6);
  });
});
