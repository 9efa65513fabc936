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
 * Prints the median wall time of each, its difference from the baseline and the ratio, and the
 * median CPU time (user + system, from GNU time when /usr/bin/time exists): on a busy machine wall
 * time grows with the load, CPU time much less. The last line is the same as one JSON object.
 * The goal: each command within 0.3 s of the baseline.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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

const GNU_TIME = '/usr/bin/time';
const cpuToo = existsSync(GNU_TIME);

/** Wall and CPU milliseconds of one run (CPU NaN without GNU time); every command alike goes through it. */
function once(c: Command, round: number): { wall: number; cpu: number } {
  const [file, args] = cpuToo
    ? [GNU_TIME, ['-f', 'cpu %U %S', c.file, ...c.args(round)]]
    : [c.file, c.args(round)];
  const t = performance.now();
  // A start that hangs is a finding, not a figure: give up on it after a minute.
  const r = spawnSync(file, args, { cwd: root, encoding: 'utf8', timeout: 60_000 });
  const wall = performance.now() - t;
  if (r.status !== 0) throw new Error(`${c.name} exited ${r.status ?? r.signal}: ${r.stderr}`);
  const m = /^cpu ([\d.]+) ([\d.]+)$/m.exec(r.stderr);
  return { wall, cpu: m ? (Number(m[1]) + Number(m[2])) * 1000 : Number.NaN };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

for (const c of commands) once(c, -1);
const times = new Map<string, { wall: number; cpu: number }[]>(commands.map((c) => [c.name, []]));
for (let round = 0; round < rounds; round++) {
  for (const c of commands) times.get(c.name)?.push(once(c, round));
}
rmSync(dir, { recursive: true, force: true });

const wallOf = (name: string) => median((times.get(name) ?? []).map((t) => t.wall));
const cpuOf = (name: string) => median((times.get(name) ?? []).map((t) => t.cpu));
const baseline = wallOf('node -e 0');
const baselineCpu = cpuOf('node -e 0');
const result: Record<
  string,
  { median_ms: number; over_baseline_ms: number; ratio: number; cpu_ms?: number }
> = {};
console.log(`median of ${rounds} rounds (after a warm-up round), Node ${process.version}`);
for (const c of commands) {
  const wall = wallOf(c.name);
  const cpu = cpuOf(c.name);
  const over = wall - baseline;
  result[c.name] = {
    median_ms: Math.round(wall),
    over_baseline_ms: Math.round(over),
    ratio: +(wall / baseline).toFixed(2),
    ...(cpuToo ? { cpu_ms: Math.round(cpu) } : {}),
  };
  const vs =
    c.name === 'node -e 0'
      ? '(baseline)'
      : `+${over.toFixed(0)} ms over baseline, ${(wall / baseline).toFixed(2)}x`;
  const cpuText = cpuToo
    ? `   cpu ${cpu.toFixed(0).padStart(5)} ms (+${(cpu - baselineCpu).toFixed(0)})`
    : '';
  console.log(`${c.name.padEnd(10)} wall ${wall.toFixed(0).padStart(5)} ms  ${vs.padEnd(36)}${cpuText}`);
}
console.log(JSON.stringify({ rounds, baseline_ms: Math.round(baseline), commands: result }));
