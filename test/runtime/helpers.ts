/** Builds pipelines from YAML text for runtime tests, with test-only sinks swapped in by name. */

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Type } from '@sinclair/typebox';
import pino from 'pino';
import type { CheckpointStore, Positions } from '../../src/runtime/checkpoint.ts';
import { Pipeline, type RunOptions } from '../../src/runtime/engine.ts';
import type { SluiceRecord } from '../../src/runtime/record.ts';
import { validateText } from '../../src/spec/validate.ts';
import {
  defineSink,
  type SinkBatch,
  type SinkDefinition,
  type TransformDefinition,
  type WriteResult,
} from '../../src/stages/define.ts';

export const silent = pino({ level: 'silent' });

export function tempDir(prefix = 'sluice-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/**
 * Validates `yaml` (it must be a valid spec) and swaps the definition of each stage named in
 * `sinks` for a test sink. The spec names those stages with any real sink type (stdout), so
 * the validator, the registry and the schema stay untouched.
 */
export function buildPipeline(
  yaml: string,
  opts: {
    sinks?: Record<string, SinkDefinition>;
    /** Transforms swapped for test definitions (the spec names them with any real transform type). */
    transforms?: Record<string, TransformDefinition>;
    env?: Record<string, string>;
    stateDir?: string;
  } & Partial<RunOptions> = {},
): Pipeline {
  const { spec, diagnostics } = validateText('test.yaml', yaml, opts.env ?? {});
  if (!spec)
    throw new Error(
      `invalid test spec:\n${diagnostics.map((d) => `${d.line}:${d.column} ${d.message}`).join('\n')}`,
    );
  for (const [name, def] of Object.entries({ ...opts.sinks, ...opts.transforms })) {
    const stage = spec.stages.find((s) => s.name === name);
    if (!stage) throw new Error(`no stage ${name}`);
    stage.def = def as unknown as typeof stage.def;
    stage.type = def.type;
    stage.options = {};
  }
  return new Pipeline(spec, { log: silent, stateDir: opts.stateDir ?? tempDir(), ...opts });
}

export type WriteFn = (batch: SinkBatch, call: number) => Promise<WriteResult> | WriteResult;

/** A sink whose every write goes through `write`; batching defaults are overridden by the spec's `buffer`. */
export function testSink(write: WriteFn): SinkDefinition {
  let calls = 0;
  return defineSink({
    type: 'test',
    kind: 'sink',
    description: 'test sink',
    options: Type.Object({}),
    batching: { defaults: { max_records: 100, max_bytes: 1 << 30, max_age: 20 } },
    create: () => ({ write: async (batch) => write(batch, calls++) }),
  }) as unknown as SinkDefinition;
}

/** Collects the values a sink received, in order. */
export function collectingSink(): { def: SinkDefinition; records: SluiceRecord[]; values: unknown[] } {
  const records: SluiceRecord[] = [];
  const values: unknown[] = [];
  const def = testSink((batch) => {
    for (const r of batch.records) {
      records.push(r);
      values.push(r.value);
    }
    return undefined;
  });
  return { def, records, values };
}

/** A checkpoint store in memory that keeps every save, to check what was committed when. */
export class MemoryCheckpointStore implements CheckpointStore {
  readonly saved: { source: string; positions: Positions }[] = [];
  private readonly state = new Map<string, Positions>();
  onSave: ((source: string, positions: Positions) => void) | undefined;

  constructor(initial?: Record<string, Positions>) {
    for (const [k, v] of Object.entries(initial ?? {})) this.state.set(k, { ...v });
  }

  async load(source: string): Promise<Positions | undefined> {
    const p = this.state.get(source);
    return p ? { ...p } : undefined;
  }

  async save(source: string, positions: Positions): Promise<void> {
    this.onSave?.(source, positions);
    this.saved.push({ source, positions: { ...positions } });
    this.state.set(source, { ...this.state.get(source), ...positions });
  }
}

/** Resolves once `cond` holds, checking on every macrotask turn; fails after `ms`. */
export async function until(cond: () => boolean, ms = 10_000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export function stageMetrics(p: Pipeline, name: string) {
  const s = p.metrics.snapshot().stages.find((x) => x.name === name);
  if (!s) throw new Error(`no stage ${name}`);
  return s;
}

/** The `n` field of each value (test generators number their records). */
export const indices = (values: unknown[]): number[] => values.map((v) => (v as { n: number }).n);
