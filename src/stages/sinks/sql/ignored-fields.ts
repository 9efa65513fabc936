/**
 * Reports record fields that have no column in the table (mysql and postgres sinks without `columns`).
 *
 * Field names come from the data, so there may be unboundedly many of them: the reporter keeps
 * at most `MAX_NAMES` distinct names and logs the first occurrence, then at most one summary per
 * interval with the number of records that had ignored fields since the last line and a few
 * names. Memory and log volume stay bounded whatever the input.
 */
import type { Logger } from 'pino';

const MAX_NAMES = 100;
const SAMPLE = 5;
const INTERVAL_MS = 60_000;
/** Longer names are kept and logged cut to this length. */
const NAME_CHARS = 64;

export class IgnoredFields {
  private readonly known = new Set<string>();
  /** Names first seen since the last line (at most SAMPLE), else names of the last records. */
  private fresh: string[] = [];
  private recent: string[] = [];
  private pending = 0;
  private lastLine: number | undefined;
  private readonly log: Logger;
  /** The sink type that starts each line: mysql, postgres. */
  private readonly system: string;
  private readonly table: string;
  private readonly now: () => number;
  private readonly intervalMs: number;

  constructor(
    log: Logger,
    system: string,
    table: string,
    now: () => number = Date.now,
    intervalMs = INTERVAL_MS,
  ) {
    this.log = log;
    this.system = system;
    this.table = table;
    this.now = now;
    this.intervalMs = intervalMs;
  }

  /** One record had these fields with no column. */
  note(fields: readonly string[]): void {
    if (fields.length === 0) return;
    this.pending++;
    for (const field of fields) {
      const f = field.length > NAME_CHARS ? `${field.slice(0, NAME_CHARS)}…` : field;
      if (this.known.has(f)) continue;
      if (this.known.size < MAX_NAMES) this.known.add(f);
      if (this.fresh.length < SAMPLE && !this.fresh.includes(f)) this.fresh.push(f);
    }
    this.recent = fields
      .slice(0, SAMPLE)
      .map((f) => (f.length > NAME_CHARS ? `${f.slice(0, NAME_CHARS)}…` : f));
    const t = this.now();
    if (this.lastLine === undefined || t - this.lastLine >= this.intervalMs) this.flush(t);
  }

  /** Logs what is pending (at close, so the last minute is not lost). */
  flush(t = this.now()): void {
    if (this.pending === 0) return;
    const first = this.lastLine === undefined;
    const fields = this.fresh.length > 0 ? this.fresh : this.recent;
    this.log.warn(
      {
        table: this.table,
        records: this.pending,
        fields,
        distinct_fields: this.known.size >= MAX_NAMES ? `${MAX_NAMES}+` : this.known.size,
      },
      first
        ? `${this.system}: record fields with no column in the table are ignored`
        : `${this.system}: records had fields with no column in the table; ignored`,
    );
    this.pending = 0;
    this.fresh = [];
    this.lastLine = t;
  }
}
