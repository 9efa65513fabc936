/** `partition`: sets each record's partition from a CEL expression; file-like sinks group by it. */
import { Type } from '@sinclair/typebox';
import { compile, inBatch } from '../../expr/index.ts';
import { Expr } from '../../spec/types.ts';
import { defineTransform } from '../define.ts';

export const partitionTransform = defineTransform({
  type: 'partition',
  kind: 'transform',
  description:
    'Sets the record partition (used by `{partition}` in sink key templates and per-partition buffers).',
  example: `
version: 1
name: partition-example
sources:
  consumption:
    type: generate
    count: 1000
    fields:
      fazenda: '["fazenda_um", "fazenda_dois"][int(rand * 2.0)]'
      data: '"2026-01-15T06:00:00Z"'
transforms:
  by_day:
    type: partition
    from: [consumption]
    by: 'fazenda + "/" + format_time(data, "yyyy/MM/dd")'
sinks:
  lake:
    type: file
    from: [by_day]
    dir: ./out
    path: 'historico_diario/{partition}/historico_consumo_{first_position}{ext}'
`,
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
        inBatch(() => {
          for (const r of records) {
            try {
              const p = by.evaluate(r.value, r.meta);
              if (p === null || p === undefined || p === '')
                throw new Error('partition expression gave an empty value');
              // Partitions become path segments: no parent-directory escapes.
              const text = String(p);
              if (!safePath(text)) throw new Error(`partition '${text}' is not a safe relative path`);
              r.partition = text;
              out.push(r);
            } catch (err) {
              out.fail(r, `by: ${(err as Error).message}`);
            }
          }
        });
      },
    };
  },
});

/** No empty segment and no `..` segment: checked by scanning, without splitting into an array. */
function safePath(text: string): boolean {
  let start = 0;
  for (;;) {
    const end = text.indexOf('/', start);
    const stop = end < 0 ? text.length : end;
    if (stop === start) return false;
    if (stop - start === 2 && text.charCodeAt(start) === 46 && text.charCodeAt(start + 1) === 46)
      return false;
    if (end < 0) return true;
    start = end + 1;
  }
}
