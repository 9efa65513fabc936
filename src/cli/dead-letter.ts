/**
 * `sluice dead-letter ls|replay <spec>`: what failed for good in a pipeline whose error outputs
 * were not wired, and a way to send it again once the cause is fixed (a table column widened, a
 * bad row corrected in the file). Replay feeds the records into the stage they failed in, with
 * the rest of the pipeline downstream of it; the sources do not run.
 */
import { mkdirSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { writeAtomic } from '../runtime/checkpoint.ts';
import { type DeadLetterFile, listDeadLetterFiles, readDeadLetters } from '../runtime/dead-letter.ts';
import { Pipeline } from '../runtime/engine.ts';
import { createLogger, defaultLogFormat, isLogLevel } from '../runtime/log.ts';
import type { ErrorValue, RecordInit } from '../runtime/record.ts';
import { validate } from '../spec/plugins.ts';
import type { PipelineSpec } from '../spec/validate.ts';
import { colorEnabled, formatHuman } from './format.ts';
import { EXIT_FAILED, EXIT_RECORD_ERRORS, exitCode } from './run.ts';

export interface DeadLetterFlags {
  stateDir: string;
  format?: 'human' | 'json';
  stage?: string;
  logLevel?: string;
}

/** Loads and validates a spec; prints its diagnostics and returns undefined when it is invalid. */
async function loadSpec(file: string): Promise<PipelineSpec | undefined> {
  const text = await readFile(file, 'utf8');
  const { spec, diagnostics } = await validate(file, { text });
  if (!spec)
    process.stderr.write(formatHuman(diagnostics, new Map([[file, text]]), colorEnabled(process.stderr)));
  return spec;
}

interface StageSummary {
  stage: string;
  files: string[];
  records: number;
  /** Letters whose value was cut to fit: kept, never replayed. */
  truncated: number;
  unreadable: number;
  first?: string;
  last?: string;
  reasons: { reason: string; count: number }[];
}

async function summarise(files: DeadLetterFile[]): Promise<StageSummary[]> {
  const byStage = new Map<string, StageSummary & { counts: Map<string, number> }>();
  for (const f of files) {
    let s = byStage.get(f.stage);
    if (!s) {
      s = {
        stage: f.stage,
        files: [],
        records: 0,
        truncated: 0,
        unreadable: 0,
        reasons: [],
        counts: new Map(),
      };
      byStage.set(f.stage, s);
    }
    s.files.push(f.path);
    for await (const l of readDeadLetters(f.path)) {
      if ('unreadable' in l) {
        s.unreadable++;
        continue;
      }
      s.records++;
      if (l.truncated) s.truncated++;
      if (!s.first || l.at < s.first) s.first = l.at;
      if (!s.last || l.at > s.last) s.last = l.at;
      s.counts.set(l.reason, (s.counts.get(l.reason) ?? 0) + 1);
    }
  }
  return [...byStage.values()].map(({ counts, ...s }) => ({
    ...s,
    reasons: [...counts.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 5)
      .map(([reason, count]) => ({ reason, count })),
  }));
}

export async function deadLetterList(file: string, flags: DeadLetterFlags): Promise<number> {
  const spec = await loadSpec(file);
  if (!spec) return EXIT_FAILED;
  const files = (await listDeadLetterFiles(flags.stateDir, spec.name)).filter(
    (f) => !flags.stage || f.stage === flags.stage,
  );
  const stages = await summarise(files);
  if (flags.format === 'json') {
    process.stdout.write(`${JSON.stringify({ pipeline: spec.name, stages }, null, 2)}\n`);
    return 0;
  }
  if (stages.length === 0) {
    process.stdout.write(`no dead letters for pipeline ${spec.name} under ${flags.stateDir}\n`);
    return 0;
  }
  const lines: string[] = [];
  for (const s of stages) {
    lines.push(
      `${s.stage}: ${s.records} record${s.records === 1 ? '' : 's'} in ${s.files.length} file${s.files.length === 1 ? '' : 's'}, ${s.first} .. ${s.last}${s.truncated ? ` (${s.truncated} cut to fit: not replayable)` : ''}${s.unreadable ? ` (${s.unreadable} unreadable lines)` : ''}`,
    );
    for (const r of s.reasons) lines.push(`  ${String(r.count).padStart(7)}  ${r.reason}`);
    for (const f of s.files) lines.push(`  ${f}`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}

/** A letter back into a record for the stage it failed in. */
function toRecord(l: ErrorValue): RecordInit {
  return {
    value: l.value,
    meta: l.meta ?? {},
    key: l.key,
    time: l.time,
    partition: l.partition,
    position: l.position,
    size: Buffer.byteLength(JSON.stringify(l.value) ?? ''),
  };
}

export async function deadLetterReplay(file: string, flags: DeadLetterFlags): Promise<number> {
  const spec = await loadSpec(file);
  if (!spec) return EXIT_FAILED;
  const all = await listDeadLetterFiles(flags.stateDir, spec.name);
  const stages = [...new Set(all.map((f) => f.stage))].filter((s) => !flags.stage || s === flags.stage);
  if (stages.length === 0) {
    process.stdout.write(
      `no dead letters to replay for pipeline ${spec.name}${flags.stage ? ` stage ${flags.stage}` : ''}\n`,
    );
    return 0;
  }
  let worst = 0;
  for (const stage of stages) {
    const code = await replayStage(
      spec,
      stage,
      all.filter((f) => f.stage === stage),
      flags,
    );
    worst = Math.max(worst, code === EXIT_FAILED ? 10 : code);
  }
  return worst === 10 ? EXIT_FAILED : worst;
}

async function replayStage(
  spec: PipelineSpec,
  stage: string,
  files: DeadLetterFile[],
  flags: DeadLetterFlags,
): Promise<number> {
  if (!spec.stages.some((s) => s.name === stage)) {
    process.stderr.write(`sluice: dead letters of '${stage}' kept: the spec has no stage of that name\n`);
    return EXIT_FAILED;
  }
  const records: RecordInit[] = [];
  const kept = new Map<string, ErrorValue[]>();
  for (const f of files) {
    const keep: ErrorValue[] = [];
    for await (const l of readDeadLetters(f.path)) {
      if ('unreadable' in l) continue; // a torn last line of a crashed run: nothing to replay
      if (l.truncated) keep.push(l);
      else records.push(toRecord(l));
    }
    kept.set(f.path, keep);
  }
  mkdirSync(flags.stateDir, { recursive: true });
  const level = flags.logLevel ?? 'warn';
  const log = createLogger({
    level: isLogLevel(level) ? level : 'warn',
    format: defaultLogFormat(process.stderr),
    base: { pipeline: spec.name },
    color: colorEnabled(process.stderr),
  });
  const pipeline = new Pipeline(spec, { stateDir: flags.stateDir, log, inject: [{ stage, records }] });
  const result = await pipeline.run();
  const code = exitCode(result);
  if (code === EXIT_FAILED) {
    process.stderr.write(
      `sluice: replay of ${stage} failed${result.error ? `: ${result.error}` : ''}; its dead letters are kept\n`,
    );
    return code;
  }
  // Every record was delivered or failed again into a new dead-letter file: the old files go.
  for (const f of files) {
    const keep = kept.get(f.path) ?? [];
    if (keep.length === 0) await rm(f.path, { force: true });
    else await writeAtomic(f.path, keep.map((l) => `${JSON.stringify(l)}\n`).join(''));
  }
  const again = result.errorRecords;
  const keptCount = [...kept.values()].reduce((n, k) => n + k.length, 0);
  process.stdout.write(
    `${stage}: replayed ${records.length} record${records.length === 1 ? '' : 's'}: ${records.length - Math.min(again, records.length)} delivered, ${again} failed again${again ? ` (${result.deadLettered} back in dead letters)` : ''}${keptCount ? `; ${keptCount} cut to fit kept, not replayed` : ''}\n`,
  );
  return again > 0 ? EXIT_RECORD_ERRORS : 0;
}
