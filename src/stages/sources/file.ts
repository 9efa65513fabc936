/**
 * `file`: reads local files (a glob, or `-` for stdin) as ndjson, a JSON array, CSV with a
 * header, or plain lines; `.gz` files are gunzipped. A malformed line, or one past the input
 * limits (`max_depth`, `max_record_bytes`), goes to `<source>.errors` with its file and line
 * number. Checkpoints are per file: the last line whose records are durable, so a restart skips
 * what was delivered; each file's resume point is logged once, and a run that finds every file
 * already read says so and how to read them again.
 */

import { createReadStream, fstatSync } from 'node:fs';
import { glob } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { createGunzip } from 'node:zlib';
import { Type } from '@sinclair/typebox';
import type * as CsvParse from 'csv-parse';
import type { Logger } from 'pino';
import { ContiguousTracker } from '../../runtime/ack.ts';
import { checkpointPath } from '../../runtime/checkpoint.ts';
import { lazy } from '../../runtime/lazy.ts';
import {
  decodeJson,
  deeperThan,
  excerpt,
  type InputLimits,
  inputLimits,
  LimitOptions,
  textTooLarge,
  tooDeepReason,
  tooLargeReason,
} from '../../runtime/limits.ts';
import type { RecordInit } from '../../runtime/record.ts';
import { defineSource, type SourceContext } from '../define.ts';

type Format = 'ndjson' | 'json' | 'csv' | 'lines';

// The CSV parser loads when a file source reads CSV, not when the registry imports this file.
const csvParse = lazy<typeof CsvParse>('csv-parse');

export const fileSource = defineSource({
  type: 'file',
  kind: 'source',
  description:
    'Reads local files (glob, or `-` for stdin): ndjson, JSON array, CSV with header, or lines; gzip by extension.',
  meta: [
    {
      name: 'file',
      type: 'string',
      description: 'Path of the file the record was read from (`-` for stdin)',
    },
    {
      name: 'line',
      type: 'int',
      description: 'Line of the record in its file, from 1 (for `json`, the index of the item in the array)',
    },
  ],
  example: `
version: 1
name: file-example
sources:
  readings:
    type: file
    path: 'data/readings-*.csv.gz'
    format: csv
transforms:
  tagged:
    type: enrich
    from: [readings]
    set:
      source_file: 'meta.file'
      source_line: 'meta.line'
sinks:
  print: { type: stdout, from: [tagged] }
  rejected: { type: file, from: [readings.errors], dir: ./errors, path: 'readings_{first_position}{ext}' }
`,
  options: Type.Object({
    path: Type.String({
      minLength: 1,
      description: 'File path or glob; `-` reads stdin',
      examples: ['data/*.ndjson.gz'],
    }),
    format: Type.Optional(
      Type.Union([Type.Literal('ndjson'), Type.Literal('json'), Type.Literal('csv'), Type.Literal('lines')], {
        default: 'ndjson',
        description:
          'ndjson: one JSON value per line; json: a JSON array, one record per item; csv: a header row naming the fields, then one record per row (values as text); lines: each line a text record',
      }),
    ),
    ...LimitOptions,
  }),
  create(o, ctx) {
    const format = (o.format ?? 'ndjson') as Format;
    const reading: Reading = {
      format,
      batchSize: ctx.batchSize ?? 500,
      limits: inputLimits(o),
      log: ctx.log,
      unit: format === 'json' ? 'item' : 'line',
    };
    return {
      async run(sc) {
        const done = (await sc.checkpoints.load()) ?? {};
        const files = o.path === '-' ? ['-'] : await expand(o.path);
        if (files.length === 0) ctx.log.warn({ path: o.path }, 'no file matches the path');
        let unread = 0;
        for (const file of files) {
          if (sc.signal.aborted) return;
          const skip = file !== '-' && done[file] !== undefined ? Number(done[file]) : 0;
          const outcome = await readFile(file, skip, reading, sc);
          if (outcome !== 'read') unread++;
        }
        if (files.length > 0 && unread === files.length && !sc.signal.aborted) {
          const stateFile = checkpointPath(ctx.stateDir, ctx.pipeline);
          ctx.log.warn(
            { source: ctx.name, path: o.path, state_file: stateFile },
            `source '${ctx.name}' reads nothing: every file matching ${o.path} was already read to its end ` +
              `(positions in ${stateFile}); use another --state-dir or ` +
              `\`sluice state reset <spec> --source ${ctx.name} --yes\` to read them again`,
          );
        }
      },
    };
  },
});

/** How one source reads its files (the same for every file). */
interface Reading {
  format: Format;
  batchSize: number;
  limits: InputLimits;
  log: Logger;
  /** What a position counts: lines, or items of a JSON array. */
  unit: 'line' | 'item';
}

/** read: the file had something past its checkpoint; complete: nothing new; shorter: fewer lines than the checkpoint. */
type Outcome = 'read' | 'complete' | 'shorter';

async function expand(pattern: string): Promise<string[]> {
  const out: string[] = [];
  for await (const f of glob(pattern)) out.push(f);
  return out.sort();
}

interface Input {
  stream: Readable;
  /** Releases the file (or stdin) and any gunzip in front of it. */
  close(): void;
}

function open(file: string): Input {
  const raw: Readable = file === '-' ? process.stdin : createReadStream(file);
  const stream = file.endsWith('.gz') ? raw.pipe(createGunzip()) : raw;
  return {
    stream,
    close() {
      if (stream !== raw) stream.destroy();
      raw.destroy();
    },
  };
}

/** stdin from a pipe or a terminal can go quiet without ending: batches then go out after a short linger. */
function isInteractive(file: string): boolean {
  if (file !== '-') return false;
  try {
    return !fstatSync(0).isFile();
  } catch {
    return true;
  }
}

const LINGER_MS = 50;
const IDLE = Symbol('idle');

/**
 * Lines one by one, for a terminal or a pipe that may go quiet without ending, each as a
 * one-line chunk: yields IDLE when no line came for `idleMs` while lines are pending downstream,
 * and ends when the signal aborts even if the input never does.
 */
async function* lineByLine(
  stream: Readable,
  signal: AbortSignal,
  idleMs: number,
): AsyncGenerator<string[] | typeof IDLE> {
  const rl = createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY });
  // A destroyed input never ends a readline interface: close it on abort to end the iteration.
  const stop = () => rl.close();
  signal.addEventListener('abort', stop, { once: true });
  try {
    const it = rl[Symbol.asyncIterator]();
    const aborted = new Promise<typeof IDLE>((resolve) => {
      if (signal.aborted) resolve(IDLE);
      signal.addEventListener('abort', () => resolve(IDLE), { once: true });
    });
    let next: Promise<IteratorResult<string>> | undefined;
    let quiet = true;
    for (;;) {
      next ??= it.next();
      let timer: NodeJS.Timeout | undefined;
      const waits: Promise<IteratorResult<string> | typeof IDLE>[] = [next, aborted];
      if (!quiet) waits.push(new Promise((resolve) => (timer = setTimeout(resolve, idleMs, IDLE))));
      const r = await Promise.race(waits);
      clearTimeout(timer);
      if (signal.aborted) return;
      if (r === IDLE) {
        quiet = true;
        yield IDLE;
        continue;
      }
      next = undefined;
      if (r.done) return;
      quiet = false;
      yield [r.value];
    }
  } finally {
    signal.removeEventListener('abort', stop);
    rl.close();
  }
}

/**
 * Lines of a file or pipe that ends, a chunk's worth at a time: one await per chunk (64 KiB)
 * instead of one per line through readline's async iterator, which cost several allocations and
 * a microtask turn per record. Lines end at `\n`; a `\r` before it is dropped (ndjson's two line
 * ends). A multi-byte character split between chunks is joined by the decoder.
 */
async function* lineChunks(stream: Readable, signal: AbortSignal): AsyncGenerator<string[]> {
  const decoder = new StringDecoder('utf8');
  let rest = '';
  const stop = () => stream.destroy();
  signal.addEventListener('abort', stop, { once: true });
  try {
    for await (const chunk of stream) {
      const text = rest + (typeof chunk === 'string' ? chunk : decoder.write(chunk as Buffer));
      const lines = text.split('\n');
      rest = lines.pop() as string;
      for (let i = 0; i < lines.length; i++) {
        const line = lines[i];
        if (line.charCodeAt(line.length - 1) === 13) lines[i] = line.slice(0, -1);
      }
      if (lines.length > 0) yield lines;
      if (signal.aborted) return;
    }
    rest += decoder.end();
    if (rest !== '') yield [rest.charCodeAt(rest.length - 1) === 13 ? rest.slice(0, -1) : rest];
  } finally {
    signal.removeEventListener('abort', stop);
  }
}

/** Emits one file's records in batches; positions are line numbers (item numbers for json). */
async function readFile(file: string, skip: number, reading: Reading, sc: SourceContext): Promise<Outcome> {
  const { format, batchSize, limits, log, unit } = reading;
  // stdin is new input on every run: it has no position to resume from.
  const resumable = file !== '-';
  if (resumable && skip === 0)
    log.info({ file }, `no checkpoint for ${file}: reading it from its first ${unit}`);
  /** Highest line (item) seen in the file, skipped ones included: tells a complete file from a resumed one. */
  let seen = 0;
  const see = (line: number) => {
    if (line > seen && seen <= skip && line > skip && skip > 0) {
      log.info({ file, after: skip }, `resuming ${file} after ${unit} ${skip}`);
    }
    if (line > seen) seen = line;
  };
  const tracker = new ContiguousTracker<number>(skip);
  let batch: RecordInit[] = [];
  let lastLine = skip;
  /**
   * The lines since the last flush: committable once the batch is acked and every malformed
   * line among them was handled by the error output.
   */
  interface Part {
    pending: number;
    ok: boolean;
    ticket: number;
  }
  let part: Part = { pending: 1, ok: true, ticket: -1 };
  const settle = (p: Part) => (err?: Error) => {
    if (err) p.ok = false;
    if (--p.pending === 0 && p.ok && tracker.ack(p.ticket) && resumable) {
      sc.checkpoints.commit(file, String(tracker.committable));
    }
  };
  const flush = async () => {
    const p = part;
    p.ticket = tracker.track(lastLine);
    part = { pending: 1, ok: true, ticket: -1 };
    const records = batch;
    batch = [];
    await sc.emit(records, settle(p));
  };
  /** Returns a promise only when the batch is full and goes out (no await per record otherwise). */
  const add = (line: number, value: unknown, size: number): Promise<void> | undefined => {
    see(line);
    lastLine = line;
    batch.push({ value, size, position: `${file}:${line}`, meta: { file, line } });
    return batch.length >= batchSize ? flush() : undefined;
  };
  const bad = async (line: number, text: string, reason: string) => {
    see(line);
    lastLine = Math.max(lastLine, line);
    part.pending++;
    await sc.fail(
      { value: text, size: text.length, position: `${file}:${line}`, meta: { file, line } },
      `${file}:${line}: ${reason}`,
      settle(part),
    );
  };

  const input = open(file);
  const stopReading = () => input.close();
  sc.signal.addEventListener('abort', stopReading, { once: true });
  try {
    if (format === 'csv') await readCsv(input.stream, skip, limits, sc.signal, add, bad, see);
    else if (format === 'json') await readJsonArray(input.stream, skip, limits, sc.signal, add, bad, see);
    else {
      let n = 0;
      const interactive = isInteractive(file);
      const chunks = interactive
        ? lineByLine(input.stream, sc.signal, LINGER_MS)
        : lineChunks(input.stream, sc.signal);
      for await (const lines of chunks) {
        if (lines === IDLE) {
          if (batch.length > 0 || part.pending > 1) await flush();
          continue;
        }
        for (let k = 0; k < lines.length; k++) {
          const text = lines[k];
          n++;
          see(n);
          if (n <= skip) continue;
          if (format === 'lines') {
            const bytes = textTooLarge(text, limits.maxRecordBytes);
            if (bytes !== undefined)
              await bad(n, excerpt(text), tooLargeReason(bytes, limits.maxRecordBytes));
            else {
              const full = add(n, text, text.length + 1);
              if (full) await full;
            }
            continue;
          }
          if (isBlank(text)) continue;
          const decoded = decodeJson(text, limits);
          if (decoded.ok) {
            const full = add(n, decoded.value, text.length + 1);
            if (full) await full;
          } else await bad(n, decoded.kind === 'too-large' ? excerpt(text) : text, decoded.reason);
          if (sc.signal.aborted) break;
        }
      }
    }
  } catch (err) {
    // Closing the input on abort ends the read with a premature-close error: not a failure.
    if (!sc.signal.aborted) throw err;
  } finally {
    sc.signal.removeEventListener('abort', stopReading);
    if (file !== '-') input.close();
  }
  if (batch.length > 0 || part.pending > 1) await flush();
  if (!resumable || skip === 0 || seen > skip || sc.signal.aborted) return 'read';
  if (seen === skip) {
    log.info(
      { file, at: skip },
      `file ${file} is complete at ${unit} ${skip}: nothing new to read; ` +
        'use another --state-dir or `sluice state reset <spec>` to read it again',
    );
    return 'complete';
  }
  log.warn(
    { file, at: skip, found: seen },
    `file ${file} has ${seen} ${unit}s, fewer than its checkpoint (${unit} ${skip}): it was truncated or replaced, ` +
      'so nothing is read from it; `sluice state reset <spec>` reads it again from the start',
  );
  return 'shorter';
}

type Add = (line: number, value: unknown, size: number) => Promise<void> | undefined;

/** Whether a line is empty or whitespace only, without trimming a copy of every line. */
function isBlank(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 32 || (c >= 9 && c <= 13)) continue;
    // Other whitespace is rare (U+00A0, U+FEFF, …): let trim() decide for those.
    return c < 128 ? false : text.trim() === '';
  }
  return true;
}
type Bad = (line: number, text: string, reason: string) => Promise<void>;
type See = (line: number) => void;

/** CSV with a header; a malformed row goes to the error output and reading goes on. */
async function readCsv(
  stream: Readable,
  skip: number,
  limits: InputLimits,
  signal: AbortSignal,
  add: Add,
  bad: Bad,
  see: See,
): Promise<void> {
  const skipped: { line: number; raw: string; reason: string }[] = [];
  let n = 0;
  const parser = stream.pipe(
    csvParse().parse({
      columns: true,
      info: true,
      raw: true,
      skip_empty_lines: true,
      relax_column_count: false,
      skip_records_with_error: true,
      on_skip: (err, raw) => {
        const line = (err as { lines?: number } | undefined)?.lines ?? n + 1;
        skipped.push({
          line,
          raw: (raw ?? '').replace(/\r?\n$/, ''),
          reason: err?.message ?? 'malformed row',
        });
      },
    }),
  );
  const stop = () => parser.destroy();
  signal.addEventListener('abort', stop, { once: true });
  const drainSkipped = async () => {
    while (skipped.length > 0) {
      const s = skipped.shift()!;
      if (s.line > skip) await bad(s.line, s.raw, `csv: ${s.reason}`);
    }
  };
  try {
    for await (const row of parser as AsyncIterable<{
      record: Record<string, string>;
      raw: string;
      info: { lines: number };
    }>) {
      await drainSkipped();
      if (signal.aborted) break;
      n = row.info.lines;
      see(n);
      if (n <= skip) continue;
      // Rows are flat strings: only their size needs a limit.
      const bytes = textTooLarge(row.raw, limits.maxRecordBytes);
      if (bytes !== undefined) await bad(n, excerpt(row.raw), tooLargeReason(bytes, limits.maxRecordBytes));
      else await add(n, row.record, row.raw.length);
    }
    await drainSkipped();
  } finally {
    signal.removeEventListener('abort', stop);
  }
}

/**
 * A JSON array, read whole; positions are 1-based item numbers. `max_depth` applies to each
 * item; `max_record_bytes` does not (items have no text of their own to measure).
 */
async function readJsonArray(
  stream: Readable,
  skip: number,
  limits: InputLimits,
  signal: AbortSignal,
  add: Add,
  bad: Bad,
  see: See,
): Promise<void> {
  const chunks: Buffer[] = [];
  // Buffers, decoded once at the end: a multi-byte character may span two chunks.
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  const text = Buffer.concat(chunks).toString('utf8');
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
  for (let k = 0; k < items.length && !signal.aborted; k++) {
    see(k + 1);
    if (k + 1 <= skip) continue;
    // The item is already parsed; its text for the error output is its start, without re-encoding it.
    if (deeperThan(items[k], limits.maxDepth))
      await bad(k + 1, `item ${k + 1}`, tooDeepReason(limits.maxDepth));
    else await add(k + 1, items[k], 0);
  }
}
