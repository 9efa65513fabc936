import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AckGroup, ContiguousTracker } from '../../src/runtime/ack.ts';
import { Channel } from '../../src/runtime/channel.ts';
import {
  BufferedScope,
  type CheckpointStore,
  FileCheckpointStore,
  writeAtomic,
} from '../../src/runtime/checkpoint.ts';
import { tempDir } from './helpers.ts';

describe('ContiguousTracker', () => {
  it('commits only up to the highest position below which everything is acked', () => {
    const t = new ContiguousTracker<number>(-1);
    const tickets = [9, 19, 29, 39].map((p) => t.track(p));
    expect(t.ack(tickets[1])).toBe(false);
    expect(t.committable).toBe(-1);
    expect(t.ack(tickets[0])).toBe(true);
    expect(t.committable).toBe(19);
    expect(t.ack(tickets[3])).toBe(false);
    expect(t.committable).toBe(19);
    expect(t.inFlight).toBe(2);
    expect(t.ack(tickets[2])).toBe(true);
    expect(t.committable).toBe(39);
  });

  it('stays correct across compaction with acks out of order', () => {
    const t = new ContiguousTracker<number>();
    const tickets: number[] = [];
    for (let p = 0; p < 5000; p++) tickets.push(t.track(p));
    // Ack in pairs swapped: 1,0,3,2,…; the committable position never passes an unacked one.
    for (let k = 0; k < 5000; k += 2) {
      t.ack(tickets[k + 1]);
      expect(t.committable).toBe(k === 0 ? undefined : k - 1);
      t.ack(tickets[k]);
      expect(t.committable).toBe(k + 1);
    }
    expect(t.inFlight).toBe(0);
  });
});

describe('AckGroup', () => {
  it('settles once every copy is resolved, with the first failure, and runs failure listeners', () => {
    const settled: (Error | undefined)[] = [];
    const g = new AckGroup(2, (e) => settled.push(e));
    let forgotten = 0;
    g.onFailure(() => forgotten++);
    g.add(1);
    g.resolve();
    g.reject(new Error('first'));
    expect(settled).toEqual([]);
    g.reject(new Error('second'));
    expect(settled.map((e) => e?.message)).toEqual(['first']);
    expect(forgotten).toBe(1);
  });
});

describe('Channel', () => {
  it('makes the writer wait when full and ends when every writer closed', async () => {
    const c = new Channel(2, 2);
    const b = (n: number) => [{ value: n }] as never;
    await c.push(b(1));
    await c.push(b(2));
    let third = false;
    const p = c.push(b(3)).then(() => {
      third = true;
    });
    await new Promise((r) => setTimeout(r, 5));
    expect(third).toBe(false);
    expect(c.fill).toBe(1);
    expect(await c.pull()).toEqual(b(1));
    await p;
    expect(third).toBe(true);
    c.closeWriter();
    c.closeWriter();
    expect(await c.pull()).toEqual(b(2));
    expect(await c.pull()).toEqual(b(3));
    expect(await c.pull()).toBeUndefined();
  });
});

describe('FileCheckpointStore', () => {
  it('keeps one JSON file per pipeline, merges positions per source, and leaves no temp file', async () => {
    const dir = tempDir();
    const store = new FileCheckpointStore(dir, 'my pipe');
    await store.save('kinesis', { 'shard-0': '10' });
    await store.save('kinesis', { 'shard-1': '7' });
    await store.save('files', { 'a.ndjson': '3' });
    const parsed = JSON.parse(readFileSync(join(dir, 'my_pipe.checkpoint.json'), 'utf8'));
    expect(parsed).toMatchObject({
      version: 1,
      pipeline: 'my pipe',
      sources: { kinesis: { 'shard-0': '10', 'shard-1': '7' }, files: { 'a.ndjson': '3' } },
    });
    expect(readdirSync(dir)).toEqual(['my_pipe.checkpoint.json']);
    const again = new FileCheckpointStore(dir, 'my pipe');
    expect(await again.load('kinesis')).toEqual({ 'shard-0': '10', 'shard-1': '7' });
    expect(await again.load('other')).toBeUndefined();
  });

  it('a failed write does not stop later writes', async () => {
    const dir = tempDir();
    const store = new FileCheckpointStore(dir, 'p');
    await store.save('s', { a: '0' });
    // A directory where the file should be: the rename fails.
    rmSync(join(dir, 'p.checkpoint.json'));
    mkdirSync(join(dir, 'p.checkpoint.json'));
    writeFileSync(join(dir, 'p.checkpoint.json', 'x'), '');
    await expect(store.save('s', { a: '1' })).rejects.toThrow();
    rmSync(join(dir, 'p.checkpoint.json'), { recursive: true });
    await store.save('s', { a: '2' });
    expect(JSON.parse(readFileSync(join(dir, 'p.checkpoint.json'), 'utf8')).sources.s).toEqual({ a: '2' });
  });

  it('refuses to start over silently from an unreadable file', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'p.checkpoint.json'), '{"version":1, trunc');
    await expect(new FileCheckpointStore(dir, 'p').load('s')).rejects.toThrow(/unreadable.*move it away/);
  });
});

describe('BufferedScope', () => {
  it('coalesces commits and keeps positions whose save failed for the next flush', async () => {
    const saves: Record<string, string>[] = [];
    let fail = true;
    const store: CheckpointStore = {
      load: async () => undefined,
      save: async (_s, p) => {
        if (fail) throw new Error('disk full');
        saves.push(p);
      },
    };
    const scope = new BufferedScope(store, 'src');
    scope.commit('a', '1');
    scope.commit('a', '2');
    scope.commit('b', '5');
    await expect(scope.flush()).rejects.toThrow('disk full');
    scope.commit('a', '3');
    fail = false;
    await scope.flush();
    expect(saves).toEqual([{ a: '3', b: '5' }]);
    await scope.flush();
    expect(saves).toHaveLength(1);
  });
});

describe('writeAtomic', () => {
  it('replaces a file whole and hides its temporary name', async () => {
    const dir = tempDir();
    const path = join(dir, 'out', 'data.ndjson');
    await writeAtomic(path, 'one\n');
    await writeAtomic(path, 'two\n');
    expect(readFileSync(path, 'utf8')).toBe('two\n');
    expect(readdirSync(join(dir, 'out'))).toEqual(['data.ndjson']);
  });
});
