/**
 * Compares what a case produced with what it expects. Each mismatch names the path of the
 * expectation in the test file (for its line and column) and carries a diff: `-` expected and not
 * produced, `+` produced and not expected.
 */
import { isDeepStrictEqual } from 'node:util';
import { compile, ExprError } from '../expr/index.ts';
import type { CaseRun, Written } from './run.ts';
import { recordsOf } from './run.ts';
import type { TestCase, TestExpectation } from './schema.ts';

export interface Mismatch {
  /** Path inside the test file's value, e.g. ['cases', 0, 'expect', 'warehouse', 'rows', 2]. */
  path: (string | number)[];
  message: string;
  diff: string[];
}

type Path = (string | number)[];

export function check(c: TestCase, base: Path, run: CaseRun): Mismatch[] {
  const out: Mismatch[] = [];
  for (const [target, exp] of Object.entries(c.expect ?? {})) {
    const at: Path = [...base, 'expect', target];
    const writes = run.writes.get(target);
    const produced = writes ? recordsOf(writes) : (run.outputs.get(target) ?? []);
    if (exp.count !== undefined && produced.length !== exp.count)
      out.push({
        path: [...at, 'count'],
        message: `${target}: ${produced.length} records, expected ${exp.count}`,
        diff: [],
      });
    if (exp.records)
      compareList(out, [...at, 'records'], `${target} records`, exp.records, produced, exp.ordered);
    if (exp.rows) compareList(out, [...at, 'rows'], `${target} rows`, exp.rows, rowsOf(writes), exp.ordered);
    if (exp.objects) compareObjects(out, [...at, 'objects'], target, exp, writes ?? []);
    if (exp.messages) compareMessages(out, [...at, 'messages'], target, exp, writes ?? []);
    for (const [i, cond] of (exp.where ?? []).entries())
      checkWhere(out, [...at, 'where', i], target, cond, produced);
    if (isEmpty(exp) && produced.length > 0)
      out.push({
        path: at,
        message: `${target}: expected nothing, got ${produced.length} records`,
        diff: produced.map((v) => `+ ${show(v)}`),
      });
  }
  return out;
}

function isEmpty(exp: TestExpectation): boolean {
  return Object.keys(exp).filter((k) => k !== 'ordered').length === 0;
}

function rowsOf(writes: readonly Written[] | undefined): unknown[] {
  return (writes ?? []).flatMap((w) => (w.kind === 'row' ? [w.row] : []));
}

/**
 * Expected against actual as multisets (or in order): each expected value is matched to one equal
 * produced value; the rest on either side is the diff, the first unmatched expected entry the place.
 */
function compareList(
  out: Mismatch[],
  at: Path,
  what: string,
  expected: readonly unknown[],
  actual: readonly unknown[],
  ordered = false,
): void {
  const diff: string[] = [];
  let first: number | undefined;
  if (ordered) {
    const n = Math.max(expected.length, actual.length);
    for (let i = 0; i < n; i++) {
      if (i < expected.length && i < actual.length && isDeepStrictEqual(expected[i], actual[i])) continue;
      first ??= Math.min(i, expected.length - 1);
      if (i < expected.length) diff.push(`- [${i}] ${show(expected[i])}`);
      if (i < actual.length) diff.push(`+ [${i}] ${show(actual[i])}`);
    }
  } else {
    const left = [...actual];
    expected.forEach((e, i) => {
      const j = left.findIndex((a) => isDeepStrictEqual(a, e));
      if (j >= 0) left.splice(j, 1);
      else {
        first ??= i;
        diff.push(`- ${show(e)}`);
      }
    });
    for (const a of left) diff.push(`+ ${show(a)}`);
  }
  if (diff.length === 0) return;
  const missing = diff.filter((d) => d.startsWith('-')).length;
  const extra = diff.length - missing;
  out.push({
    path: first !== undefined && first >= 0 ? [...at, first] : at,
    message: `${what} differ: ${missing} expected not produced, ${extra} produced not expected`,
    diff,
  });
}

function compareObjects(
  out: Mismatch[],
  at: Path,
  target: string,
  exp: TestExpectation,
  writes: readonly Written[],
): void {
  const objects = writes.flatMap((w) => (w.kind === 'object' ? [w] : []));
  const byKey = new Map(objects.map((o) => [o.key, o]));
  const expectedKeys = new Set<string>();
  for (const [i, o] of (exp.objects ?? []).entries()) {
    expectedKeys.add(o.key);
    const got = byKey.get(o.key);
    if (!got) {
      out.push({
        path: [...at, i, 'key'],
        message: `${target}: no object ${o.key}`,
        diff: [`- ${o.key}`, ...objects.filter((x) => !keyExpected(exp, x.key)).map((x) => `+ ${x.key}`)],
      });
      continue;
    }
    if (o.count !== undefined && got.records.length !== o.count)
      out.push({
        path: [...at, i, 'count'],
        message: `${target}: ${o.key} holds ${got.records.length} records, expected ${o.count}`,
        diff: [],
      });
    if (o.content_encoding !== undefined && got.content_encoding !== o.content_encoding)
      out.push({
        path: [...at, i, 'content_encoding'],
        message: `${target}: ${o.key} is encoded ${got.content_encoding ?? 'none'}, expected ${o.content_encoding}`,
        diff: [],
      });
    if (o.records)
      compareList(out, [...at, i, 'records'], `${target} ${o.key}`, o.records, got.records, exp.ordered);
  }
  const extra = objects.filter((x) => !expectedKeys.has(x.key));
  if (extra.length > 0)
    out.push({
      path: at,
      message: `${target}: ${extra.length} objects not expected`,
      diff: extra.map((x) => `+ ${x.key} (${x.records.length} records)`),
    });
}

function keyExpected(exp: TestExpectation, key: string): boolean {
  return (exp.objects ?? []).some((o) => o.key === key);
}

/** Each expected message matches a produced one on the fields it names. */
function compareMessages(
  out: Mismatch[],
  at: Path,
  target: string,
  exp: TestExpectation,
  writes: readonly Written[],
): void {
  const messages = writes.flatMap((w) => (w.kind === 'message' ? [w] : []));
  const matches = (e: Record<string, unknown>, m: Record<string, unknown>) =>
    Object.entries(e).every(([k, v]) => isDeepStrictEqual(m[k], v));
  const expected = exp.messages ?? [];
  const left = [...messages] as Record<string, unknown>[];
  const diff: string[] = [];
  let first: number | undefined;
  expected.forEach((e, i) => {
    const j = exp.ordered ? (matches(e, left[0] ?? {}) ? 0 : -1) : left.findIndex((m) => matches(e, m));
    if (j >= 0) left.splice(j, 1);
    else {
      first ??= i;
      diff.push(`- ${show(e)}`);
    }
  });
  for (const m of left) {
    const { kind: _k, ...rest } = m;
    diff.push(`+ ${show(rest)}`);
  }
  if (diff.length > 0)
    out.push({ path: first !== undefined ? [...at, first] : at, message: `${target} messages differ`, diff });
}

function checkWhere(
  out: Mismatch[],
  at: Path,
  target: string,
  cond: string,
  records: readonly unknown[],
): void {
  let expr: ReturnType<typeof compile>;
  try {
    expr = compile(cond);
  } catch (err) {
    out.push({
      path: at,
      message: `condition does not compile: ${err instanceof ExprError ? err.message : String(err)}`,
      diff: [],
    });
    return;
  }
  const failing: string[] = [];
  for (const r of records) {
    let ok: unknown;
    try {
      // On an error record `meta` is the failed record's metadata, as it was in the pipeline.
      const meta = (r as { meta?: unknown } | null)?.meta;
      ok = expr.evaluate(
        r,
        typeof meta === 'object' && meta !== null ? (meta as Record<string, unknown>) : undefined,
      );
    } catch (err) {
      ok = `error: ${(err as Error).message}`;
    }
    if (ok !== true)
      failing.push(`+ ${show(r)}${ok === false ? '' : `  (${typeof ok === 'string' ? ok : show(ok)})`}`);
  }
  if (failing.length > 0)
    out.push({
      path: at,
      message: `${target}: ${failing.length} of ${records.length} records fail \`${cond}\``,
      diff: failing.slice(0, 20),
    });
}

export function show(v: unknown): string {
  const s = JSON.stringify(v) ?? 'undefined';
  return s.length > 400 ? `${s.slice(0, 400)}…` : s;
}
