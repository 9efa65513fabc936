/**
 * The validators compiled ahead of time (schemas/*.validators.cjs): checked in, never stale, the
 * same errors and defaults as Ajv compiling the schema at run time, and never used for a schema
 * other than the one they were generated from.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Type } from '@sinclair/typebox';
import { Ajv } from 'ajv';
import addFormats from 'ajv-formats';
import { describe, expect, it } from 'vitest';
import { stageSchema } from '../../src/spec/schema.ts';
import { builtinSchemas, standaloneModule } from '../../src/spec/standalone.ts';
import { AJV_OPTIONS, validatorFor } from '../../src/spec/validators.ts';
import { definitions } from '../../src/stages/registry.ts';

const root = join(import.meta.dirname, '..', '..');

describe('schemas/*.validators.cjs', () => {
  for (const set of ['pipeline', 'test'] as const) {
    it(`${set}: is what \`npm run validators\` writes now`, () => {
      const checkedIn = readFileSync(join(root, 'schemas', `${set}.validators.cjs`), 'utf8');
      // Compared as text, but reported briefly: a diff of generated code is no help.
      expect(
        checkedIn === standaloneModule(set),
        `schemas/${set}.validators.cjs is stale: run \`npm run validators\` and commit it`,
      ).toBe(true);
    });
  }

  it('gives the errors and defaults Ajv gives when it compiles the schema at run time', () => {
    const ajv = new Ajv(AJV_OPTIONS.pipeline);
    addFormats.default(ajv);
    const schemas = builtinSchemas('pipeline');
    const s3 = schemas['sink.s3'];
    const inputs: unknown[] = [
      { type: 's3', from: ['a'], bucket: 'b', key: 'k' },
      { type: 's3', from: [], bucket: 7, kee: 'k', buffer: { max_records: 0 }, max_in_flight: 'x' },
      { type: 's3', from: ['a.errors', '1bad'], bucket: 'b', key: 'k', compression: 'xz', retry: {} },
    ];
    for (const input of inputs) {
      const generated = structuredClone(input);
      const compiled = structuredClone(input);
      const v = validatorFor('pipeline', s3, 'sink.s3');
      const c = ajv.compile(s3);
      expect(v(generated)).toBe(c(compiled));
      expect(v.errors ?? null).toEqual(c.errors ?? null);
      // Defaults filled in the same way (max_in_flight, on_error, ...).
      expect(generated).toEqual(compiled);
    }
  });

  it('compiles a schema that changed since the validators were generated instead of using the old one', () => {
    const def = definitions.find((d) => d.kind === 'sink' && d.type === 'stdout');
    if (!def) throw new Error('no stdout sink');
    const changed = stageSchema({
      ...def,
      options: Type.Object({ ...def.options.properties, added: Type.Integer({ minimum: 5 }) }),
    });
    const v = validatorFor('pipeline', changed, 'sink.stdout');
    expect(v({ type: 'stdout', from: ['a'], added: 3 })).toBe(false);
    expect(v.errors?.[0]).toMatchObject({ instancePath: '/added', keyword: 'minimum' });
    expect(v({ type: 'stdout', from: ['a'], added: 7 })).toBe(true);
  });
});
