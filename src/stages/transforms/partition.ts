/** `partition`: sets each record's partition from a CEL expression; file-like sinks group by it. */
import { Type } from '@sinclair/typebox';
import { compile } from '../../expr/index.ts';
import { Expr } from '../../spec/types.ts';
import { defineTransform } from '../define.ts';

export const partitionTransform = defineTransform({
  type: 'partition',
  kind: 'transform',
  description:
    'Sets the record partition (used by `{partition}` in sink key templates and per-partition buffers).',
  options: Type.Object({
    by: Expr({
      description: 'CEL expression giving the partition, e.g. a path fragment',
      examples: ['fazenda + "/" + format_time(data, "yyyy/MM/dd")'],
    }),
  }),
  create(o) {
    const by = compile(o.by);
    return {
      process(records, out) {
        for (const r of records) {
          try {
            const p = by.evaluate(r.value, r.meta);
            if (p === null || p === undefined || p === '')
              throw new Error('partition expression gave an empty value');
            // Partitions become path segments: no parent-directory escapes.
            const text = String(p);
            if (text.split('/').some((seg) => seg === '..' || seg === ''))
              throw new Error(`partition '${text}' is not a safe relative path`);
            r.partition = text;
            out.push(r);
          } catch (err) {
            out.fail(r, `by: ${(err as Error).message}`);
          }
        }
      },
    };
  },
});
