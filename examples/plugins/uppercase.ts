/**
 * An example plugin stage: `uppercase` writes the named text fields in capitals.
 *
 * Name this file in a spec (`plugins: [./uppercase.ts]`) or on the command line
 * (`sluice run spec.yaml --plugin ./uppercase.ts`). Node runs it as it is: its types are
 * stripped on load, so it uses only erasable syntax (no enums, no parameter properties) and
 * `import type` for types.
 */
import { defineTransform, type SluiceRecord, Type } from 'sluice';

export const uppercase = defineTransform({
  type: 'uppercase',
  kind: 'transform',
  description:
    'Writes the named text fields in capitals; a record whose field is not text goes to the error output.',
  options: Type.Object({
    fields: Type.Array(Type.String({ minLength: 1 }), {
      minItems: 1,
      description: 'Fields to write in capitals; a record without one of them passes unchanged',
      examples: [['fazenda', 'id_lote']],
    }),
    locale: Type.Optional(
      Type.String({
        description: 'Locale of the capitals (e.g. tr for Turkish dotted i)',
        examples: ['pt-BR'],
      }),
    ),
  }),
  create(options, ctx) {
    const { fields, locale } = options;
    ctx.log.debug({ fields }, 'uppercase ready');
    return {
      process(records, out) {
        for (const record of records) {
          const changed = upper(record, fields, locale);
          if (typeof changed === 'string') out.fail(record, changed);
          else out.push(changed);
        }
      },
    };
  },
});

/** The record with its fields in capitals, or why that cannot be done. */
function upper(record: SluiceRecord, fields: string[], locale: string | undefined): SluiceRecord | string {
  const value = record.value;
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return 'the record is not an object';
  // Records are shared between the branches of a fan-out: change a copy.
  const copy: Record<string, unknown> = { ...value };
  for (const field of fields) {
    const text = copy[field];
    if (text === undefined) continue;
    if (typeof text !== 'string')
      return `field '${field}' is ${text === null ? 'null' : typeof text}, not text`;
    copy[field] = text.toLocaleUpperCase(locale);
  }
  return { ...record, value: copy };
}
