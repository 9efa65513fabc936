/**
 * Hot reload: a pipeline rebuilt from a new spec while the process runs. The running pipeline
 * drains as on a stop (sources stop, what is in flight reaches the sinks, checkpoints are
 * written), then the new one starts on the same metrics registry, so the live view, the totals
 * and the operations endpoint follow it without a gap in their counters.
 *
 * A source keeps its checkpoint across a reload when its identity did not change: the same
 * name, the same type and the same identifying options (those its definition lists in
 * `identity`, e.g. a Kinesis source's stream, region, endpoint and checkpoint store). A source
 * whose identity changed starts afresh: its positions in the state file are removed, since they
 * point into another input. A new spec that cannot start (a stage that cannot be built, a sink
 * that cannot open) is given up and the previous spec runs again, with its positions put back.
 */
import type { Logger } from 'pino';
import type { PipelineSpec, StageSpec } from '../spec/validate.ts';
import type { SourceDefinition } from '../stages/define.ts';
import { FileCheckpointStore, type Positions } from './checkpoint.ts';
import { Pipeline, type RunOptions, type RunResult } from './engine.ts';
import { MetricsRegistry } from './metrics.ts';

export type ReloadOutcome =
  | { applied: true /** Sources whose identity changed: they start afresh. */; restarted: string[] }
  | { applied: false; reason: string };

interface Pending {
  spec: PipelineSpec;
  done(outcome: ReloadOutcome): void;
}

interface Starting {
  previous: PipelineSpec;
  /** Positions of the sources that start afresh, put back if the new spec cannot start. */
  removed: Map<string, Positions>;
  restarted: string[];
  done(outcome: ReloadOutcome): void;
}

/** A source's identity: its type and the options its definition says its positions belong to. */
export function sourceIdentity(s: StageSpec): string {
  const paths = (s.def as SourceDefinition).identity ?? [];
  const picked = paths.map((p) => [p, valueAt(s.options, p.split('.'))]);
  return stableJson({ type: s.type, options: Object.fromEntries(picked) });
}

/** Sources of `next` that `before` has under the same name with another identity. */
export function changedSources(before: PipelineSpec, next: PipelineSpec): string[] {
  const old = new Map(before.stages.filter((s) => s.kind === 'source').map((s) => [s.name, s]));
  return next.stages
    .filter((s) => s.kind === 'source')
    .filter((s) => {
      const was = old.get(s.name);
      return was !== undefined && sourceIdentity(was) !== sourceIdentity(s);
    })
    .map((s) => s.name);
}

export class ReloadingPipeline {
  readonly metrics: MetricsRegistry;
  private spec: PipelineSpec;
  private current: Pipeline;
  private readonly opts: RunOptions;
  private readonly log: Logger | undefined;
  private pending: Pending | undefined;
  /** A reloaded spec until it runs: what to go back to if it cannot start. */
  private starting: Starting | undefined;
  /** The current generation opened its sinks and started its sources. */
  private started = false;
  private stopReason: string | undefined;
  private finished = false;
  private errorRecords = 0;
  private deadLettered = 0;

  /** Throws as `new Pipeline` does when a stage cannot be built. */
  constructor(spec: PipelineSpec, opts: Omit<RunOptions, 'metrics'>) {
    this.spec = spec;
    this.opts = opts;
    this.log = opts.log;
    this.metrics = new MetricsRegistry(spec.name);
    this.metrics.onState((state) => {
      if (state !== 'running') return;
      this.started = true;
      const starting = this.starting;
      this.starting = undefined;
      starting?.done({ applied: true, restarted: starting.restarted });
    });
    this.current = this.build(spec);
  }

  /** The spec running now. */
  get running(): PipelineSpec {
    return this.spec;
  }

  stop(reason = 'stop requested'): void {
    this.stopReason ??= reason;
    this.current.stop(reason);
  }

  /**
   * Drains the running pipeline and starts `spec`. Resolves once the new spec runs (or was given
   * up and the previous one runs again). A reload asked for while another waits for its drain
   * replaces it.
   */
  reload(spec: PipelineSpec): Promise<ReloadOutcome> {
    if (this.finished || this.stopReason !== undefined)
      return Promise.resolve({ applied: false, reason: 'the pipeline is stopping' });
    if (spec.name !== this.spec.name) {
      return Promise.resolve({
        applied: false,
        reason: `the name changed (${this.spec.name} → ${spec.name}); checkpoints, dead letters and metrics belong to the name: restart to rename the pipeline`,
      });
    }
    this.pending?.done({ applied: false, reason: 'replaced by a newer reload' });
    return new Promise((done) => {
      this.pending = { spec, done };
      this.current.stop('reloading the spec');
    });
  }

  /** Runs until the pipeline ends or is stopped; totals cover every spec it ran. */
  async run(): Promise<RunResult> {
    for (;;) {
      this.started = false;
      const result = await this.current.run();
      this.errorRecords += result.errorRecords;
      this.deadLettered += result.deadLettered;
      const starting = this.starting;
      this.starting = undefined;
      if (starting && !this.started && !result.ok && this.stopReason === undefined) {
        // The new spec never started: run the previous one again, from where it stood.
        const reason = `the new spec could not start (${result.error}); the previous spec runs again`;
        this.log?.error({ error: result.error }, reason);
        await this.putBack(starting.removed);
        this.spec = starting.previous;
        this.current = this.build(this.spec);
        starting.done({ applied: false, reason });
        continue;
      }
      starting?.done({ applied: false, reason: 'the pipeline stopped first' });
      const pending = this.pending;
      this.pending = undefined;
      if (!pending || this.stopReason !== undefined || !result.ok) {
        pending?.done({ applied: false, reason: 'the pipeline stopped first' });
        this.finished = true;
        return { ...result, errorRecords: this.errorRecords, deadLettered: this.deadLettered };
      }
      if (result.timedOut || result.unacked > 0) {
        this.log?.warn(
          { unacked: result.unacked },
          'the drain before the reload timed out: batches not acknowledged are read again by the new spec',
        );
      }
      await this.swap(pending);
    }
  }

  private build(spec: PipelineSpec): Pipeline {
    this.metrics.rebuilding();
    this.metrics.state = 'starting';
    return new Pipeline(spec, { ...this.opts, metrics: this.metrics });
  }

  /**
   * Builds the new generation; the reload is done once it runs (every sink open). A spec whose
   * stages cannot be built is given up at once and the previous spec is built again.
   */
  private async swap(pending: Pending): Promise<void> {
    const previous = this.spec;
    const restarted = changedSources(previous, pending.spec);
    try {
      this.current = this.build(pending.spec);
    } catch (err) {
      this.current = this.build(previous);
      pending.done({
        applied: false,
        reason: `the new spec could not be built (${(err as Error).message}); the previous spec runs again`,
      });
      return;
    }
    const removed = await this.forget(restarted);
    this.spec = pending.spec;
    this.starting = { previous, removed, restarted, done: pending.done };
  }

  /** Removes the stored positions of sources that start afresh; returns them to put back. */
  private async forget(sources: readonly string[]): Promise<Map<string, Positions>> {
    const removed = new Map<string, Positions>();
    if (sources.length === 0) return removed;
    if (this.opts.checkpointStore) {
      // A store of the embedding service's own: it decides what positions mean.
      this.log?.warn({ sources }, 'sources changed identity; their checkpoints are left to the store');
      return removed;
    }
    const store = new FileCheckpointStore(this.opts.stateDir, this.spec.name);
    for (const source of sources) {
      const gone = await store.remove(source);
      if (gone[source]) removed.set(source, gone[source]);
    }
    this.log?.info(
      { sources },
      `source${sources.length === 1 ? '' : 's'} ${sources.join(', ')} changed identity (type or what ${sources.length === 1 ? 'it reads' : 'they read'}): starting afresh`,
    );
    return removed;
  }

  private async putBack(removed: Map<string, Positions> | undefined): Promise<void> {
    if (!removed || removed.size === 0) return;
    const store = new FileCheckpointStore(this.opts.stateDir, this.spec.name);
    for (const [source, positions] of removed) await store.save(source, positions);
  }
}

function valueAt(value: unknown, path: readonly string[]): unknown {
  let v = value;
  for (const key of path) {
    if (typeof v !== 'object' || v === null) return undefined;
    v = (v as Record<string, unknown>)[key];
  }
  return v;
}

/** JSON with object keys sorted, so equal values give equal text. */
function stableJson(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) =>
    x && typeof x === 'object' && !Array.isArray(x)
      ? Object.fromEntries(
          Object.entries(x as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b)),
        )
      : x,
  );
}
