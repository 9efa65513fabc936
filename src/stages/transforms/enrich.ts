/**
 * `enrich`: sets fields from CEL expressions, renames and removes fields. A record whose
 * expression fails goes to `<stage>.errors` with the reason; the others go on.
 */
import { Type } from '@sinclair/typebox';
import { compile } from '../../expr/index.ts';
import { Expr } from '../../spec/types.ts';
import { defineTransform } from '../define.ts';

export const enrichTransform = defineTransform({
  type: 'enrich',
  kind: 'transform',
  description:
    'Sets fields from CEL expressions (evaluated in order, each seeing the fields set before it), renames and removes fields.',
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
    const setters = Object.entries(o.set ?? {}).map(([field, src]) => [field, compile(src)] as const);
    const renames = Object.entries(o.rename ?? {});
    const removes = o.remove ?? [];
    return {
      process(records, out) {
        for (const r of records) {
          if (r.value === null || typeof r.value !== 'object' || Array.isArray(r.value)) {
            out.fail(r, 'enrich needs an object record');
            continue;
          }
          // A new object: the input may be shared with another branch of a fan-out.
          const value: Record<string, unknown> = { ...(r.value as Record<string, unknown>) };
          let failed = false;
          for (const [field, expr] of setters) {
            try {
              value[field] = expr.evaluate(value, r.meta);
            } catch (err) {
              out.fail(r, `set ${field}: ${(err as Error).message}`);
              failed = true;
              break;
            }
          }
          if (failed) continue;
          for (const [from, to] of renames) {
            if (from in value) {
              value[to] = value[from];
              delete value[from];
            }
          }
          for (const f of removes) delete value[f];
          r.value = value;
          out.push(r);
        }
      },
    };
  },
});
