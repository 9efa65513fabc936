/**
 * `dedup`: removes records whose key was seen within `ttl`. Memory is bounded by `max_keys`
 * (least recently used keys go first). Duplicates are acked at once and counted, never
 * silently gone. A key whose first record fails downstream is forgotten again, so the
 * redelivery of that record is not mistaken for a duplicate (at-least-once holds). `store`
 * chooses where keys live (dedup/store.ts): this process's memory, a file in the state
 * directory, or a DynamoDB table shared by every instance.
 */
import { Type } from '@sinclair/typebox';
import { compile, inBatch } from '../../expr/index.ts';
import type { AckGroup } from '../../runtime/ack.ts';
import type { SluiceRecord } from '../../runtime/record.ts';
import { Duration, Expr } from '../../spec/types.ts';
import { defineTransform, type TransformOutput } from '../define.ts';
import { KeyTable } from './dedup/key-table.ts';
import { openStore, STORE_FLUSH_INTERVAL, StoreOptions } from './dedup/open.ts';
import type { DedupStore } from './dedup/store.ts';

/** Bytes per remembered key in the memory table: 28 per entry and up to 11 of index (dedup/key-table.ts). */
const BYTES_PER_KEY = 39;
const MEMORY_LIMIT = 2 * 1024 ** 3;

export const dedupTransform = defineTransform({
  type: 'dedup',
  kind: 'transform',
  description: 'Drops records whose key was already seen within `ttl`; memory bounded by `max_keys` (LRU).',
  example: `
version: 1
name: dedup-example
sources:
  orders:
    type: generate
    count: 10000
    duplicates: 0.1
    fields:
      order_id: 'string(i)'
      amount: 'rand * 100.0'
transforms:
  unique:
    type: dedup
    from: [orders]
    key: order_id
    ttl: 24h
    max_keys: 1000000
    store: file
sinks:
  print: { type: stdout, from: [unique] }
`,
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
        description:
          'Memory bound; least recently used keys go first. The memory and file stores keep keys as 128-bit hashes outside the JS heap: ' +
          '28 bytes each plus 5 to 11 bytes of index (5M keys in about 170 MB). Two different keys share a hash ' +
          'with probability about n²/2¹²⁹ among n keys (4·10⁻²⁶ for 5M; the seed is random per process), which ' +
          'would make the later one look like a duplicate',
      }),
    ),
    ...StoreOptions,
  }),
  check(o, report) {
    const keys = o.max_keys ?? 1_000_000;
    const estimate = keys * BYTES_PER_KEY;
    if (estimate > MEMORY_LIMIT) {
      report(
        ['max_keys'],
        'dedup-memory',
        `${keys} keys need about ${Math.round(estimate / 1024 ** 3)} GiB of memory; keep max_keys at or below ${Math.floor(MEMORY_LIMIT / BYTES_PER_KEY)}`,
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
    const store = openStore(o, ctx, new KeyTable(maxKeys, ttl), { ttl, maxKeys });
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
        inBatch(() => {
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
        });
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

/** The flat key cache (128-bit hashes in typed arrays, LRU with ttl), by the name the stores know it. */
export { KeyTable as LruTtl } from './dedup/key-table.ts';
