/**
 * `dedup`: removes records whose key was seen within `ttl`. Memory is bounded by `max_keys`
 * (least recently used keys go first). Duplicates are acked at once and counted, never
 * silently gone. A key whose first record fails downstream is forgotten again, so the
 * redelivery of that record is not mistaken for a duplicate (at-least-once holds). `store`
 * chooses where keys live (dedup/store.ts): this process's memory, a file in the state
 * directory, or a DynamoDB table shared by every instance.
 */
import { Type } from '@sinclair/typebox';
import { compile } from '../../expr/index.ts';
import type { AckGroup } from '../../runtime/ack.ts';
import type { SluiceRecord } from '../../runtime/record.ts';
import { Duration, Expr } from '../../spec/types.ts';
import { defineTransform, type TransformOutput } from '../define.ts';
import { openStore, STORE_FLUSH_INTERVAL, StoreOptions } from './dedup/open.ts';
import type { DedupStore } from './dedup/store.ts';

/** Rough bytes per remembered key beyond the key text (Map entry, timestamp, bookkeeping). */
const BYTES_PER_KEY = 96;
const MEMORY_LIMIT = 2 * 1024 ** 3;

export const dedupTransform = defineTransform({
  type: 'dedup',
  kind: 'transform',
  description: 'Drops records whose key was already seen within `ttl`; memory bounded by `max_keys` (LRU).',
  options: Type.Object({
    key: Expr({
      description: 'CEL expression whose value identifies a record',
      examples: ['id_treated_data'],
    }),
    ttl: Type.Optional(Duration({ default: '24h', description: 'How long a key is remembered' })),
    max_keys: Type.Optional(
      Type.Integer({
        minimum: 1,
        default: 1_000_000,
        description: 'Memory bound; least recently used keys go first',
      }),
    ),
    ...StoreOptions,
  }),
  check(o, report) {
    const keys = o.max_keys ?? 1_000_000;
    const estimate = keys * (BYTES_PER_KEY + 40);
    if (estimate > MEMORY_LIMIT) {
      report(
        ['max_keys'],
        'dedup-memory',
        `${keys} keys need about ${Math.round(estimate / 1024 ** 3)} GiB of memory; keep max_keys at or below ${Math.floor(MEMORY_LIMIT / (BYTES_PER_KEY + 40))}`,
      );
    }
    if (o.ttl !== undefined && o.ttl <= 0) report(['ttl'], 'dedup-memory', 'ttl must be longer than zero');
    if (o.store === 'dynamodb' && !o.dynamodb)
      report(['dynamodb'], 'schema-value', 'store: dynamodb needs dynamodb: { table: <name> }');
  },
  create(o, ctx) {
    const key = compile(o.key);
    const ttl = o.ttl ?? 86_400_000;
    const maxKeys = o.max_keys ?? 1_000_000;
    const store = openStore(o, ctx, new LruTtl(maxKeys, ttl), { ttl, maxKeys });
    let timer: NodeJS.Timeout | undefined;
    return {
      process(records, out) {
        if (store.flush && !timer) {
          timer = setInterval(() => {
            store
              .flush?.()
              .catch((err) => ctx.log.warn({ err }, 'dedup: writing seen keys failed; will retry'));
          }, STORE_FLUSH_INTERVAL).unref();
        }
        const now = Date.now();
        const keyed: SluiceRecord[] = [];
        const keys: string[] = [];
        for (const r of records) {
          let k: unknown;
          try {
            k = key.evaluate(r.value, r.meta);
          } catch (err) {
            out.fail(r, `key: ${(err as Error).message}`);
            continue;
          }
          keyed.push(r);
          keys.push(typeof k === 'string' ? k : keyText(k));
        }
        const fresh = store.claim(keys, now);
        if (Array.isArray(fresh)) route(store, keyed, keys, fresh, out);
        else return fresh.then((f) => route(store, keyed, keys, f, out));
      },
      async close() {
        clearInterval(timer);
        await store.close?.();
      },
    };
  },
});

/**
 * Passes the records whose key was fresh and marks the others duplicates. The keys passed on are
 * confirmed when their ack group (usually one per source batch) is delivered, and forgotten if it
 * fails, so the redelivery of a failed record passes.
 */
function route(
  store: DedupStore,
  records: SluiceRecord[],
  keys: string[],
  fresh: boolean[],
  out: TransformOutput,
): void {
  let group: AckGroup | undefined;
  let passed: string[] = [];
  for (let i = 0; i < records.length; i++) {
    const r = records[i];
    if (!fresh[i]) {
      out.duplicate(r);
      continue;
    }
    if (r.ack !== group) {
      group = r.ack;
      const groupKeys: string[] = [];
      passed = groupKeys;
      group.onFailure(() => store.forget(groupKeys));
      group.onSuccess(() => store.confirm(groupKeys, Date.now()));
    }
    passed.push(keys[i]);
    out.push(r);
  }
}

/** Text of a non-string key; CEL ints beyond 2^53 arrive as bigints, which JSON.stringify rejects. */
function keyText(k: unknown): string {
  return JSON.stringify(k, (_, v) => (typeof v === 'bigint' ? `${v}n` : v)) ?? 'null';
}

/**
 * Keys built by concatenation (uuid_v5, `a + "|" + b`) are ropes in V8: trees of the pieces,
 * about 400 bytes for a 36-character id against 100 for the flat text. The map keeps flat
 * copies so that `max_keys` bounds memory as documented.
 */
function flat(key: string): string {
  // A lone surrogate would not survive the UTF-8 round trip: such keys stay as they are.
  return key.length > 12 && (key as WellFormed).isWellFormed()
    ? Buffer.from(key, 'utf8').toString('utf8')
    : key;
}

/** ES2024 `String.prototype.isWellFormed` (Node ≥ 20), beyond the compiler's ES2023 lib. */
type WellFormed = string & { isWellFormed(): boolean };

/**
 * A Map keeps insertion order: re-inserting on touch makes the first entry the least recently
 * used. Times are stored relative to the map's creation so they stay small integers (no boxed
 * number per key).
 */
export class LruTtl {
  private readonly map = new Map<string, number>();
  private readonly maxKeys: number;
  private readonly ttl: number;
  private readonly base = Date.now();
  private oldest: MapIterator<string> = this.map.keys();
  evictions = 0;

  constructor(maxKeys: number, ttl: number) {
    this.maxKeys = maxKeys;
    this.ttl = ttl;
  }

  seen(key: string, now: number): boolean {
    const at = this.map.get(key);
    if (at === undefined) return false;
    if (now - this.base - at > this.ttl) {
      this.map.delete(key);
      return false;
    }
    this.map.delete(key);
    this.map.set(key, at);
    return true;
  }

  remember(key: string, now: number): void {
    this.map.set(flat(key), now - this.base);
    if (this.map.size > this.maxKeys) {
      // One iterator for the map's life: everything before it was evicted, so its next entry is
      // the oldest. A fresh `keys()` per eviction would step over every deleted entry still in
      // the table, which made each eviction cost O(evictions so far).
      let next = this.oldest.next();
      if (next.done) {
        this.oldest = this.map.keys();
        next = this.oldest.next();
      }
      this.map.delete(next.value as string);
      this.evictions++;
    }
  }

  forget(key: string): void {
    this.map.delete(key);
  }

  get size(): number {
    return this.map.size;
  }
}
