// biome-ignore-all lint/suspicious/noTemplateCurlyInString: messages quote ${VAR} syntax on purpose
/**
 * Validation: one diagnostic list from four kinds of check: YAML syntax, schema (per stage
 * type, chosen by `type`), the wiring graph, and facts about the outside world (API limits,
 * literal credentials, memory bounds). On success it also yields the normalised spec the
 * runtime builds from (defaults applied, durations in ms, sizes in bytes).
 */

import type { TSchema } from '@sinclair/typebox';
import type { ErrorObject } from 'ajv';
import { compile, ExprError } from '../expr/index.ts';
import type { RetryPolicy } from '../runtime/retry.ts';
import { compileTemplate, TemplateError } from '../runtime/template.ts';
import type { CheckReport, StageDefinition, StageKind } from '../stages/define.ts';
import { definitions } from '../stages/registry.ts';
import { type Diagnostic, type DiagnosticCode, hasErrors, type Severity, type Span } from './diagnostics.ts';
import { type LoadedSpec, loadSpec, type Path, pathKey } from './load.ts';
import { valueOffsets } from './offsets.ts';
import { RuntimeSettings, SECTION_KIND, type Section, stageSchema, topLevelSchema } from './schema.ts';
import { findSecrets, type TextRange } from './secrets.ts';
import { sluiceKind } from './types.ts';
import { formatBytes, parseDuration, parseSize } from './units.ts';
import { validatorFor } from './validators.ts';

export interface StageSpec {
  name: string;
  kind: StageKind;
  type: string;
  def: StageDefinition;
  /** The stage's own options, normalised (defaults, ms, bytes). */
  options: Record<string, unknown>;
  from: string[];
  onError: 'continue' | 'stop';
  retry: RetryPolicy;
  buffer: {
    max_records?: number;
    max_bytes?: number;
    max_age?: number;
    max_total_records?: number;
    max_total_bytes?: number;
  };
  maxInFlight: number;
}

export interface RuntimeSpec {
  channel_capacity: number;
  batch_size: number;
  shutdown_timeout: number;
  checkpoint_interval: number;
  /** `[host:]port` of the operations endpoint; absent: no endpoint. */
  http?: string;
}

export interface PipelineSpec {
  file: string;
  name: string;
  runtime: RuntimeSpec;
  stages: StageSpec[];
}

export interface ValidationResult {
  diagnostics: Diagnostic[];
  spec: PipelineSpec | undefined;
  loaded: LoadedSpec;
}

const stageSchemas = new WeakMap<StageDefinition, TSchema>();
const schemaOf = (def: StageDefinition): TSchema => {
  let s = stageSchemas.get(def);
  if (!s) {
    s = stageSchema(def);
    stageSchemas.set(def, s);
  }
  return s;
};

export interface ValidateTextOptions {
  /**
   * Every stage type the spec may use: the built-in ones unless given. Plugin stages are added
   * here for one validation, so pipelines in one process never see each other's types.
   */
  stages?: readonly StageDefinition[];
}

export function validateText(
  file: string,
  source: string,
  env: Readonly<Record<string, string | undefined>> = process.env,
  opts: ValidateTextOptions = {},
): ValidationResult {
  const loaded = loadSpec(file, source, env);
  const v = new Validator(loaded, opts.stages ?? definitions);
  try {
    v.run();
  } catch (err) {
    // A bug of ours must still surface as a diagnostic, not a stack trace.
    v.report([], 'yaml-syntax', `internal error while validating: ${(err as Error).message}`);
  }
  const hidden = new Set([...loaded.envValues, ...v.literalSecrets]);
  const diagnostics = redact(dropShadowed([...loaded.diagnostics, ...v.diagnostics]), hidden).sort(
    (a, b) => a.line - b.line || a.column - b.column,
  );
  return { diagnostics, loaded, spec: hasErrors(diagnostics) ? undefined : v.spec };
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** What the wiring checks need of a stage, read from the spec as written, valid or not. */
interface Wire {
  name: string;
  kind: StageKind;
  /** The entries of `from` that are well-formed output names, with their index in `from`. */
  from: { input: string; index: number }[];
  /** False when `from` could not be read (not a list, an entry unset or malformed): it may read anything. */
  fromKnown: boolean;
}

/** An output name as the schema's `from` pattern accepts it. */
const OUTPUT_NAME = /^[A-Za-z_][A-Za-z0-9_-]*(\.errors)?$/;

class Validator {
  readonly diagnostics: Diagnostic[] = [];
  spec: PipelineSpec | undefined;
  /** Secrets written in the spec: no message may quote them. */
  readonly literalSecrets = new Set<string>();
  private readonly loaded: LoadedSpec;
  /** Paths of options whose value must come from the environment (EnvSecret). */
  private readonly secretOptions = new Set<string>();
  private readonly defs: readonly StageDefinition[];

  constructor(loaded: LoadedSpec, defs: readonly StageDefinition[]) {
    this.loaded = loaded;
    this.defs = defs;
  }

  private typesOf(kind: StageKind): string[] {
    return this.defs.filter((d) => d.kind === kind).map((d) => d.type);
  }

  report(
    path: Path,
    code: DiagnosticCode,
    message: string,
    opts?: { key?: boolean; severity?: Severity; span?: Span; secrets?: Span[] },
  ): void {
    const span = opts?.span ?? this.loaded.locate(path, { key: opts?.key });
    this.diagnostics.push({
      file: this.loaded.file,
      severity: opts?.severity ?? 'error',
      code,
      message,
      ...span,
      ...(opts?.secrets?.length ? { secrets: opts.secrets } : {}),
    });
  }

  run(): void {
    const root = this.loaded.value;
    if (this.loaded.diagnostics.some((d) => d.severity === 'error') && root === undefined) return;
    if (!isObj(root)) {
      this.report([], 'schema-type', 'a spec is a mapping with `version`, `name`, `sources` and `sinks`');
      return;
    }
    this.checkSchema(topLevelSchema(), 'top', root, []);
    const runtime = isObj(root.runtime) ? root.runtime : {};
    const stages: StageSpec[] = [];
    const wires: Wire[] = [];
    const seen = new Map<string, Section>();
    // A section that is not a mapping hides its stage names: an input naming one is not unknown.
    let namesKnown = true;
    for (const section of Object.keys(SECTION_KIND) as Section[]) {
      const entries = root[section];
      if (!isObj(entries)) {
        if (entries !== undefined && entries !== null) namesKnown = false;
        continue;
      }
      for (const [name, raw] of Object.entries(entries)) {
        const other = seen.get(name);
        if (other) {
          this.report(
            [section, name],
            'duplicate-name',
            `the name '${name}' is already used in ${other}: stage names are unique across sections`,
            { key: true },
          );
        }
        seen.set(name, section);
        wires.push(wireOf(SECTION_KIND[section], name, raw));
        const stage = this.checkStage(section, name, raw);
        if (stage) stages.push(stage);
      }
    }
    this.checkCredentials(root, []);
    // Wiring is checked on every stage as written: one that failed its own checks still reads
    // its inputs, so they are not reported unused, nor is an input naming it unknown.
    this.checkGraph(wires, new Set(stages.map((st) => st.name)), namesKnown);
    const runtimeValue = this.normalise(
      RuntimeSettings,
      withDefaults(RuntimeSettings, 'runtime', runtime),
    ) as unknown as RuntimeSpec;
    this.spec = { file: this.loaded.file, name: String(root.name), runtime: runtimeValue, stages };
  }

  // ------------------------------------------------------------ schema

  private checkSchema(
    schema: TSchema,
    name: string,
    value: unknown,
    base: Path,
    stageType?: string,
  ): boolean {
    const validate = validatorFor('pipeline', schema, name);
    if (validate(value)) return true;
    for (const e of pruneErrors(validate.errors ?? [])) this.schemaError(e, schema, base, stageType);
    return false;
  }

  private schemaError(e: ErrorObject, root: TSchema, base: Path, stageType?: string): void {
    const path = [...base, ...pointerToPath(e.instancePath)];
    // A stage itself (sources.x) is checked by checkStage, against the schema of its type.
    if (!stageType && path.length === 2 && String(path[0]) in SECTION_KIND && e.keyword === 'type') return;
    const where = stageType ? `${stageType}` : 'the spec';
    const sub = schemaAt(root, pointerToPath(e.instancePath));
    const kind = sub ? sluiceKind(sub) : undefined;
    const tainted = this.loaded.fromEnv.has(pathKey(path));
    switch (e.keyword) {
      case 'additionalProperties': {
        const key = String((e.params as { additionalProperty: string }).additionalProperty);
        const known = Object.keys((sub as { properties?: Obj } | undefined)?.properties ?? {});
        const hint = didYouMean(key, known);
        const secret = /secret|password|access_key/i.test(key)
          ? '; credentials come from the environment (AWS SDK chain, ${VAR})'
          : '';
        this.report(
          [...path, key],
          secret ? 'literal-credential' : 'unknown-key',
          `unknown key '${key}' in ${where}${hint ? `: did you mean '${hint}'?` : `; known keys: ${known.join(', ')}`}${secret}`,
          { key: true, secrets: secret ? this.literalValue([...path, key]) : undefined },
        );
        return;
      }
      case 'required': {
        const missing = String((e.params as { missingProperty: string }).missingProperty);
        // A sink without `from` is reported once, as sink-no-input.
        if (missing === 'from' && base[0] === 'sinks' && path.length === 2) return;
        this.report(path, 'schema-required', `missing required key '${missing}' in ${where}`, { key: true });
        return;
      }
      case 'type':
        this.report(path, 'schema-type', `${describe(path)} must be ${(e.params as { type: string }).type}`);
        return;
      case 'pattern':
        if (kind === 'duration') {
          this.report(
            path,
            'invalid-duration',
            `${describe(path)}: ${tainted ? 'the value' : `'${String(valueAt(this.loaded.value, path))}'`} is not a duration: write a number and a unit, e.g. 500ms, 60s, 5m, 24h`,
          );
          return;
        }
        if (kind === 'size') {
          this.report(
            path,
            'invalid-size',
            `${describe(path)}: ${tainted ? 'the value' : `'${String(valueAt(this.loaded.value, path))}'`} is not a size: write a number and a unit, e.g. 256KiB, 5MiB, 1GB`,
          );
          return;
        }
        this.report(
          path,
          'schema-value',
          `${describe(path)} must match ${(e.params as { pattern: string }).pattern}`,
        );
        return;
      case 'const':
      case 'enum': {
        const allowed =
          e.keyword === 'const'
            ? [(e.params as { allowedValue: unknown }).allowedValue]
            : (e.params as { allowedValues: unknown[] }).allowedValues;
        const actual = valueAt(this.loaded.value, path);
        const hint =
          typeof actual === 'string' && !tainted ? didYouMean(actual, allowed.map(String)) : undefined;
        this.report(
          path,
          'schema-value',
          `${describe(path)} must be ${allowed.map((a) => JSON.stringify(a)).join(' or ')}${hint ? ` (did you mean '${hint}'?)` : ''}`,
        );
        return;
      }
      default:
        this.report(path, 'schema-value', `${describe(path)} ${e.message ?? 'is invalid'}`);
    }
  }

  // ------------------------------------------------------------ stages

  private checkStage(section: Section, name: string, raw: unknown): StageSpec | undefined {
    const kind = SECTION_KIND[section];
    const base: Path = [section, name];
    if (!isObj(raw)) {
      this.report(base, 'schema-type', `${kind} '${name}' must be a mapping with at least a 'type'`);
      return undefined;
    }
    if (kind === 'sink' && raw.from === undefined) {
      this.report(
        base,
        'sink-no-input',
        `sink '${name}' reads from nothing: add from: [<source or transform>]`,
        { key: true },
      );
    }
    if (typeof raw.type !== 'string') {
      this.report(
        raw.type === undefined ? base : [...base, 'type'],
        raw.type === undefined ? 'schema-required' : 'schema-type',
        `${kind} '${name}' needs a 'type': one of ${this.typesOf(kind).join(', ')}`,
        { key: raw.type === undefined },
      );
      return undefined;
    }
    const def = this.defs.find((d) => d.kind === kind && d.type === raw.type);
    if (!def) {
      if (this.loaded.fromEnv.has(pathKey([...base, 'type']))) {
        this.report(
          [...base, 'type'],
          'unknown-stage-type',
          `the ${kind} type from the environment is unknown; ${kind} types: ${this.typesOf(kind).join(', ')}`,
        );
        return undefined;
      }
      const elsewhere = this.defs.find((d) => d.type === raw.type);
      const hint = didYouMean(raw.type, this.typesOf(kind));
      const msg = elsewhere
        ? `'${raw.type}' is a ${elsewhere.kind} type, not a ${kind} type; move it to ${elsewhere.kind}s`
        : `unknown ${kind} type '${raw.type}'${hint ? `: did you mean '${hint}'?` : ''}; ${kind} types: ${this.typesOf(kind).join(', ')}`;
      this.report([...base, 'type'], 'unknown-stage-type', msg);
      return undefined;
    }
    const schema = schemaOf(def);
    const ok = this.checkSchema(schema, `${kind}.${def.type}`, raw, base, `${kind} '${name}' (${def.type})`);
    this.checkSpecial(schema, raw, base);
    if (!ok) return undefined;
    const normal = this.normalise(schema, raw) as Obj;
    const { type: _t, from, on_error, retry, buffer, max_in_flight, ...options } = normal;
    const report: CheckReport = (path, code, message, severity) =>
      this.report([...base, ...path], code, message, { severity });
    try {
      def.check?.(options as never, report);
    } catch (err) {
      this.report(base, 'schema-value', `could not check ${def.type} options: ${(err as Error).message}`);
    }
    if (def.kind === 'sink') this.checkBatching(def, options, buffer as Obj | undefined, base);
    return {
      name,
      kind,
      type: def.type,
      def,
      options,
      from: (from as string[] | undefined) ?? [],
      onError: (on_error as 'continue' | 'stop' | undefined) ?? 'continue',
      retry: { backoff: 200, max_backoff: 30_000, ...(retry as Partial<RetryPolicy> | undefined) },
      buffer: (buffer as StageSpec['buffer'] | undefined) ?? {},
      maxInFlight: (max_in_flight as number | undefined) ?? 4,
    };
  }

  /** Expressions compile, templates name known fields, secrets come from the environment. */
  private checkSpecial(schema: TSchema, value: unknown, base: Path): void {
    walkSchema(schema, value, base, (sub, v, path) => {
      const kind = sluiceKind(sub);
      if (typeof v !== 'string' || !kind) return;
      const tainted = this.loaded.fromEnv.has(pathKey(path));
      if (kind === 'expr') {
        try {
          compile(v);
        } catch (err) {
          if (!(err instanceof ExprError)) throw err;
          const span = this.innerSpan(path, v, err.offset, Math.max(1, err.length));
          this.report(
            path,
            'expr-syntax',
            tainted
              ? 'the expression from the environment does not compile'
              : `expression does not compile: ${err.message}`,
            { span },
          );
        }
      } else if (kind === 'template') {
        try {
          compileTemplate(v);
        } catch (err) {
          if (!(err instanceof TemplateError)) throw err;
          const message = tainted ? 'the template from the environment names an unknown field' : err.message;
          this.report(path, 'invalid-template', message, {
            span: this.innerSpan(path, v, err.offset, err.length),
          });
        }
      } else if (kind === 'env-secret') {
        // checkCredentials reports a password written here, with the advice for this option.
        this.secretOptions.add(pathKey(path));
      } else if (kind === 'secret') {
        this.checkSecretReference(path, v);
      }
    });
  }

  /**
   * A secret option (password, private key) holds nothing but a `${VAR}` reference: any text
   * written there, a default included, is the secret itself, so it is reported and masked.
   */
  private checkSecretReference(path: Path, value: string): void {
    // A value copied by an alias has no text of its own: its anchor is where it is written.
    const info = this.loaded.scalarInfo(path);
    if (!info) return;
    const written = this.loaded.source.slice(info.start, info.end).trim();
    if (SECRET_REFERENCE.test(written)) return;
    if (!this.loaded.fromEnv.has(pathKey(path))) this.literalSecrets.add(value);
    this.report(
      path,
      'literal-credential',
      `${describe(path)} is a secret: write \${VAR} (no default) and export the value in the environment`,
      { secrets: [this.fileSpan(info.start, info.end)] },
    );
  }

  /**
   * Literal AWS key ids or URL passwords anywhere in the spec are errors: they belong in the
   * environment. The text as written is searched, so a secret in a `${VAR:-default}` counts
   * even when VAR is set; each secret's place in the file is kept so no output echoes it.
   */
  private checkCredentials(value: unknown, path: Path): void {
    if (Array.isArray(value)) {
      for (const [i, x] of value.entries()) this.checkCredentials(x, [...path, i]);
      return;
    }
    if (isObj(value)) {
      for (const [k, x] of Object.entries(value)) this.checkCredentials(x, [...path, k]);
      return;
    }
    if (typeof value !== 'string') return;
    // A value copied by an alias has no text of its own: its anchor is checked where it is written.
    const info = this.loaded.scalarInfo(path);
    if (!info) return;
    const written = this.loaded.source.slice(info.start, info.end);
    let found: TextRange[] = findSecrets(written);
    let secrets: Span[];
    if (found.length > 0) {
      secrets = found.map((r) => this.fileSpan(info.start + r.start, info.start + r.end));
      for (const r of found) this.literalSecrets.add(written.slice(r.start, r.end));
    } else {
      if (this.loaded.fromEnv.has(pathKey(path))) return;
      // Escapes or folded lines can hide a secret from the text as written: mask the whole value.
      found = findSecrets(value);
      if (found.length === 0) return;
      secrets = [this.fileSpan(info.start, info.end)];
      for (const r of found) this.literalSecrets.add(value.slice(r.start, r.end));
    }
    this.report(
      path,
      'literal-credential',
      credentialMessage(found[0], this.secretOptions.has(pathKey(path))),
      {
        secrets,
      },
    );
  }

  /** Where the literal value at `path` is written, to be masked; nothing when it came from the environment. */
  private literalValue(path: Path): Span[] | undefined {
    const info = this.loaded.scalarInfo(path);
    if (!info || this.loaded.fromEnv.has(pathKey(path))) return undefined;
    const v = valueAt(this.loaded.value, path);
    if (typeof v === 'string') this.literalSecrets.add(v);
    return [this.fileSpan(info.start, info.end)];
  }

  private fileSpan(from: number, to: number): Span {
    const a = toLineCol(this.loaded.source, from);
    const b = toLineCol(this.loaded.source, to);
    return { line: a.line, column: a.col, endLine: b.line, endColumn: b.col };
  }

  private checkBatching(
    def: StageDefinition & { kind: 'sink' },
    options: Obj,
    buffer: Obj | undefined,
    base: Path,
  ): void {
    const policy = typeof def.batching === 'function' ? def.batching(options as never) : def.batching;
    const limits = policy.limits;
    if (!limits || !buffer) return;
    if (
      limits.max_records !== undefined &&
      typeof buffer.max_records === 'number' &&
      buffer.max_records > limits.max_records
    ) {
      this.report(
        [...base, 'buffer', 'max_records'],
        'aws-limit',
        `${def.type} accepts at most ${limits.max_records} records per request; set buffer.max_records to ${limits.max_records} or less`,
      );
    }
    if (
      limits.max_bytes !== undefined &&
      typeof buffer.max_bytes === 'number' &&
      buffer.max_bytes > limits.max_bytes
    ) {
      this.report(
        [...base, 'buffer', 'max_bytes'],
        'aws-limit',
        `${def.type} accepts at most ${formatBytes(limits.max_bytes)} per request; lower buffer.max_bytes`,
      );
    }
  }

  /** Maps an offset inside a scalar's value to a span in the file. */
  private innerSpan(path: Path, value: string, offset: number, length: number): Span | undefined {
    const info = this.loaded.scalarInfo(path);
    if (!info || this.loaded.fromEnv.has(pathKey(path))) return undefined;
    const source = this.loaded.source;
    const offsets = valueOffsets(source, info.start, info.end, info.type, value);
    if (offsets) {
      const from = offsets[Math.min(offset, value.length)];
      const to = offsets[Math.min(offset + length, value.length)];
      const a = toLineCol(source, from);
      // An error on the last character ends right after it, even when that is a line break.
      const b = toLineCol(source, to > from ? to : from + 1);
      return { line: a.line, column: a.col, endLine: b.line, endColumn: b.col };
    }
    const quoted = info.type === 'QUOTE_DOUBLE' || info.type === 'QUOTE_SINGLE';
    const start = info.start + (quoted ? 1 : 0);
    const raw = source.slice(start, info.end);
    let at: number;
    if (raw.startsWith(value)) at = start + offset;
    else {
      // Block scalars and escaped strings: find the line of the value that holds the offset.
      const before = value.slice(0, offset);
      const lineIdx = before.split('\n').length - 1;
      const col = offset - (before.lastIndexOf('\n') + 1);
      const lineText = value.split('\n')[lineIdx] ?? '';
      const found = lineText ? raw.indexOf(lineText) : -1;
      at = found >= 0 ? start + found + col : start;
    }
    const a = toLineCol(this.loaded.source, at);
    const b = toLineCol(this.loaded.source, at + length);
    return { line: a.line, column: a.col, endLine: b.line, endColumn: b.col };
  }

  // ------------------------------------------------------------ graph

  /** `valid`: the stages that passed their own checks; only they can be reported unused. */
  private checkGraph(wires: Wire[], valid: ReadonlySet<string>, namesKnown: boolean): void {
    const byName = new Map(wires.map((w) => [w.name, w]));
    const readers = new Map<string, number>();
    for (const w of wires) {
      for (const { input, index } of w.from) {
        const [target, port] = input.split('.');
        const path = [`${w.kind}s`, w.name, 'from', index];
        const t = byName.get(target);
        if (!t && !namesKnown) continue;
        if (!t && this.loaded.fromEnv.has(pathKey(path))) {
          this.report(
            path,
            'unknown-input',
            'the input named by the environment is not an output of this pipeline',
          );
        } else if (!t) {
          const hint = didYouMean(target, [...byName.keys()]);
          this.report(
            path,
            'unknown-input',
            `'${input}' is not an output of this pipeline${hint ? `: did you mean '${hint}${port ? `.${port}` : ''}'?` : ''}`,
          );
        } else if (t.kind === 'sink' && port !== 'errors') {
          this.report(
            path,
            'unknown-input',
            `'${target}' is a sink: only its error output '${target}.errors' can be read`,
          );
        } else if (port === undefined) {
          readers.set(target, (readers.get(target) ?? 0) + 1);
        }
      }
    }
    // A stage whose inputs could not be read might read any output: nothing is surely unused.
    // A stage with an error of its own gets that error alone.
    const readersKnown = wires.every((w) => w.fromKnown);
    for (const w of readersKnown ? wires : []) {
      if (w.kind !== 'sink' && valid.has(w.name) && !readers.get(w.name)) {
        this.report(
          [`${w.kind}s`, w.name],
          'unused-output',
          `nothing reads the output of ${w.kind} '${w.name}': wire it into a sink's from, or remove it`,
          { key: true, severity: 'warning' },
        );
      }
    }
    const found = findCycle(wires);
    if (found) {
      // Start the loop at the stage written first, and point at its `from` entry that closes it.
      const order = new Map(wires.map((w, i) => [w.name, i]));
      const at = found.reduce(
        (best, name, i) => ((order.get(name) ?? 0) < (order.get(found[best]) ?? 0) ? i : best),
        0,
      );
      const cycle = [...found.slice(at), ...found.slice(0, at)];
      const first = byName.get(cycle[0])!;
      const closing = first.from.find((f) => f.input.split('.')[0] === cycle[cycle.length - 1]);
      const path = [`${first.kind}s`, first.name, 'from', ...(closing ? [closing.index] : [])];
      this.report(path, 'cycle', `stages feed each other in a loop: ${cycle.join(' → ')} → ${cycle[0]}`);
    }
  }

  // ------------------------------------------------------------ normalise

  /** Copies `value`, turning durations into ms and sizes into bytes, as the schema marks them. */
  normalise(schema: TSchema, value: unknown): unknown {
    const copy = structuredClone(value);
    walkSchema(schema, copy, [], (sub, v, path) => {
      const kind = sluiceKind(sub);
      if (typeof v !== 'string' || (kind !== 'duration' && kind !== 'size')) return;
      const n = kind === 'duration' ? parseDuration(v) : parseSize(v);
      setAt(copy, path, n);
    });
    return copy;
  }
}

// ------------------------------------------------------------ helpers

/** The wiring of one stage entry as written; entries that are not output names are left to the schema. */
function wireOf(kind: StageKind, name: string, raw: unknown): Wire {
  // A source has no inputs; a stage that is not a mapping has inputs nobody can tell.
  if (kind === 'source') return { name, kind, from: [], fromKnown: true };
  if (!isObj(raw)) return { name, kind, from: [], fromKnown: false };
  // A missing `from` is its own error (sink-no-input, schema-required) and reads nothing.
  if (raw.from === undefined) return { name, kind, from: [], fromKnown: true };
  if (!Array.isArray(raw.from)) return { name, kind, from: [], fromKnown: false };
  const from: Wire['from'] = [];
  let fromKnown = true;
  raw.from.forEach((input: unknown, index) => {
    if (typeof input === 'string' && OUTPUT_NAME.test(input)) from.push({ input, index });
    else fromKnown = false;
  });
  return { name, kind, from, fromKnown };
}

/** The whole text of a secret option: one `${VAR}` (an empty default allowed), quoted or not. */
const SECRET_REFERENCE = /^(["']?)\$\{[A-Za-z_][A-Za-z0-9_]*(:-)?\}\1$/;

function credentialMessage(secret: TextRange, envSecretOption: boolean): string {
  if (secret.kind === 'private-key') {
    return 'this is a private key: keep it in a file (tls.key_file) or an environment variable (tls.key: ${VAR})';
  }
  if (secret.kind === 'aws-key-id') {
    return 'this looks like an AWS access key id: remove it; credentials come from the AWS SDK chain (environment, profile, instance role)';
  }
  return envSecretOption
    ? 'this URL holds a password: write ${MYSQL_URL} (or another variable) and export the URL in the environment'
    : 'this URL holds a password: move the URL to an environment variable and write ${VAR}';
}

function withDefaults(schema: TSchema, name: string, value: Obj): Obj {
  const copy = structuredClone(value);
  validatorFor('pipeline', schema, name)(copy);
  return copy;
}

function pointerToPath(pointer: string): (string | number)[] {
  if (!pointer) return [];
  return pointer
    .slice(1)
    .split('/')
    .map((p) => p.replaceAll('~1', '/').replaceAll('~0', '~'))
    .map((p) => (/^\d+$/.test(p) ? Number(p) : p));
}

function describe(path: Path): string {
  const inStage = typeof path[0] === 'string' && path[0] in SECTION_KIND;
  const last = (inStage ? path.slice(2) : path).join('.');
  return last ? `'${last}'` : 'the value';
}

/** Checks that follow from an unset variable (an empty string is not a number) would only repeat it. */
function dropShadowed(diags: Diagnostic[]): Diagnostic[] {
  const unset = new Set(diags.filter((d) => d.code === 'env-unset').map((d) => `${d.line}:${d.column}`));
  if (unset.size === 0) return diags;
  return diags.filter((d) => d.code === 'env-unset' || !unset.has(`${d.line}:${d.column}`));
}

/** Last line of defence: a value that came from the environment never appears in a message. */
function redact(diags: Diagnostic[], values: ReadonlySet<string>): Diagnostic[] {
  // The checks above avoid quoting values from the environment; this catches what a stage's own
  // check() prints. Values of one or two characters (a count of 5) are left out: they would blank
  // out unrelated numbers, and are no secret.
  const words = [...values].filter((v) => v.trim().length >= 3).sort((a, b) => b.length - a.length);
  if (words.length === 0) return diags;
  const alternatives = words.map((v) => v.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|');
  // Whole tokens only: a value 500 leaves the 500 of "5000 records" alone.
  const re = new RegExp(`(?<![A-Za-z0-9])(?:${alternatives})(?![A-Za-z0-9])`, 'g');
  return diags.map((d) => {
    const message = d.message.replace(re, '***');
    return message === d.message ? d : { ...d, message };
  });
}

function valueAt(root: unknown, path: Path): unknown {
  let v = root;
  for (const p of path) v = isObj(v) || Array.isArray(v) ? (v as Obj)[p as string] : undefined;
  return v;
}

function setAt(root: unknown, path: Path, value: unknown): void {
  let v = root as Obj;
  for (const p of path.slice(0, -1)) v = v[p as string] as Obj;
  v[path[path.length - 1] as string] = value;
}

/** The sub-schema at a value path (objects, arrays, unions); undefined when it cannot tell. */
function schemaAt(schema: TSchema, path: Path): TSchema | undefined {
  let s: TSchema | undefined = schema;
  for (const p of path) {
    if (!s) return undefined;
    if (typeof p === 'number') s = s.items as TSchema | undefined;
    else s = (s.properties as Record<string, TSchema> | undefined)?.[p];
  }
  return s;
}

/** Visits each value that has a schema with properties/items, calling `fn` for every leaf schema. */
function walkSchema(
  schema: TSchema,
  value: unknown,
  path: Path,
  fn: (s: TSchema, v: unknown, p: Path) => void,
): void {
  fn(schema, value, path);
  if (isObj(value) && (schema.properties || schema.patternProperties)) {
    const props = (schema.properties ?? {}) as Record<string, TSchema>;
    // Type.Record: every key shares one value schema.
    const each = Object.values((schema.patternProperties ?? {}) as Record<string, TSchema>)[0];
    for (const [k, v] of Object.entries(value)) {
      const sub = props[k] ?? each;
      if (sub) walkSchema(sub, v, [...path, k], fn);
    }
  } else if (Array.isArray(value) && schema.items && !Array.isArray(schema.items)) {
    for (const [i, v] of value.entries()) walkSchema(schema.items as TSchema, v, [...path, i], fn);
  }
  for (const alt of (schema.anyOf ?? schema.oneOf ?? []) as TSchema[]) {
    if (alt.properties || alt.items || sluiceKind(alt)) walkSchema(alt, value, path, fn);
  }
}

/** Ajv reports every branch of a union; keep the most useful errors, one per path and keyword. */
function pruneErrors(errors: ErrorObject[]): ErrorObject[] {
  const seen = new Set<string>();
  const out: ErrorObject[] = [];
  const unionPaths = new Set(errors.filter((e) => e.keyword === 'anyOf').map((e) => e.instancePath));
  for (const e of errors) {
    if (e.keyword === 'anyOf' || e.keyword === 'if') continue;
    // Within a union of literals, report one `enum`-like error instead of one per branch.
    if (unionPaths.has(e.instancePath) && e.keyword === 'const') {
      const key = `${e.instancePath}|union`;
      if (seen.has(key)) continue;
      seen.add(key);
      const allowed = errors
        .filter((x) => x.instancePath === e.instancePath && x.keyword === 'const')
        .map((x) => (x.params as { allowedValue: unknown }).allowedValue);
      out.push({ ...e, keyword: 'enum', params: { allowedValues: allowed } });
      continue;
    }
    const key = `${e.instancePath}|${e.keyword}|${JSON.stringify(e.params)}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(e);
  }
  return out;
}

function findCycle(stages: Wire[]): string[] | undefined {
  const byName = new Map(stages.map((s) => [s.name, s]));
  const state = new Map<string, 1 | 2>();
  const stack: string[] = [];
  const visit = (name: string): string[] | undefined => {
    const st = state.get(name);
    if (st === 2) return undefined;
    if (st === 1) return stack.slice(stack.indexOf(name));
    state.set(name, 1);
    stack.push(name);
    for (const { input } of byName.get(name)?.from ?? []) {
      const target = input.split('.')[0];
      if (byName.has(target)) {
        const c = visit(target);
        if (c) return c;
      }
    }
    stack.pop();
    state.set(name, 2);
    return undefined;
  };
  for (const s of stages) {
    const c = visit(s.name);
    if (c) return c.reverse();
  }
  return undefined;
}

export function didYouMean(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const c of candidates) {
    const d = levenshtein(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return best;
}

function levenshtein(a: string, b: string): number {
  if (a.length > 64 || b.length > 64) return 99;
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length];
}

function toLineCol(source: string, offset: number): { line: number; col: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < source.length; i++) {
    if (source.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, col: offset - lineStart + 1 };
}

export { loadSpec };
