/**
 * The stage reference: generated from the definitions, complete for every built-in type, its
 * example pipelines valid, the checked-in docs/stages/ never stale, and `sluice docs` / `sluice
 * list` on the command line (plugin stages included).
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderDocs, renderDocsTree, renderList, renderStage } from '../../src/cli/docs.ts';
import { validateText } from '../../src/spec/validate.ts';
import type { StageDefinition } from '../../src/stages/define.ts';
import { definitions } from '../../src/stages/registry.ts';

const root = join(import.meta.dirname, '..', '..');
const docsDir = join(root, 'docs', 'stages');
const name = (d: StageDefinition) => `${d.kind} ${d.type}`;

/** The CLI as a user runs it from a checkout. */
function sluice(...args: string[]) {
  return spawnSync(join(root, 'node_modules/.bin/node'), ['src/cli.ts', ...args], {
    cwd: root,
    encoding: 'utf8',
  });
}

/** Every option path of a schema (nested objects as `parent.child`) with its schema. */
function optionPaths(
  props: Record<string, Record<string, unknown>>,
  prefix = '',
): [string, Record<string, unknown>][] {
  return Object.entries(props).flatMap(([k, s]) => {
    const nested =
      s.type === 'object' ? (s.properties as Record<string, Record<string, unknown>> | undefined) : undefined;
    return [
      [`${prefix}${k}`, s] as [string, Record<string, unknown>],
      ...(nested ? optionPaths(nested, `${prefix}${k}.`) : []),
    ];
  });
}

describe('docs/stages/', () => {
  const generated = renderDocsTree(definitions);

  it('is what `npm run docs` writes now (run it and commit docs/stages when this fails)', () => {
    const onDisk = readdirSync(docsDir)
      .filter((f) => f.endsWith('.md'))
      .sort();
    expect(onDisk, 'docs/stages holds a page no stage type has, or lacks one: run `npm run docs`').toEqual(
      [...generated.keys()].sort(),
    );
    for (const [file, text] of generated) {
      expect(
        readFileSync(join(docsDir, file), 'utf8'),
        `docs/stages/${file} is stale: run \`npm run docs\``,
      ).toBe(text);
    }
  });

  it('has one page per type name, holding every kind of that name', () => {
    const kafka = generated.get('kafka.md') ?? '';
    expect(kafka).toContain('## kafka source');
    expect(kafka).toContain('## kafka sink');
    expect(generated.get('README.md')).toContain('- [mysql](mysql.md) — ');
  });
});

describe.each(definitions.map((d) => [name(d), d] as const))('%s', (_n, def) => {
  const page = renderStage(def);

  it('documents every option with its type, and its default and example where it has them', () => {
    for (const [path, schema] of optionPaths(
      def.options.properties as Record<string, Record<string, unknown>>,
    )) {
      expect(schema.description, `${name(def)}: option ${path} has no description`).toBeTypeOf('string');
      const item = page.split('\n').find((l) => l.startsWith(`- \`${path}\` (`));
      expect(item, `${path} is listed`).toBeDefined();
      if (schema.default !== undefined)
        expect(item).toContain(
          `default \`${typeof schema.default === 'string' ? schema.default : JSON.stringify(schema.default)}\``,
        );
    }
  });

  it('has a complete example pipeline that validates with no variable set and uses this stage type', () => {
    expect(def.example, `${name(def)} has no example`).toBeTypeOf('string');
    const { diagnostics, spec } = validateText(`${def.type}.example.yaml`, def.example ?? '', {});
    expect(diagnostics).toEqual([]);
    expect(spec?.stages.some((s) => s.kind === def.kind && s.type === def.type)).toBe(true);
    expect(page).toContain('### Example\n\n```yaml\nversion: 1\n');
  });

  if (def.kind === 'source') {
    it('lists the metadata fields it puts on records, each used in no other way than meta.<name>', () => {
      expect(def.meta?.length, `${name(def)} lists no meta fields`).toBeGreaterThan(0);
      for (const m of def.meta ?? []) expect(page).toContain(`- \`meta.${m.name}\` (${m.type}) — `);
    });
  }

  if (def.kind === 'sink') {
    it('says which failures are transient and which are permanent, and shows its buffer defaults', () => {
      expect(def.transient).toMatch(/^Transient.*Permanent/s);
      expect(page).toContain('### Failures');
      expect(page).toMatch(/- Buffer defaults: a write every \d+ records, [\d.]+ [KMG]i?B or \d+m?s/);
    });
  }
});

describe('the limits a sink documents come from its batching policy', () => {
  it('shows the API limits of Kinesis and the one write at a time of an ordered Kafka sink', () => {
    const kinesis = renderDocs(definitions, 'kinesis', 'sink') ?? '';
    expect(kinesis).toContain(
      '- Limits of the destination: 500 records per write, 5 MiB per write, 1 MiB per record',
    );
    const kafka = renderDocs(definitions, 'kafka', 'sink') ?? '';
    expect(kafka).toContain('- At most 1 write under way at once');
    expect(kafka).not.toContain('## kafka source');
  });
});

describe('sluice list', () => {
  it('prints one aligned line per stage type: kind, type, first sentence of the description', () => {
    const lines = renderList(definitions).split('\n');
    expect(lines).toHaveLength(definitions.length);
    expect(lines[0]).toMatch(/^source\s+generate\s+Generates records/);
    const mysql = lines.find((l) => /^sink\s+mysql\s/.test(l)) ?? '';
    expect(mysql).toMatch(
      /^sink\s+mysql\s+Writes records as rows of a MySQL\/MariaDB table, one transaction per batch;/,
    );
    // Aligned: every description starts in the same column.
    const starts = lines.map((l) => l.search(/ {2}[A-Z]/));
    expect(new Set(starts).size).toBe(1);
  });

  it('includes the stages of a plugin given with --plugin', () => {
    const out = sluice('list', '--plugin', 'examples/plugins/uppercase.ts');
    expect(out.status, out.stderr).toBe(0);
    expect(out.stdout).toMatch(/^transform\s+uppercase\s+Writes the named text fields in capitals/m);
    expect(out.stdout.trimEnd().split('\n')).toHaveLength(definitions.length + 1);
  });
});

describe('sluice docs', () => {
  it('prints the reference of a type', () => {
    const out = sluice('docs', 'mysql');
    expect(out.status, out.stderr).toBe(0);
    expect(out.stdout).toMatch(/^# mysql\n\n## mysql sink\n/);
    expect(out.stdout).toContain('- `mode` (`insert` | `insert_ignore` | `upsert`, default `insert`) — ');
    expect(out.stdout).toContain('### Failures\n\nTransient (the whole batch is retried');
    expect(out.stdout).toContain('url: ${MYSQL_URL:-mysql://root@127.0.0.1:3306/fazendas}');
  });

  it('documents a plugin stage given with --plugin, and exits 2 for a type nobody defines', () => {
    const plugin = sluice('docs', 'uppercase', '--plugin', 'examples/plugins/uppercase.ts');
    expect(plugin.status, plugin.stderr).toBe(0);
    expect(plugin.stdout).toContain('## uppercase transform');
    expect(plugin.stdout).toContain('- `fields` (list of string, required) — ');
    const unknown = sluice('docs', 'uppercase');
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toBe("sluice: no stage type 'uppercase'; `sluice list` shows them\n");
  });
});
