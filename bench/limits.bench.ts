// Per-record cost of the input limits (size and depth) against JSON.parse alone.
//
//   node bench/limits.bench.ts [seconds-per-case]
//
// A typical record is a flat 10-field feedlot reading; a nested one has a 3-level object
// inside. decodeJson = size check + JSON.parse + depth check (a bracket count on the text,
// and the walk over the parsed value only when the text has more brackets than max_depth);
// the baseline is JSON.parse alone.

import {
  DEFAULT_MAX_DEPTH,
  decodeJson,
  deeperThan,
  fewBrackets,
  inputLimits,
} from '../src/runtime/limits.ts';

const seconds = Number(process.argv[2] ?? 1);
const limits = inputLimits({});

function flat(i: number): string {
  return JSON.stringify({
    cod_cliente: String(1 + (i % 2)),
    id_lote: `L-${i % 13}`,
    data: '2024-03-20T10:30:45Z',
    peso_medio: 380 + (i % 97) * 0.75,
    quantidade_animais: 10 + (i % 41),
    consumo: 12.5 + (i % 7),
    racao: 'engorda',
    baia: i % 40,
    ativo: i % 3 !== 0,
    obs: null,
  });
}

function nested(i: number): string {
  const v = JSON.parse(flat(i)) as Record<string, unknown>;
  v.origem = { fazenda: { nome: 'um', local: { uf: 'MT', cidade: 'Sorriso' } }, tags: ['a', 'b'] };
  return JSON.stringify(v);
}

/** ns per call of `fn` over `texts`, for about `seconds`. */
function measure(texts: string[], fn: (t: string) => unknown, seconds: number): number {
  let n = 0;
  let sink = 0;
  const end = performance.now() + seconds * 1000;
  const start = performance.now();
  while (performance.now() < end) {
    for (let k = 0; k < 10_000; k++) sink += fn(texts[(n + k) & 1023]) ? 1 : 0;
    n += 10_000;
  }
  if (sink < 0) console.log(sink);
  return ((performance.now() - start) * 1e6) / n;
}

const ROUNDS = 7;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

for (const [label, make] of [
  ['flat 10-field record', flat],
  ['record with a nested object', nested],
] as const) {
  const texts = Array.from({ length: 1024 }, (_, i) => make(i));
  const values = texts.map((t) => JSON.parse(t) as unknown);
  let k = 0;
  const cases: [string, (t: string) => unknown][] = [
    ['JSON.parse', (t) => JSON.parse(t)],
    ['decodeJson (size + parse + depth)', (t) => decodeJson(t, limits).ok],
    ['bracket count alone (text)', (t) => fewBrackets(t, DEFAULT_MAX_DEPTH)],
    ['depth walk alone (parsed value)', () => !deeperThan(values[k++ & 1023], DEFAULT_MAX_DEPTH)],
  ];
  // Warm up, then interleave the cases round by round so a busy machine slows them alike.
  for (const [, fn] of cases) measure(texts, fn, 0.2);
  const times = cases.map(() => [] as number[]);
  for (let r = 0; r < ROUNDS; r++) {
    for (const [i, [, fn]] of cases.entries()) times[i].push(measure(texts, fn, seconds / ROUNDS));
  }
  console.log(`\n${label} (${texts[0].length} bytes), median of ${ROUNDS} rounds`);
  for (const [i, [name]] of cases.entries()) {
    console.log(`${name.padEnd(34)} ${median(times[i]).toFixed(0).padStart(6)} ns/record`);
  }
  console.log(`ratio decodeJson / JSON.parse: ${(median(times[1]) / median(times[0])).toFixed(2)}`);
}
