import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { uuidV5 } from '../../src/expr/uuid.ts';
import { AckGroup } from '../../src/runtime/ack.ts';
import { dedupTransform, LruTtl } from '../../src/stages/transforms/dedup.ts';
import { buildPipeline, collectingSink, MemoryCheckpointStore, stageMetrics } from '../runtime/helpers.ts';
import { record, transform } from '../runtime/stage-harness.ts';

const HOUR = 3_600_000;

afterEach(() => {
  vi.useRealTimers();
});

describe('dedup', () => {
  it('passes the first record of a key, marks later ones duplicates and acks them', async () => {
    const process = transform(dedupTransform, { key: 'id', ttl: HOUR, max_keys: 100 });
    const settled: string[] = [];
    const group = new AckGroup(4, () => settled.push('batch'));
    const batch = ['a', 'b', 'a', 'c'].map((id) => record({ id }, { ack: group }));
    const run = await process(batch);
    expect(run.pushed.map((r) => (r.value as { id: string }).id)).toEqual(['a', 'b', 'c']);
    expect(run.duplicates).toEqual([batch[2]]);
    // Later batches are checked against keys of earlier ones.
    const next = await process([record({ id: 'c' }), record({ id: 'd' })]);
    expect(next.duplicates).toHaveLength(1);
    expect(next.pushed.map((r) => (r.value as { id: string }).id)).toEqual(['d']);
    // The duplicate settled its share of the group; the three pushed records still hold it.
    expect(settled).toEqual([]);
    for (const r of run.pushed) r.ack.resolve();
    expect(settled).toEqual(['batch']);
  });

  it('forgets a key after ttl', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(1_000_000);
    const process = transform(dedupTransform, { key: 'id', ttl: 60_000, max_keys: 100 });
    expect((await process([record({ id: 'k' })])).pushed).toHaveLength(1);
    vi.setSystemTime(1_000_000 + 59_000);
    expect((await process([record({ id: 'k' })])).duplicates).toHaveLength(1);
    vi.setSystemTime(1_000_000 + 61_000);
    expect((await process([record({ id: 'k' })])).pushed).toHaveLength(1);
    // Seen again now, remembered again from now.
    vi.setSystemTime(1_000_000 + 100_000);
    expect((await process([record({ id: 'k' })])).duplicates).toHaveLength(1);
  });

  it('evicts the least recently used key beyond max_keys', async () => {
    const process = transform(dedupTransform, { key: 'id', ttl: HOUR, max_keys: 3 });
    await process(['a', 'b', 'c'].map((id) => record({ id })));
    // Touching `a` makes `b` the least recently used; `d` pushes it out.
    expect((await process([record({ id: 'a' })])).duplicates).toHaveLength(1);
    await process([record({ id: 'd' })]);
    const run = await process(['a', 'c', 'd', 'b'].map((id) => record({ id })));
    expect(run.duplicates.map((r) => (r.value as { id: string }).id)).toEqual(['a', 'c', 'd']);
    expect(run.pushed.map((r) => (r.value as { id: string }).id)).toEqual(['b']);
  });

  it('LruTtl never holds more than max_keys', () => {
    const lru = new LruTtl(1000, HOUR);
    for (let i = 0; i < 10_000; i++) lru.remember(`k${i}`, 0);
    expect(lru.size).toBe(1000);
    expect(lru.evictions).toBe(9000);
    expect(lru.seen('k9999', 1)).toBe(true);
    expect(lru.seen('k0', 1)).toBe(false);
  });

  it('forgets a key whose record failed downstream, so its redelivery is not a duplicate', async () => {
    const process = transform(dedupTransform, { key: 'id', ttl: HOUR, max_keys: 100 });
    const first = record({ id: 'x' });
    expect((await process([first])).pushed).toEqual([first]);
    first.ack.reject(new Error('sink down'));
    const redelivered = await process([record({ id: 'x' })]);
    expect(redelivered.pushed).toHaveLength(1);
    expect(redelivered.duplicates).toHaveLength(0);
    // A key whose record was durable stays remembered.
    redelivered.pushed[0].ack.resolve();
    expect((await process([record({ id: 'x' })])).duplicates).toHaveLength(1);
  });

  it('keys of any CEL type, including ints beyond 2^53, and key errors go to the error output', async () => {
    const process = transform(dedupTransform, { key: '9007199254740993 + int(n)', ttl: HOUR, max_keys: 100 });
    const run = await process([record({ n: 1 }), record({ n: 1 }), record({ n: 2 }), record({ m: 1 })]);
    expect(run.pushed).toHaveLength(2);
    expect(run.duplicates).toHaveLength(1);
    expect(run.failed).toHaveLength(1);
    expect(run.failed[0][1]).toMatch(/^key: /);
    const structured = transform(dedupTransform, { key: '{"a": n, "b": [n, 2]}', ttl: HOUR, max_keys: 100 });
    const s = await structured([record({ n: 1 }), record({ n: 1 }), record({ n: 2 })]);
    expect(s.pushed).toHaveLength(2);
    expect(s.duplicates).toHaveLength(1);
  });

  it('in a pipeline: duplicates are counted, never written, and acked (the checkpoint reaches the end)', async () => {
    const store = new MemoryCheckpointStore();
    const out = collectingSink();
    const p = buildPipeline(
      `
version: 1
name: dedup
runtime: { batch_size: 100 }
sources:
  gen: { type: generate, count: 5000, duplicates: 0.2, seed: 7, fields: { id: 'string(i)', v: 'rand' } }
transforms:
  unique: { type: dedup, from: [gen], key: id }
sinks:
  out: { type: stdout, from: [unique] }
`,
      { sinks: { out: out.def }, checkpointStore: store },
    );
    expect((await p.run()).ok).toBe(true);
    const ids = out.values.map((v) => (v as { id: string }).id);
    expect(new Set(ids).size).toBe(ids.length);
    const dups = stageMetrics(p, 'unique').duplicates;
    expect(dups).toBeGreaterThan(500);
    expect(ids.length + dups).toBe(5000);
    expect(store.saved.at(-1)?.positions.generate).toBe('4999');
  });

  it('keeps keys in flat memory: a million 36-character keys in under 40 MB outside the heap', () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const lru = new LruTtl(1_000_000, HOUR);
    gc();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < 1_000_000; i++) lru.remember(uuidV5(`k${i}`), 0);
    gc();
    expect(lru.size).toBe(1_000_000);
    expect(lru.bytes / 1_000_000).toBeLessThan(40);
    // Nothing per key stays on the V8 heap.
    expect((process.memoryUsage().heapUsed - before) / 1_000_000).toBeLessThan(2);
    expect(lru.seen(uuidV5('k0'), 1)).toBe(true);
    expect(lru.seen(uuidV5('k1000000'), 1)).toBe(false);
  });

  it('expires keys after ttl to the millisecond, and after the time base moved', () => {
    const lru = new LruTtl(10, 1000);
    const t0 = Date.now();
    lru.remember('a', t0);
    expect(lru.seen('a', t0 + 1000)).toBe(true);
    expect(lru.seen('a', t0 + 1001)).toBe(false);
    // Beyond 2^31 ms (24 days) the 32-bit times are rebased.
    const later = t0 + 2 ** 31 + 5000;
    lru.remember('b', later);
    lru.remember('c', later - 900);
    expect(lru.seen('b', later + 2 ** 31 + 10)).toBe(false);
    lru.remember('d', later + 2 ** 32);
    expect(lru.seen('d', later + 2 ** 32 + 999)).toBe(true);
    expect(lru.seen('c', later + 2 ** 32 + 999)).toBe(false);
  });

  it('keys that differ only in lone surrogates stay distinct', () => {
    const lru = new LruTtl(10, HOUR);
    lru.remember('\uD800 a long enough key', 0);
    expect(lru.seen('\uD801 a long enough key', 0)).toBe(false);
    expect(lru.seen('\uD800 a long enough key', 0)).toBe(true);
  });

  it('evicts in least-recently-used order under random use, like a reference model', () => {
    const lru = new LruTtl(50, HOUR);
    const model: string[] = []; // least recently used first
    let seed = 12345;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x7fffffff;
    };
    for (let step = 0; step < 20_000; step++) {
      const key = `key-number-${Math.floor(rand() * 120)}`;
      const inModel = model.indexOf(key);
      expect(lru.seen(key, 0)).toBe(inModel >= 0);
      if (inModel >= 0) {
        model.splice(inModel, 1);
        model.push(key);
      } else {
        lru.remember(key, 0);
        model.push(key);
        if (model.length > 50) model.shift();
      }
      if (rand() < 0.01 && model.length > 0) {
        const gone = model.splice(Math.floor(rand() * model.length), 1)[0];
        lru.forget(gone);
      }
    }
    expect(lru.size).toBe(model.length);
  });

  it('behaves like a string-keyed reference LRU with ttl over many keys, forgets and evictions', () => {
    const max = 2000;
    const lru = new LruTtl(max, 5000);
    const model = new Map<string, number>(); // insertion order = least recently used first
    let seed = 99;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x7fffffff;
    };
    const t0 = Date.now();
    for (let step = 0; step < 100_000; step++) {
      const now = t0 + step;
      const key = `id-${Math.floor(rand() * 5000)}-${'x'.repeat(step % 11)}`;
      const at = model.get(key);
      const fresh = at !== undefined && now - at <= 5000;
      expect(lru.seen(key, now)).toBe(fresh);
      if (at !== undefined) model.delete(key);
      if (fresh) model.set(key, at as number);
      else {
        lru.remember(key, now);
        model.set(key, now);
        if (model.size > max) model.delete(model.keys().next().value as string);
      }
      if (rand() < 0.02) {
        lru.forget(key);
        model.delete(key);
      }
    }
    expect(lru.size).toBe(model.size);
  });

  it('an eviction costs the same however many came before it', () => {
    const lru = new LruTtl(100_000, HOUR);
    const t0 = performance.now();
    for (let i = 0; i < 400_000; i++) lru.remember(`some-key-${i}-padding`, 0);
    expect(lru.evictions).toBe(300_000);
    // Linear: well under a second on any machine; quadratic (rescanning deleted entries), minutes.
    expect(performance.now() - t0).toBeLessThan(5_000);
  });
});
