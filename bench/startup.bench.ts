/**
 * Start-up time of the commands people run most, against starting Node itself: `node -e 0` on the
 * same Node, measured in the same run and interleaved with the commands so drift in machine load
 * hits all of them. Each command goes through bin/sluice, as a user runs it from a checkout (with
 * Node's compile cache); one warm-up round first fills that cache.
 *
 *   validate   bin/sluice validate pipelines/demo.yaml
 *   test       bin/sluice test pipelines/demo.test.yaml
 *   run        bin/sluice run of generate (10 records) -> enrich -> stdout, --no-tui, fresh state
 *
 *   node bench/startup.bench.ts [rounds]      (10 by default)
 *
 * Prints the median wall time of each, its difference from the baseline and the ratio; the last
 * line is the same as one JSON object. The goal: each command within 0.3 s of the baseline.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';

const root = resolve(import.meta.dirname, '..');
const node = join(root, 'node_modules/.bin/node');
const sluice = join(root, 'bin/sluice');
const rounds = Number(process.argv[2] ?? 10);
const dir = mkdtempSync(join(tmpdir(), 'sluice-startup-bench-'));

const spec = join(dir, 'small.yaml');
writeFileSync(
  spec,
  [
    'version: 1',
    'name: small',
    'sources:',
    "  gen: { type: generate, count: 10, fields: { id: 'i', peso: 'round(300.0 + rand * 150.0, 1)' } }",
    'transforms:',
    "  enriched: { type: enrich, from: [gen], set: { meta: 'peso * 0.025' } }",
    'sinks:',
    '  out: { type: stdout, from: [enriched] }',
  ].join('\n'),
);

interface Command {
  name: string;
  file: string;
  /** Arguments for one round (a run needs a state directory of its own to generate anything). */
  args: (round: number) => string[];
}

const commands: Command[] = [
  { name: 'node -e 0', file: node, args: () => ['-e', '0'] },
  { name: 'validate', file: sluice, args: () => ['validate', 'pipelines/demo.yaml'] },
  { name: 'test', file: sluice, args: () => ['test', 'pipelines/demo.test.yaml'] },
  {
    name: 'run',
    file: sluice,
    args: (round) => ['run', spec, '--no-tui', '--state-dir', join(dir, `state-${round}`)],
  },
];

function once(c: Command, round: number): number {
  const t = performance.now();
  const r = spawnSync(c.file, c.args(round), { cwd: root, encoding: 'utf8' });
  const ms = performance.now() - t;
  if (r.status !== 0) throw new Error(`${c.name} exited ${r.status}: ${r.stderr}`);
  return ms;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

for (const c of commands) once(c, -1);
const times = new Map<string, number[]>(commands.map((c) => [c.name, []]));
for (let round = 0; round < rounds; round++) {
  for (const c of commands) times.get(c.name)?.push(once(c, round));
}
rmSync(dir, { recursive: true, force: true });

const baseline = median(times.get('node -e 0') ?? []);
const result: Record<string, { median_ms: number; over_baseline_ms: number; ratio: number }> = {};
console.log(`median wall time of ${rounds} rounds (after a warm-up round), Node ${process.version}`);
for (const c of commands) {
  const m = median(times.get(c.name) ?? []);
  const over = m - baseline;
  result[c.name] = {
    median_ms: Math.round(m),
    over_baseline_ms: Math.round(over),
    ratio: +(m / baseline).toFixed(2),
  };
  const extra =
    c.name === 'node -e 0'
      ? '(baseline)'
      : `+${over.toFixed(0)} ms over baseline, ${(m / baseline).toFixed(2)}x`;
  console.log(`${c.name.padEnd(10)} ${m.toFixed(0).padStart(6)} ms  ${extra}`);
}
console.log(JSON.stringify({ rounds, baseline_ms: Math.round(baseline), commands: result }));
