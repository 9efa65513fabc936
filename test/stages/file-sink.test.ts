import { readdirSync, readFileSync } from 'node:fs';
import type * as FsPromises from 'node:fs/promises';
import { basename, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { StageError } from '../../src/stages/define.ts';
import { fileSink } from '../../src/stages/sinks/file.ts';
import { tempDir } from '../runtime/helpers.ts';
import { record, sink } from '../runtime/stage-harness.ts';

/** Every open, sync and rename the process makes through node:fs/promises, in order. */
const fsLog: string[] = [];
vi.mock('node:fs/promises', async (importOriginal) => {
  const orig = await importOriginal<typeof FsPromises>();
  return {
    ...orig,
    open: async (path: string, flags?: string) => {
      const fh = await orig.open(path, flags);
      if (flags === 'w') {
        fsLog.push(`open ${path}`);
        const sync = fh.sync.bind(fh);
        fh.sync = async () => {
          fsLog.push(`sync ${path}`);
          return sync();
        };
      }
      return fh;
    },
    rename: async (from: string, to: string) => {
      fsLog.push(`rename ${from} ${to}`);
      return orig.rename(from, to);
    },
  };
});

beforeEach(() => {
  fsLog.length = 0;
});

const rows = (n: number, from = 0) =>
  Array.from({ length: n }, (_, i) =>
    record({ n: from + i, s: `v,"${i}"` }, { position: `${from + i}`, partition: 'fazenda_um/2024/03/20' }),
  );

describe('file sink', () => {
  it('writes ndjson under dir at the rendered template', async () => {
    const dir = tempDir();
    const s = sink(fileSink, {
      dir,
      path: 'lake/{partition}/part_{first_position}-{last_position}_{batch_start}{ext}',
    });
    expect(await s.write(rows(3, 10), { partition: 'fazenda_um/2024/03/20' })).toBeUndefined();
    const path = join(dir, 'lake/fazenda_um/2024/03/20/part_10-12_2024-03-20T10-30-45.123Z.ndjson');
    expect(readFileSync(path, 'utf8')).toBe(
      '{"n":10,"s":"v,\\"0\\""}\n{"n":11,"s":"v,\\"1\\""}\n{"n":12,"s":"v,\\"2\\""}\n',
    );
    expect(s.metrics.extra.get('files')).toBe(1);
    expect(s.metrics.bytesOut).toBeGreaterThan(0);
  });

  it('writes csv with a header (quoted where needed) and gzip', async () => {
    const dir = tempDir();
    const s = sink(fileSink, { dir, path: 'out/{seq}{ext}', format: 'csv', compression: 'gzip' });
    await s.write([record({ a: 1, b: 'x,y' }), record({ a: 2, c: 'say "hi"' })]);
    const text = gunzipSync(readFileSync(join(dir, 'out/0.csv.gz'))).toString('utf8');
    expect(text).toBe('a,b,c\n1,"x,y",\n2,,"say ""hi"""\n');
  });

  it('refuses a path that escapes dir, without retry', async () => {
    const dir = tempDir();
    const s = sink(fileSink, { dir, path: '../{partition}{ext}' });
    const err = await s.write(rows(1), { partition: 'x' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StageError);
    expect((err as StageError).retryable).toBe(false);
  });

  it('writes each file under a hidden temp name, fsyncs it, then renames it to its final name', async () => {
    const dir = tempDir();
    const template = /^part_\d+-\d+\.ndjson$/;
    const s = sink(fileSink, { dir, path: 'part_{first_position}-{last_position}{ext}' });
    await s.write(rows(1000, 0));
    await s.write(rows(1000, 1000));
    const finals = fsLog.filter((l) => l.startsWith('rename ')).map((l) => l.split(' ')[2]);
    expect(finals.map((f) => basename(f))).toEqual(['part_0-999.ndjson', 'part_1000-1999.ndjson']);
    for (const line of fsLog.filter((l) => l.startsWith('open '))) {
      const name = basename(line.slice(5));
      // The temp file is hidden and never matches what a reader of the lake looks for.
      expect(name.startsWith('.')).toBe(true);
      expect(template.test(name)).toBe(false);
    }
    // Per file: open temp, sync temp, rename temp → final; the final name is never opened for writing.
    for (const final of finals) {
      const rename = fsLog.find((l) => l.startsWith('rename ') && l.endsWith(` ${final}`))!;
      const tmp = rename.split(' ')[1];
      expect(fsLog.indexOf(`open ${tmp}`)).toBeLessThan(fsLog.indexOf(`sync ${tmp}`));
      expect(fsLog.indexOf(`sync ${tmp}`)).toBeLessThan(fsLog.indexOf(rename));
      expect(fsLog).not.toContain(`open ${final}`);
    }
    expect(readdirSync(dir).sort()).toEqual(['part_0-999.ndjson', 'part_1000-1999.ndjson']);
  });

  it('a reader polling the directory during writes only ever sees complete files', async () => {
    const dir = tempDir();
    const s = sink(fileSink, { dir, path: 'part_{first_position}-{last_position}{ext}' });
    let writing = true;
    const seen: string[] = [];
    const reader = (async () => {
      while (writing) {
        for (const name of readdirSync(dir)) {
          const m = /^part_(\d+)-(\d+)\.ndjson$/.exec(name);
          if (!m) continue;
          const lines = readFileSync(join(dir, name), 'utf8').split('\n');
          expect(lines.pop()).toBe('');
          expect(lines.length).toBe(Number(m[2]) - Number(m[1]) + 1);
          seen.push(name);
        }
        await new Promise((r) => setImmediate(r));
      }
    })();
    for (let k = 0; k < 20; k++) await s.write(rows(5000, k * 5000));
    writing = false;
    await reader;
    expect(new Set(seen).size).toBeGreaterThan(5);
  });
});
