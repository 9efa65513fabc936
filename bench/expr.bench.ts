// Per-evaluation cost of CEL expressions, compiled and interpreted, against hand-written
// JavaScript closures doing the same work (the baseline uses no sluice code: its uuid v5 is
// node:crypto's one-shot SHA-1, its round and date formatting are written out here).
//
//   node bench/expr.bench.ts [seconds-per-case]
//
// Each line: ns per evaluation for the closure, the compiled CEL and the interpreter (median of
// interleaved rounds), and the ratio compiled / closure. The last line is one JSON object with
// every figure.

import { hash } from 'node:crypto';
import { compile } from '../src/expr/index.ts';

const seconds = Number(process.argv[2] ?? 1);

interface Rec {
  cod_cliente: string;
  id_lote: string;
  id_curral: string;
  data: string;
  peso_medio: number;
  quantidade_animais: number;
  i: bigint;
  rand: number;
}

const records: Rec[] = Array.from({ length: 1024 }, (_, i) => ({
  cod_cliente: String((i % 2) + 1),
  id_lote: `L${(i % 97) + 1}`,
  id_curral: `C${(i % 40) + 1}`,
  data: `2024-03-${String((i % 28) + 1).padStart(2, '0')} ${String(i % 24).padStart(2, '0')}:11:12`,
  peso_medio: 380 + (i % 97) * 0.75,
  quantidade_animais: 10 + (i % 41),
  i: BigInt(i * 7919),
  rand: ((i * 2654435761) % 4294967296) / 4294967296,
}));

const NAMESPACE = Buffer.from('dcd8fece294342bda2003d9bc10fdc51', 'hex');
function uuidV5(name: string): string {
  const h = hash('sha1', Buffer.concat([NAMESPACE, Buffer.from(name, 'utf8')]), 'hex');
  const v = ((Number.parseInt(h[16], 16) & 0x3) | 0x8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${v}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}
function round(x: number, d: number): number {
  return Math.sign(x) * Number(`${Math.round(Number(`${Math.abs(x)}e${d}`))}e-${d}`);
}

const cases: { name: string; source: string; js: (r: Rec) => unknown }[] = [
  {
    name: 'fazenda ternary',
    source: 'cod_cliente == "1" ? "fazenda_um" : "fazenda_dois"',
    js: (r) => (r.cod_cliente === '1' ? 'fazenda_um' : 'fazenda_dois'),
  },
  {
    name: 'arithmetic',
    source: 'peso_medio * 0.025 * quantidade_animais',
    js: (r) => r.peso_medio * 0.025 * r.quantidade_animais,
  },
  {
    name: 'round(…, 3)',
    source: 'round(peso_medio * 0.025 * quantidade_animais, 3)',
    js: (r) => round(r.peso_medio * 0.025 * r.quantidade_animais, 3),
  },
  {
    name: 'format_time',
    source: 'format_time(data, "yyyy/MM/dd")',
    js: (r) => `${r.data.slice(0, 4)}/${r.data.slice(5, 7)}/${r.data.slice(8, 10)}`,
  },
  {
    name: 'partition',
    source: '(cod_cliente == "1" ? "fazenda_um" : "fazenda_dois") + "/" + format_time(data, "yyyy/MM/dd")',
    js: (r) =>
      `${r.cod_cliente === '1' ? 'fazenda_um' : 'fazenda_dois'}/${r.data.slice(0, 4)}/${r.data.slice(5, 7)}/${r.data.slice(8, 10)}`,
  },
  {
    name: 'generator field',
    source: '"C" + string(int(rand * 40.0) + 1)',
    js: (r) => `C${Math.trunc(r.rand * 40) + 1}`,
  },
  {
    name: 'generator lote',
    source: '"L" + string(i / 50 + 1)',
    js: (r) => `L${r.i / 50n + 1n}`,
  },
  {
    name: 'uuid_v5',
    source: 'uuid_v5(cod_cliente + "|" + id_lote + "|" + data)',
    js: (r) => uuidV5(`${r.cod_cliente}|${r.id_lote}|${r.data}`),
  },
];

let sink: unknown;

type Fn = (r: Rec) => unknown;

/** ns per evaluation of `fn` over the records, for about `budgetNs`. */
function nsPerEval(fn: Fn, budgetNs: number): number {
  const mask = records.length - 1;
  let n = 0;
  const start = process.hrtime.bigint();
  const budget = BigInt(Math.round(budgetNs));
  let elapsed = 0n;
  do {
    for (let i = 0; i < 10_000; i++) sink = fn(records[(n + i) & mask]);
    n += 10_000;
    elapsed = process.hrtime.bigint() - start;
  } while (elapsed < budget);
  return Number(elapsed) / n;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

const runs = cases.map((c) => {
  const compiled = compile(c.source);
  const interpreted = compile(c.source, { engine: 'interpreter' });
  for (const r of records.slice(0, 16)) {
    const want = c.js(r);
    const got = compiled.evaluate(r);
    const same = typeof want === 'bigint' ? BigInt(got as number) === want : got === want;
    if (!same) throw new Error(`${c.name}: CEL gives ${String(got)}, the closure ${String(want)}`);
  }
  const fns: Fn[] = [c.js, (r) => compiled.evaluate(r), (r) => interpreted.evaluate(r)];
  return { name: c.name, fns, ns: fns.map((): number[] => []) };
});

// Every function goes through the one call site in nsPerEval: warm them all first, so that
// none is measured while that site still inlines a single target (the first case would be).
for (const run of runs) for (const fn of run.fns) nsPerEval(fn, 50e6);
// The machine may be busy: rounds interleave the three ways of each case, and the median
// of the rounds is reported.
const ROUNDS = 5;
for (let round = 0; round < ROUNDS; round++) {
  for (const run of runs) {
    for (let i = 0; i < run.fns.length; i++) run.ns[i].push(nsPerEval(run.fns[i], (seconds * 1e9) / ROUNDS));
  }
}

const col = (s: string | number, w: number) => String(s).padStart(w);
console.log(`node ${process.version}, ${seconds}s per case, median of ${ROUNDS} rounds, ns per evaluation\n`);
console.log(
  `${'case'.padEnd(18)}${col('closure', 9)}${col('compiled', 10)}${col('interp.', 9)}${col('ratio', 8)}`,
);
const out: Record<string, unknown> = {};
for (const run of runs) {
  const [js, cel, interp] = run.ns.map(median);
  console.log(
    `${run.name.padEnd(18)}${col(js.toFixed(0), 9)}${col(cel.toFixed(0), 10)}${col(interp.toFixed(0), 9)}${col(`${(cel / js).toFixed(1)}x`, 8)}`,
  );
  out[run.name] = {
    closure_ns: Math.round(js),
    compiled_ns: Math.round(cel),
    interpreter_ns: Math.round(interp),
  };
}
console.log(JSON.stringify(out));
if (sink === Symbol.for('never')) console.log(sink);
