/**
 * Plugin stages: modules that export stage definitions, named in a spec (`plugins:`, relative
 * to the spec) or by the caller (`--plugin`, or definitions passed in by an embedding service).
 * They join the built-in list for one validation only; the registry stays a constant, so two
 * pipelines in one process never see each other's stage types. The validated spec carries each
 * stage's definition to the engine, which needs nothing else.
 */
import { readFile } from 'node:fs/promises';
import * as nodeModule from 'node:module';
import { dirname, extname, isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { StageDefinition, StageKind } from '../stages/define.ts';
import { definitions as builtins } from '../stages/registry.ts';
import type { Diagnostic } from './diagnostics.ts';
import { loadSpec, pathKey } from './load.ts';
import { commonKeys } from './schema.ts';
import { type ValidationResult, validateText } from './validate.ts';

/** A plugin that cannot be used: the file does not load, or what it exports is not a valid stage. */
export class PluginError extends Error {
  constructor(message: string, opts?: { cause?: unknown }) {
    super(message, opts);
    this.name = 'PluginError';
  }
}

const KINDS: readonly StageKind[] = ['source', 'transform', 'sink'];
const TYPE_NAME = /^[a-z][a-z0-9_-]*$/;

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Looks like an attempt at a definition: worth a precise message when something is missing. */
const isCandidate = (v: unknown): v is Obj =>
  isObj(v) && typeof v.kind === 'string' && KINDS.includes(v.kind as StageKind) && 'create' in v;

/** What is wrong with one exported definition, in words a plugin author can act on; none when valid. */
export function definitionProblems(def: Obj): string[] {
  const problems: string[] = [];
  const name = typeof def.type === 'string' ? `${def.kind} '${def.type}'` : `a ${def.kind}`;
  if (typeof def.type !== 'string' || !TYPE_NAME.test(def.type)) {
    problems.push(`${name}: type must be a lower-case name (letters, digits, - and _)`);
  }
  if (typeof def.description !== 'string' || def.description.trim() === '') {
    problems.push(`${name}: description must be a sentence (it documents the stage in sluice schema)`);
  }
  if (typeof def.create !== 'function') problems.push(`${name}: create must be a function`);
  const options = def.options as Obj | undefined;
  if (!isObj(options) || options.type !== 'object' || !isObj(options.properties)) {
    problems.push(`${name}: options must be a Type.Object({...}) schema (use Type.Object({}) for none)`);
  } else {
    // These keys belong to the runtime (wiring, retries, buffers): an option may not shadow them.
    const reserved = Object.keys(commonKeys(def.kind as StageKind));
    const taken = Object.keys(options.properties).filter((k) => reserved.includes(k));
    if (taken.length) {
      problems.push(`${name}: an option may not be named ${taken.join(' or ')}: sluice owns that key`);
    }
  }
  if (def.kind === 'sink' && !isObj(def.batching) && typeof def.batching !== 'function') {
    problems.push(`${name}: a sink needs batching: { defaults: { max_records, max_bytes, max_age } }`);
  }
  if (def.check !== undefined && typeof def.check !== 'function') {
    problems.push(`${name}: check must be a function`);
  }
  return problems;
}

/** The stage definitions a module exports: named exports and the default (one or a list). */
export function definitionsIn(mod: Obj, file: string): StageDefinition[] {
  const exported = Object.values(mod).flatMap((v) => (Array.isArray(v) ? v : [v]));
  const found = [...new Set(exported.filter(isCandidate))];
  if (found.length === 0) {
    throw new PluginError(
      `${file} exports no stage definition: export the result of defineSource, defineTransform or defineSink`,
    );
  }
  const problems = found.flatMap(definitionProblems);
  if (problems.length) throw new PluginError(`${file}: ${problems.join('; ')}`);
  return found as unknown as StageDefinition[];
}

let hooked = false;

/**
 * Makes `import ... from 'sluice'` in plugin files load this very copy of sluice, wherever the
 * plugin lives (a checkout, a global install, a directory without node_modules): plugins and the
 * engine must share one StageError class and one set of helpers.
 */
function resolveSluiceToSelf(): void {
  if (hooked) return;
  hooked = true;
  // Synchronous hooks: Node 22.15 and 23.5 on. Without them, plugins resolve `sluice` as usual.
  const register = (nodeModule as { registerHooks?: typeof nodeModule.registerHooks }).registerHooks;
  if (!register) return;
  // Beside this module, with its extension (.ts when run from source, .js when built).
  const self = new URL(`../index${extname(new URL(import.meta.url).pathname)}`, import.meta.url).href;
  register({
    resolve(specifier, context, next) {
      if (specifier === 'sluice') return { url: self, shortCircuit: true };
      return next(specifier, context);
    },
  });
}

/**
 * Imports one plugin file (an absolute path, or relative to the working directory). `fresh`
 * reads the file again instead of the module already loaded (a hot reload; the modules it
 * imports in turn stay those loaded first).
 */
export async function loadPlugin(file: string, fresh?: string): Promise<StageDefinition[]> {
  const path = resolve(file);
  resolveSluiceToSelf();
  let mod: Obj;
  try {
    const url = pathToFileURL(path);
    if (fresh) url.searchParams.set('reload', fresh);
    mod = (await import(url.href)) as Obj;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const reason =
      e.code === 'ERR_MODULE_NOT_FOUND' && e.message.includes(path)
        ? 'no such file'
        : e.code === 'ERR_UNKNOWN_FILE_EXTENSION'
          ? `this Node (${process.version}) cannot load ${extname(path)} files: use Node 22.18 or newer for TypeScript plugins`
          : e.message;
    throw new PluginError(`cannot load plugin ${file}: ${reason}`, { cause: err });
  }
  return definitionsIn(mod, file);
}

/** Adds `extra` to `known`, refusing a type its kind already has. */
function addStages(
  known: readonly StageDefinition[],
  extra: readonly StageDefinition[],
  origin: string,
): StageDefinition[] {
  const all = [...known];
  for (const def of extra) {
    const clash = all.find((d) => d.kind === def.kind && d.type === def.type);
    if (clash === def) continue;
    if (clash) {
      const whose = builtins.includes(clash) ? 'a built-in' : 'another plugin’s';
      throw new PluginError(
        `${origin} defines the ${def.kind} type '${def.type}', which is ${whose} ${def.kind}`,
      );
    }
    all.push(def);
  }
  return all;
}

export interface ValidateOptions {
  /** The spec's text; read from `file` when absent. */
  text?: string;
  /** Variables for `${VAR}`; process.env when absent. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Plugin files besides those the spec names (paths relative to the working directory). */
  plugins?: readonly string[];
  /** Stage definitions besides the built-in ones, e.g. a service's own stages. */
  stages?: readonly StageDefinition[];
  /** Read plugin files again rather than reuse modules already loaded (a tag new for each reload). */
  fresh?: string;
}

/**
 * Validates a spec with its plugins: the built-in stages, then `opts.stages`, `opts.plugins`
 * and the spec's own `plugins:`. A problem with a file the spec names is a diagnostic at its
 * entry; one with what the caller passed is thrown (PluginError), as it is no fault of the spec.
 */
export async function validate(file: string, opts: ValidateOptions = {}): Promise<ValidationResult> {
  const text = opts.text ?? (await readFile(file, 'utf8'));
  const env = opts.env ?? process.env;
  const problems = (opts.stages ?? []).flatMap((d) => definitionProblems(d as unknown as Obj));
  if (problems.length) throw new PluginError(`stages: ${problems.join('; ')}`);
  let stages = addStages(builtins, opts.stages ?? [], 'stages');
  for (const p of opts.plugins ?? []) stages = addStages(stages, await loadPlugin(p, opts.fresh), p);
  const own = await specPlugins(file, text, env, stages, opts.fresh);
  const result = validateText(file, text, env, { stages: own.stages });
  if (own.diagnostics.length === 0) return result;
  const diagnostics = [...own.diagnostics, ...result.diagnostics].sort(
    (a, b) => a.line - b.line || a.column - b.column,
  );
  return { ...result, diagnostics, spec: undefined };
}

/** Loads the files the spec lists under `plugins`, each problem a diagnostic at its entry. */
async function specPlugins(
  file: string,
  text: string,
  env: Readonly<Record<string, string | undefined>>,
  known: StageDefinition[],
  fresh?: string,
): Promise<{ stages: StageDefinition[]; diagnostics: Diagnostic[] }> {
  // Most specs name no plugin: spare them a second parse.
  if (!text.includes('plugins')) return { stages: known, diagnostics: [] };
  const loaded = loadSpec(file, text, env);
  const list = isObj(loaded.value) ? loaded.value.plugins : undefined;
  const diagnostics: Diagnostic[] = [];
  let stages = known;
  if (!Array.isArray(list)) return { stages, diagnostics };
  for (const [i, entry] of list.entries()) {
    // Not a non-empty string: the schema check reports it.
    if (typeof entry !== 'string' || entry === '') continue;
    const path = isAbsolute(entry) ? entry : resolve(dirname(file), entry);
    try {
      stages = addStages(stages, await loadPlugin(path, fresh), entry);
    } catch (err) {
      if (!(err instanceof PluginError)) throw err;
      // A path that came from the environment is not printed, nor what the import said about it.
      const message = loaded.fromEnv.has(pathKey(['plugins', i]))
        ? 'the plugin file named by the environment cannot be loaded, or defines no valid stage'
        : err.message.replace(path, entry);
      diagnostics.push({
        file,
        severity: 'error',
        code: 'plugin',
        message,
        ...loaded.locate(['plugins', i]),
      });
    }
  }
  return { stages, diagnostics };
}

/** The built-in stages plus those of plugin files (for `sluice schema --plugin`). */
export async function stagesWith(plugins: readonly string[]): Promise<StageDefinition[]> {
  let stages: StageDefinition[] = [...builtins];
  for (const p of plugins) stages = addStages(stages, await loadPlugin(p), p);
  return stages;
}
