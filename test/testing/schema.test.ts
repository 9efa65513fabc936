/**
 * schemas/test.schema.json: checked in, never stale, and every shipped test file is valid against
 * it as an editor would check it; the loader reports a bad test file at its line and column.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadTest } from '../../src/testing/load.ts';
import { testJsonSchema } from '../../src/testing/schema.ts';

const root = join(import.meta.dirname, '..', '..');
const schemaFile = join(root, 'schemas', 'test.schema.json');
const testFiles = readdirSync(join(root, 'pipelines'))
  .filter((f) => /\.test\.ya?ml$/.test(f))
  .sort();

describe('schemas/test.schema.json', () => {
  it('is what scripts/test-schema.ts prints now (run `npm run schema:test` when this fails)', () => {
    expect(JSON.parse(readFileSync(schemaFile, 'utf8'))).toEqual(testJsonSchema());
  });

  it('accepts every shipped test file, one beside each pipeline', () => {
    const ajv = new Ajv2020.default({ allErrors: true, strict: false });
    addFormats.default(ajv);
    const validate = ajv.compile(JSON.parse(readFileSync(schemaFile, 'utf8')));
    const specs = readdirSync(join(root, 'pipelines')).filter(
      (f) => /\.yaml$/.test(f) && !f.includes('.test.'),
    );
    expect(testFiles.map((f) => f.replace('.test.yaml', '.yaml'))).toEqual(specs.sort());
    for (const f of testFiles) {
      const ok = validate(parse(readFileSync(join(root, 'pipelines', f), 'utf8')));
      expect(ok, `${f}: ${JSON.stringify(validate.errors)}`).toBe(true);
    }
  });
});

describe('loadTest', () => {
  it('reports an unknown key and a wrong type at their line and column', () => {
    const text = [
      'pipeline: demo.yaml',
      'cases:',
      '  - name: one',
      '    inputs: { consumption: { records: [] } }',
      '    expect:',
      '      lake: { cuont: 1 }',
      '      rejected: { count: many }',
      '',
    ].join('\n');
    const { test, diagnostics } = loadTest('x.test.yaml', text);
    expect(test).toBeUndefined();
    const brief = diagnostics.map((d) => [d.code, d.line, d.column]);
    expect(brief).toContainEqual(['unknown-key', 6, 15]);
    expect(brief).toContainEqual(['schema-type', 7, 26]);
  });

  it('keeps ${VAR} in a test file as data', () => {
    const text = "pipeline: demo.yaml\ncases:\n  - name: a\n    inputs: { c: { records: ['${HOME}'] } }\n";
    expect(loadTest('x.test.yaml', text).test?.cases[0].inputs.c.records).toEqual(['${HOME}']);
  });
});
