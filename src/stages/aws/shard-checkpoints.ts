/**
 * Where a Kinesis source keeps its per-shard checkpoints: the runtime's checkpoint scope (a
 * local file), or a DynamoDB lease table when several processes may read the same stream.
 *
 * The DynamoDB table holds one item per shard: the checkpoint, the lease owner, a lease counter
 * and an expiry. Taking a lease is a conditional write that succeeds only when the shard is
 * unowned, expired or already ours; every checkpoint write is conditional on owner and counter,
 * so a process whose lease was taken over can never overwrite the new owner's progress.
 *
 * Several processes balance the shards between them through the same table (the plan is in
 * sources/kinesis/leases.ts): each renews a heartbeat item (`<namespace>/#worker/<owner>`), takes
 * free leases up to its fair share, and asks an over-loaded worker for one lease at a time by
 * setting `lease_steal_by` on it; the holder, at its next renewal, stops reading that shard,
 * writes its checkpoint and hands the lease to the asker in the same conditional write.
 */

import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { AttributeValue, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { Logger } from 'pino';
import type { CheckpointScope, Positions } from '../../runtime/checkpoint.ts';
import type { StageMetrics } from '../../runtime/metrics.ts';
import { type LeaseView, planLeases } from '../sources/kinesis/leases.ts';
import { type AwsStageOptions, awsClientConfig } from './clients.ts';
import { ensureTable } from './dynamodb-table.ts';
import { dynamodb } from './sdk.ts';

/** Stored for a closed shard whose every record is acked: its children may start. */
export const SHARD_END = 'SHARD_END';

export interface ShardCheckpoints {
  /** Every stored position, by shard id (refreshed: other processes may have written). */
  load(): Promise<Positions>;
  /**
   * Claims the right to read `shardId`; resolves to its stored position (or null when none),
   * or to false when another live process holds it.
   */
  acquire(shardId: string, parents?: readonly string[]): Promise<string | null | false>;
  /** Records the committable position (cheap; written by `flush`). */
  commit(shardId: string, position: string): void;
  /** Gives the shard up (finished, or shutting down) so another process can take it at once. */
  release(shardId: string): Promise<void>;
  /** Writes pending commits (and renews leases). */
  flush(): Promise<void>;
  /** Called when a lease was lost to another process (fenced, or handed over): stop reading that shard. */
  onLost?: (shardId: string) => void;
  /**
   * Shared leases only: of the shards that need a reader (`eligible`), those this process should
   * take now (its fair share), and every stored position (other processes' progress). May ask
   * another process for a lease, which arrives at a later call.
   */
  balance?(eligible: readonly string[]): Promise<{ take: string[]; positions: Positions }>;
  /** How often the source should call `flush`; undefined when the runtime flushes. */
  readonly flushInterval: number | undefined;
  close(): Promise<void>;
}

/** The runtime's scope: one process per state directory, so every acquire succeeds. */
export class ScopeCheckpoints implements ShardCheckpoints {
  readonly flushInterval = undefined;
  private readonly scope: CheckpointScope;
  private positions: Positions | undefined;

  constructor(scope: CheckpointScope) {
    this.scope = scope;
  }

  async load(): Promise<Positions> {
    this.positions ??= { ...((await this.scope.load()) ?? {}) };
    return { ...this.positions };
  }

  async acquire(shardId: string): Promise<string | null> {
    const p = await this.load();
    return p[shardId] ?? null;
  }

  commit(shardId: string, position: string): void {
    if (this.positions) this.positions[shardId] = position;
    this.scope.commit(shardId, position);
  }

  async release(): Promise<void> {}

  // The runtime flushes its scope on an interval and at shutdown.
  async flush(): Promise<void> {}

  async close(): Promise<void> {}
}

/** Heartbeat items sit beside the shard leases under this infix (`#` never starts a shard id). */
const WORKER = '#worker/';

/** The prefix of a Kinesis source's lease keys: one table can serve many pipelines and sources. */
export const leaseNamespace = (pipeline: string, source: string, stream: string): string =>
  `${pipeline}/${source}/${stream}`;

/**
 * Reads the stored positions of one namespace without creating or changing anything (for
 * `sluice state show`); undefined when the table does not exist.
 */
export async function readShardCheckpoints(
  opts: AwsStageOptions & { table: string; namespace: string },
): Promise<Positions | undefined> {
  const client = new (dynamodb().DynamoDBClient)(awsClientConfig(opts));
  const prefix = `${opts.namespace}/`;
  const out: Positions = {};
  try {
    let start: Record<string, AttributeValue> | undefined;
    do {
      const res = await client.send(
        new (dynamodb().ScanCommand)({
          TableName: opts.table,
          FilterExpression: 'begins_with(lease_key, :p) AND attribute_exists(checkpoint)',
          ExpressionAttributeValues: { ':p': { S: prefix } },
          ProjectionExpression: 'lease_key, checkpoint',
          ExclusiveStartKey: start,
        }),
      );
      for (const item of res.Items ?? []) {
        const k = item.lease_key?.S;
        const c = item.checkpoint?.S;
        if (k && c) out[k.slice(prefix.length)] = c;
      }
      start = res.LastEvaluatedKey;
    } while (start);
    return out;
  } catch (err) {
    if (err instanceof dynamodb().ResourceNotFoundException) return undefined;
    throw err;
  } finally {
    client.destroy();
  }
}

export interface DynamoCheckpointOptions extends AwsStageOptions {
  table: string;
  /** Prefix of every lease key: pipeline and source names, so one table can serve many consumers. */
  namespace: string;
  leaseDuration: number;
  owner?: string;
  log: Logger;
  /** Lease counts and events go here (the live view's source detail). */
  metrics?: StageMetrics;
}

interface Lease {
  counter: number;
  /** Position to write at the next flush. */
  pending: string | undefined;
}

export class DynamoCheckpoints implements ShardCheckpoints {
  readonly flushInterval: number;
  readonly owner: string;
  onLost?: (shardId: string) => void;
  private readonly client: DynamoDBClient;
  private readonly opts: DynamoCheckpointOptions;
  private readonly leases = new Map<string, Lease>();
  private ready: Promise<void> | undefined;
  private flushing: Promise<void> = Promise.resolve();

  constructor(opts: DynamoCheckpointOptions) {
    this.opts = opts;
    this.client = new (dynamodb().DynamoDBClient)(awsClientConfig(opts));
    this.owner = opts.owner ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    // Renew well before expiry, so one slow call does not lose the lease.
    this.flushInterval = Math.max(200, Math.min(5_000, Math.floor(opts.leaseDuration / 3)));
  }

  private key(shardId: string): Record<string, AttributeValue> {
    return { lease_key: { S: `${this.opts.namespace}/${shardId}` } };
  }

  /** Creates the table when missing and waits until it is active. */
  private ensureTable(): Promise<void> {
    this.ready ??= ensureTable(this.client, {
      table: this.opts.table,
      key: 'lease_key',
      log: this.opts.log,
      purpose: 'checkpoint',
    });
    return this.ready;
  }

  async load(): Promise<Positions> {
    return (await this.scan()).positions;
  }

  /** Every item of the namespace: shard leases with their checkpoints, and worker heartbeats. */
  private async scan(): Promise<{ positions: Positions; leases: Map<string, LeaseView>; workers: string[] }> {
    await this.ensureTable();
    const prefix = `${this.opts.namespace}/`;
    const workerPrefix = `${prefix}${WORKER}`;
    const positions: Positions = {};
    const leases = new Map<string, LeaseView>();
    const workers: string[] = [];
    const now = Date.now();
    let start: Record<string, AttributeValue> | undefined;
    do {
      const res = await this.client.send(
        new (dynamodb().ScanCommand)({
          TableName: this.opts.table,
          FilterExpression: 'begins_with(lease_key, :p)',
          ExpressionAttributeValues: { ':p': { S: prefix } },
          ExclusiveStartKey: start,
          ConsistentRead: true,
        }),
      );
      for (const item of res.Items ?? []) {
        const k = item.lease_key?.S;
        if (!k) continue;
        const expires = Number(item.lease_expires?.N ?? '0');
        if (k.startsWith(workerPrefix)) {
          if (expires > now) workers.push(k.slice(workerPrefix.length));
          continue;
        }
        const shardId = k.slice(prefix.length);
        const c = item.checkpoint?.S;
        if (c) positions[shardId] = c;
        leases.set(shardId, {
          shardId,
          owner: item.lease_owner?.S || undefined,
          counter: Number(item.lease_counter?.N ?? '0'),
          expires,
          stealBy: item.lease_steal_by?.S,
        });
      }
      start = res.LastEvaluatedKey;
    } while (start);
    return { positions, leases, workers };
  }

  async balance(eligible: readonly string[]): Promise<{ take: string[]; positions: Positions }> {
    await this.heartbeat();
    const { positions, leases, workers } = await this.scan();
    const plan = planLeases({
      me: this.owner,
      now: Date.now(),
      leases,
      liveWorkers: workers,
      eligible,
      held: new Set(this.leases.keys()),
    });
    const m = this.opts.metrics;
    m?.gauge('workers_live', new Set([...workers, this.owner]).size);
    m?.gauge('lease_target', plan.target);
    if (plan.steal) await this.requestSteal(plan.steal.shardId, plan.steal.from, plan.steal.counter);
    return { take: plan.take, positions };
  }

  /** Asks the holder of `shardId` to hand it over (at its next renewal). */
  private async requestSteal(shardId: string, from: string, counter: number): Promise<void> {
    try {
      await this.client.send(
        new (dynamodb().UpdateItemCommand)({
          TableName: this.opts.table,
          Key: this.key(shardId),
          UpdateExpression: 'SET lease_steal_by = :me',
          ConditionExpression:
            'lease_owner = :from AND lease_counter = :counter AND attribute_not_exists(lease_steal_by)',
          ExpressionAttributeValues: {
            ':me': { S: this.owner },
            ':from': { S: from },
            ':counter': { N: String(counter) },
          },
        }),
      );
      this.opts.metrics?.count('lease_steals_asked');
      this.opts.log.info(
        { shard: shardId, from },
        'asked for a shard lease: this worker is below its fair share',
      );
    } catch (err) {
      if (!(err instanceof dynamodb().ConditionalCheckFailedException)) throw err;
    }
  }

  /** Renews this worker's heartbeat: it counts as live for one lease duration. */
  private async heartbeat(): Promise<void> {
    await this.ensureTable();
    await this.client.send(
      new (dynamodb().UpdateItemCommand)({
        TableName: this.opts.table,
        Key: this.workerKey(),
        UpdateExpression: 'SET lease_expires = :exp, updated_at = :at',
        ExpressionAttributeValues: {
          ':exp': { N: String(Date.now() + this.opts.leaseDuration) },
          ':at': { S: new Date().toISOString() },
        },
      }),
    );
  }

  private workerKey(): Record<string, AttributeValue> {
    return { lease_key: { S: `${this.opts.namespace}/${WORKER}${this.owner}` } };
  }

  async acquire(shardId: string, parents: readonly string[] = []): Promise<string | null | false> {
    await this.ensureTable();
    const now = Date.now();
    const values: Record<string, AttributeValue> = {
      ':me': { S: this.owner },
      ':exp': { N: String(now + this.opts.leaseDuration) },
      ':now': { N: String(now) },
      ':shard': { S: shardId },
      ':one': { N: '1' },
    };
    let update = 'SET lease_owner = :me, lease_expires = :exp, shard_id = :shard';
    if (parents.length > 0) {
      update += ', parent_shard_ids = :parents';
      values[':parents'] = { SS: [...parents] };
    }
    try {
      const res = await this.client.send(
        new (dynamodb().UpdateItemCommand)({
          TableName: this.opts.table,
          Key: this.key(shardId),
          UpdateExpression: `${update} REMOVE lease_steal_by ADD lease_counter :one`,
          ConditionExpression: 'attribute_not_exists(lease_key) OR lease_owner = :me OR lease_expires < :now',
          ExpressionAttributeValues: values,
          ReturnValues: 'ALL_NEW',
        }),
      );
      const counter = Number(res.Attributes?.lease_counter?.N ?? '0');
      this.leases.set(shardId, { counter, pending: undefined });
      this.opts.metrics?.count('leases_taken');
      this.opts.metrics?.gauge('leases_held', this.leases.size);
      return res.Attributes?.checkpoint?.S ?? null;
    } catch (err) {
      if (err instanceof dynamodb().ConditionalCheckFailedException) return false;
      throw err;
    }
  }

  commit(shardId: string, position: string): void {
    const lease = this.leases.get(shardId);
    if (lease) lease.pending = position;
  }

  /** Writes pending positions and renews every held lease; one writer at a time. */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(() => this.flushNow());
    return this.flushing;
  }

  private async flushNow(): Promise<void> {
    await Promise.all([...this.leases.keys()].map((shardId) => this.write(shardId, false)));
  }

  private async write(shardId: string, release: boolean): Promise<void> {
    const lease = this.leases.get(shardId);
    if (!lease) return;
    const position = lease.pending;
    const values: Record<string, AttributeValue> = {
      ':me': { S: this.owner },
      ':counter': { N: String(lease.counter) },
      ':exp': { N: String(release ? 0 : Date.now() + this.opts.leaseDuration) },
      ':at': { S: new Date().toISOString() },
    };
    let update = 'SET lease_expires = :exp, updated_at = :at';
    if (position !== undefined) {
      update += ', checkpoint = :pos';
      values[':pos'] = { S: position };
    }
    try {
      const res = await this.client.send(
        new (dynamodb().UpdateItemCommand)({
          TableName: this.opts.table,
          Key: this.key(shardId),
          UpdateExpression: update,
          ConditionExpression: 'lease_owner = :me AND lease_counter = :counter',
          ExpressionAttributeValues: values,
          ReturnValues: 'ALL_NEW',
        }),
      );
      if (lease.pending === position) lease.pending = undefined;
      if (release) this.forgetLease(shardId);
      const asker = res.Attributes?.lease_steal_by?.S;
      if (!release && asker && asker !== this.owner) await this.handOver(shardId, asker);
    } catch (err) {
      if (!(err instanceof dynamodb().ConditionalCheckFailedException)) throw err;
      this.forgetLease(shardId);
      this.opts.metrics?.count('leases_lost');
      this.opts.log.warn(
        { shard: shardId, owner: this.owner },
        'lost the lease on a shard to another process',
      );
      this.onLost?.(shardId);
    }
  }

  private forgetLease(shardId: string): void {
    this.leases.delete(shardId);
    this.opts.metrics?.gauge('leases_held', this.leases.size);
  }

  /**
   * Gives a lease to the worker that asked for it: reading stops first, then the checkpoint
   * acked so far and the new owner go in one conditional write, so the shard is never read by
   * both; what was read past the checkpoint is read again by the new owner.
   */
  private async handOver(shardId: string, asker: string): Promise<void> {
    const lease = this.leases.get(shardId);
    if (!lease) return;
    this.forgetLease(shardId);
    this.onLost?.(shardId);
    const values: Record<string, AttributeValue> = {
      ':me': { S: this.owner },
      ':counter': { N: String(lease.counter) },
      ':to': { S: asker },
      ':exp': { N: String(Date.now() + this.opts.leaseDuration) },
      ':at': { S: new Date().toISOString() },
    };
    let update = 'SET lease_owner = :to, lease_expires = :exp, updated_at = :at';
    if (lease.pending !== undefined) {
      update += ', checkpoint = :pos';
      values[':pos'] = { S: lease.pending };
    }
    try {
      await this.client.send(
        new (dynamodb().UpdateItemCommand)({
          TableName: this.opts.table,
          Key: this.key(shardId),
          UpdateExpression: update,
          ConditionExpression: 'lease_owner = :me AND lease_counter = :counter',
          ExpressionAttributeValues: values,
        }),
      );
      this.opts.metrics?.count('leases_handed_over');
      this.opts.log.info(
        { shard: shardId, to: asker },
        'handed a shard lease to a worker below its fair share',
      );
    } catch (err) {
      if (!(err instanceof dynamodb().ConditionalCheckFailedException)) throw err;
    }
  }

  async release(shardId: string): Promise<void> {
    await this.flushing;
    await this.write(shardId, true);
  }

  async close(): Promise<void> {
    await this.flushing;
    await Promise.all([...this.leases.keys()].map((shardId) => this.write(shardId, true)));
    // Leave the group at once, so the others' fair share counts without this worker now.
    if (this.ready)
      await this.client
        .send(new (dynamodb().DeleteItemCommand)({ TableName: this.opts.table, Key: this.workerKey() }))
        .catch((err) => this.opts.log.warn({ err }, 'could not remove this worker from the lease table'));
    this.client.destroy();
  }
}
