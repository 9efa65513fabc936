/** Records travel in batches; each carries the ack group of the source batch it came from. */
import type { AckGroup } from './ack.ts';

export type Meta = Record<string, unknown>;

export interface SluiceRecord {
  /** Usually a parsed JSON object; treat as immutable (fan-out shares it between branches). */
  value: unknown;
  /** Source metadata: stream, shard_id, sequence_number / topic, partition, offset / message_id … */
  meta: Meta;
  key?: string;
  /** Event time, epoch milliseconds. */
  time?: number;
  /** Set by the partition transform; sinks group their buffers and key templates by it. */
  partition?: string;
  /** Source position as text (`shard:sequence`, `topic/partition/offset`, `file:line`); used by key templates. */
  position?: string;
  /** Bytes as received, for throughput metrics. */
  size: number;
  ack: AckGroup;
}

/** What a source hands to `emit`; the runtime adds the ack group. */
export type RecordInit = Omit<SluiceRecord, 'ack' | 'size' | 'meta'> & { size?: number; meta?: Meta };

/**
 * The value of a record on a `<stage>.errors` output, and one line of a dead-letter file. `value`
 * is a copy bounded in depth and size (see safe-value.ts), so writing it can never fail on its
 * content; `truncated` says the copy is not the original (such a record cannot be replayed).
 */
export interface ErrorValue {
  stage: string;
  reason: string;
  at: string;
  value: unknown;
  meta: Meta;
  /** Source position of the record (`shard:sequence`, `topic/partition/offset`, `file:line`). */
  position?: string;
  key?: string;
  partition?: string;
  time?: number;
  truncated?: true;
}
