/**
 * Key and path templates for file-like sinks: `historico_diario/{partition}/part_{batch_start}.json`.
 * Compiled once; rendering is string concatenation.
 *
 * Deterministic fields (a replay of the same source range renders the same key, so a crash
 * before the checkpoint overwrites the same object instead of adding a duplicate):
 * `partition`, `first_position`, `last_position`, `count`, `ext`.
 * Time- or run-dependent fields: `batch_start`, `batch_start_ms`, `seq`, `uuid`.
 */
import { clock } from '../expr/clock.ts';

export const TEMPLATE_FIELDS = {
  partition: 'the records’ partition (set by a partition transform); `_` when none',
  batch_start: 'when the buffer opened, UTC, `2024-03-20T10-30-45.123Z` (safe in file names)',
  batch_start_ms: 'when the buffer opened, epoch milliseconds',
  first_position: 'source position of the first record (deterministic across replays)',
  last_position: 'source position of the last record (deterministic across replays)',
  count: 'records in the batch',
  seq: 'flush number within this run of the sink',
  uuid: 'a random UUID',
  ext: 'the file extension of the format and compression, e.g. `.ndjson.gz`',
} as const;

export type TemplateField = keyof typeof TEMPLATE_FIELDS;
export type TemplateValues = Record<TemplateField, string>;

export interface CompiledTemplate {
  readonly source: string;
  readonly fields: ReadonlySet<TemplateField>;
  render(values: Partial<TemplateValues>): string;
}

export class TemplateError extends Error {
  readonly offset: number;
  readonly length: number;
  constructor(message: string, offset: number, length: number) {
    super(message);
    this.offset = offset;
    this.length = length;
  }
}

const PLACEHOLDER = /\{([^{}]*)\}/g;

export function compileTemplate(source: string): CompiledTemplate {
  const parts: string[] = [];
  const names: (TemplateField | undefined)[] = [];
  const fields = new Set<TemplateField>();
  let last = 0;
  for (const m of source.matchAll(PLACEHOLDER)) {
    const name = m[1].trim();
    if (!(name in TEMPLATE_FIELDS)) {
      throw new TemplateError(
        `unknown template field {${name}}; known fields: ${Object.keys(TEMPLATE_FIELDS).join(', ')}`,
        m.index,
        m[0].length,
      );
    }
    parts.push(source.slice(last, m.index));
    names.push(name as TemplateField);
    fields.add(name as TemplateField);
    last = m.index + m[0].length;
  }
  const tail = source.slice(last);
  return {
    source,
    fields,
    render(values) {
      let out = '';
      for (let i = 0; i < parts.length; i++) {
        const f = names[i]!;
        out += parts[i] + (f === 'uuid' ? clock().uuid() : (values[f] ?? ''));
      }
      return out + tail;
    },
  };
}

/** `2024-03-20T10-30-45.123Z`: ISO time with the colons a file name or S3 console trips over replaced. */
export function fileTime(ms: number): string {
  return new Date(ms).toISOString().replaceAll(':', '-');
}

/** A position as it may appear in a path: no separators. */
export function safePosition(position: string | undefined): string {
  return (position ?? 'none').replace(/[^A-Za-z0-9_.=-]/g, '_');
}
