/**
 * Compiled JSON Schema validators. Compiling the schemas with Ajv at every start cost more than
 * the rest of `sluice validate` together (loading Ajv, then ~10 ms per stage type), so the
 * built-in schemas are compiled ahead of time into Ajv's standalone code, checked in beside the
 * editor schemas (`schemas/*.validators.cjs`, `npm run validators`; a test fails when they are
 * stale). A generated validator is the code `ajv.compile` would build with the same options, so
 * errors and defaults are the same.
 *
 * Each generated validator carries the fingerprint of the schema it was built from and is used
 * only for that exact schema: a stage whose options changed since, or a plugin stage, is
 * compiled here with Ajv (loaded then, not before), never checked against an older schema.
 */
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import type { TSchema } from '@sinclair/typebox';
import type { Ajv, Options, ValidateFunction } from 'ajv';

/** Validators compiled with the same options share one generated module. */
export type ValidatorSet = 'pipeline' | 'test';

export const AJV_OPTIONS: Readonly<Record<ValidatorSet, Options>> = {
  // Defaults are filled in while validating: the runtime reads the options as validated.
  pipeline: { allErrors: true, strict: false, useDefaults: true, coerceTypes: false },
  test: { allErrors: true, strict: false, useDefaults: false },
};

/** The generated module of a set, relative to this file: the same from src/spec and dist/spec. */
export const generatedFile = (set: ValidatorSet): string => `../../schemas/${set}.validators.cjs`;

/** The export a schema is generated under: its name with what JavaScript refuses replaced. */
export const exportName = (name: string): string => name.replace(/[^A-Za-z0-9_$]/g, '_');

/** Identifies a schema by its content (symbol keys, TypeBox's own, do not count). */
export function fingerprint(schema: TSchema): string {
  return createHash('sha256').update(JSON.stringify(schema)).digest('base64url');
}

interface Generated {
  fingerprints: Record<string, string>;
  [name: string]: ValidateFunction | Record<string, string>;
}

const load = createRequire(import.meta.url);
const generated = new Map<ValidatorSet, Generated | null>();
const compilers = new Map<ValidatorSet, Ajv>();
// Weak: stage types of plugins come and go with the pipelines that load them.
const caches: Record<ValidatorSet, WeakMap<TSchema, ValidateFunction>> = {
  pipeline: new WeakMap(),
  test: new WeakMap(),
};

function generatedSet(set: ValidatorSet): Generated | null {
  let mod = generated.get(set);
  if (mod === undefined) {
    try {
      mod = load(generatedFile(set)) as Generated;
    } catch {
      // Missing (a checkout where it was never generated): every schema is compiled instead.
      mod = null;
    }
    generated.set(set, mod);
  }
  return mod;
}

/** Ajv with the set's options, loaded the first time a schema has no generated validator. */
function compiler(set: ValidatorSet): Ajv {
  let ajv = compilers.get(set);
  if (!ajv) {
    const { Ajv } = load('ajv') as typeof import('ajv');
    const addFormats = load('ajv-formats') as typeof import('ajv-formats').default;
    ajv = new Ajv(AJV_OPTIONS[set]);
    addFormats(ajv);
    compilers.set(set, ajv);
  }
  return ajv;
}

/**
 * The validator of `schema`: the generated one named `name` when it was generated from this very
 * schema, else one compiled now. Either is kept for the life of the schema object.
 */
export function validatorFor(set: ValidatorSet, schema: TSchema, name: string): ValidateFunction {
  const cache = caches[set];
  let v = cache.get(schema);
  if (!v) {
    const mod = generatedSet(set);
    const key = exportName(name);
    const ready = mod?.fingerprints[key] === fingerprint(schema) ? mod[key] : undefined;
    v = typeof ready === 'function' ? ready : compiler(set).compile(schema);
    cache.set(schema, v);
  }
  return v;
}
