/**
 * Dead letters: records that failed for good in a stage whose `<stage>.errors` output nothing
 * reads. They are appended, one JSON line each (the same shape as an error output's records), to
 * `<state-dir>/<pipeline>/dead-letter/<stage>/<run start>-<pid>.ndjson` and synced before the
 * record is acked, so its source may checkpoint past it without losing it. `sluice dead-letter`
 * lists them and replays them into the stage they failed in.
 */
import { createReadStream } from 'node:fs';
import { type FileHandle, mkdir, open, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { ErrorValue } from './record.ts';

export function deadLetterDir(stateDir: string, pipeline: string): string {
  return join(stateDir, fileSafe(pipeline), 'dead-letter');
}

const fileSafe = (name: string) => name.replace(/[^A-Za-z0-9_.-]/g, '_');

/** Appends dead letters per stage; writes of one stage run one after another. */
export class DeadLetterWriter {
  readonly dir: string;
  private readonly runId: string;
  private readonly files = new Map<
    string,
    { path: string; handle: Promise<FileHandle>; tail: Promise<void> }
  >();

  constructor(stateDir: string, pipeline: string) {
    this.dir = deadLetterDir(stateDir, pipeline);
    this.runId = `${new Date()
      .toISOString()
      .replace(/[-:]/g, '')
      .replace(/\.\d+Z$/, 'Z')}-${process.pid}`;
  }

  /** Resolves once the letters are on disk (synced); returns the file they went to. */
  async write(stage: string, letters: readonly ErrorValue[]): Promise<string> {
    let file = this.files.get(stage);
    if (!file) {
      const dir = join(this.dir, fileSafe(stage));
      const path = join(dir, `${this.runId}.ndjson`);
      const handle = mkdir(dir, { recursive: true }).then(() => open(path, 'a'));
      file = { path, handle, tail: Promise.resolve() };
      this.files.set(stage, file);
    }
    let text = '';
    for (const l of letters) text += `${JSON.stringify(l)}\n`;
    const f = file;
    const next = f.tail
      .catch(() => undefined)
      .then(async () => {
        const fh = await f.handle;
        await fh.write(text);
        await fh.datasync();
      });
    f.tail = next;
    await next;
    return f.path;
  }

  async close(): Promise<void> {
    for (const f of this.files.values()) {
      await f.tail.catch(() => undefined);
      await (await f.handle.catch(() => undefined))?.close();
    }
    this.files.clear();
  }
}

export interface DeadLetterFile {
  stage: string;
  path: string;
  bytes: number;
}

/** Every dead-letter file of a pipeline, per stage, oldest first. */
export async function listDeadLetterFiles(stateDir: string, pipeline: string): Promise<DeadLetterFile[]> {
  const root = deadLetterDir(stateDir, pipeline);
  const out: DeadLetterFile[] = [];
  let stages: string[];
  try {
    stages = (await readdir(root, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  for (const stage of stages.sort()) {
    const names = (await readdir(join(root, stage))).filter((n) => n.endsWith('.ndjson')).sort();
    for (const n of names) {
      const path = join(root, stage, n);
      out.push({ stage, path, bytes: (await stat(path)).size });
    }
  }
  return out;
}

/** Reads the letters of one file; a line that is not a letter (a torn last write) is reported, not thrown. */
export async function* readDeadLetters(
  path: string,
): AsyncGenerator<ErrorValue | { unreadable: string; line: number }> {
  const lines = createInterface({ input: createReadStream(path), crlfDelay: Number.POSITIVE_INFINITY });
  let n = 0;
  for await (const line of lines) {
    n++;
    if (line.trim() === '') continue;
    try {
      const v = JSON.parse(line) as ErrorValue;
      if (v && typeof v === 'object' && typeof v.stage === 'string' && typeof v.reason === 'string') yield v;
      else yield { unreadable: 'not a dead-letter record', line: n };
    } catch (err) {
      yield { unreadable: (err as Error).message, line: n };
    }
  }
}
