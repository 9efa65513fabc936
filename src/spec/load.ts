// biome-ignore-all lint/suspicious/noTemplateCurlyInString: messages quote ${VAR} syntax on purpose
/**
 * Loads a spec file: YAML with a source range for every key and value, `${VAR}` substitution
 * after parsing (so positions stay those of the file), and the set of values that came from
 * the environment (never printed).
 */
import {
  type Document,
  isAlias,
  isMap,
  isPair,
  isScalar,
  isSeq,
  Lexer,
  LineCounter,
  type Node,
  parseAllDocuments,
  Scalar,
} from 'yaml';
import type { Diagnostic, DiagnosticCode, Span } from './diagnostics.ts';

export type Path = readonly (string | number)[];

/** The loaded spec: a plain JS value plus the means to point back into the file. */
export interface LoadedSpec {
  file: string;
  source: string;
  value: unknown;
  diagnostics: Diagnostic[];
  /** Span of the value at `path` (or of its key with `key: true`); falls back to the nearest parent. */
  locate(path: Path, opts?: { key?: boolean }): Span;
  /** Range in the file of the scalar at `path`, and its style. */
  scalarInfo(path: Path): ScalarInfo | undefined;
  /** Paths (joined with '/') whose value came, wholly or partly, from the environment. */
  fromEnv: ReadonlySet<string>;
  /** The environment values substituted into the spec: never to appear in any message. */
  envValues: ReadonlySet<string>;
}

export interface ScalarInfo {
  /** Offset in the file where the scalar starts (its opening quote or block header included). */
  start: number;
  /** Offset just past the scalar (closing quote included). */
  end: number;
  type: Scalar.Type | undefined;
}

/** Limit on nodes produced by alias expansion: stops "billion laughs" documents. */
const MAX_EXPANDED_NODES = 100_000;
const MAX_ALIASES = 100;
/** Mappings and sequences nested deeper than this are refused (no spec needs more than a handful). */
const MAX_DEPTH = 64;

export const pathKey = (path: Path): string => path.join('/');

export function loadSpec(
  file: string,
  source: string,
  env: Readonly<Record<string, string | undefined>> = process.env,
): LoadedSpec {
  const lineCounter = new LineCounter();
  const diagnostics: Diagnostic[] = [];
  const span = (from: number, to: number): Span => {
    const a = lineCounter.linePos(from);
    const b = lineCounter.linePos(Math.max(from, to));
    return { line: a.line, column: a.col, endLine: b.line, endColumn: b.col };
  };
  const report = (
    code: DiagnosticCode,
    message: string,
    from: number,
    to: number,
    severity: 'error' | 'warning' = 'error',
  ) => diagnostics.push({ file, severity, code, message, ...span(from, to) });

  const valueRanges = new Map<string, [number, number]>();
  const keyRanges = new Map<string, [number, number]>();
  const scalars = new Map<string, ScalarInfo>();
  const fromEnv = new Set<string>();
  const envValues = new Set<string>();

  // `{ url: ${MYSQL_URL} }`: the braces of an unquoted reference would open a flow mapping.
  const flowRefs = protectFlowRefs(source);
  let docs: ReturnType<typeof parseAllDocuments>;
  try {
    docs = parseAllDocuments(flowRefs.text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  } catch (err) {
    // The parser reports its own errors; anything it throws is still a diagnostic, never a stack trace.
    report('yaml-syntax', `cannot parse this file: ${(err as Error).message}`, 0, 0);
    docs = [];
  }
  const list = Array.isArray(docs) ? docs : [];
  let value: unknown;
  if (list.length > 1) {
    const second = list[1] as Document.Parsed;
    const [from, to] = second.range;
    report(
      'multiple-documents',
      'a spec holds one YAML document: remove the `---` and what follows, or split it into another file',
      from,
      to,
    );
  }
  const doc = list[0] as Document.Parsed | undefined;
  if (doc) {
    for (const err of [...doc.errors]) {
      const code: DiagnosticCode = err.code === 'DUPLICATE_KEY' ? 'duplicate-key' : 'yaml-syntax';
      let msg =
        err.code === 'DUPLICATE_KEY'
          ? 'this key appears twice in the same mapping; keep one'
          : yamlMessage(err.message);
      let end = err.pos[1];
      if (err.code === 'DUPLICATE_KEY') {
        // yaml marks one character; underline the whole key.
        const key = /^("(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^\s:,{}[\]#]+)/.exec(
          source.slice(err.pos[0], err.pos[0] + 1024),
        );
        if (key) end = err.pos[0] + key[0].length;
      } else if (/\$\{/.test(sourceLine(source, err.pos[0]))) {
        msg += ' (inside { } or [ ], a ${VAR} whose default holds { or } must be quoted)';
      }
      report(code, msg, err.pos[0], end);
    }
    // Tags a spec has no use for (`!!str` on a mapping, `!custom`) are ignored by the parser: say so.
    for (const w of doc.warnings)
      report('yaml-syntax', yamlMessage(w.message), w.pos[0], w.pos[1], 'warning');
    if (doc.errors.length === 0) {
      const walker = new Walker(doc, env, report, flowRefs.restore, {
        valueRanges,
        keyRanges,
        scalars,
        fromEnv,
        envValues,
      });
      try {
        value = walker.toValue(doc.contents as Node | null, []);
      } catch (err) {
        const range = (doc.contents as Node | null)?.range ?? [0, 0];
        report('yaml-syntax', `cannot read this file: ${(err as Error).message}`, range[0], range[1]);
        value = undefined;
      }
    }
  }

  const locate = (path: Path, opts?: { key?: boolean }): Span => {
    for (let n = path.length; n >= 0; n--) {
      const k = pathKey(path.slice(0, n));
      const r =
        (opts?.key && n === path.length ? keyRanges.get(k) : undefined) ??
        valueRanges.get(k) ??
        keyRanges.get(k);
      if (r) return span(r[0], r[1]);
    }
    return span(0, 0);
  };
  return {
    file,
    source,
    value,
    diagnostics,
    locate,
    scalarInfo: (p) => scalars.get(pathKey(p)),
    fromEnv,
    envValues,
  };
}

function sourceLine(source: string, offset: number): string {
  const start = source.lastIndexOf('\n', offset - 1) + 1;
  const end = source.indexOf('\n', offset);
  return source.slice(start, end < 0 ? undefined : end);
}

/** yaml's messages end with a code frame of their own; keep the first line, ours adds the frame. */
function yamlMessage(message: string): string {
  const first = message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
  if (first === 'Maximum call stack size exceeded') return NESTING_MESSAGE;
  const tag = /^Unresolved tag: (.*)$/.exec(first);
  if (tag)
    return `the tag ${tag[1].replace('tag:yaml.org,2002:', '!!')} is ignored: specs use no tags; remove it`;
  return first;
}

const NESTING_MESSAGE = `values nest too deeply (more than ${MAX_DEPTH} levels): a spec needs only a few`;

type Report = (code: DiagnosticCode, message: string, from: number, to: number) => void;

class Walker {
  private expanded = 0;
  private aliases = 0;
  private bombReported = false;
  private depthReported = false;

  private readonly doc: Document.Parsed;
  private readonly env: Readonly<Record<string, string | undefined>>;
  private readonly report: Report;
  private readonly restore: Restore;
  private readonly valueRanges: Map<string, [number, number]>;
  private readonly keyRanges: Map<string, [number, number]>;
  private readonly scalars: Map<string, ScalarInfo>;
  private readonly fromEnv: Set<string>;
  private readonly envValues: Set<string>;

  constructor(
    doc: Document.Parsed,
    env: Readonly<Record<string, string | undefined>>,
    report: Report,
    restore: Restore,
    maps: {
      valueRanges: Map<string, [number, number]>;
      keyRanges: Map<string, [number, number]>;
      scalars: Map<string, ScalarInfo>;
      fromEnv: Set<string>;
      envValues: Set<string>;
    },
  ) {
    this.doc = doc;
    this.env = env;
    this.report = report;
    this.restore = restore;
    this.valueRanges = maps.valueRanges;
    this.keyRanges = maps.keyRanges;
    this.scalars = maps.scalars;
    this.fromEnv = maps.fromEnv;
    this.envValues = maps.envValues;
  }

  toValue(node: Node | null | undefined, path: (string | number)[], aliasFrom?: [number, number]): unknown {
    if (node == null) return null;
    if (path.length > MAX_DEPTH) {
      if (!this.depthReported) {
        this.depthReported = true;
        const r = node.range ?? aliasFrom ?? [0, 0];
        this.report('yaml-syntax', NESTING_MESSAGE, r[0], r[1]);
      }
      return null;
    }
    const range =
      aliasFrom ?? (node.range ? ([node.range[0], node.range[1]] as [number, number]) : undefined);
    if (aliasFrom && ++this.expanded > MAX_EXPANDED_NODES) return this.bomb(aliasFrom);
    if (range) this.valueRanges.set(pathKey(path), range);
    if (isAlias(node)) {
      if (++this.aliases > MAX_ALIASES) return this.bomb(range ?? [0, 0]);
      const target = node.resolve(this.doc);
      return this.toValue(target as Node | undefined, path, range ?? [0, 0]);
    }
    if (isMap(node)) {
      const out: Record<string, unknown> = {};
      for (const pair of node.items) {
        if (!isPair(pair)) continue;
        const keyNode = pair.key as Node | null;
        const key = isScalar(keyNode) ? this.restore(String(keyNode.value), keyNode.range) : String(keyNode);
        if (key === '<<') {
          // Merge key: copy the aliased mapping's entries under this mapping.
          const merged = this.toValue(pair.value as Node, path, aliasFrom);
          if (merged && typeof merged === 'object' && !Array.isArray(merged)) {
            for (const [k, v] of Object.entries(merged)) if (!(k in out)) out[k] = v;
          }
          continue;
        }
        const child = [...path, key];
        const kr =
          aliasFrom ??
          (keyNode?.range ? ([keyNode.range[0], keyNode.range[1]] as [number, number]) : undefined);
        if (kr) this.keyRanges.set(pathKey(child), kr);
        out[key] = this.toValue(pair.value as Node | null, child, aliasFrom);
        if (pair.value == null && kr) this.valueRanges.set(pathKey(child), kr);
      }
      return out;
    }
    if (isSeq(node)) return node.items.map((item, i) => this.toValue(item as Node, [...path, i], aliasFrom));
    if (isScalar(node)) return this.scalar(node, path, aliasFrom);
    return null;
  }

  private bomb(range: [number, number]): null {
    if (!this.bombReported) {
      this.bombReported = true;
      this.report(
        'alias-limit',
        `aliases expand to more than ${MAX_EXPANDED_NODES} nodes or ${MAX_ALIASES} references; write the values out`,
        range[0],
        range[1],
      );
    }
    return null;
  }

  private scalar(node: Scalar, path: (string | number)[], aliasFrom?: [number, number]): unknown {
    const key = pathKey(path);
    if (!aliasFrom && node.range) {
      this.scalars.set(key, { start: node.range[0], end: node.range[1], type: node.type });
    }
    const v = typeof node.value === 'string' ? this.restore(node.value, node.range) : node.value;
    if (typeof v !== 'string' || !v.includes('$')) return v;
    const result = interpolate(v, this.env);
    if (result.unset.length > 0) {
      const r = aliasFrom ?? node.range ?? [0, 0];
      for (const name of result.unset) {
        this.report(
          'env-unset',
          `environment variable ${name} is not set and has no default: export it or write \${${name}:-default}`,
          r[0],
          r[1],
        );
      }
    }
    if (result.usedEnv) this.fromEnv.add(key);
    for (const used of result.envValues) this.envValues.add(used);
    // A plain scalar that was only a reference takes the type its text has (port: ${PORT:-8080} is a number).
    if (result.whole && node.type === Scalar.PLAIN) return coerceScalar(result.text);
    return result.text;
  }
}

/** Gives a plain scalar back the references `protectFlowRefs` hid in it (`range`: the scalar's). */
type Restore = (value: string, range: readonly [number, number, number?] | null | undefined) => string;

/**
 * Stands in for each character of a hidden reference: a private-use character, which YAML
 * reads as an ordinary character of a plain scalar (no indicator, printable) and specs never hold.
 */
const HIDDEN = '\uE000';

/**
 * Hides the unquoted `${...}` references that sit in flow collections (`{ url: ${MYSQL_URL} }`,
 * `[${A}, ${B}]`) from the YAML parser, whose flow context reads their braces as a mapping.
 * Each reference is replaced by as many HIDDEN characters as it has, so every offset, line and
 * column the parser reports is that of the file; `restore` puts the references back into the
 * scalars that hold them, before substitution. YAML's own lexer finds them: a plain scalar ending
 * in `$` directly followed by a `{` that opens a flow mapping. Quoted scalars, block scalars and
 * comments are single tokens to it, so references there are never touched (they need no help),
 * nor are those in block context, where braces are ordinary characters.
 */
export function protectFlowRefs(source: string): { text: string; restore: Restore } {
  const none = { text: source, restore: (value: string) => value };
  if (!source.includes('${') || source.includes(HIDDEN)) return none;
  const hidden: { at: number; ref: string }[] = [];
  let offset = 0;
  let previous = '';
  for (const token of new Lexer().lex(source)) {
    // Markers of the lexer's state, not text of the file.
    if (token === '\x02' || token === '\x18' || token === '\x1f') continue;
    if (token === '{' && previous.endsWith('$')) {
      const ref = /^\$\{[^{}\n]*\}/.exec(source.slice(offset - 1, offset + 1024));
      if (ref) hidden.push({ at: offset - 1, ref: ref[0] });
    }
    previous = token;
    offset += token.length;
  }
  if (hidden.length === 0) return none;
  let text = '';
  let from = 0;
  for (const h of hidden) {
    text += source.slice(from, h.at) + HIDDEN.repeat(h.ref.length);
    from = h.at + h.ref.length;
  }
  text += source.slice(from);
  const restore: Restore = (value, range) => {
    if (!range || !value.includes(HIDDEN)) return value;
    let out = value;
    let cursor = 0;
    for (const h of hidden) {
      if (h.at < range[0] || h.at >= range[1]) continue;
      // A plain scalar's value is its text (lines folded): the references come in file order.
      const i = out.indexOf(HIDDEN, cursor);
      if (i < 0) break;
      out = out.slice(0, i) + h.ref + out.slice(i + h.ref.length);
      cursor = i + h.ref.length;
    }
    return out;
  };
  return { text, restore };
}

/** `$${` (a literal `${`) or `${NAME}` / `${NAME:-default}`. */
export const REF = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

export interface Interpolated {
  text: string;
  /** True when some part of the text came from the environment (not from a default). */
  usedEnv: boolean;
  /** True when the whole value was one `${...}` reference. */
  whole: boolean;
  unset: string[];
  /** The environment values that were substituted. */
  envValues: string[];
}

export function interpolate(text: string, env: Readonly<Record<string, string | undefined>>): Interpolated {
  let usedEnv = false;
  const unset: string[] = [];
  const envValues: string[] = [];
  let refs = 0;
  const out = text.replace(REF, (match, name: string | undefined, fallback: string | undefined) => {
    if (match === '$${') return '${';
    refs++;
    const set = env[name!];
    if (set !== undefined && set !== '') {
      usedEnv = true;
      envValues.push(set);
      return set;
    }
    if (fallback !== undefined) return fallback;
    unset.push(name!);
    return '';
  });
  const whole = refs === 1 && /^\$\{[^}]*\}$/.test(text);
  return { text: out, usedEnv, whole, unset, envValues };
}

function coerceScalar(text: string): unknown {
  if (/^-?\d+(\.\d+)?$/.test(text)) return Number(text);
  if (text === 'true' || text === 'false') return text === 'true';
  if (text === 'null' || text === '~') return null;
  return text;
}

/**
 * For `validate --allow-unset-env`: an unset variable becomes a warning, so a pull request can
 * check specs that read secrets its CI does not have. Errors inside the value that read it (an
 * empty string is no number, no expression) only follow from its absence and are left out;
 * everything else is checked.
 */
export function allowUnsetEnv(diagnostics: readonly Diagnostic[]): Diagnostic[] {
  const unset = diagnostics.filter((d) => d.code === 'env-unset');
  const at = (d: Diagnostic) => [d.line, d.column] as const;
  const before = (a: readonly [number, number], b: readonly [number, number]) =>
    a[0] < b[0] || (a[0] === b[0] && a[1] <= b[1]);
  const inside = (d: Diagnostic, u: Diagnostic) =>
    d.file === u.file && before(at(u), at(d)) && before(at(d), [u.endLine, u.endColumn]);
  return diagnostics
    .filter((d) => d.code === 'env-unset' || !unset.some((u) => inside(d, u)))
    .map((d) =>
      d.code === 'env-unset'
        ? {
            ...d,
            severity: 'warning',
            message: `${d.message.replace(/: export it or .*$/, '')} (allowed by --allow-unset-env: the value that reads it was not checked)`,
          }
        : d,
    );
}
