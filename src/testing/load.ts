/**
 * Loads a test file with the spec loader (exact line:col for every value) and checks it against
 * its schema; problems are diagnostics like a spec's.
 */
import type { ErrorObject } from 'ajv';
import type { Diagnostic, DiagnosticCode } from '../spec/diagnostics.ts';
import { type LoadedSpec, loadSpec, type Path } from '../spec/load.ts';
import { validatorFor } from '../spec/validators.ts';
import { type TestFile, TestFileSchema } from './schema.ts';

/** A test file by its name: `<spec>.test.yaml` beside the spec it tests. */
export const isTestFile = (file: string): boolean => /\.test\.ya?ml$/i.test(file);

export interface LoadedTest {
  file: string;
  loaded: LoadedSpec;
  test: TestFile | undefined;
  diagnostics: Diagnostic[];
}

/** `${VAR}` in a test file is never replaced: its values are data, and `env` is its environment. */
const NO_ENV_REFS = new Proxy(
  {},
  { get: (_t, name) => (typeof name === 'string' ? `\${${name}}` : undefined) },
);

export function loadTest(file: string, text: string): LoadedTest {
  const loaded = loadSpec(file, text, NO_ENV_REFS);
  const diagnostics = loaded.diagnostics.filter((d) => d.code !== 'env-unset');
  if (diagnostics.some((d) => d.severity === 'error')) return { file, loaded, test: undefined, diagnostics };
  // Compiled ahead of time (schemas/test.validators.cjs), as the pipeline schemas are.
  const validate = validatorFor('test', TestFileSchema, 'test');
  if (!validate(loaded.value)) {
    for (const e of validate.errors ?? []) diagnostics.push(toDiagnostic(loaded, e));
    return { file, loaded, test: undefined, diagnostics: dedupe(diagnostics) };
  }
  return { file, loaded, test: loaded.value as TestFile, diagnostics };
}

function toDiagnostic(loaded: LoadedSpec, e: ErrorObject): Diagnostic {
  const path: (string | number)[] = e.instancePath
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((p) => (/^\d+$/.test(p) ? Number(p) : p));
  let code: DiagnosticCode = 'schema-value';
  let message = `${where(path)} ${e.message ?? 'is invalid'}`;
  let at: Path = path;
  let key = false;
  if (e.keyword === 'additionalProperties') {
    const extra = String((e.params as { additionalProperty: string }).additionalProperty);
    code = 'unknown-key';
    message = `unknown key '${extra}' in ${where(path)}`;
    at = [...path, extra];
    key = true;
  } else if (e.keyword === 'required') {
    code = 'schema-required';
    message = `missing required key '${(e.params as { missingProperty: string }).missingProperty}' in ${where(path)}`;
    key = true;
  } else if (e.keyword === 'type') {
    code = 'schema-type';
    message = `${where(path)} must be ${(e.params as { type: string }).type}`;
  }
  return { file: loaded.file, severity: 'error', code, message, ...loaded.locate(at, { key }) };
}

function where(path: readonly (string | number)[]): string {
  return path.length === 0 ? 'the test file' : `'${path.join('.')}'`;
}

/** Ajv reports a union's failure once per branch: one diagnostic per place and code is enough. */
function dedupe(diags: Diagnostic[]): Diagnostic[] {
  const seen = new Set<string>();
  return diags
    .filter((d) => {
      const k = `${d.line}:${d.column}:${d.code}`;
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    })
    .sort((a, b) => a.line - b.line || a.column - b.column);
}
