/**
 * `generate`: synthetic records from CEL expressions, for demos, load tests and producers.
 * Record `i` is the same on every run with the same `seed` (its random numbers are derived
 * from seed and index), so a restart resumes after the checkpoint and reproduces nothing
 * twice and loses nothing.
 */

import { setTimeout as sleep } from 'node:timers/promises';
import { Type } from '@sinclair/typebox';
import { compile } from '../../expr/index.ts';
import { ContiguousTracker } from '../../runtime/ack.ts';
import type { RecordInit } from '../../runtime/record.ts';
import { Expr } from '../../spec/types.ts';
import { defineSource } from '../define.ts';

export const generateSource = defineSource({
  type: 'generate',
  kind: 'source',
  description:
    'Generates records whose fields are CEL expressions over `i` (the record index) and `rand` (a seeded random number in [0, 1), fresh for each field).',
  options: Type.Object({
    count: Type.Optional(
      Type.Integer({ minimum: 0, description: 'Records to generate; unbounded when absent' }),
    ),
    rate: Type.Optional(
      Type.Number({
        exclusiveMinimum: 0,
        description: 'Records per second at most; as fast as possible when absent',
      }),
    ),
    seed: Type.Optional(
      Type.Integer({ default: 1, description: 'Seed of `rand`: the same seed gives the same records' }),
    ),
    fields: Type.Record(Type.String({ minLength: 1 }), Expr({ description: 'CEL expression of a field' }), {
      description: 'Fields in order; each expression sees `i`, `rand` and the fields before it',
      examples: [{ idvendedor: 'string(i % 1000)', nome: '["Ana", "Bia", "Caio"][int(rand * 3.0)]' }],
    }),
    duplicates: Type.Optional(
      Type.Number({
        minimum: 0,
        maximum: 1,
        default: 0,
        description: 'Share of records that repeat an earlier record exactly (for dedup demos)',
      }),
    ),
    key: Type.Optional(
      Expr({ description: 'CEL expression of the record key (e.g. a partition key for producers)' }),
    ),
  }),
  create(o, ctx) {
    const fields = Object.entries(o.fields).map(([name, src]) => [name, compile(src)] as const);
    const keyExpr = o.key ? compile(o.key) : undefined;
    const seed = o.seed ?? 1;
    const dupShare = o.duplicates ?? 0;
    const batchSize = ctx.batchSize ?? 500;

    const build = (i: number): Record<string, unknown> => {
      const value: Record<string, unknown> = {};
      // `i` is a CEL int (BigInt), so `i / 50` divides as integers.
      const scope: Record<string, unknown> = { i: BigInt(i), rand: 0 };
      for (let f = 0; f < fields.length; f++) {
        scope.rand = random(seed, i, f + 1);
        const v = fields[f][1].evaluate(scope);
        value[fields[f][0]] = v;
        scope[fields[f][0]] = v;
      }
      return value;
    };
    /** Index whose record `i` repeats, or `i` itself. */
    const origin = (i: number): number => {
      if (dupShare <= 0 || i === 0 || random(seed, i, 0) >= dupShare) return i;
      return i - 1 - Math.floor(random(seed, i, -1) * Math.min(i, 50));
    };

    return {
      async run(sc) {
        const checkpoint = await sc.checkpoints.load();
        const committed = checkpoint?.generate !== undefined ? Number(checkpoint.generate) : -1;
        const tracker = new ContiguousTracker<number>(committed);
        const started = Date.now();
        let i = committed + 1;
        const end = o.count ?? Number.POSITIVE_INFINITY;
        while (i < end && !sc.signal.aborted) {
          const n = Math.min(batchSize, end - i);
          const batch: RecordInit[] = [];
          const failed: [RecordInit, string][] = [];
          for (let j = 0; j < n; j++, i++) {
            const meta = { index: i };
            try {
              const value = build(origin(i));
              const key = keyExpr ? String(keyExpr.evaluate(value)) : undefined;
              batch.push({ value, key, position: String(i), meta });
            } catch (err) {
              failed.push([{ value: { i }, position: String(i), meta }, (err as Error).message]);
            }
          }
          const ticket = tracker.track(i - 1);
          // The batch's position also covers its failed records: it is committable only once
          // the error output handled them too.
          let pending = failed.length + 1;
          let ok = true;
          const settled = (err?: Error) => {
            if (err) ok = false;
            if (--pending === 0 && ok && tracker.ack(ticket))
              sc.checkpoints.commit('generate', String(tracker.committable));
          };
          for (const [input, reason] of failed) await sc.fail(input, reason, settled);
          await sc.emit(batch, settled);
          if (o.rate) {
            const due = started + ((i - committed - 1) / o.rate) * 1000;
            const wait = due - Date.now();
            if (wait > 0) await sleep(wait, undefined, { signal: sc.signal }).catch(() => undefined);
          }
        }
      },
    };
  },
});

/** A stateless PRNG: a hash of (seed, index, stream) mapped to [0, 1). */
export function random(seed: number, index: number, stream: number): number {
  let h = (seed ^ Math.imul(index, 0x9e3779b1) ^ Math.imul(stream, 0x85ebca77)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
  h ^= h >>> 16;
  // Mix the high bits of the index too, for indices beyond 2^32.
  h = (h + Math.floor(index / 4294967296)) >>> 0;
  return h / 4294967296;
}
