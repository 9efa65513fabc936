// Per-record cost of CEL expressions against plain JavaScript doing the same work.
//
//   node bench/expr.bench.ts [seconds-per-case]
//
// "copying ctx" evaluates the same compiled CEL through the library with a fresh context
// object per record ({...record, record, meta}); compile() instead resolves variables
// straight from the record, which is what the pipeline uses.

import { createEnvironment } from '../src/expr/environment.ts';
import { compile } from '../src/expr/index.ts';
import { uuidV5 } from '../src/expr/uuid.ts';

const seconds = Number(process.argv[2] ?? 1);

type Rec = {
  id: number;
  email: string;
  peso_medio: number;
  quantidade_animais: number;
  lote: string;
  [extra: string]: unknown;
};

function makeRecords(extraFields: number): Rec[] {
  return Array.from({ length: 1024 }, (_, i) => {
    const r: Rec = {
      id: i,
      email: `user${i}@example.com`,
      peso_medio: 380 + (i % 97) * 0.75,
      quantidade_animais: 10 + (i % 41),
      lote: `L-${i % 13}`,
    };
    for (let k = 0; k < extraFields; k++) r[`campo_${k}`] = k % 2 ? `v${i}` : i + k;
    return r;
  });
}
const meta = {
  partition_key: 'p-1',
  sequence_number: '49590338271490256608559692538361571095921575989136588898',
};

let sink: unknown;

function measure(records: Rec[], fn: (r: Rec) => unknown): number {
  const mask = records.length - 1;
  for (let i = 0; i < 200_000; i++) sink = fn(records[i & mask]);
  let n = 0;
  const start = process.hrtime.bigint();
  const budget = BigInt(Math.round(seconds * 1e9));
  let elapsed = 0n;
  do {
    for (let i = 0; i < 10_000; i++) sink = fn(records[(n + i) & mask]);
    n += 10_000;
    elapsed = process.hrtime.bigint() - start;
  } while (elapsed < budget);
  return (n * 1e9) / Number(elapsed);
}

const fmt = (x: number) => Math.round(x).toLocaleString('en-US').padStart(13);

const env = createEnvironment();
function copying(source: string) {
  const run = env.parse(source);
  run.check();
  return (r: object) => run({ ...r, record: r, meta });
}

const narrow = makeRecords(0);
const wide = makeRecords(40);

const cases = [
  {
    name: 'arithmetic',
    source: 'peso_medio * 0.025 * quantidade_animais',
    js: (r: Rec) => r.peso_medio * 0.025 * r.quantidade_animais,
    records: narrow,
  },
  {
    name: 'arith, 45 fields',
    source: 'peso_medio * 0.025 * quantidade_animais',
    js: (r: Rec) => r.peso_medio * 0.025 * r.quantidade_animais,
    records: wide,
  },
  {
    name: 'uuid_v5',
    source: 'uuid_v5(email)',
    js: (r: Rec) => uuidV5(r.email),
    records: narrow,
  },
  {
    name: 'string + meta',
    source: 'lote + "/" + meta.partition_key',
    js: (r: Rec) => `${r.lote}/${meta.partition_key}`,
    records: narrow,
  },
];

console.log(`node ${process.version}, ${seconds}s per case, evaluations per second\n`);
console.log(
  `${'case'.padEnd(16)}${'plain JS'.padStart(13)}${'CEL'.padStart(13)}${'JS/CEL'.padStart(8)}${'copying ctx'.padStart(14)}`,
);
for (const c of cases) {
  const expr = compile(c.source);
  const check = c.records.slice(0, 8).every((r) => {
    const a = expr.evaluate(r, meta);
    return c.name === 'uuid_v5'
      ? a === c.js(r)
      : a === c.js(r) || Math.abs(Number(a) - Number(c.js(r))) < 1e-9;
  });
  if (!check) throw new Error(`${c.name}: CEL and JS disagree`);
  const js = measure(c.records, c.js);
  const cel = measure(c.records, (r) => expr.evaluate(r, meta));
  const copy = measure(c.records, copying(c.source));
  console.log(
    `${c.name.padEnd(16)}${fmt(js)}${fmt(cel)}${(js / cel).toFixed(1).padStart(7)}x${fmt(copy).padStart(14)}`,
  );
}
if (sink === Symbol.for('never')) console.log(sink);
