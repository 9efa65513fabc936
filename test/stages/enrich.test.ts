import { describe, expect, it } from 'vitest';
import { enrichTransform } from '../../src/stages/transforms/enrich.ts';
import { record, transform } from '../runtime/stage-harness.ts';

describe('enrich', () => {
  it('sets fields in order (each sees the ones before), renames and removes', async () => {
    const process = transform(enrichTransform, {
      set: { total: 'price * double(qty)', label: 'name + ":" + string(total)', origin: 'meta.file' },
      rename: { name: 'nome' },
      remove: ['qty'],
    });
    const input = { name: 'boi', price: 2.5, qty: 4 };
    const run = await process([record(input, { meta: { file: 'a.ndjson' } })]);
    expect(run.pushed[0].value).toEqual({
      nome: 'boi',
      price: 2.5,
      total: 10,
      label: 'boi:10',
      origin: 'a.ndjson',
    });
    // The input object is not modified: a fan-out branch may share it.
    expect(input).toEqual({ name: 'boi', price: 2.5, qty: 4 });
  });

  it('an expression error sends that record to the error output with the field and reason; the rest go on', async () => {
    const process = transform(enrichTransform, { set: { ratio: '100 / int(d)' } });
    const run = await process([record({ d: 4 }), record({ d: 0 }), record({ x: 1 }), record({ d: 5 })]);
    expect(run.pushed.map((r) => (r.value as { ratio: number }).ratio)).toEqual([25, 20]);
    expect(run.failed).toHaveLength(2);
    expect(run.failed[0][1]).toMatch(/^set ratio: .*division by zero/i);
    expect(run.failed[1][1]).toMatch(/^set ratio: /);
    // The failed record keeps its original value for the error output.
    expect(run.failed[0][0].value).toEqual({ d: 0 });
  });

  it('reads now() once per batch: every record and field of a batch gets the same instant', async () => {
    const process = transform(enrichTransform, {
      set: { a: 'now()', b: 'format_time(now(), "yyyy-MM-dd HH:mm:ss.SSS")', n: 'lower(name)' },
    });
    const batch = Array.from({ length: 200 }, (_, i) => record({ name: `N${i}` }));
    const first = await process(batch);
    const stamps = new Set(first.pushed.map((r) => (r.value as { a: string }).a));
    expect(stamps.size).toBe(1);
    const [a] = stamps;
    expect(first.pushed[0].value).toMatchObject({ b: a.replace('T', ' ').replace('Z', '') });
    await new Promise((r) => setTimeout(r, 5));
    const second = await process([record({ name: 'x' })]);
    expect(Date.parse((second.pushed[0].value as { a: string }).a)).toBeGreaterThan(Date.parse(a));
  });

  it('a record that is not an object fails', async () => {
    const process = transform(enrichTransform, { set: { a: '1' } });
    const run = await process([record('text'), record([1, 2]), record(null)]);
    expect(run.failed.map((f) => f[1])).toEqual(Array(3).fill('enrich needs an object record'));
  });
});
