// biome-ignore-all lint/suspicious/noTemplateCurlyInString: specs are full of ${VAR} references
// Validation time of a 5,000-line spec against the time to merely parse the same text.
//
//   node bench/validate.bench.ts [runs]
//
// The spec repeats a realistic chain (generate → enrich → filter → dedup → partition → file,
// s3 and kinesis sinks) with distinct names until it passes 5,000 lines, so every check runs:
// YAML with positions and ${VAR} substitution, the schema of each stage type, ~10 CEL
// expressions and 2 templates per chain, the graph and the AWS limit checks.
// Baseline: `yaml.parse` of the same text (no positions, no checks).

import { parse, parseDocument } from 'yaml';
import { validateText } from '../src/spec/validate.ts';

const runs = Number(process.argv[2] ?? 9);
const TARGET_LINES = 5_000;

function chain(i: number): string {
  return `  src_${i}:
    type: generate
    count: \${COUNT_${i}:-1000}
    seed: ${i}
    fields:
      id_curral: '"C" + string(int(rand * 40.0) + 1)'
      peso_medio: 'round(300.0 + rand * 150.0, 1)'
      quantidade_animais: 'int(rand * 120.0) + 20'
      data: 'format_time(1710892800000 + i * 60000, "yyyy-MM-dd HH:mm:ss")'
      cod_cliente: 'string(int(rand * 2.0) + 1)'
`;
}

function transforms(i: number): string {
  return `  enriched_${i}:
    type: enrich
    from: [src_${i}]
    set:
      fazenda: 'cod_cliente == "1" ? "fazenda_um" : "fazenda_dois"'
      consumo_meta: 'round(peso_medio * 0.025 * quantidade_animais, 3)'
      id: 'uuid_v5(cod_cliente + "|" + id_curral + "|" + data)'
  heavy_${i}:
    type: filter
    from: [enriched_${i}]
    where: 'consumo_meta > 100.0'
  unique_${i}:
    type: dedup
    from: [heavy_${i}]
    key: id
    ttl: 1h
    max_keys: 100000
  by_day_${i}:
    type: partition
    from: [unique_${i}]
    by: 'fazenda + "/" + format_time(data, "yyyy/MM/dd")'
`;
}

function sinks(i: number): string {
  return `  lake_${i}:
    type: file
    from: [by_day_${i}]
    dir: \${OUT:-./out}
    path: 'lake_${i}/{partition}/{first_position}-{last_position}{ext}'
    buffer: { max_records: 20000, max_age: 5s }
  archive_${i}:
    type: s3
    from: [by_day_${i}]
    bucket: archive
    key: 'a_${i}/{partition}/{batch_start}-{seq}{ext}'
    part_size: 8MiB
  stream_${i}:
    type: kinesis
    from: [enriched_${i}.errors]
    stream: errors_${i}
    partition_key: 'string(id_curral)'
    buffer: { max_records: 500, max_age: 200ms }
`;
}

function buildSpec(): { text: string; chains: number } {
  const head = 'version: 1\nname: bench\n';
  const linesPer = (chain(0) + transforms(0) + sinks(0)).split('\n').length - 1;
  const chains = Math.ceil((TARGET_LINES - 5) / linesPer);
  const ids = Array.from({ length: chains }, (_, i) => i);
  const text =
    head +
    `sources:\n${ids.map(chain).join('')}` +
    `transforms:\n${ids.map(transforms).join('')}` +
    `sinks:\n${ids.map(sinks).join('')}`;
  return { text, chains };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

interface Timing {
  /** Wall-clock milliseconds, median. */
  wall: number;
  /** CPU milliseconds of this process (user + system), median: less sensitive to a busy machine. */
  cpu: number;
}

function once(fn: () => unknown): Timing {
  const c = process.cpuUsage();
  const t = performance.now();
  fn();
  const wall = performance.now() - t;
  const used = process.cpuUsage(c);
  return { wall, cpu: (used.user + used.system) / 1000 };
}

/** One warm-up run, then the median of `n`. */
function time(fn: () => unknown, n: number): Timing {
  once(fn);
  const all = Array.from({ length: n }, () => once(fn));
  return { wall: median(all.map((x) => x.wall)), cpu: median(all.map((x) => x.cpu)) };
}

const { text, chains } = buildSpec();
const lines = text.split('\n').length - 1;
const env = {};

// The first validation in a process also warms up the YAML parser and compiles each stage type's
// schema validator: what one `sluice validate` run pays.
const cold = once(() => validateText('bench.yaml', text, env));

// Correctness first: the spec is valid and complete, or the figure means nothing.
const check = validateText('bench.yaml', text, env);
const errors = check.diagnostics.filter((d) => d.severity === 'error');
if (errors.length > 0 || !check.spec) {
  console.error(errors.slice(0, 5));
  throw new Error('the bench spec does not validate');
}
const stages = check.spec.stages.length;

const validate = time(() => validateText('bench.yaml', text, env), runs);
const yamlParse = time(() => parse(text), runs);
const yamlDocument = time(() => parseDocument(text), runs);

const ms = (x: number) => `${x.toFixed(1).padStart(7)} ms`;
const row = (label: string, t: Timing) =>
  console.log(`${label.padEnd(72)} ${ms(t.wall)}  (cpu ${ms(t.cpu)})`);
console.log(
  `spec: ${lines} lines, ${(text.length / 1024).toFixed(0)} KiB, ${chains} chains, ${stages} stages`,
);
console.log(`median of ${runs} runs after a warm-up run, wall clock (and CPU time of the process)`);
row('first validation in a fresh process (one `sluice validate` run)', cold);
row('validateText: parse with positions, schema, expressions, graph, limits', validate);
row('baseline yaml.parse: to plain JS, no positions, no checks', yamlParse);
row('baseline yaml.parseDocument: syntax tree with ranges, no checks', yamlDocument);
console.log(
  `ratio validateText / yaml.parse: ${(validate.wall / yamlParse.wall).toFixed(2)}x wall, ${(validate.cpu / yamlParse.cpu).toFixed(2)}x cpu`,
);
