/**
 * The stage contract. A stage type is one module exporting `defineStage({...})`: its type
 * name, kind, option schema (TypeBox: the same object gives the TypeScript type and the JSON
 * Schema), and a factory. The runtime knows no stage by name.
 *
 * Both the runtime and the stages import this module, so it imports only leaf modules (records,
 * checkpoints, metrics, the stage kinds), never the engine: no import cycle (test/stages/import-cycles.test.ts).
 */
import type { Static, TObject, TProperties } from '@sinclair/typebox';
import type { Logger } from 'pino';
import type { CheckpointScope } from '../runtime/checkpoint.ts';
import type { StageMetrics } from '../runtime/metrics.ts';
import type { RecordInit, SluiceRecord } from '../runtime/record.ts';
import type { Span } from '../spec/diagnostics.ts';
import type { StageKind } from './kind.ts';

export type { StageKind };

/** Passed to every factory. */
export interface StageContext {
  /** The stage's name in the spec. */
  name: string;
  pipeline: string;
  log: Logger;
  metrics: StageMetrics;
  /** Directory for this pipeline's local state (checkpoints, temp files). */
  stateDir: string;
  /** Records per batch for sources that choose their own batch size (runtime.batch_size). */
  batchSize?: number;
}

// ---------------------------------------------------------------- sources

export interface SourceContext {
  /** Aborted when the pipeline stops: stop reading, return from `run`. */
  signal: AbortSignal;
  /**
   * Hands a batch downstream. Resolves once the first channel accepted it, so a full pipeline
   * makes the source wait (backpressure). `onAck` runs once every record is durable in all
   * sinks, dropped on purpose, or handled by an error output; with an error if any copy failed.
   */
  emit(records: RecordInit[], onAck?: (error?: Error) => void): Promise<void>;
  /** Routes input that cannot become a record (malformed line, undecodable data) to `<source>.errors`. */
  fail(input: RecordInit, reason: string, onAck?: (error?: Error) => void): Promise<void>;
  /** This source's slice of the pipeline's checkpoint store. */
  checkpoints: CheckpointScope;
}

export interface Source {
  /** Reads until the input ends (finite sources) or `ctx.signal` aborts; then resolves. */
  run(ctx: SourceContext): Promise<void>;
  /** Releases clients after `run` returned and every ack is in. */
  close?(): Promise<void>;
}

// ---------------------------------------------------------------- transforms

/** Collects what a transform does with each record of a batch. */
export interface TransformOutput {
  push(record: SluiceRecord): void;
  /** Removed on purpose (filtered); acked at once and counted. */
  drop(record: SluiceRecord): void;
  /** Removed as a duplicate; acked at once and counted. */
  duplicate(record: SluiceRecord): void;
  /** Could not be processed: goes to `<stage>.errors` with the reason. */
  fail(record: SluiceRecord, reason: string): void;
}

export interface Transform {
  process(records: SluiceRecord[], out: TransformOutput): void | Promise<void>;
  close?(): Promise<void>;
}

// ---------------------------------------------------------------- sinks

/** One flush of a sink buffer. */
export interface SinkBatch {
  records: SluiceRecord[];
  /** The partition all records share, when the sink buffers by partition. */
  partition: string | undefined;
  /** When the buffer opened, epoch ms (for `{batch_start}`). */
  startedAt: number;
  bytes: number;
  /** Sequence number of this flush within the sink, for unique names. */
  seq: number;
}

export interface RecordFailure {
  /** Index into `batch.records`. */
  index: number;
  reason: string;
  /**
   * true: transient (the destination is unreachable, slow, throttling, restarting): the runtime
   * retries the record with backoff until it succeeds (or `retry` caps it) and holds it meanwhile,
   * which backs pressure up to the source. false: permanent for this record (the destination
   * rejects it, it is too large, it cannot be encoded): it goes to `<sink>.errors` or the dead
   * letters at once, and the rest of the batch goes on.
   */
  retryable: boolean;
}

/**
 * Returned by `write`: nothing, or the records that did not make it. Throwing fails the whole
 * batch: a `StageError` with `retryable: false`, or an encoding error (RangeError, TypeError),
 * makes the runtime split the batch until the records that fail are alone; any other error is
 * transient and the whole batch is retried.
 */
export type WriteResult = undefined | { failed: RecordFailure[] };

export interface Sink {
  /** Resolves once the batch is durable. */
  write(batch: SinkBatch): Promise<WriteResult>;
  /** Called once at start, before any write (connect, check the table exists). */
  open?(): Promise<void>;
  close?(): Promise<void>;
}

/** How the runtime buffers records for a sink before calling `write`. */
export interface Batching {
  max_records: number;
  max_bytes: number;
  max_age: number;
  /** Records the sink holds at once (buffers, waiting, in flight, retrying); at the bound it stops reading. */
  max_total_records?: number;
  /** Bytes the sink holds at once, counted the same way. */
  max_total_bytes?: number;
}

export interface SinkBatchingPolicy {
  defaults: Batching;
  /** Hard limits of the destination API (checked at validation, enforced at run time). */
  limits?: Partial<Pick<Batching, 'max_records' | 'max_bytes'>> & { max_record_bytes?: number };
  /** Buffers are kept per record partition (file and object sinks). */
  byPartition?: boolean;
  /** Most writes under way at once, whatever `max_in_flight` says (1 keeps writes in order). */
  maxInFlight?: number;
}

// ---------------------------------------------------------------- definitions

/** Reports a static problem at an option path (e.g. ['buffer', 'max_records']). */
export type CheckReport = (
  path: readonly (string | number)[],
  code: 'aws-limit' | 'literal-credential' | 'dedup-memory' | 'insecure-setting' | 'schema-value',
  message: string,
  severity?: 'error' | 'warning',
) => void;

interface Common<K extends StageKind, P extends TProperties> {
  type: string;
  kind: K;
  /** One paragraph for docs and `sluice schema`. */
  description: string;
  options: TObject<P>;
  /** A complete pipeline (YAML) that uses this stage type, for `sluice docs`; the tests validate it. */
  example?: string;
  /** Static checks beyond the schema: API limits, memory bounds, insecure settings. */
  check?(options: Static<TObject<P>>, report: CheckReport, span?: Span): void;
}

/** A field a source puts on its records' metadata, read in expressions as `meta.<name>`. */
export interface MetaField {
  name: string;
  /** The CEL type of the value (`string`, `int`, `map(string, string)`, …). */
  type: string;
  description: string;
}

export interface SourceDefinition<P extends TProperties = TProperties> extends Common<'source', P> {
  create(options: Static<TObject<P>>, ctx: StageContext): Source;
  /**
   * Options (dotted paths) that say what the positions of this source's checkpoint refer to: a
   * stream and where it lives. A hot reload that changes one of them, or the type, starts the
   * source afresh; otherwise it resumes. Absent: name and type alone, for positions that name
   * their own input (a file path each) or count records.
   */
  identity?: readonly string[];
  /** The metadata fields the source sets on every record, for `sluice docs`. */
  meta?: readonly MetaField[];
  /**
   * Decodes raw payloads with the source's codec into what `run` would emit (records) or route to
   * `<source>.errors` (failed), with the meta the source sets; no I/O (`sluice test`).
   */
  decode?(
    options: Static<TObject<P>>,
    raw: readonly RawInput[],
  ): { records: RecordInit[]; failed: { input: RecordInit; reason: string }[] };
}
export interface TransformDefinition<P extends TProperties = TProperties> extends Common<'transform', P> {
  create(options: Static<TObject<P>>, ctx: StageContext): Transform;
}
export interface SinkDefinition<P extends TProperties = TProperties> extends Common<'sink', P> {
  batching: SinkBatchingPolicy | ((options: Static<TObject<P>>) => SinkBatchingPolicy);
  create(options: Static<TObject<P>>, ctx: StageContext): Sink;
  /**
   * Which write failures the sink treats as transient (retried while it holds its records) and
   * which as permanent for the record alone, in a paragraph for `sluice docs`.
   */
  transient?: string;
  /**
   * The same sink with its network calls replaced by `ctx.capture` (`sluice test`): records are
   * encoded, keyed, converted and rejected exactly as `create`'s sink does, and each write it
   * would make is captured instead of sent.
   */
  preview?(options: Static<TObject<P>>, ctx: PreviewContext): Sink;
}

/** One write a sink would make, as `preview` captures it. */
export type PreviewWrite =
  | { kind: 'object'; key: string; body: Uint8Array; contentType: string; contentEncoding?: string }
  | { kind: 'row'; table: string; row: Record<string, unknown> }
  | {
      kind: 'message';
      value: Uint8Array;
      topic?: string;
      key?: string;
      /** Kafka partition (murmur2 of the key over `partitions`), when keyed. */
      partition?: number;
      partition_key?: string;
      headers?: Record<string, string>;
      attributes?: Record<string, unknown>;
      subject?: string;
    }
  | { kind: 'record'; value: unknown };

export interface PreviewContext extends StageContext {
  capture(write: PreviewWrite): void;
  /** Partitions of the topic a Kafka sink writes to (default: `create_topic.partitions`, else 1). */
  partitions?: number;
  /** Columns (name → SQL type) of the tables a mysql sink without `columns` writes to. */
  tables?: Readonly<Record<string, Readonly<Record<string, string>>>>;
}

// ---------------------------------------------------------------- sources

/** A payload as a source receives it from its service, for `sluice test`. */
export interface RawInput {
  /** The bytes (Kafka value, Kinesis data, SNS notification body). */
  data: Uint8Array;
  key?: string;
  headers?: Record<string, string>;
  /** Source metadata to set or override (topic, partition, shard_id, …). */
  meta?: Record<string, unknown>;
  /** Index of the payload in its list: positions and offsets derive from it. */
  index: number;
}

export type StageDefinition = SourceDefinition | TransformDefinition | SinkDefinition;

/** Identity helpers that keep each stage file's option types precise. */
export const defineSource = <P extends TProperties>(d: SourceDefinition<P>): SourceDefinition<P> => d;
export const defineTransform = <P extends TProperties>(d: TransformDefinition<P>): TransformDefinition<P> =>
  d;
export const defineSink = <P extends TProperties>(d: SinkDefinition<P>): SinkDefinition<P> => d;

/** Thrown by factories of stage types whose behaviour has not landed yet: fails at run, never at validate. */
export class NotImplementedError extends Error {
  constructor(type: string, kind: StageKind) {
    super(`the ${kind} type '${type}' validates but cannot run yet in this version of sluice`);
    this.name = 'NotImplementedError';
  }
}

/**
 * An error a stage raises on purpose. `retryable: true` (the default) means transient: retried
 * until it succeeds. `retryable: false` means permanent for the records concerned: they go to the
 * error output (a whole-batch one is first split to find which records fail).
 */
export class StageError extends Error {
  readonly retryable: boolean;
  constructor(message: string, opts?: { retryable?: boolean; cause?: unknown }) {
    super(message, { cause: opts?.cause });
    this.name = 'StageError';
    this.retryable = opts?.retryable ?? true;
  }
}
