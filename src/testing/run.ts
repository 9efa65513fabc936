/**
 * Runs one test case: the spec's real transforms and sink encoders, in the engine, with the case's
 * records injected at the sources and every sink built with its `preview` (no network call), under
 * a fixed clock and seed. Returns what each sink would have written and what each output carried.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { gunzipSync, zstdDecompressSync } from 'node:zlib';
import type * as CsvSync from 'csv-parse/sync';
import pino from 'pino';
import { fixClock, restoreSystemClock } from '../expr/clock.ts';
import { type Injection, Pipeline } from '../runtime/engine.ts';
import { lazy } from '../runtime/lazy.ts';
import type { RecordInit } from '../runtime/record.ts';
import type { Diagnostic } from '../spec/diagnostics.ts';
import { type PipelineSpec, validateText } from '../spec/validate.ts';
import type { PreviewWrite, RawInput, SourceDefinition } from '../stages/define.ts';
import type { TestCase, TestFile, TestInput } from './schema.ts';

// Only inputs and objects in CSV need the parser: it loads then.
const csv = lazy<typeof CsvSync>('csv-parse/sync');

/** One write a sink would make, decoded for comparison. */
export type Written =
  | { kind: 'object'; key: string; records: unknown[]; content_encoding?: string }
  | { kind: 'row'; row: Record<string, unknown> }
  | {
      kind: 'message';
      value: unknown;
      key?: string;
      partition?: number;
      partition_key?: string;
      topic?: string;
      headers?: Record<string, string>;
      attributes?: Record<string, unknown>;
      subject?: string;
    }
  | { kind: 'record'; value: unknown };

export interface CaseRun {
  /** Every sink of the spec, whether it wrote or not. */
  sinks: string[];
  /** Per sink, its writes in order. */
  writes: Map<string, Written[]>;
  /** Per output (`stage`, `stage.errors`), the record values it carried (error outputs: the error records). */
  outputs: Map<string, unknown[]>;
  /** The run itself failed (a sink could not start, a fatal error). */
  error?: string;
}

export const DEFAULT_CLOCK = '2024-01-01T00:00:00Z';

/** The spec a test file names, validated with the test's environment only. */
export async function loadPipeline(
  testFile: string,
  test: TestFile,
): Promise<{
  spec?: PipelineSpec;
  file: string;
  text?: string;
  diagnostics: Diagnostic[];
  readError?: string;
}> {
  const file = join(dirname(testFile), test.pipeline);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    return {
      file,
      diagnostics: [],
      readError: (err as NodeJS.ErrnoException).code ?? (err as Error).message,
    };
  }
  const { spec, diagnostics } = validateText(file, text, test.env ?? {});
  return { spec, file, text, diagnostics };
}

export async function runCase(
  testFile: string,
  test: TestFile,
  spec: PipelineSpec,
  c: TestCase,
): Promise<CaseRun> {
  const writes = new Map<string, Written[]>();
  const outputs = new Map<string, unknown[]>();
  // Parquet objects are read back asynchronously; their records are in before the case is compared.
  const reading: Promise<void>[] = [];
  // Fixed before decoding: sources stamp arrival times and timestamps from the clock too.
  fixClock(Date.parse(c.clock ?? test.clock ?? DEFAULT_CLOCK), c.seed ?? test.seed ?? 1);
  let stateDir: string | undefined;
  try {
    const injections = await inputsOf(testFile, spec, c);
    stateDir = await mkdtemp(join(tmpdir(), 'sluice-test-'));
    const pipeline = new Pipeline(spec, {
      stateDir,
      log: pino({ level: 'silent' }),
      inject: injections,
      preview: {
        capture: (sink, w) => push(writes, sink, decodeWrite(w, reading)),
        partitions: test.partitions,
        tables: test.tables,
      },
      // Values are copied as they pass: a later stage may replace fields of the same objects.
      tap: (output, records) => {
        for (const r of records) push(outputs, output, plain(r.value));
      },
    });
    const result = await pipeline.run();
    await Promise.all(reading);
    return { sinks: sinksOf(spec), writes, outputs, error: result.ok ? undefined : result.error };
  } catch (err) {
    if (err instanceof InputError) throw err;
    return { sinks: sinksOf(spec), writes, outputs, error: (err as Error).message };
  } finally {
    restoreSystemClock();
    if (stateDir) await rm(stateDir, { recursive: true, force: true });
  }
}

const sinksOf = (spec: PipelineSpec): string[] =>
  spec.stages.filter((s) => s.kind === 'sink').map((s) => s.name);

function push<T>(m: Map<string, T[]>, k: string, v: T): void {
  const list = m.get(k);
  if (list) list.push(v);
  else m.set(k, [v]);
}

/** JSON's view of a value: what an expectation written in YAML can equal. */
export function plain(v: unknown): unknown {
  if (v instanceof Uint8Array) return Buffer.from(v).toString('base64');
  return JSON.parse(
    JSON.stringify(v, (_k, x) =>
      typeof x === 'bigint' ? Number(x) : x instanceof Uint8Array ? Buffer.from(x).toString('base64') : x,
    ) ?? 'null',
  );
}

// ------------------------------------------------------------ inputs

async function inputsOf(testFile: string, spec: PipelineSpec, c: TestCase): Promise<Injection[]> {
  const out: Injection[] = [];
  for (const [name, input] of Object.entries(c.inputs)) {
    const stage = spec.stages.find((s) => s.name === name && s.kind === 'source');
    if (!stage) {
      const sources = spec.stages.filter((s) => s.kind === 'source').map((s) => s.name);
      throw new InputError(`'${name}' is not a source of ${spec.name}; its sources: ${sources.join(', ')}`, [
        'inputs',
        name,
      ]);
    }
    const records: RecordInit[] = [];
    const values = [
      ...(input.records ?? []),
      ...(input.fixture ? await fixture(testFile, input.fixture) : []),
    ];
    for (const [i, value] of values.entries()) records.push(initOf(name, input, value, i));
    let failed: Injection['failed'] = [];
    if (input.raw?.length) {
      const def = stage.def as SourceDefinition;
      if (!def.decode)
        throw new InputError(`source type ${stage.type} takes no raw payloads; give records`, [
          'inputs',
          name,
          'raw',
        ]);
      const decoded = def.decode(stage.options as never, input.raw.map(rawOf));
      records.push(...decoded.records);
      failed = decoded.failed;
    }
    out.push({ stage: name, records, failed });
  }
  return out;
}

/** A problem with a case's inputs, at a path inside the case. */
export class InputError extends Error {
  readonly path: (string | number)[];
  constructor(message: string, path: (string | number)[]) {
    super(message);
    this.path = path;
  }
}

function initOf(source: string, input: TestInput, value: unknown, i: number): RecordInit {
  return {
    value: structuredClone(value),
    key: input.key,
    meta: { ...(input.meta ?? {}) },
    position: `${source}:${i + 1}`,
    size: Buffer.byteLength(JSON.stringify(value) ?? ''),
  };
}

function rawOf(r: NonNullable<TestInput['raw']>[number], index: number): RawInput {
  const data =
    r.base64 !== undefined
      ? Buffer.from(r.base64, 'base64')
      : Buffer.from(typeof r.data === 'string' ? r.data : JSON.stringify(r.data ?? null), 'utf8');
  return { data, key: r.key, headers: r.headers, meta: r.meta, index };
}

async function fixture(testFile: string, path: string): Promise<unknown[]> {
  const file = resolve(dirname(testFile), path);
  const text = await readFile(file, 'utf8');
  if (/\.csv$/i.test(file)) return csv().parse(text, { columns: true, skip_empty_lines: true }) as unknown[];
  if (/\.json$/i.test(file)) {
    const v = JSON.parse(text) as unknown;
    return Array.isArray(v) ? v : [v];
  }
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as unknown);
}

// ------------------------------------------------------------ outputs

function decodeWrite(w: PreviewWrite, reading: Promise<void>[]): Written {
  switch (w.kind) {
    case 'object': {
      if (w.contentType === 'application/vnd.apache.parquet') {
        const object: Written = { kind: 'object', key: w.key, records: [] };
        reading.push(parquetRecords(w.body).then((rs) => void object.records.push(...rs)));
        return object;
      }
      const raw =
        w.contentEncoding === 'gzip'
          ? gunzipSync(w.body)
          : w.contentEncoding === 'zstd'
            ? zstdDecompressSync(w.body)
            : Buffer.from(w.body);
      const text = raw.toString('utf8');
      const records =
        w.contentType === 'text/csv'
          ? (csv().parse(text, { columns: true, skip_empty_lines: true }) as unknown[])
          : text
              .split('\n')
              .filter((l) => l !== '')
              .map((l) => JSON.parse(l) as unknown);
      return {
        kind: 'object',
        key: w.key,
        records,
        ...(w.contentEncoding ? { content_encoding: w.contentEncoding } : {}),
      };
    }
    case 'row':
      return { kind: 'row', row: plain(w.row) as Record<string, unknown> };
    case 'record':
      return { kind: 'record', value: plain(w.value) };
    case 'message': {
      const { kind: _k, value, ...rest } = w;
      return { kind: 'message', value: decodeBytes(value), ...(plain(rest) as object) };
    }
  }
}

/** The codecs hyparquet leaves to its caller (it reads snappy itself). */
const PARQUET_CODECS = {
  ZSTD: (input: Uint8Array) => new Uint8Array(zstdDecompressSync(input)),
  GZIP: (input: Uint8Array) => new Uint8Array(gunzipSync(input)),
};

/** A parquet object's rows as JSON sees them (timestamps as ISO text, 64-bit integers as numbers). */
async function parquetRecords(body: Uint8Array): Promise<unknown[]> {
  const file = body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength) as ArrayBuffer;
  // Only a test of a Parquet sink reads Parquet: the reader loads then, not with every `sluice test`.
  const { parquetReadObjects } = await import('hyparquet');
  const rows = await parquetReadObjects({
    file,
    utf8: true,
    compressors: PARQUET_CODECS,
  });
  return rows.map(plain);
}

/** Bytes as the reader of the message would take them: JSON when they are JSON, else text, else base64. */
function decodeBytes(bytes: Uint8Array): unknown {
  const buf = Buffer.from(bytes);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(buf);
  } catch {
    return buf.toString('base64');
  }
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** The records of one sink's writes, whatever their kind (for count, records and where). */
export function recordsOf(writes: readonly Written[]): unknown[] {
  const out: unknown[] = [];
  for (const w of writes) {
    if (w.kind === 'object') out.push(...w.records);
    else if (w.kind === 'row') out.push(w.row);
    else out.push(w.value);
  }
  return out;
}
