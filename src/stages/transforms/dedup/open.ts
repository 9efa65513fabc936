/**
 * Builds the store a `dedup` stage names, and the options that choose it (spread into the
 * stage's option schema).
 */
import { Type } from '@sinclair/typebox';
import { AwsOptions, Duration } from '../../../spec/types.ts';
import type { StageContext } from '../../define.ts';
import { DynamoStore } from './dynamodb-store.ts';
import { dedupKeyPath, FileStore } from './file-store.ts';
import { type DedupStore, type KeyCache, MemoryStore } from './store.ts';

export const StoreOptions = {
  store: Type.Optional(
    Type.Union([Type.Literal('memory'), Type.Literal('file'), Type.Literal('dynamodb')], {
      default: 'memory',
      description:
        'Where seen keys live: memory (this process, lost on restart), file (the state directory, survives restarts; one process), dynamodb (a table shared by every instance). A key is kept only once its record is acked',
    }),
  ),
  dynamodb: Type.Optional(
    Type.Object(
      {
        table: Type.String({
          minLength: 1,
          description: 'Table of seen keys, created when missing (hash key dedup_key, TTL on expires_at)',
          examples: ['sluice-dedup'],
        }),
        claim_timeout: Type.Optional(
          Duration({
            default: '60s',
            description:
              'How long a key whose record is still in flight holds off other instances; past it, they may take the key (a crashed instance never confirms)',
          }),
        ),
        ...AwsOptions,
      },
      { additionalProperties: false, description: 'With store: dynamodb, the table and its client' },
    ),
  ),
};

export interface StoreChoice {
  store?: 'memory' | 'file' | 'dynamodb';
  dynamodb?: { table: string; claim_timeout?: number; region?: string; endpoint?: string };
}

export function openStore(
  o: StoreChoice,
  ctx: StageContext,
  cache: KeyCache,
  limits: { ttl: number; maxKeys: number },
): DedupStore {
  switch (o.store ?? 'memory') {
    case 'file':
      return new FileStore(cache, {
        path: dedupKeyPath(ctx.stateDir, ctx.pipeline, ctx.name),
        ttl: limits.ttl,
        maxKeys: limits.maxKeys,
      });
    case 'dynamodb': {
      const d = o.dynamodb;
      if (!d) throw new Error('dedup: store: dynamodb needs dynamodb.table');
      return new DynamoStore({
        region: d.region,
        endpoint: d.endpoint,
        table: d.table,
        namespace: `${ctx.pipeline}/${ctx.name}`,
        ttl: limits.ttl,
        claimTimeout: d.claim_timeout ?? 60_000,
        log: ctx.log,
        metrics: ctx.metrics,
      });
    }
    default:
      return new MemoryStore(cache);
  }
}

/** How often a persisting store writes the keys confirmed meanwhile (the runtime's default checkpoint interval). */
export const STORE_FLUSH_INTERVAL = 1_000;
