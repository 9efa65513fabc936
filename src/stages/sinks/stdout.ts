/**
 * `stdout`: one JSON line per record (or pretty JSON), for consumers that print. Logs stay on stderr.
 * Transient and permanent failures: `transient` in the definition (the stage reference shows it).
 */
import { Type } from '@sinclair/typebox';
import { defineSink } from '../define.ts';

export const stdoutSink = defineSink({
  type: 'stdout',
  kind: 'sink',
  description: 'Prints records to standard output, one JSON line each (or indented JSON with `pretty`).',
  transient:
    'Transient: write errors of the output stream. Permanent for the record alone: a value that ' +
    'cannot be encoded (the batch is split until it is alone).',
  example: `
version: 1
name: stdout-example
sources:
  orders:
    type: generate
    count: 10
    fields:
      id: 'i'
sinks:
  print:
    type: stdout
    from: [orders]
    format: pretty
`,
  options: Type.Object({
    format: Type.Optional(
      Type.Union([Type.Literal('ndjson'), Type.Literal('pretty')], {
        default: 'ndjson',
        description: 'ndjson: one JSON line per record; pretty: indented JSON, for reading',
      }),
    ),
    sample: Type.Optional(
      Type.Number({
        exclusiveMinimum: 0,
        maximum: 1,
        default: 1,
        description: 'Share of records printed (the rest are still acked)',
      }),
    ),
  }),
  batching: { defaults: { max_records: 500, max_bytes: 1024 * 1024, max_age: 50 } },
  preview(o, ctx) {
    const every = Math.max(1, Math.round(1 / (o.sample ?? 1)));
    let n = 0;
    return {
      async write(batch) {
        for (const r of batch.records) {
          if (n++ % every !== 0) continue;
          // Encoded as printed, so a value JSON cannot hold fails here as it would there.
          ctx.capture({ kind: 'record', value: JSON.parse(JSON.stringify(r.value) ?? 'null') });
        }
        return undefined;
      },
    };
  },
  create(o, ctx) {
    const pretty = o.format === 'pretty';
    const every = Math.max(1, Math.round(1 / (o.sample ?? 1)));
    let n = 0;
    return {
      async write(batch) {
        let out = '';
        let printed = 0;
        for (const r of batch.records) {
          if (n++ % every !== 0) continue;
          out += `${pretty ? JSON.stringify(r.value, null, 2) : JSON.stringify(r.value)}\n`;
          printed++;
        }
        if (out && !process.stdout.write(out)) {
          await new Promise<void>((resolve) => process.stdout.once('drain', resolve));
        }
        ctx.metrics.count('printed', printed);
        return undefined;
      },
    };
  },
});
