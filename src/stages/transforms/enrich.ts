/**
 * `enrich`: sets fields from CEL expressions, renames and removes fields. A record whose
 * expression fails goes to `<stage>.errors` with the reason; the others go on.
 */
import { Type } from '@sinclair/typebox';
import { compile, inBatch } from '../../expr/index.ts';
import type { SluiceRecord } from '../../runtime/record.ts';
import { Expr } from '../../spec/types.ts';
import { defineTransform, type TransformOutput } from '../define.ts';

export const enrichTransform = defineTransform({
  type: 'enrich',
  kind: 'transform',
  description:
    'Sets fields from CEL expressions (evaluated in order, each seeing the fields set before it), renames and removes fields.',
  example: `
version: 1
name: enrich-example
sources:
  lots:
    type: generate
    count: 100
    fields:
      cod_cliente: 'string(i % 2 + 1)'
      id_lote: 'string(i)'
      peso_medio: '300.0 + rand * 100.0'
      quantidade_animais: 'int(rand * 50.0) + 1'
      data: '"2026-01-15T06:00:00Z"'
transforms:
  enriched:
    type: enrich
    from: [lots]
    set:
      fazenda: 'cod_cliente == "1" ? "fazenda_um" : "fazenda_dois"'
      consumo_meta: 'peso_medio * 0.025 * double(quantidade_animais)'
      id_treated_data: 'uuid_v5(cod_cliente + "|" + id_lote + "|" + data)'
    rename: { quantidade_animais: animais }
    remove: [cod_cliente]
sinks:
  print: { type: stdout, from: [enriched] }
  rejected: { type: stdout, from: [enriched.errors] }
`,
  options: Type.Object({
    set: Type.Optional(
      Type.Record(
        Type.String({ minLength: 1 }),
        Expr({ description: 'CEL expression whose value the field takes' }),
        {
          description: 'Fields to set, in order; later expressions see earlier results',
          examples: [{ consumo_meta: 'peso_medio * 0.025 * quantidade_animais' }],
        },
      ),
    ),
    rename: Type.Optional(
      Type.Record(Type.String({ minLength: 1 }), Type.String({ minLength: 1 }), {
        description: 'old name → new name',
      }),
    ),
    remove: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { description: 'Fields to remove' })),
  }),
  create(o) {
    // Parallel arrays walked by index: no per-record iterators or tuples.
    const set = o.set ?? {};
    const fields = Object.keys(set);
    const exprs = fields.map((f) => compile(set[f]));
    const renames = Object.entries(o.rename ?? {});
    const removes = o.remove ?? [];
    const enrich = (records: SluiceRecord[], out: TransformOutput) => {
      for (let i = 0; i < records.length; i++) {
        const r = records[i];
        if (r.value === null || typeof r.value !== 'object' || Array.isArray(r.value)) {
          out.fail(r, 'enrich needs an object record');
          continue;
        }
        // A new object: the input may be shared with another branch of a fan-out.
        const value: Record<string, unknown> = { ...(r.value as Record<string, unknown>) };
        let failed = -1;
        let reason = '';
        for (let f = 0; f < exprs.length; f++) {
          try {
            value[fields[f]] = exprs[f].evaluate(value, r.meta);
          } catch (err) {
            failed = f;
            reason = (err as Error).message;
            break;
          }
        }
        if (failed >= 0) {
          out.fail(r, `set ${fields[failed]}: ${reason}`);
          continue;
        }
        for (let k = 0; k < renames.length; k++) {
          const [from, to] = renames[k];
          if (from in value) {
            value[to] = value[from];
            delete value[from];
          }
        }
        for (let k = 0; k < removes.length; k++) delete value[removes[k]];
        r.value = value;
        out.push(r);
      }
    };
    return {
      process(records, out) {
        inBatch(() => enrich(records, out));
      },
    };
  },
});
