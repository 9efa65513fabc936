/**
 * Checkpoints: per source, per partition (shard, Kafka partition, file), the highest position
 * below which every record is acked. The store is an interface; the file store keeps one
 * JSON file per pipeline, written atomically (temp file, fsync, rename).
 */
import { mkdir, open, readFile, rename, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export type Positions = Record<string, string>;

export interface CheckpointStore {
  load(source: string): Promise<Positions | undefined>;
  save(source: string, positions: Positions): Promise<void>;
}

/** A source's view of the store: commits are cheap marks, written out by `flush`. */
export interface CheckpointScope {
  load(): Promise<Positions | undefined>;
  /** Records that `partition` is acked up to `position` (only ever call with the committable position). */
  commit(partition: string, position: string): void;
  /** Writes pending commits; the runtime calls it on an interval and at shutdown. */
  flush(): Promise<void>;
}

export interface CheckpointFile {
  version: 1;
  pipeline: string;
  updatedAt: string;
  sources: Record<string, Positions>;
}

export class FileCheckpointStore implements CheckpointStore {
  readonly path: string;
  private readonly pipeline: string;
  private state: CheckpointFile | undefined;
  private writing: Promise<void> = Promise.resolve();

  constructor(stateDir: string, pipeline: string) {
    this.pipeline = pipeline;
    this.path = checkpointPath(stateDir, pipeline);
  }

  /** The whole file as stored, or undefined when there is none yet (for `sluice state show`). */
  async contents(): Promise<CheckpointFile | undefined> {
    const exists = await stat(this.path).then(
      () => true,
      () => false,
    );
    if (!exists) return undefined;
    const state = await this.read();
    return structuredClone(state);
  }

  /**
   * Forgets the stored positions of `source` (every source when undefined), so those sources
   * start over on the next run; returns what was removed. Run it while the pipeline is stopped:
   * a running pipeline writes its positions again at its next flush.
   */
  async remove(source?: string): Promise<Record<string, Positions>> {
    const state = await this.read();
    const removed: Record<string, Positions> = {};
    for (const name of Object.keys(state.sources)) {
      if (source !== undefined && name !== source) continue;
      removed[name] = state.sources[name];
      delete state.sources[name];
    }
    if (Object.keys(removed).length === 0) return removed;
    state.updatedAt = new Date().toISOString();
    const text = `${JSON.stringify(state, null, 2)}\n`;
    const write = this.writing.catch(() => undefined).then(() => writeAtomic(this.path, text));
    this.writing = write;
    await write;
    return removed;
  }

  async load(source: string): Promise<Positions | undefined> {
    const state = await this.read();
    const p = state.sources[source];
    return p ? { ...p } : undefined;
  }

  async save(source: string, positions: Positions): Promise<void> {
    const state = await this.read();
    state.sources[source] = { ...state.sources[source], ...positions };
    state.updatedAt = new Date().toISOString();
    const text = `${JSON.stringify(state, null, 2)}\n`;
    // Serialise writers so two flushes never interleave their renames.
    // A failed write must not poison the chain: the next save writes the newer state anyway.
    const write = this.writing.catch(() => undefined).then(() => writeAtomic(this.path, text));
    this.writing = write;
    await write;
  }

  private async read(): Promise<CheckpointFile> {
    if (this.state) return this.state;
    try {
      const parsed = JSON.parse(await readFile(this.path, 'utf8')) as CheckpointFile;
      if (parsed && typeof parsed === 'object' && parsed.sources) this.state = parsed;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new Error(
          `checkpoint file ${this.path} is unreadable (${(err as Error).message}); move it away to start over`,
        );
      }
    }
    this.state ??= { version: 1, pipeline: this.pipeline, updatedAt: new Date().toISOString(), sources: {} };
    return this.state;
  }
}

/** Where the file store keeps a pipeline's checkpoints (one file per pipeline name). */
export function checkpointPath(stateDir: string, pipeline: string): string {
  return join(stateDir, `${pipeline.replace(/[^A-Za-z0-9_.-]/g, '_')}.checkpoint.json`);
}

let tmpSeq = 0;

/**
 * Writes `path` so that a reader sees the old content or the new, never part of it. The
 * temporary file is hidden (a leading dot) so that a reader listing or globbing the directory
 * never picks it up, even when a crash leaves it behind; its name is unique per write.
 */
export async function writeAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true });
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${++tmpSeq}.tmp`);
  const fh = await open(tmp, 'w');
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
}

/** Scope over any store; coalesces commits so the hot path never waits on disk. */
export class BufferedScope implements CheckpointScope {
  private readonly store: CheckpointStore;
  private readonly source: string;
  private pending: Positions = {};
  private dirty = false;
  private flushing: Promise<void> = Promise.resolve();
  /** Epoch ms of the last write that reached the store (checkpoint age for operators). */
  lastWrittenAt: number | undefined;

  constructor(store: CheckpointStore, source: string) {
    this.store = store;
    this.source = source;
  }

  load(): Promise<Positions | undefined> {
    return this.store.load(this.source);
  }

  commit(partition: string, position: string): void {
    this.pending[partition] = position;
    this.dirty = true;
  }

  /** Flushes run one after another, so an older position can never be written after a newer one. */
  flush(): Promise<void> {
    const next = this.flushing.catch(() => undefined).then(() => this.flushNow());
    this.flushing = next;
    return next;
  }

  private async flushNow(): Promise<void> {
    if (!this.dirty) return;
    const positions = this.pending;
    this.pending = {};
    this.dirty = false;
    try {
      await this.store.save(this.source, positions);
      this.lastWrittenAt = Date.now();
    } catch (err) {
      // Keep the positions for the next flush, unless newer commits replaced them meanwhile.
      this.pending = { ...positions, ...this.pending };
      this.dirty = true;
      throw err;
    }
  }
}
