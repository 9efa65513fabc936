/**
 * Where `dedup` remembers keys. A store answers one question per key, atomically: is this the
 * first record of the key within `ttl`? The answer is a claim, not yet a memory: the claim
 * becomes durable only once the record that made it is acked (`confirm`), and is released when
 * the record fails downstream (`forget`), so its redelivery passes instead of being taken for a
 * duplicate. Every store keeps that property; it is what makes dedup safe under at-least-once.
 *
 * `memory` (one process, lost on restart), `file` (one process, survives restarts) and
 * `dynamodb` (shared by every instance of the pipeline) implement it.
 */

export interface DedupStore {
  /**
   * For each key, in order, whether the record holding it is the first within `ttl` (true: the
   * key is now claimed by that record) or a duplicate (false). A key repeated within `keys`
   * is a duplicate from its second occurrence on. Synchronous when the store needs no I/O.
   */
  claim(keys: readonly string[], now: number): boolean[] | Promise<boolean[]>;
  /** The records that claimed `keys` are durable everywhere: remember the keys for `ttl`. */
  confirm(keys: readonly string[], now: number): void;
  /** The records that claimed `keys` failed downstream: release the claims. */
  forget(keys: readonly string[]): void;
  /** Writes what `confirm` added since the last call (persisting stores); the stage calls it on an interval. */
  flush?(): Promise<void>;
  /** Writes what is left and releases clients; called after every ack is in. */
  close?(): Promise<void>;
}

/** The in-memory key cache (LRU with ttl) the memory and file stores keep their claims in. */
export interface KeyCache {
  /** Whether `key` was remembered within ttl (touching it as recently used). */
  seen(key: string, now: number): boolean;
  remember(key: string, now: number): void;
  forget(key: string): void;
}

/**
 * `store: memory`: the cache is the store. A claim is remembered at once (later records of
 * the key in this process are duplicates while the first is in flight) and forgotten if its
 * record fails; nothing outlives the process.
 */
export class MemoryStore implements DedupStore {
  protected readonly cache: KeyCache;

  constructor(cache: KeyCache) {
    this.cache = cache;
  }

  claim(keys: readonly string[], now: number): boolean[] | Promise<boolean[]> {
    return this.claimNow(keys, now);
  }

  protected claimNow(keys: readonly string[], now: number): boolean[] {
    const fresh = new Array<boolean>(keys.length);
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i];
      if (this.cache.seen(k, now)) fresh[i] = false;
      else {
        this.cache.remember(k, now);
        fresh[i] = true;
      }
    }
    return fresh;
  }

  confirm(_keys: readonly string[], _now: number): void {}

  forget(keys: readonly string[]): void {
    for (const k of keys) this.cache.forget(k);
  }
}
