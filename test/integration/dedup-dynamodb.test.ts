/**
 * dedup's DynamoDB store on moto: two instances share keys; a key in flight elsewhere holds a
 * record back until its claim is settled; a failed record releases its key; ttl and
 * claim_timeout expire keys; the items read back with boto3.
 */
import pino from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import { DynamoStore } from '../../src/stages/transforms/dedup/dynamodb-store.ts';
import { boto3, requireMoto, unique } from './kinesis-harness.ts';

beforeAll(async () => {
  await requireMoto();
});

const log = pino({ level: 'silent' });

function store(table: string, owner: string, opts: { ttl?: number; claimTimeout?: number } = {}) {
  return new DynamoStore({
    table,
    namespace: 'p/unique',
    ttl: opts.ttl ?? 3_600_000,
    claimTimeout: opts.claimTimeout ?? 30_000,
    owner,
    log,
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('dedup store: dynamodb', () => {
  it('two instances deduplicate together; a record whose key is in flight elsewhere waits for the outcome', async () => {
    const table = unique('dedup');
    const a = store(table, 'a');
    const b = store(table, 'b');
    expect(await a.claim(['k1', 'k2', 'k1'], Date.now())).toEqual([true, true, false]);
    // In flight at a: a's own later records of the key are duplicates at once.
    expect(await a.claim(['k1'], Date.now())).toEqual([false]);
    // At b, k1 waits until a settles it: delivered, so a duplicate.
    let settled = false;
    const waiting = b.claim(['k1', 'k3'], Date.now()).then((r) => {
      settled = true;
      return r;
    });
    await sleep(600);
    expect(settled).toBe(false);
    a.confirm(['k1'], Date.now());
    expect(await waiting).toEqual([false, true]);
    // k2's record failed at a: released, so b takes the key.
    const released = b.claim(['k2'], Date.now());
    a.forget(['k2']);
    expect(await released).toEqual([true]);
    b.confirm(['k2', 'k3'], Date.now());
    await b.flush();
    await a.close();
    await b.close();

    const items = await boto3<{ dedup_key: string; claim_state: string; claim_owner: string }[]>(
      'out = sorted(boto3.resource("dynamodb").Table(arg).scan(ConsistentRead=True)["Items"], key=lambda i: i["dedup_key"])',
      table,
    );
    expect(items.map((i) => [i.dedup_key, i.claim_state, i.claim_owner])).toEqual([
      ['p/unique/k1', 'done', 'a'],
      ['p/unique/k2', 'done', 'b'],
      ['p/unique/k3', 'done', 'b'],
    ]);
    const ttl = await boto3<{ AttributeName: string; TimeToLiveStatus: string }>(
      'out = boto3.client("dynamodb").describe_time_to_live(TableName=arg)["TimeToLiveDescription"]',
      table,
    );
    expect(ttl).toMatchObject({ AttributeName: 'expires_at', TimeToLiveStatus: 'ENABLED' });
  });

  it('a claim never confirmed (its instance crashed) lapses after claim_timeout; a done key after ttl', async () => {
    const table = unique('dedup');
    const crashed = store(table, 'crashed', { claimTimeout: 800 });
    expect(await crashed.claim(['lost', 'kept'], Date.now())).toEqual([true, true]);
    crashed.confirm(['kept'], Date.now());
    await crashed.flush();
    // 'lost' stays pending: the survivor waits for the claim to lapse, then delivers it itself.
    const survivor = store(table, 'survivor', { ttl: 1_500 });
    const t0 = Date.now();
    expect(await survivor.claim(['lost', 'kept'], Date.now())).toEqual([true, false]);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(300);
    survivor.confirm(['lost'], Date.now());
    await survivor.flush();
    expect(await survivor.claim(['lost'], Date.now())).toEqual([false]);
    await sleep(1_700);
    expect(await survivor.claim(['lost'], Date.now())).toEqual([true]);
    await survivor.close();
  });
});
