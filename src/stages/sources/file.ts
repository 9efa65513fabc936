/**
 * `file`: reads local files (a glob, or `-` for stdin) as ndjson, a JSON array, CSV with a
 * header, or plain lines; `.gz` files are gunzipped. A malformed line goes to
 * `<source>.errors` with its file and line number. Checkpoints are per file: the last line
 * whose records are durable, so a restart skips what was delivered.
 */
import { Type } from '@sinclair/typebox';
import { parse as parseCsv } from 'csv-parse';
import { createReadStream } from 'node:fs';
import { glob } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { ContiguousTracker } from '../../runtime/ack.ts';
import type { RecordInit } from '../../runtime/record.ts';
import { defineSource, type SourceContext } from '../define.ts';

type Format = 'ndjson' | 'json' | 'csv' | 'lines';

export const fileSource = defineSource({
  type: 'file',
  kind: 'source',
  description: 'Reads local files (glob, or `-` for stdin): ndjson, JSON array, CSV with header, or lines; gzip by extension.',
  options: Type.Object({
    path: Type.String({ minLength: 1, description: 'File path or glob; `-` reads stdin', examples: ['data/*.ndjson.gz'] }),
    format: Type.Optional(
      Type.Union([Type.Literal('ndjson'), Type.Literal('json'), Type.Literal('csv'), Type.Literal('lines')], { default: 'ndjson' }),
    ),
  }),
  create(o, ctx) {
    const format = (o.format ?? 'ndjson') as Format;
    const batchSize = ctx.batchSize ?? 500;
    return {
      async run(sc) {
        const done = (await sc.checkpoints.load()) ?? {};
        const files = o.path === '-' ? ['-'] : await expand(o.path);
        if (files.length === 0) ctx.log.warn({ path: o.path }, 'no file matches the path');
        for (const file of files) {
          if (sc.signal.aborted) return;
          const skip = done[file] !== undefined ? Number(done[file]) : 0;
          await readFile(file, format, skip, batchSize, sc);
        }
      },
    };
  },
});

async function expand(pattern: string): Promise<string[]> {
  const out: string[] = [];
  for await (const f of glob(pattern)) out.push(f);
  return out.sort();
}

function open(file: string): Readable {
  const raw: Readable = file === '-' ? process.stdin : createReadStream(file);
  return file.endsWith('.gz') ? raw.pipe(createGunzip()) : raw;
}

/** Emits one file's records in batches; positions are line numbers (record numbers for csv/json). */
async function readFile(file: string, format: Format, skip: number, batchSize: number, sc: SourceContext): Promise<void> {
  const tracker = new ContiguousTracker<number>(skip);
  let batch: RecordInit[] = [];
  let lastLine = skip;
  const flush = async () => {
    const ticket = tracker.track(lastLine);
    const records = batch;
    batch = [];
    await sc.emit(records, (err) => {
      if (!err && tracker.ack(ticket)) sc.checkpoints.commit(file, String(tracker.committable));
    });
  };
  const add = async (line: number, value: unknown, size: number) => {
    lastLine = line;
    batch.push({ value, size, position: `${file}:${line}`, meta: { file, line } });
    if (batch.length >= batchSize) await flush();
  };
  const bad = (line: number, text: string, reason: string) =>
    sc.fail({ value: text, size: text.length, position: `${file}:${line}`, meta: { file, line } }, `${file}:${line}: ${reason}`);

  const stream = open(file);
  if (format === 'csv') {
    const parser = stream.pipe(parseCsv({ columns: true, info: true, skip_empty_lines: true, relax_column_count: false }));
    let n = 0;
    try {
      for await (const row of parser as AsyncIterable<{ record: Record<string, string>; info: { lines: number } }>) {
        if (sc.signal.aborted) break;
        n = row.info.lines;
        if (n <= skip) continue;
        await add(n, row.record, 0);
      }
    } catch (err) {
      await bad(n + 1, '', `csv: ${(err as Error).message}`);
    }
  } else if (format === 'json') {
    let text = '';
    for await (const chunk of stream) text += chunk;
    let items: unknown;
    try {
      items = JSON.parse(text);
    } catch (err) {
      await bad(1, text.slice(0, 200), `not valid JSON: ${(err as Error).message}`);
      return;
    }
    if (!Array.isArray(items)) {
      await bad(1, text.slice(0, 200), 'format json expects an array of records');
      return;
    }
    for (let k = 0; k < items.length && !sc.signal.aborted; k++) if (k + 1 > skip) await add(k + 1, items[k], 0);
  } else {
    const lines = createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY });
    let n = 0;
    for await (const text of lines) {
      n++;
      if (n <= skip) continue;
      if (sc.signal.aborted) break;
      if (format === 'lines') {
        await add(n, text, text.length + 1);
        continue;
      }
      if (text.trim() === '') continue;
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (err) {
        await bad(n, text, `malformed JSON: ${(err as Error).message}`);
        continue;
      }
      await add(n, value, text.length + 1);
    }
  }
  if (batch.length > 0) await flush();
}
