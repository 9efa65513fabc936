// biome-ignore-all lint/suspicious/noTemplateCurlyInString: specs are full of ${VAR} references
/**
 * Unquoted `${VAR}` references inside flow mappings and sequences: they read as in block style,
 * and every diagnostic still points at the exact characters of the file.
 */
import { describe, expect, it } from 'vitest';
import type { Diagnostic } from '../../src/spec/diagnostics.ts';
import { loadSpec, protectFlowRefs } from '../../src/spec/load.ts';
import { validateText } from '../../src/spec/validate.ts';

const lines = (...l: string[]) => `${l.join('\n')}\n`;

/** The text a diagnostic underlines (one line). */
function underlined(text: string, d: Diagnostic): string {
  expect(d.endLine).toBe(d.line);
  return text.split('\n')[d.line - 1].slice(d.column - 1, d.endColumn - 1);
}

const spec = (sink: string) =>
  lines(
    'version: 1',
    'name: t',
    'sources:',
    "  gen: { type: generate, count: ${COUNT:-5}, fields: { a: '1', b: '${B:-x}' } }",
    'sinks:',
    sink,
  );

describe('${VAR} unquoted in flow collections', () => {
  it('a flow mapping and a flow sequence read like block style, values typed as plain scalars', () => {
    const text = spec("  out: { type: file, from: [${SRC:-gen}], dir: ${OUT}, path: '{seq}' }");
    const r = validateText('s.yaml', text, { OUT: '/data/out' });
    expect(r.diagnostics).toEqual([]);
    const [gen, out] = r.spec?.stages ?? [];
    expect(gen.options).toMatchObject({ count: 5, fields: { a: '1', b: 'x' } });
    expect(out.from).toEqual(['gen']);
    expect(out.options).toMatchObject({ dir: '/data/out' });
    expect(r.loaded.fromEnv.has('sinks/out/dir')).toBe(true);
  });

  it('several references in one scalar, side by side, with text around and commas in a default', () => {
    const loaded = loadSpec('s.yaml', 'a: { url: mysql://${U}:${P:-p,w}@${H}/db, n: [x${A}${B}y] }\n', {
      U: 'u',
      H: 'h',
      A: '1',
      B: '2',
    });
    expect(loaded.diagnostics).toEqual([]);
    expect(loaded.value).toEqual({ a: { url: 'mysql://u:p,w@h/db', n: ['x12y'] } });
  });

  it('leaves quoted scalars, block scalars, comments, block style and $${ alone', () => {
    const text = lines(
      'a: { q: \'${Q}\', d: "${D}" }   # { ${C} }',
      'b: ${B}',
      'c: |',
      '  { ${K} }',
      'e: [ $${LITERAL} ]',
    );
    // Only the escaped reference sits unquoted in a flow collection.
    expect(protectFlowRefs(text).text).toBe(text.replace('${LITERAL}', '\uE000'.repeat(10)));
    const loaded = loadSpec('s.yaml', text, { Q: 'q', D: 'd', B: 'b', K: 'k' });
    expect(loaded.diagnostics).toEqual([]);
    expect(loaded.value).toEqual({ a: { q: 'q', d: 'd' }, b: 'b', c: '{ k }\n', e: ['${LITERAL}'] });
  });

  it('every diagnostic underlines exactly its characters, after references on the same line', () => {
    const text = spec(
      "  out: { type: file, from: [gen, ${NOPE}], dir: ${OUT}, path: '{seq}', compresion: gzip, format: ${FMT:-xml} }",
    );
    const ds = validateText('s.yaml', text, {}).diagnostics;
    const seen = ds.map((d) => [d.code, underlined(text, d)]);
    expect(seen).toEqual([
      ['env-unset', '${NOPE}'],
      ['env-unset', '${OUT}'],
      ['unknown-key', 'compresion'],
      ['schema-value', '${FMT:-xml}'],
    ]);
  });

  it('a YAML error after a reference is at the column of the file', () => {
    const text = 'a: { b: ${X}, c: [1, 2 }\n';
    const d = loadSpec('s.yaml', text, { X: '1' }).diagnostics[0];
    expect(d.code).toBe('yaml-syntax');
    expect(d.line).toBe(1);
    // The stray `}` closes nothing: its own column, 24.
    expect(d.column).toBe(text.indexOf('}', text.indexOf('2')) + 1);
  });

  it('values from the environment stay out of messages', () => {
    const text = spec("  out: { type: file, from: [gen], dir: /tmp, path: '{seq}', format: ${FMT} }");
    const ds = validateText('s.yaml', text, { FMT: 's3cr3t-format' }).diagnostics;
    expect(ds.map((d) => d.code)).toEqual(['schema-value']);
    expect(JSON.stringify(ds)).not.toContain('s3cr3t');
    expect(underlined(text, ds[0])).toBe('${FMT}');
  });
});
