/**
 * `sluice test [files or globs]`: runs the cases of pipeline test files (see src/testing/) and
 * reports each, with a diff that points at the line of the expectation that failed. `--update`
 * fills the expectations of cases that have none with what they produce, and says so.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import type { Diagnostic, Span } from '../spec/diagnostics.ts';
import { check, type Mismatch } from '../testing/expect.ts';
import { loadTest } from '../testing/load.ts';
import { type CaseRun, InputError, loadPipeline, runCase, type Written } from '../testing/run.ts';
import type { TestCase, TestExpectation } from '../testing/schema.ts';
import { colorEnabled, formatGithub, formatHuman } from './format.ts';

export interface TestFlags {
  format: 'human' | 'github';
  update?: boolean;
}

interface Report {
  passed: number;
  failed: number;
  updated: number;
}

export async function testCommand(files: string[], flags: TestFlags): Promise<number> {
  const total: Report = { passed: 0, failed: 0, updated: 0 };
  for (const file of files) {
    const r = await testFile(file, flags);
    total.passed += r.passed;
    total.failed += r.failed;
    total.updated += r.updated;
  }
  const n = total.passed + total.failed + total.updated;
  process.stderr.write(
    `${n} case${n === 1 ? '' : 's'} in ${files.length} file${files.length === 1 ? '' : 's'}: ${total.passed} passed, ${total.failed} failed${total.updated ? `, ${total.updated} written by --update` : ''}\n`,
  );
  return total.failed > 0 ? 1 : 0;
}

async function testFile(file: string, flags: TestFlags): Promise<Report> {
  const report: Report = { passed: 0, failed: 0, updated: 0 };
  const text = await readFile(file, 'utf8');
  const { test, loaded, diagnostics } = loadTest(file, text);
  const fail = (diags: Diagnostic[], sources: Map<string, string>) => {
    process.stdout.write(
      flags.format === 'github'
        ? formatGithub(diags)
        : formatHuman(diags, sources, colorEnabled(process.stdout)),
    );
    report.failed++;
    return report;
  };
  if (!test) return fail(diagnostics, new Map([[file, text]]));
  const pipeline = await loadPipeline(file, test);
  if (!pipeline.spec) {
    const at = loaded.locate(['pipeline']);
    const own: Diagnostic = {
      file,
      severity: 'error',
      code: 'schema-value',
      message: pipeline.readError
        ? `cannot read ${pipeline.file}: ${pipeline.readError}`
        : `${pipeline.file} is not a valid spec (with this test's env)`,
      ...at,
    };
    return fail(
      [own, ...pipeline.diagnostics],
      new Map([
        [file, text],
        [pipeline.file, pipeline.text ?? ''],
      ]),
    );
  }
  const updates: { index: number; expect: Record<string, TestExpectation> }[] = [];
  for (const [index, c] of test.cases.entries()) {
    const base = ['cases', index];
    let mismatches: Mismatch[];
    let run: CaseRun | undefined;
    try {
      run = await runCase(file, test, pipeline.spec, c);
      mismatches = run.error
        ? [{ path: [...base, 'name'], message: `the pipeline failed: ${run.error}`, diff: [] }]
        : check(c, base, run);
    } catch (err) {
      if (!(err instanceof InputError)) throw err;
      mismatches = [{ path: [...base, ...err.path], message: err.message, diff: [] }];
    }
    if (flags.update && run && !run.error && Object.keys(c.expect ?? {}).length === 0) {
      const expect = snapshot(run);
      updates.push({ index, expect });
      report.updated++;
      process.stdout.write(`UPDATE ${file} › ${c.name}: ${describe(expect)}\n`);
      continue;
    }
    if (mismatches.length === 0) {
      report.passed++;
      if (flags.format === 'human') process.stdout.write(`PASS ${file} › ${c.name}\n`);
      continue;
    }
    report.failed++;
    for (const m of mismatches) printMismatch(file, c, loaded.locate(m.path), m, flags.format);
  }
  if (updates.length > 0) await writeUpdates(file, text, updates);
  return report;
}

function printMismatch(file: string, c: TestCase, at: Span, m: Mismatch, format: TestFlags['format']): void {
  if (format === 'github') {
    const esc = (s: string) => s.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
    const prop = (s: string) => esc(s).replace(/:/g, '%3A').replace(/,/g, '%2C');
    const body = [m.message, ...m.diff].join('\n');
    process.stdout.write(
      `::error file=${prop(file)},line=${at.line},col=${at.column},endLine=${at.endLine},endColumn=${at.endColumn},title=${prop(`sluice test: ${c.name}`)}::${esc(body)}\n`,
    );
    return;
  }
  const lines = [`FAIL ${file} › ${c.name}`, `  ${file}:${at.line}:${at.column}: ${m.message}`];
  for (const d of m.diff) lines.push(`    ${d}`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

/** Expectations that hold exactly what the case produced: every sink (nothing is `count: 0`) and error output. */
function snapshot(run: CaseRun): Record<string, TestExpectation> {
  const expect: Record<string, TestExpectation> = {};
  for (const sink of [...run.sinks].sort()) {
    const writes = run.writes.get(sink) ?? [];
    expect[sink] = writes.length > 0 ? expectationOf(writes) : { count: 0 };
  }
  for (const [output, values] of run.outputs) {
    if (!output.endsWith('.errors') || values.length === 0) continue;
    expect[output] = { count: values.length, records: values };
  }
  return expect;
}

function expectationOf(writes: readonly Written[]): TestExpectation {
  const kind = writes[0]?.kind;
  if (kind === 'object')
    return {
      objects: writes.flatMap((w) =>
        w.kind === 'object'
          ? [
              {
                key: w.key,
                ...(w.content_encoding ? { content_encoding: w.content_encoding } : {}),
                records: w.records,
              },
            ]
          : [],
      ),
    };
  if (kind === 'row') return { rows: writes.flatMap((w) => (w.kind === 'row' ? [w.row] : [])) };
  if (kind === 'message')
    return {
      messages: writes.flatMap((w) => (w.kind === 'message' ? [(({ kind: _k, ...m }) => m)(w)] : [])),
    };
  return { records: writes.flatMap((w) => (w.kind === 'record' ? [w.value] : [])) };
}

function describe(expect: Record<string, TestExpectation>): string {
  return Object.entries(expect)
    .map(([k, e]) => {
      if (e.objects) return `${k}: ${e.objects.length} objects`;
      if (e.rows) return `${k}: ${e.rows.length} rows`;
      if (e.messages) return `${k}: ${e.messages.length} messages`;
      return `${k}: ${e.records?.length ?? e.count ?? 0} records`;
    })
    .join(', ');
}

/** Writes the new expectations into the file, keeping its comments and layout elsewhere. */
async function writeUpdates(
  file: string,
  text: string,
  updates: { index: number; expect: Record<string, TestExpectation> }[],
): Promise<void> {
  const doc = parseDocument(text);
  for (const u of updates) doc.setIn(['cases', u.index, 'expect'], doc.createNode(u.expect));
  await writeFile(file, doc.toString({ lineWidth: 0 }));
  process.stdout.write(
    `wrote ${updates.length} case${updates.length === 1 ? '' : 's'}' expectations into ${file}\n`,
  );
}
