/**
 * `store: file`: the memory store, plus a log in the state directory of the keys whose records
 * were acked, so a restarted process still knows what it delivered. Only confirmed keys are
 * written: a record that was claimed but never acked (a crash, a failure downstream) leaves no
 * trace, and its redelivery passes. Lines are appended and synced on an interval and at close
 * (the checkpoint rhythm of the runtime); the log is compacted when it is read at start and when
 * it grows well past `max_keys`.
 *
 * One process per state directory, like the file checkpoint store; instances that share keys
 * use `store: dynamodb`.
 */
import { createReadStream } from 'node:fs';
import { type FileHandle, mkdir, open, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { writeAtomic } from '../../../runtime/checkpoint.ts';
import { type KeyCache, MemoryStore } from './store.ts';

/** Where a dedup stage's key log lives: beside the pipeline's dead letters. */
export function dedupKeyPath(stateDir: string, pipeline: string, stage: string): string {
  return join(stateDir, fileSafe(pipeline), 'dedup', `${fileSafe(stage)}.keys`);
}

const fileSafe = (name: string) => name.replace(/[^A-Za-z0-9_.-]/g, '_');

export interface FileStoreOptions {
  path: string;
  ttl: number;
  maxKeys: number;
}

export class FileStore extends MemoryStore {
  readonly path: string;
  private readonly ttl: number;
  private readonly maxKeys: number;
  /** Confirmed since the last flush: `<epoch ms>\t<JSON key>` lines. */
  private pending: string[] = [];
  private appended = 0;
  private loading: Promise<void> | undefined;
  private loaded = false;
  private handle: FileHandle | undefined;
  private writing: Promise<void> = Promise.resolve();
  /** Keys read back from the log at start (for the start-up line). */
  restored = 0;

  constructor(cache: KeyCache, opts: FileStoreOptions) {
    super(cache);
    this.path = opts.path;
    this.ttl = opts.ttl;
    this.maxKeys = opts.maxKeys;
  }

  override claim(keys: readonly string[], now: number): boolean[] | Promise<boolean[]> {
    if (this.loaded) return this.claimNow(keys, now);
    this.loading ??= this.load(now);
    return this.loading.then(() => this.claimNow(keys, now));
  }

  override confirm(keys: readonly string[], now: number): void {
    for (const k of keys) this.pending.push(`${now}\t${JSON.stringify(k)}\n`);
  }

  /** Appends and syncs the keys confirmed since the last flush; flushes run one after another. */
  flush(): Promise<void> {
    const next = this.writing.catch(() => undefined).then(() => this.flushNow());
    this.writing = next;
    return next;
  }

  async close(): Promise<void> {
    await this.flush();
    await this.handle?.close();
    this.handle = undefined;
  }

  private async flushNow(): Promise<void> {
    if (this.pending.length === 0) return;
    const lines = this.pending;
    this.pending = [];
    try {
      if (!this.handle) {
        await mkdir(dirname(this.path), { recursive: true });
        this.handle = await open(this.path, 'a');
      }
      await this.handle.writeFile(lines.join(''));
      await this.handle.sync();
    } catch (err) {
      // Kept for the next flush: a key unwritten only means a possible duplicate after a crash.
      this.pending = lines.concat(this.pending);
      throw err;
    }
    this.appended += lines.length;
    if (this.appended > Math.max(2 * this.maxKeys, 10_000)) await this.compact(Date.now());
  }

  /** Reads the log into the cache (oldest first, so the newest survive the LRU bound) and compacts it. */
  private async load(now: number): Promise<void> {
    const live = await this.readLive(now);
    for (const [key, at] of live) this.cache.remember(key, at);
    this.restored = live.size;
    await this.rewrite(live);
    this.loaded = true;
  }

  private async compact(now: number): Promise<void> {
    await this.handle?.close();
    this.handle = undefined;
    await this.rewrite(await this.readLive(now));
  }

  private async rewrite(live: Map<string, number>): Promise<void> {
    let text = '';
    for (const [key, at] of live) text += `${at}\t${JSON.stringify(key)}\n`;
    await writeAtomic(this.path, text);
    this.appended = 0;
  }

  /** Keys of the log still within ttl, each at its latest time, at most `maxKeys` of the newest. */
  private async readLive(now: number): Promise<Map<string, number>> {
    const live = new Map<string, number>();
    const exists = await stat(this.path).then(
      () => true,
      () => false,
    );
    if (!exists) return live;
    const lines = createInterface({ input: createReadStream(this.path, 'utf8'), crlfDelay: Infinity });
    for await (const line of lines) {
      const tab = line.indexOf('\t');
      if (tab < 0) continue; // a line cut short by a crash
      const at = Number(line.slice(0, tab));
      let key: unknown;
      try {
        key = JSON.parse(line.slice(tab + 1));
      } catch {
        continue;
      }
      if (typeof key !== 'string' || !Number.isFinite(at) || now - at > this.ttl) continue;
      live.delete(key);
      live.set(key, at);
    }
    while (live.size > this.maxKeys) live.delete(live.keys().next().value as string);
    return live;
  }
}
