/**
 * The editor-facing JSON Schema: checked in, never stale, and in agreement with the validator on
 * every pipeline shipped in pipelines/ (and on a few specs that must fail).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { describe, expect, it } from 'vitest';
import { loadSpec } from '../../src/spec/load.ts';
import { pipelineJsonSchema } from '../../src/spec/schema.ts';
import { validateText } from '../../src/spec/validate.ts';
import { definitions } from '../../src/stages/registry.ts';

const root = join(import.meta.dirname, '..', '..');
const schemaFile = join(root, 'schemas', 'pipeline.schema.json');
// Test files (<spec>.test.yaml) sit beside the specs and have their own schema.
const pipelines = readdirSync(join(root, 'pipelines'))
  .filter((f) => /\.ya?ml$/.test(f) && !/\.test\.ya?ml$/.test(f))
  .sort();

/** No variable set: every pipeline must run on its defaults. */
const NO_ENV: Record<string, string | undefined> = {};

const generated = pipelineJsonSchema(definitions);

let compiled: ReturnType<InstanceType<typeof Ajv2020.default>['compile']> | undefined;

/** The checked-in schema compiled as an editor would (JSON Schema 2020-12, formats on); once per file. */
function editorValidator() {
  if (!compiled) {
    const ajv = new Ajv2020.default({ allErrors: true, strict: false });
    addFormats.default(ajv);
    compiled = ajv.compile(JSON.parse(readFileSync(schemaFile, 'utf8')));
  }
  return compiled;
}

describe('schemas/pipeline.schema.json', () => {
  it('is what `sluice schema` prints now (run `npm run schema` when this fails)', () => {
    const checkedIn = JSON.parse(readFileSync(schemaFile, 'utf8'));
    expect(checkedIn, 'schemas/pipeline.schema.json is stale: run `npm run schema` and commit it').toEqual(
      generated,
    );
  });

  it('is a JSON Schema 2020-12 document that compiles', () => {
    expect(generated.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
    expect(() => editorValidator()).not.toThrow();
  });

  it('offers every stage type of the registry, per kind', () => {
    const defs = generated.$defs as Record<string, { properties?: { type?: { enum?: string[] } } }>;
    for (const kind of ['source', 'transform', 'sink'] as const) {
      const types = definitions.filter((d) => d.kind === kind).map((d) => d.type);
      expect(defs[kind].properties?.type?.enum).toEqual(types);
      for (const t of types) expect(defs[`${kind}.${t}`], `${kind}.${t}`).toBeDefined();
    }
  });
});

describe('pipelines/', () => {
  it('holds at least the demo', () => {
    expect(pipelines).toContain('demo.yaml');
  });

  describe.each(pipelines)('%s', (file) => {
    const text = readFileSync(join(root, 'pipelines', file), 'utf8');

    it('starts with the yaml-language-server schema line', () => {
      expect(text.split('\n')[0]).toBe('# yaml-language-server: $schema=../schemas/pipeline.schema.json');
    });

    it('validates without errors with no variable set', () => {
      const { diagnostics, spec } = validateText(`pipelines/${file}`, text, NO_ENV);
      expect(diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
      expect(spec).toBeDefined();
    });

    it('validates against the editor schema too', () => {
      const validate = editorValidator();
      const { value } = loadSpec(`pipelines/${file}`, text, NO_ENV);
      const ok = validate(value);
      expect(validate.errors ?? [], JSON.stringify(validate.errors, null, 2)).toEqual([]);
      expect(ok).toBe(true);
    });
  });
});

describe('the editor schema and the validator agree on specs that fail', () => {
  const base = readFileSync(join(root, 'pipelines', 'demo.yaml'), 'utf8');
  const cases: [string, string, string][] = [
    ['an unknown stage type', 'type: dedup', 'type: dedupe'],
    ['an unknown key', 'ttl: 24h', 'ttll: 24h'],
    ['a bad duration', 'ttl: 24h', 'ttl: 24 hours'],
    ['a string where an integer belongs', 'seed: 42', 'seed: forty-two'],
    ['a bad enum value', 'type: file\n    from: [by_day]', 'type: file\n    format: xml\n    from: [by_day]'],
    ['a missing required key', '    key: id_treated_data\n', '\n'],
    ['a wrong version', 'version: 1', 'version: 2'],
  ];
  it.each(cases)('%s', (_name, from, to) => {
    expect(base).toContain(from);
    const text = base.replace(from, to);
    const { diagnostics } = validateText('demo.yaml', text, NO_ENV);
    expect(diagnostics.some((d) => d.severity === 'error')).toBe(true);
    const validate = editorValidator();
    expect(validate(loadSpec('demo.yaml', text, NO_ENV).value)).toBe(false);
  });
});
