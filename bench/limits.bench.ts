// Per-record cost of the input limits (size and depth) against JSON.parse alone.
//
//   node bench/limits.bench.ts [seconds-per-case]
//
// A typical record is a flat 10-field feedlot reading; a nested one has a 3-level object
// inside. decodeJson = size check + JSON.parse + depth walk; the baseline is JSON.parse.

import { DEFAULT_MAX_DEPTH, decodeJson, deeperThan, inputLimits } from '../src/runtime/limits.ts';

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

function measure(name: string, texts: string[], fn: (t: string) => unknown): number {
  let n = 0;
  let sink = 0;
  // Warm up so both cases run optimised code.
  for (let k = 0; k < 200_000; k++) sink += fn(texts[k & 1023]) ? 1 : 0;
  const end = performance.now() + seconds * 1000;
  const start = performance.now();
  while (performance.now() < end) {
    for (let k = 0; k < 10_000; k++) sink += fn(texts[(n + k) & 1023]) ? 1 : 0;
    n += 10_000;
  }
  const ns = ((performance.now() - start) * 1e6) / n;
  console.log(`${name.padEnd(34)} ${ns.toFixed(0).padStart(6)} ns/record  (${sink > 0 ? 'ok' : '-'})`);
  return ns;
}

for (const [label, make] of [
  ['flat 10-field record', flat],
  ['record with a nested object', nested],
] as const) {
  const texts = Array.from({ length: 1024 }, (_, i) => make(i));
  const values = texts.map((t) => JSON.parse(t) as unknown);
  console.log(`\n${label} (${texts[0].length} bytes)`);
  const base = measure('JSON.parse', texts, (t) => JSON.parse(t));
  const full = measure('decodeJson (size + parse + depth)', texts, (t) => decodeJson(t, limits).ok);
  let k = 0;
  measure('depth walk alone (parsed value)', texts, () => !deeperThan(values[k++ & 1023], DEFAULT_MAX_DEPTH));
  console.log(`ratio decodeJson / JSON.parse: ${(full / base).toFixed(2)}`);
}
