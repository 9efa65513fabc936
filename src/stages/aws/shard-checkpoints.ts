/**
 * Where a Kinesis source keeps its per-shard checkpoints: the runtime's checkpoint scope (a
 * local file), or a DynamoDB lease table when several processes may read the same stream.
 *
 * The DynamoDB table holds one item per shard: the checkpoint, the lease owner, a lease counter
 * and an expiry. Taking a lease is a conditional write that succeeds only when the shard is
 * unowned, expired or already ours; every checkpoint write is conditional on owner and counter,
 * so a process whose lease was taken over can never overwrite the new owner's progress.
 */

import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import {
  type AttributeValue,
  ConditionalCheckFailedException,
  CreateTableCommand,
  DescribeTableCommand,
  DynamoDBClient,
  ResourceInUseException,
  ResourceNotFoundException,
  ScanCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import type { Logger } from 'pino';
import type { CheckpointScope, Positions } from '../../runtime/checkpoint.ts';
import { type AwsStageOptions, awsClientConfig } from './clients.ts';

/** Stored for a closed shard whose every record is acked: its children may start. */
export const SHARD_END = 'SHARD_END';

export interface ShardCheckpoints {
  /** Every stored position, by shard id (refreshed: other processes may have written). */
  load(): Promise<Positions>;
  /**
   * Claims the right to read `shardId`; resolves to its stored position (or null when none),
   * or to false when another live process holds it.
   */
  acquire(shardId: string): Promise<string | null | false>;
  /** Records the committable position (cheap; written by `flush`). */
  commit(shardId: string, position: string): void;
  /** Gives the shard up (finished, or shutting down) so another process can take it at once. */
  release(shardId: string): Promise<void>;
  /** Writes pending commits (and renews leases). */
  flush(): Promise<void>;
  /** Called when a lease was lost to another process: stop reading that shard. */
  onLost?: (shardId: string) => void;
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
  const client = new DynamoDBClient(awsClientConfig(opts));
  const prefix = `${opts.namespace}/`;
  const out: Positions = {};
  try {
    let start: Record<string, AttributeValue> | undefined;
    do {
      const res = await client.send(
        new ScanCommand({
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
    if (err instanceof ResourceNotFoundException) return undefined;
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
    this.client = new DynamoDBClient(awsClientConfig(opts));
    this.owner = opts.owner ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    // Renew well before expiry, so one slow call does not lose the lease.
    this.flushInterval = Math.max(200, Math.min(5_000, Math.floor(opts.leaseDuration / 3)));
  }

  private key(shardId: string): Record<string, AttributeValue> {
    return { lease_key: { S: `${this.opts.namespace}/${shardId}` } };
  }

  /** Creates the table when missing and waits until it is active. */
  private ensureTable(): Promise<void> {
    this.ready ??= (async () => {
      const { table } = this.opts;
      try {
        await this.client.send(
          new CreateTableCommand({
            TableName: table,
            AttributeDefinitions: [{ AttributeName: 'lease_key', AttributeType: 'S' }],
            KeySchema: [{ AttributeName: 'lease_key', KeyType: 'HASH' }],
            BillingMode: 'PAY_PER_REQUEST',
          }),
        );
        this.opts.log.info({ table }, 'created the DynamoDB checkpoint table');
      } catch (err) {
        if (!(err instanceof ResourceInUseException)) throw err;
      }
      for (let i = 0; i < 120; i++) {
        try {
          const d = await this.client.send(new DescribeTableCommand({ TableName: table }));
          if (d.Table?.TableStatus === 'ACTIVE') return;
        } catch (err) {
          if (!(err instanceof ResourceNotFoundException)) throw err;
        }
        await new Promise((r) => setTimeout(r, 500));
      }
      throw new Error(`DynamoDB table ${table} did not become active`);
    })();
    return this.ready;
  }

  async load(): Promise<Positions> {
    await this.ensureTable();
    const prefix = `${this.opts.namespace}/`;
    const out: Positions = {};
    let start: Record<string, AttributeValue> | undefined;
    do {
      const res = await this.client.send(
        new ScanCommand({
          TableName: this.opts.table,
          FilterExpression: 'begins_with(lease_key, :p) AND attribute_exists(checkpoint)',
          ExpressionAttributeValues: { ':p': { S: prefix } },
          ProjectionExpression: 'lease_key, checkpoint',
          ExclusiveStartKey: start,
          ConsistentRead: true,
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
  }

  async acquire(shardId: string): Promise<string | null | false> {
    await this.ensureTable();
    const now = Date.now();
    try {
      const res = await this.client.send(
        new UpdateItemCommand({
          TableName: this.opts.table,
          Key: this.key(shardId),
          UpdateExpression:
            'SET lease_owner = :me, lease_expires = :exp, shard_id = :shard ADD lease_counter :one',
          ConditionExpression: 'attribute_not_exists(lease_key) OR lease_owner = :me OR lease_expires < :now',
          ExpressionAttributeValues: {
            ':me': { S: this.owner },
            ':exp': { N: String(now + this.opts.leaseDuration) },
            ':now': { N: String(now) },
            ':shard': { S: shardId },
            ':one': { N: '1' },
          },
          ReturnValues: 'ALL_NEW',
        }),
      );
      const counter = Number(res.Attributes?.lease_counter?.N ?? '0');
      this.leases.set(shardId, { counter, pending: undefined });
      return res.Attributes?.checkpoint?.S ?? null;
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) return false;
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
      await this.client.send(
        new UpdateItemCommand({
          TableName: this.opts.table,
          Key: this.key(shardId),
          UpdateExpression: update,
          ConditionExpression: 'lease_owner = :me AND lease_counter = :counter',
          ExpressionAttributeValues: values,
        }),
      );
      if (lease.pending === position) lease.pending = undefined;
      if (release) this.leases.delete(shardId);
    } catch (err) {
      if (!(err instanceof ConditionalCheckFailedException)) throw err;
      this.leases.delete(shardId);
      this.opts.log.warn(
        { shard: shardId, owner: this.owner },
        'lost the lease on a shard to another process',
      );
      this.onLost?.(shardId);
    }
  }

  async release(shardId: string): Promise<void> {
    await this.flushing;
    await this.write(shardId, true);
  }

  async close(): Promise<void> {
    await this.flushing;
    await Promise.all([...this.leases.keys()].map((shardId) => this.write(shardId, true)));
    this.client.destroy();
  }
}
