/**
 * Kinesis checkpoints in a DynamoDB lease table on moto: two processes share a stream without
 * reading a shard twice, a stopped reader's shards are taken over from its checkpoints, and a
 * reader whose lease was taken cannot overwrite the new owner's progress.
 */
import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pino from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import { DynamoCheckpoints, readShardCheckpoints } from '../../src/stages/aws/shard-checkpoints.ts';
import { type KinesisSource, kinesisSource } from '../../src/stages/sources/kinesis.ts';
import { Harness, sleep, stageContext } from '../stages/kinesis-harness.ts';
import {
  awsEnv,
  boto3,
  createStream,
  putSales,
  ROOT,
  requireMoto,
  tempDir,
  unique,
} from './kinesis-harness.ts';

beforeAll(async () => {
  await requireMoto();
});

interface Item {
  lease_key: string;
  checkpoint?: string;
  lease_owner: string;
  lease_counter: number;
}

function items(table: string): Promise<Item[]> {
  return boto3(
    `t = boto3.resource("dynamodb").Table(arg)
out = [{k: (int(v) if k == "lease_counter" else v) for k, v in i.items()} for i in t.scan(ConsistentRead=True)["Items"]]`,
    table,
  );
}

async function reader(stream: string, table: string) {
  const dir = await tempDir();
  const ctx = await stageContext('src', 'source', 'kinesis', dir);
  const source = kinesisSource.create(
    {
      stream,
      start: 'trim_horizon',
      poll_interval: 200,
      idle_interval: 200,
      shard_refresh: 300,
      checkpoint: { dynamodb: { table, lease_duration: 3_000 } },
    },
    ctx,
  ) as KinesisSource;
  const h = new Harness(dir);
  const running = source.run(h.context());
  const stop = async () => {
    h.abort.abort();
    await running;
    await source.close();
  };
  return { h, stop };
}

const ids = (h: Harness) => h.values().map((v) => (v as { id: number }).id);

describe('kinesis source with DynamoDB checkpoints', () => {
  it("two readers balance a stream through leases; a stopped reader's shards are taken over from its checkpoints", async () => {
    const stream = unique('leases');
    const table = unique('sluice-leases');
    await createStream(stream, 2);
    await putSales(stream, 0, 100);

    const a = await reader(stream, table);
    await a.h.waitFor(100);
    const b = await reader(stream, table);
    // b is below its fair share (1 of 2): it asks, and a hands one lease over at its next renewal.
    const shardItems = async () => (await items(table)).filter((i) => !i.lease_key.includes('#worker/'));
    for (let t = 0; t < 50; t++) {
      if (new Set((await shardItems()).map((i) => i.lease_owner)).size === 2) break;
      await sleep(200);
    }
    const held = await shardItems();
    expect(held).toHaveLength(2);
    expect(new Set(held.map((i) => i.lease_owner)).size).toBe(2);
    expect(held.every((i) => i.lease_key.startsWith(`test/src/${stream}/shardId-`))).toBe(true);
    // The hand-over carried a's checkpoint: b read nothing a had delivered.
    await putSales(stream, 100, 110);
    for (let t = 0; t < 50 && ids(a.h).length + ids(b.h).length < 110; t++) await sleep(200);
    expect(ids(b.h).length).toBeGreaterThan(0);

    await a.stop(); // flushes and releases its leases
    const released = await shardItems();
    expect(released.every((i) => /^\d+$/.test(i.checkpoint ?? ''))).toBe(true);

    await putSales(stream, 110, 120);
    for (let t = 0; t < 50 && ids(b.h).filter((id) => id >= 110).length < 10; t++) await sleep(200);
    await b.stop();
    // b took over at a's checkpoints: only records a had not delivered.
    expect(ids(b.h).every((id) => id >= 100)).toBe(true);
    const all = [...ids(a.h), ...ids(b.h)].sort((x, y) => x - y);
    expect(all).toEqual(Array.from({ length: 120 }, (_, i) => i));
  });

  it('fences a writer whose lease expired and was taken', async () => {
    const table = unique('sluice-leases');
    const log = pino({ level: 'silent' });
    const base = { table, namespace: 'test/src/s', log };
    const old = new DynamoCheckpoints({ ...base, leaseDuration: 400, owner: 'old' });
    const lost: string[] = [];
    old.onLost = (shard) => lost.push(shard);
    expect(await old.acquire('shardId-1')).toBeNull();
    old.commit('shardId-1', '100');
    await old.flush();

    const fresh = new DynamoCheckpoints({ ...base, leaseDuration: 30_000, owner: 'new' });
    // Held and renewed: not takeable.
    expect(await fresh.acquire('shardId-1')).toBe(false);
    await sleep(600); // the old owner stalls past its lease
    expect(await fresh.acquire('shardId-1')).toBe('100');
    fresh.commit('shardId-1', '250');
    await fresh.flush();

    old.commit('shardId-1', '180');
    await old.flush();
    expect(lost).toEqual(['shardId-1']);
    const [item] = await items(table);
    expect(item).toMatchObject({ checkpoint: '250', lease_owner: 'new', lease_counter: 2 });
    await old.close();
    await fresh.close();
  });

  it('`sluice state show` reads the lease table without creating or changing it', async () => {
    const table = unique('sluice-leases');
    const dir = await tempDir();
    const spec = join(dir, 'leases.yaml');
    await writeFile(
      spec,
      `version: 1
name: show-leases
sources:
  src: { type: kinesis, stream: flow, checkpoint: { dynamodb: { table: ${table} } } }
sinks:
  out: { type: stdout, from: [src] }
`,
    );
    const show = () => {
      const r = spawnSync(
        join(ROOT, 'node_modules/.bin/node'),
        ['src/cli.ts', 'state', 'show', spec, '--state-dir', dir],
        {
          cwd: ROOT,
          encoding: 'utf8',
          env: { ...process.env, ...awsEnv },
        },
      );
      expect(r.status, r.stderr).toBe(0);
      return r.stdout;
    };
    // No table yet: said so, and show does not create it.
    expect(show()).toContain(`table ${table} does not exist yet: no checkpoint: shards start at LATEST`);
    expect(await readShardCheckpoints({ table, namespace: 'show-leases/src/flow' })).toBeUndefined();

    const writer = new DynamoCheckpoints({
      table,
      namespace: 'show-leases/src/flow',
      log: pino({ level: 'silent' }),
      leaseDuration: 30_000,
    });
    for (const [shard, pos] of [
      ['shardId-000000000000', 'SHARD_END'],
      ['shardId-000000000001', '4967'],
      ['shardId-000000000002', '4968:3'],
    ]) {
      await writer.acquire(shard);
      writer.commit(shard, pos);
    }
    await writer.flush();
    // Another pipeline's leases in the same table are not shown.
    const other = new DynamoCheckpoints({
      table,
      namespace: 'other/src/flow',
      log: pino({ level: 'silent' }),
      leaseDuration: 30_000,
    });
    await other.acquire('shardId-000000000009');
    other.commit('shardId-000000000009', '1');
    await other.flush();
    const before = await items(table);

    const out = show();
    expect(out).toContain(`source src (kinesis, checkpoints in DynamoDB table ${table})`);
    expect(out).toMatch(/shardId-000000000000 +read to its end \(SHARD_END\)/);
    expect(out).toMatch(/shardId-000000000001 +after sequence 4967/);
    expect(out).toMatch(/shardId-000000000002 +after user record 3 of the KPL aggregate at sequence 4968/);
    expect(out).not.toContain('shardId-000000000009');
    expect(await items(table)).toEqual(before);
    await writer.close();
    await other.close();
  });
});
