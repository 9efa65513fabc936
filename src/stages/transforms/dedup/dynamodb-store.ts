/**
 * `store: dynamodb`: keys in a DynamoDB table shared by every instance of the pipeline, so N
 * processes behind one topic or load balancer deduplicate together.
 *
 * A claim is a conditional PutItem that succeeds only when the key is absent or expired; it is
 * written `pending` with a deadline (`claim_timeout`) and becomes `done` for `ttl` once its record
 * is acked, or is deleted when the record fails. A record whose key another instance holds
 * `pending` waits until that claim is done (a duplicate) or released or past its deadline (then
 * it claims the key itself): dropping it at once would lose it if the other instance crashed
 * before its record became durable. A key this instance holds `pending` is a duplicate at once,
 * as in the memory store, since a failure here releases both together.
 *
 * Items carry `expires_at` (epoch seconds) for DynamoDB's TTL sweeper, which runs late (hours);
 * the claim condition reads the exact `claim_until` (epoch ms), so an expired key is claimable at once.
 * Per new key: one PutItem and one UpdateItem; per duplicate: one refused PutItem that returns
 * the item (ReturnValuesOnConditionCheckFailure), so no extra read. The writes of one batch go
 * out concurrently.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { AttributeValue, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { Logger } from 'pino';
import type { StageMetrics } from '../../../runtime/metrics.ts';
import type { AwsStageOptions } from '../../aws/clients.ts';
import { awsClientConfig } from '../../aws/clients.ts';
import { ensureTable } from '../../aws/dynamodb-table.ts';
import { dynamodb } from '../../aws/sdk.ts';
import type { DedupStore } from './store.ts';

export interface DynamoStoreOptions extends AwsStageOptions {
  table: string;
  /** Prefix of every key: pipeline and stage, so one table can serve many dedup stages. */
  namespace: string;
  ttl: number;
  /** How long a claim whose record is in flight holds the key before another instance may take it. */
  claimTimeout: number;
  log: Logger;
  metrics?: StageMetrics;
  /** Distinguishes this process's claims from other instances'. */
  owner?: string;
}

/** Writes under way at once for one batch: enough to hide latency, few enough not to throttle. */
const CONCURRENCY = 32;

export class DynamoStore implements DedupStore {
  readonly owner: string;
  private readonly o: DynamoStoreOptions;
  private readonly client: DynamoDBClient;
  private ready: Promise<void> | undefined;
  /** Keys this process claimed and whose records are still in flight. */
  private readonly mine = new Set<string>();
  /** Confirmations and releases not yet written, retried at the next flush when a write fails. */
  private toConfirm: { key: string; at: number }[] = [];
  private toForget: string[] = [];
  private writing: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(o: DynamoStoreOptions) {
    this.o = o;
    this.owner = o.owner ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    this.client = new (dynamodb().DynamoDBClient)(awsClientConfig(o));
  }

  private item(key: string): Record<string, AttributeValue> {
    return { dedup_key: { S: `${this.o.namespace}/${key}` } };
  }

  async claim(keys: readonly string[], now: number): Promise<boolean[]> {
    this.ready ??= ensureTable(this.client, {
      table: this.o.table,
      key: 'dedup_key',
      ttlAttribute: 'expires_at',
      log: this.o.log,
      purpose: 'dedup key',
    });
    await this.ready;
    const fresh = new Array<boolean>(keys.length).fill(false);
    // A key repeated in the batch is claimed once; its later records are duplicates.
    const first = new Map<string, number>();
    keys.forEach((k, i) => {
      if (!first.has(k) && !this.mine.has(k)) first.set(k, i);
    });
    const todo = [...first];
    const results = await settleLimited(
      todo.map(([key, index]) => async () => {
        fresh[index] = await this.claimOne(key, now);
      }),
      CONCURRENCY,
    );
    for (const r of results) if (r.status === 'rejected') throw r.reason;
    return fresh;
  }

  /** Claims one key; waits while another instance holds it pending. */
  private async claimOne(key: string, now: number): Promise<boolean> {
    for (let attempt = 0; ; attempt++) {
      const at = attempt === 0 ? now : Date.now();
      const until = at + this.o.claimTimeout;
      try {
        await this.client.send(
          new (dynamodb().PutItemCommand)({
            TableName: this.o.table,
            Item: {
              ...this.item(key),
              claim_state: { S: 'pending' },
              claim_owner: { S: this.owner },
              claim_until: { N: String(until) },
              expires_at: { N: String(Math.ceil(until / 1000)) },
            },
            ConditionExpression: 'attribute_not_exists(dedup_key) OR claim_until < :now',
            ExpressionAttributeValues: { ':now': { N: String(at) } },
            ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
          }),
        );
        this.mine.add(key);
        return true;
      } catch (err) {
        if (err instanceof dynamodb().ConditionalCheckFailedException) {
          const held = err.Item;
          if (held?.claim_state?.S !== 'pending' || held.claim_owner?.S === this.owner) return false;
          this.o.metrics?.count('dedup_waits');
        } else {
          if (this.closed) throw err;
          this.o.log.warn(
            { err, table: this.o.table },
            'dedup: DynamoDB claim failed; retrying (records wait)',
          );
        }
      }
      // Held pending elsewhere, or DynamoDB unreachable: wait and ask again.
      await new Promise((r) => setTimeout(r, Math.min(2_000, 100 * 2 ** Math.min(attempt, 5))));
    }
  }

  confirm(keys: readonly string[], now: number): void {
    for (const key of keys) {
      this.mine.delete(key);
      this.toConfirm.push({ key, at: now });
    }
    this.kick();
  }

  forget(keys: readonly string[]): void {
    for (const key of keys) {
      this.mine.delete(key);
      this.toForget.push(key);
    }
    this.kick();
  }

  /** Starts writing at once; a failed write is kept for the next flush. */
  private kick(): void {
    this.flush().catch((err) =>
      this.o.log.warn({ err, table: this.o.table }, 'dedup: writing to DynamoDB failed; will retry'),
    );
  }

  flush(): Promise<void> {
    const next = this.writing.catch(() => undefined).then(() => this.flushNow());
    this.writing = next;
    return next;
  }

  private async flushNow(): Promise<void> {
    const confirms = this.toConfirm;
    const forgets = this.toForget;
    this.toConfirm = [];
    this.toForget = [];
    if (confirms.length === 0 && forgets.length === 0) return;
    const results = await settleLimited(
      [
        ...confirms.map((c) => () => this.markDone(c.key, c.at)),
        ...forgets.map((k) => () => this.release(k)),
      ],
      CONCURRENCY,
    );
    let failure: unknown;
    results.forEach((r, i) => {
      if (r.status === 'fulfilled') return;
      failure ??= r.reason;
      if (i < confirms.length) this.toConfirm.push(confirms[i]);
      else this.toForget.push(forgets[i - confirms.length]);
    });
    if (failure !== undefined) throw failure;
  }

  /** The claim's record is durable: the key is remembered for ttl (unless the claim was taken meanwhile). */
  private async markDone(key: string, at: number): Promise<void> {
    const until = at + this.o.ttl;
    try {
      await this.client.send(
        new (dynamodb().UpdateItemCommand)({
          TableName: this.o.table,
          Key: this.item(key),
          UpdateExpression: 'SET claim_state = :done, claim_until = :until, expires_at = :exp',
          ConditionExpression: 'claim_owner = :me',
          ExpressionAttributeValues: {
            ':done': { S: 'done' },
            ':until': { N: String(until) },
            ':exp': { N: String(Math.ceil(until / 1000)) },
            ':me': { S: this.owner },
          },
        }),
      );
    } catch (err) {
      if (!(err instanceof dynamodb().ConditionalCheckFailedException)) throw err;
      // Our claim outlived claim_timeout and another instance took the key: its record stands.
    }
  }

  /** The claim's record failed: delete the claim, if it is still ours and pending. */
  private async release(key: string): Promise<void> {
    try {
      await this.client.send(
        new (dynamodb().DeleteItemCommand)({
          TableName: this.o.table,
          Key: this.item(key),
          ConditionExpression: 'claim_owner = :me AND claim_state = :pending',
          ExpressionAttributeValues: { ':me': { S: this.owner }, ':pending': { S: 'pending' } },
        }),
      );
    } catch (err) {
      if (!(err instanceof dynamodb().ConditionalCheckFailedException)) throw err;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    // A few tries: what stays unwritten expires on its own (a pending claim after claim_timeout).
    for (let i = 0; i < 3; i++) {
      try {
        await this.flush();
        break;
      } catch (err) {
        this.o.log.warn({ err, table: this.o.table }, 'dedup: final DynamoDB writes failed');
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    this.client.destroy();
  }
}

/** Runs `tasks` with at most `limit` under way at once; every result, in order. */
async function settleLimited(
  tasks: readonly (() => Promise<void>)[],
  limit: number,
): Promise<PromiseSettledResult<void>[]> {
  const results = new Array<PromiseSettledResult<void>>(tasks.length);
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) {
      const i = next++;
      try {
        await tasks[i]();
        results[i] = { status: 'fulfilled', value: undefined };
      } catch (reason) {
        results[i] = { status: 'rejected', reason };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
  return results;
}
