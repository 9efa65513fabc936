/** `filter`: keeps records for which a CEL expression is true; the rest are acked and counted as dropped. */
import { Type } from '@sinclair/typebox';
import { compile, inBatch } from '../../expr/index.ts';
import { Expr } from '../../spec/types.ts';
import { defineTransform } from '../define.ts';

export const filterTransform = defineTransform({
  type: 'filter',
  kind: 'transform',
  description: 'Keeps the records for which `where` is true; the others are acked and counted as dropped.',
  example: `
version: 1
name: filter-example
sources:
  readings:
    type: generate
    count: 100
    fields:
      sensor: 'string(i % 10)'
      temperature: '15.0 + rand * 30.0'
transforms:
  hot:
    type: filter
    from: [readings]
    where: 'temperature > 35.0'
sinks:
  print: { type: stdout, from: [hot] }
`,
  options: Type.Object({
    where: Expr({
      description: 'CEL expression; records for which it is true pass',
      examples: ['quantidade_animais > 0'],
    }),
  }),
  create(o) {
    const where = compile(o.where);
    return {
      process(records, out) {
        inBatch(() => {
          for (const r of records) {
            let keep: unknown;
            try {
              keep = where.evaluate(r.value, r.meta);
            } catch (err) {
              out.fail(r, `where: ${(err as Error).message}`);
              continue;
            }
            if (typeof keep !== 'boolean') out.fail(r, `where must give true or false, gave ${typeof keep}`);
            else if (keep) out.push(r);
            else out.drop(r);
          }
        });
      },
    };
  },
});
