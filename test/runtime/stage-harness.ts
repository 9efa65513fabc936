/** Drives one stage through the stage contract, without the engine. */
import type { Static, TObject, TProperties } from '@sinclair/typebox';
import { AckGroup } from '../../src/runtime/ack.ts';
import type { CheckpointScope, Positions } from '../../src/runtime/checkpoint.ts';
import { MetricsRegistry } from '../../src/runtime/metrics.ts';
import type { RecordInit, SluiceRecord } from '../../src/runtime/record.ts';
import type {
  SinkDefinition,
  SourceDefinition,
  StageContext,
  TransformDefinition,
  TransformOutput,
} from '../../src/stages/define.ts';
import { silent, tempDir } from './helpers.ts';

export function stageContext(name = 'stage', batchSize?: number): StageContext {
  return {
    name,
    pipeline: 'test',
    log: silent,
    metrics: new MetricsRegistry('test').stage(name, 'transform', 'test'),
    stateDir: tempDir(),
    batchSize,
  };
}

export function record(value: unknown, extra: Partial<SluiceRecord> = {}): SluiceRecord {
  return { value, meta: {}, size: 0, ack: new AckGroup(1), ...extra };
}

export interface TransformRun {
  pushed: SluiceRecord[];
  dropped: SluiceRecord[];
  duplicates: SluiceRecord[];
  failed: [SluiceRecord, string][];
}

/** A transform built from `options`; `process` collects what it does with each record. */
export function transform<P extends TProperties>(def: TransformDefinition<P>, options: Static<TObject<P>>) {
  const t = def.create(options, stageContext(def.type));
  return async (records: SluiceRecord[]): Promise<TransformRun> => {
    const run: TransformRun = { pushed: [], dropped: [], duplicates: [], failed: [] };
    const out: TransformOutput = {
      push: (r) => run.pushed.push(r),
      drop: (r) => {
        run.dropped.push(r);
        r.ack.resolve();
      },
      duplicate: (r) => {
        run.duplicates.push(r);
        r.ack.resolve();
      },
      fail: (r, reason) => run.failed.push([r, reason]),
    };
    await t.process(records, out);
    return run;
  };
}

export class MemoryScope implements CheckpointScope {
  committed: Positions;
  readonly commits: [string, string][] = [];
  constructor(initial: Positions = {}) {
    this.committed = { ...initial };
  }
  async load(): Promise<Positions | undefined> {
    return Object.keys(this.committed).length ? { ...this.committed } : undefined;
  }
  commit(partition: string, position: string): void {
    this.commits.push([partition, position]);
    this.committed[partition] = position;
  }
  async flush(): Promise<void> {}
}

export interface SourceRun {
  records: RecordInit[];
  batches: RecordInit[][];
  failures: { input: RecordInit; reason: string }[];
  scope: MemoryScope;
}

/**
 * Runs a source to its end (or until `stopAfter` records, then aborts). Every batch and
 * failure is acked at once unless `ack` says otherwise.
 */
export async function runSource<P extends TProperties>(
  def: SourceDefinition<P>,
  options: Static<TObject<P>>,
  opts: {
    checkpoint?: Positions;
    batchSize?: number;
    stopAfter?: number;
    ack?: (batch: RecordInit[]) => Error | undefined;
  } = {},
): Promise<SourceRun> {
  const source = def.create(options, stageContext(def.type, opts.batchSize));
  const abort = new AbortController();
  const run: SourceRun = { records: [], batches: [], failures: [], scope: new MemoryScope(opts.checkpoint) };
  await source.run({
    signal: abort.signal,
    checkpoints: run.scope,
    async emit(records, onAck) {
      run.batches.push(records);
      run.records.push(...records);
      if (opts.stopAfter !== undefined && run.records.length >= opts.stopAfter) abort.abort();
      onAck?.(opts.ack?.(records));
    },
    async fail(input, reason, onAck) {
      run.failures.push({ input, reason });
      onAck?.();
    },
  });
  await source.close?.();
  return run;
}

/** A sink built from `options`, plus a helper to write records as one batch. */
export function sink<P extends TProperties>(def: SinkDefinition<P>, options: Static<TObject<P>>) {
  const ctx = stageContext(def.type);
  const s = def.create(options, ctx);
  let seq = 0;
  return {
    sink: s,
    metrics: ctx.metrics,
    write: (records: SluiceRecord[], extra: { partition?: string; startedAt?: number } = {}) =>
      s.write({
        records,
        partition: extra.partition,
        startedAt: extra.startedAt ?? Date.UTC(2024, 2, 20, 10, 30, 45, 123),
        bytes: 0,
        seq: seq++,
      }),
  };
}
