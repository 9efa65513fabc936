/**
 * dedup's stores beyond memory: the file store remembers across restarts only keys whose records
 * were acked; every store releases a key whose record failed downstream.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AckGroup } from '../../src/runtime/ack.ts';
import type { SluiceRecord } from '../../src/runtime/record.ts';
import type { Transform, TransformOutput } from '../../src/stages/define.ts';
import { dedupKeyPath, FileStore } from '../../src/stages/transforms/dedup/file-store.ts';
import { dedupTransform, LruTtl } from '../../src/stages/transforms/dedup.ts';
import { tempDir } from '../runtime/helpers.ts';
import { record, stageContext } from '../runtime/stage-harness.ts';

const HOUR = 3_600_000;

/** A dedup stage over `stateDir`, as a restarted process would build it. */
function stage(stateDir: string, store: 'memory' | 'file', ttl = HOUR): Transform {
  return dedupTransform.create(
    { key: 'id', ttl, max_keys: 1000, store },
    { ...stageContext('unique'), stateDir },
  );
}

async function run(t: Transform, ids: string[], ack = new AckGroup(ids.length)) {
  const pushed: SluiceRecord[] = [];
  const duplicates: string[] = [];
  const out: TransformOutput = {
    push: (r) => pushed.push(r),
    drop: () => {},
    duplicate: (r) => {
      duplicates.push((r.value as { id: string }).id);
      r.ack.resolve();
    },
    fail: () => {},
  };
  await t.process(
    ids.map((id) => record({ id }, { ack })),
    out,
  );
  return { pushed: pushed.map((r) => (r.value as { id: string }).id), duplicates, records: pushed };
}

describe('dedup store: file', () => {
  it('a restarted stage still knows the keys whose records were acked, and only those', async () => {
    const dir = tempDir();
    const first = stage(dir, 'file');
    const delivered = await run(first, ['a', 'b', 'a']);
    expect(delivered).toMatchObject({ pushed: ['a', 'b'], duplicates: ['a'] });
    for (const r of delivered.records) r.ack.resolve();
    const failed = await run(first, ['c']);
    failed.records[0].ack.reject(new Error('sink refused'));
    // Claimed and still in flight when the process stops: not acked, so not remembered.
    await run(first, ['d']);
    await first.close?.();

    const restarted = stage(dir, 'file');
    const again = await run(restarted, ['a', 'b', 'c', 'd', 'e']);
    expect(again.duplicates).toEqual(['a', 'b']);
    expect(again.pushed).toEqual(['c', 'd', 'e']);
    await restarted.close?.();
  });

  it('the memory store forgets everything on restart (the behaviour file and dynamodb exist for)', async () => {
    const dir = tempDir();
    const first = stage(dir, 'memory');
    for (const r of (await run(first, ['a'])).records) r.ack.resolve();
    await first.close?.();
    expect((await run(stage(dir, 'memory'), ['a'])).pushed).toEqual(['a']);
  });

  it('a failed record releases its key in every store, so the redelivery passes', async () => {
    for (const store of ['memory', 'file'] as const) {
      const t = stage(tempDir(), store);
      const first = await run(t, ['x']);
      first.records[0].ack.reject(new Error('sink down'));
      const redelivered = await run(t, ['x']);
      expect(redelivered.pushed, store).toEqual(['x']);
      redelivered.records[0].ack.resolve();
      expect((await run(t, ['x'])).duplicates, store).toEqual(['x']);
      await t.close?.();
    }
  });

  it('drops expired keys and lines cut short by a crash when it reads the log back, and compacts it', async () => {
    const dir = tempDir();
    const path = dedupKeyPath(dir, 'test', 'unique');
    const now = Date.now();
    const store = new FileStore(new LruTtl(10, HOUR), { path, ttl: HOUR, maxKeys: 10 });
    // Written by hand: an old key, a live one twice, and a torn last line.
    await mkdir(dirname(path), { recursive: true });
    await writeFile(
      path,
      `${now - 2 * HOUR}\t"old"\n${now - 1000}\t"live"\n${now - 500}\t"live"\n${now}\t"tor`,
    );
    expect(await store.claim(['old', 'live', 'tor'], now)).toEqual([true, false, true]);
    expect(store.restored).toBe(1);
    expect(await readFile(path, 'utf8')).toBe(`${now - 500}\t"live"\n`);
    store.confirm(['old'], now);
    await store.close();
    expect((await readFile(path, 'utf8')).split('\n').filter(Boolean)).toHaveLength(2);
  });
});
