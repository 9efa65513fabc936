/**
 * Records → rows for the SQL sinks (mysql, postgres), and the rows their database rejects.
 *
 * A record that cannot be a row fails alone, before anything is sent, with a reason that starts
 * with the sink type: a value that is not an object, (without `columns`) a record with no field
 * that is a column, a field value its column cannot take (the reason names the column). A
 * statement whose data the database rejects is halved until the bad rows are alone; how a
 * statement is tried and undone is the sink's own.
 *
 * A row is its statement parameters (`prepare`), or whatever the sink makes of them at once
 * (`encode`: the mysql sink's SQL text), so the parameters of a batch need not be kept.
 */
import type { Logger } from 'pino';
import type { StageMetrics } from '../../../runtime/metrics.ts';
import type { RecordFailure, SinkBatch, WriteResult } from '../../define.ts';
import { ConversionError } from './convert.ts';
import { IgnoredFields } from './ignored-fields.ts';

export interface Column<K> {
  name: string;
  kind: K;
}

/** One record's statement parameters, in column order, and its index in the batch. */
export interface Row<P> {
  index: number;
  params: P[];
}

/** A batch as rows: the columns they fill and the records that could not be rows. */
export interface PreparedBatch<K, P> {
  failed: RecordFailure[];
  columns: Column<K>[];
  rows: Row<P>[];
}

/** A batch as rows a sink encoded (`R`), with the columns they fill and the records that could not be rows. */
export interface EncodedBatch<K, R> {
  failed: RecordFailure[];
  columns: Column<K>[];
  rows: R[];
}

/**
 * Makes a sink's row of one record's parameters (in column order). `params` is reused for the
 * next record: keep what is needed, not the array.
 */
export type EncodeRow<P, R> = (index: number, params: readonly P[]) => R;

/** A field's value as a parameter for a column of `kind`; throws `ConversionError` when it cannot go in. */
export type Convert<K, P> = (v: unknown, kind: K, strict: boolean) => P;

export interface RowsOptions<K, P> {
  /** The sink type that starts every reason and warning: mysql, postgres. */
  system: string;
  /** The `table` option, for the warning about fields with no column. */
  table: string;
  /** `columns` is given: every row fills all of them and other fields are dropped silently. */
  declared: boolean;
  strict: boolean;
  convert: Convert<K, P>;
}

interface Candidate {
  index: number;
  value: Record<string, unknown>;
}

export class SqlRows<K, P> {
  private readonly options: RowsOptions<K, P>;
  private readonly metrics: StageMetrics;
  private readonly ignored: IgnoredFields;

  constructor(options: RowsOptions<K, P>, ctx: { log: Logger; metrics: StageMetrics }) {
    this.options = options;
    this.metrics = ctx.metrics;
    this.ignored = new IgnoredFields(ctx.log, options.system, options.table);
  }

  /**
   * The rows a batch writes, converted for their columns (`columns`: the table's, in table
   * order); the records that cannot be rows fail alone.
   */
  prepare(batch: SinkBatch, columns: ReadonlyMap<string, Column<K>>, tableName: string): PreparedBatch<K, P> {
    return this.encode(batch, columns, tableName, undefined);
  }

  /** As `prepare`, with each row made by `encodeRow` from its parameters. */
  encode<R>(
    batch: SinkBatch,
    columns: ReadonlyMap<string, Column<K>>,
    tableName: string,
    encodeRow: EncodeRow<P, R>,
  ): EncodedBatch<K, R>;
  encode(
    batch: SinkBatch,
    columns: ReadonlyMap<string, Column<K>>,
    tableName: string,
    encodeRow: undefined,
  ): PreparedBatch<K, P>;
  encode<R>(
    batch: SinkBatch,
    columns: ReadonlyMap<string, Column<K>>,
    tableName: string,
    encodeRow: EncodeRow<P, R> | undefined,
  ): EncodedBatch<K, R | Row<P>> {
    const failed: RecordFailure[] = [];
    const candidates = this.objectsOf(batch, failed);
    const written = this.columnsOf(candidates, columns, tableName, failed);
    return { failed, columns: written, rows: this.rowsOf(candidates, written, failed, encodeRow) };
  }

  /** The records whose value is an object; the others fail alone. */
  private objectsOf(batch: SinkBatch, failed: RecordFailure[]): Candidate[] {
    const out: Candidate[] = [];
    for (let i = 0; i < batch.records.length; i++) {
      const v = batch.records[i].value;
      if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) {
        this.reject(failed, i, `${this.options.system}: record value is not an object`);
        continue;
      }
      out.push({ index: i, value: v as Record<string, unknown> });
    }
    return out;
  }

  /**
   * The columns a batch writes: all declared ones, or the table's columns any record has, in
   * table order. Without `columns`, a record with no field that is a column fails alone (and is
   * removed from `candidates`).
   */
  private columnsOf(
    candidates: Candidate[],
    columns: ReadonlyMap<string, Column<K>>,
    tableName: string,
    failed: RecordFailure[],
  ): Column<K>[] {
    if (this.options.declared) return [...columns.values()];
    const present = new Set<string>();
    let kept = 0;
    for (const c of candidates) {
      let matched = 0;
      const ignored: string[] = [];
      for (const k of Object.keys(c.value)) {
        if (columns.has(k)) {
          matched++;
          present.add(k);
        } else ignored.push(k);
      }
      if (ignored.length > 0) this.ignored.note(ignored);
      if (matched === 0) {
        const reason = `${this.options.system}: no field of the record is a column of table ${tableName}`;
        this.reject(failed, c.index, reason);
        continue;
      }
      candidates[kept++] = c;
    }
    candidates.length = kept;
    return [...columns.values()].filter((c) => present.has(c.name));
  }

  /**
   * Statement parameters per record (or the sink's encoding of them); a record with a value that
   * does not fit its column fails alone.
   */
  private rowsOf<R>(
    candidates: Candidate[],
    columns: Column<K>[],
    failed: RecordFailure[],
    encodeRow: EncodeRow<P, R> | undefined,
  ): (R | Row<P>)[] {
    const { convert, strict, system } = this.options;
    const rows: (R | Row<P>)[] = [];
    // An encoding sink keeps no parameters: one array serves every record.
    const scratch: P[] = new Array(columns.length);
    for (const { index, value } of candidates) {
      const params: P[] = encodeRow ? scratch : new Array(columns.length);
      let c = 0;
      try {
        for (; c < columns.length; c++) {
          const name = columns[c].name;
          params[c] = convert(Object.hasOwn(value, name) ? value[name] : undefined, columns[c].kind, strict);
        }
      } catch (err) {
        this.reject(failed, index, `${system}: column '${columns[c].name}': ${conversionReason(err)}`);
        continue;
      }
      rows.push(encodeRow ? encodeRow(index, params) : { index, params });
    }
    return rows;
  }

  /**
   * Writes `rows` with `attempt`, which resolves to the failure reason when the database rejects
   * the data of the statement (having undone that statement alone) and throws any other error;
   * rejected rows are halved until the bad ones are alone, and each of those fails its record.
   */
  async bisect<R extends { index: number }>(
    rows: R[],
    failed: RecordFailure[],
    attempt: (rows: R[]) => Promise<string | undefined>,
  ): Promise<void> {
    const rejected = await attempt(rows);
    if (rejected === undefined) return;
    if (rows.length === 1) {
      this.reject(failed, rows[0].index, rejected);
      return;
    }
    this.metrics.count('bisections');
    const half = Math.ceil(rows.length / 2);
    await this.bisect(rows.slice(0, half), failed, attempt);
    await this.bisect(rows.slice(half), failed, attempt);
  }

  /** Fails the record at `index` of the batch for good, with `reason`. */
  reject(failed: RecordFailure[], index: number, reason: string): void {
    failed.push({ index, reason, retryable: false });
    this.metrics.count('rows_rejected');
  }

  /** Logs the ignored fields not yet reported (so the last minute is not lost). */
  close(): void {
    this.ignored.flush();
  }
}

/** `rows` cut into statements of at most `maxParams` parameters (at least one row each). */
export function statementsOf<P>(rows: Row<P>[], columnCount: number, maxParams: number): Row<P>[][] {
  const perStatement = Math.max(1, Math.floor(maxParams / columnCount));
  const out: Row<P>[][] = [];
  for (let at = 0; at < rows.length; at += perStatement) out.push(rows.slice(at, at + perStatement));
  return out;
}

/** The parameters of a multi-row statement, row after row. */
export function paramsOf<P>(rows: Row<P>[]): P[] {
  const params: P[] = [];
  for (const r of rows) for (const p of r.params) params.push(p);
  return params;
}

/** What `write` returns for the records that failed, in batch order. */
export function resultOf(failed: RecordFailure[]): WriteResult {
  return failed.length > 0 ? { failed: failed.sort((a, b) => a.index - b.index) } : undefined;
}

function conversionReason(err: unknown): string {
  if (err instanceof ConversionError) return err.message;
  // Anything else a value can throw while being read (a getter, a proxy): still this record's.
  return `value cannot be converted: ${err instanceof Error ? err.message : String(err)}`;
}
