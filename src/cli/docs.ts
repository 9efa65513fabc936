/**
 * The stage reference: `sluice docs [type]`, `sluice list` and the generated docs/stages/*.md,
 * all rendered from the stage definitions (description, option schema, metadata fields,
 * transient failures, batching limits, example), so the reference cannot drift from the code.
 * Markdown built from lists, not tables: it reads the same on a terminal and on a web page.
 */
import { type TSchema, Type } from '@sinclair/typebox';
import { stagesWith } from '../spec/plugins.ts';
import { commonKeys } from '../spec/schema.ts';
import { sluiceKind } from '../spec/types.ts';
import type { SinkBatchingPolicy, StageDefinition, StageKind } from '../stages/define.ts';

type Schema = TSchema & Record<string, unknown>;

const KIND_ORDER: readonly StageKind[] = ['source', 'transform', 'sink'];
/** Where the keys every stage takes are described (a link on the web, a path on a terminal). */
const COMMON_KEYS = '[keys every stage takes](README.md#keys-every-stage-takes) in docs/stages/README.md';

/** Stage types in the order sources, transforms, sinks; the registry's order within a kind. */
export function byKind(defs: readonly StageDefinition[]): StageDefinition[] {
  return KIND_ORDER.flatMap((k) => defs.filter((d) => d.kind === k));
}

/** The first sentence of a description, for one-line listings. */
export function summary(description: string): string {
  const flat = description.replace(/\s+/g, ' ').trim();
  const end = flat.search(/\.(\s|$)/);
  return end < 0 ? flat : flat.slice(0, end + 1);
}

/** `sluice list`: one line per stage type, kind, type and what it does, aligned. */
export function renderList(defs: readonly StageDefinition[]): string {
  const rows = byKind(defs).map((d) => [d.kind, d.type, summary(d.description)]);
  const widths = [0, 1].map((i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => `${r[0].padEnd(widths[0])}  ${r[1].padEnd(widths[1])}  ${r[2]}`).join('\n');
}

// ---------------------------------------------------------------- option schemas

const inline = (v: unknown): string => `\`${typeof v === 'string' ? v : JSON.stringify(v)}\``;

/** What a value of this schema looks like, in words a spec author knows. */
export function typeText(s: Schema): string {
  const kind = sluiceKind(s);
  if (kind === 'duration') return 'duration';
  if (kind === 'size') return 'size';
  if (kind === 'expr') return 'CEL expression';
  if (kind === 'template') return 'template';
  if (kind === 'env-secret') return 'string from the environment';
  if ('const' in s) return inline(s.const);
  const anyOf = (s.anyOf ?? s.oneOf) as Schema[] | undefined;
  if (anyOf) return anyOf.map(typeText).join(' | ');
  if (Array.isArray(s.enum)) return s.enum.map(inline).join(' | ');
  if (s.type === 'array') return `list of ${typeText((s.items ?? {}) as Schema)}`;
  if (s.type === 'object') {
    const values = Object.values((s.patternProperties ?? {}) as Record<string, Schema>)[0];
    if (values) return `map of name → ${typeText(values)}`;
    return 'object';
  }
  if (Array.isArray(s.type)) return s.type.join(' | ');
  return typeof s.type === 'string' ? s.type : 'any';
}

/** The facts after the type: required, default, bounds. */
function facts(s: Schema, required: boolean): string[] {
  const out: string[] = [typeText(s)];
  // A key with a default may be left out, whatever the schema's `required` says.
  if (required && s.default === undefined) out.push('required');
  if (s.default !== undefined) out.push(`default ${inline(s.default)}`);
  const bounds: [string, string][] = [
    ['minimum', '≥'],
    ['exclusiveMinimum', '>'],
    ['maximum', '≤'],
    ['exclusiveMaximum', '<'],
  ];
  for (const [key, sign] of bounds) if (typeof s[key] === 'number') out.push(`${sign} ${s[key]}`);
  if (typeof s.minItems === 'number' && s.minItems > 1) out.push(`at least ${s.minItems} items`);
  return out;
}

const oneLine = (text: string): string => text.replace(/\s+/g, ' ').trim();

/** A nested object's own options (e.g. `listen.port`), documented under the parent's name. */
function nestedProperties(s: Schema): Record<string, Schema> | undefined {
  if (s.type !== 'object' || sluiceKind(s) !== undefined) return undefined;
  const props = s.properties as Record<string, Schema> | undefined;
  return props && Object.keys(props).length > 0 ? props : undefined;
}

/** One list item per option, nested objects flattened to `parent.child`. */
export function optionItems(
  properties: Record<string, Schema>,
  required: readonly string[],
  prefix = '',
): string[] {
  const items: string[] = [];
  for (const [name, schema] of Object.entries(properties)) {
    const path = `${prefix}${name}`;
    const lines = [`- \`${path}\` (${facts(schema, required.includes(name)).join(', ')})`];
    if (typeof schema.description === 'string') lines[0] += ` — ${oneLine(schema.description)}`;
    const examples = schema.examples as unknown[] | undefined;
    if (examples?.length) lines.push(`  Example: ${examples.map(inline).join(', ')}`);
    items.push(lines.join('  \n'));
    const nested = nestedProperties(schema);
    if (nested) items.push(...optionItems(nested, (schema.required as string[]) ?? [], `${path}.`));
  }
  return items;
}

// ---------------------------------------------------------------- one stage type

function batchingOf(def: StageDefinition): SinkBatchingPolicy | undefined {
  if (def.kind !== 'sink') return undefined;
  // A policy that depends on options is documented for the defaults (no option set).
  return typeof def.batching === 'function' ? def.batching({}) : def.batching;
}

const msText = (ms: number): string => (ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`);

/** A size as a spec would write it: `1 MiB`, `1000 KiB`, `512 B`. */
function sizeText(bytes: number): string {
  for (const [unit, n] of [
    ['GiB', 1024 ** 3],
    ['MiB', 1024 ** 2],
    ['KiB', 1024],
  ] as const) {
    if (bytes >= n && bytes % n === 0) return `${bytes / n} ${unit}`;
  }
  return `${bytes} B`;
}

/** Buffer defaults, destination limits and write concurrency of a sink. */
function limitItems(policy: SinkBatchingPolicy): string[] {
  const d = policy.defaults;
  const items = [
    `- Buffer defaults: a write every ${d.max_records} records, ${sizeText(d.max_bytes)} or ${msText(d.max_age)}, whichever comes first (\`buffer\` changes them)`,
  ];
  const l = policy.limits;
  if (l) {
    const parts = [
      l.max_records !== undefined ? `${l.max_records} records per write` : '',
      l.max_bytes !== undefined ? `${sizeText(l.max_bytes)} per write` : '',
      l.max_record_bytes !== undefined ? `${sizeText(l.max_record_bytes)} per record` : '',
    ].filter(Boolean);
    items.push(
      `- Limits of the destination: ${parts.join(', ')} (a larger \`buffer\` is a validation error; a larger record goes to the error output)`,
    );
  }
  if (policy.maxInFlight !== undefined)
    items.push(
      `- At most ${policy.maxInFlight} write${policy.maxInFlight === 1 ? '' : 's'} under way at once, whatever \`max_in_flight\` says`,
    );
  if (policy.byPartition) items.push('- One buffer per record partition (see the `partition` transform)');
  return items;
}

/** The keys the runtime owns, which every stage of a kind takes besides its options. */
function commonOptions(kind: StageKind): { properties: Record<string, Schema>; required: string[] } {
  const { type: _, ...keys } = commonKeys(kind);
  const object = Type.Object(keys);
  return { properties: object.properties as Record<string, Schema>, required: object.required ?? [] };
}

function commonItem(kind: StageKind): string {
  const keys = Object.keys(commonOptions(kind).properties).map((k) => `\`${k}\``);
  return `Besides \`type\`, every ${kind} takes ${keys.join(', ')}: see ${COMMON_KEYS}.`;
}

/** The reference of one stage type, as Markdown, its headings one level under `level`. */
export function renderStage(def: StageDefinition, level = 2): string {
  const h = (n: number) => '#'.repeat(level + n);
  const out: string[] = [`${h(0)} ${def.type} ${def.kind}`, '', oneLine(def.description), ''];
  const props = def.options.properties as Record<string, Schema>;
  out.push(`${h(1)} Options`, '');
  const items = optionItems(props, def.options.required ?? []);
  out.push(...(items.length ? items : ['None.']), '', commonItem(def.kind), '');
  if (def.kind === 'source' && def.meta?.length) {
    out.push(`${h(1)} Record metadata`, '');
    for (const m of def.meta) out.push(`- \`meta.${m.name}\` (${m.type}) — ${oneLine(m.description)}`);
    out.push('');
  }
  if (def.kind === 'sink') {
    if (def.transient) out.push(`${h(1)} Failures`, '', oneLine(def.transient), '');
    const policy = batchingOf(def);
    if (policy) out.push(`${h(1)} Limits`, '', ...limitItems(policy), '');
  }
  if (def.example) out.push(`${h(1)} Example`, '', '```yaml', def.example.trim(), '```', '');
  return out.join('\n');
}

const GENERATED = '<!-- Generated from the stage definitions by `npm run docs`: do not edit. -->';

/** docs/stages/<type>.md: every kind that has this type name (kafka is a source and a sink). */
export function renderTypePage(defs: readonly StageDefinition[], type: string): string {
  const ofType = byKind(defs).filter((d) => d.type === type);
  return [GENERATED, '', `# ${type}`, '', ...ofType.map((d) => renderStage(d))]
    .join('\n')
    .trimEnd()
    .concat('\n');
}

/** docs/stages/README.md: the stage types by kind, each linked to its page. */
export function renderIndex(defs: readonly StageDefinition[]): string {
  const out = [GENERATED, '', '# Stage reference', ''];
  out.push(
    'Every stage type sluice ships with. `sluice docs <type>` prints a page on the terminal,',
    '`sluice list` lists the types; both include plugin stages given with `--plugin`.',
    '',
  );
  for (const kind of KIND_ORDER) {
    out.push(`## ${kind[0].toUpperCase()}${kind.slice(1)}s`, '');
    for (const d of defs.filter((x) => x.kind === kind))
      out.push(`- [${d.type}](${d.type}.md) — ${summary(d.description)}`);
    out.push('');
  }
  out.push('## Keys every stage takes', '');
  out.push('`type` names the stage type; the runtime owns these keys, so no stage option reuses them.', '');
  for (const kind of KIND_ORDER) {
    const { properties, required } = commonOptions(kind);
    out.push(`### Every ${kind}`, '', ...optionItems(properties, required), '');
  }
  return `${out.join('\n').trimEnd()}\n`;
}

/** Every generated file of docs/stages/, by file name. */
export function renderDocsTree(defs: readonly StageDefinition[]): Map<string, string> {
  const files = new Map<string, string>([['README.md', renderIndex(defs)]]);
  for (const type of new Set(defs.map((d) => d.type))) files.set(`${type}.md`, renderTypePage(defs, type));
  return files;
}

/**
 * `sluice docs [type]`: the page of one type (every kind of that name, or only `kind`), or the
 * list of types when none is named. Undefined when no stage has that type.
 */
export function renderDocs(
  defs: readonly StageDefinition[],
  type?: string,
  kind?: StageKind,
): string | undefined {
  if (type === undefined) {
    return `${renderList(defs)}\n\nsluice docs <type> prints the reference of one.\n`;
  }
  const matching = byKind(defs).filter((d) => d.type === type && (kind === undefined || d.kind === kind));
  if (matching.length === 0) return undefined;
  return `${[`# ${type}`, '', ...matching.map((d) => renderStage(d))].join('\n').trimEnd()}\n`;
}

// ---------------------------------------------------------------- commands

export interface DocsFlags {
  plugin: string[];
  kind?: StageKind;
}

/** `sluice docs [type]`: 0, or 2 when no stage has that type (a usage mistake). */
export async function docsCommand(type: string | undefined, flags: DocsFlags): Promise<number> {
  const defs = await stagesWith(flags.plugin);
  const text = renderDocs(defs, type, flags.kind);
  if (text === undefined) {
    const what = flags.kind ? `${flags.kind} type` : 'stage type';
    process.stderr.write(`sluice: no ${what} '${type}'; \`sluice list\` shows them\n`);
    return 2;
  }
  process.stdout.write(text);
  return 0;
}

/** `sluice list`: the stage types, built-in and from the plugins given. */
export async function listCommand(flags: { plugin: string[] }): Promise<number> {
  process.stdout.write(`${renderList(await stagesWith(flags.plugin))}\n`);
  return 0;
}
