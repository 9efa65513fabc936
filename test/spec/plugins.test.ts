/**
 * Stage types added by an embedding service (`validate(file, { stages })`): they count for that
 * validation only, never leak into the next one in the same process, and a definition that
 * cannot work is refused with what to change.
 */
import { describe, expect, it } from 'vitest';
import { defineSink, Type, validate } from '../../src/index.ts';
import { definitionProblems, PluginError } from '../../src/spec/plugins.ts';
import { validateText } from '../../src/spec/validate.ts';

const kept = defineSink({
  type: 'kept',
  kind: 'sink',
  description: 'Keeps records in memory.',
  options: Type.Object({ limit: Type.Optional(Type.Integer({ minimum: 1 })) }),
  batching: { defaults: { max_records: 10, max_bytes: 1 << 20, max_age: 10 } },
  create: () => ({ write: async () => undefined }),
});

const spec = (sink: string) =>
  [
    'version: 1',
    'name: t',
    'sources:',
    "  gen: { type: generate, count: 1, fields: { a: '1' } }",
    'sinks:',
    `  out: { type: ${sink}, from: [gen] }`,
    '',
  ].join('\n');

describe('stages passed in by the caller', () => {
  it('validate with them, are checked against their schema, and do not leak into the next validation', async () => {
    const withKept = await validate('t.yaml', { text: spec('kept, limit: 5'), env: {}, stages: [kept] });
    expect(withKept.diagnostics).toEqual([]);
    expect(withKept.spec?.stages.find((s) => s.name === 'out')?.def).toBe(kept);

    const wrong = await validate('t.yaml', { text: spec('kept, limit: 0'), env: {}, stages: [kept] });
    expect(wrong.diagnostics.map((d) => d.code)).toEqual(['schema-value']);

    // The same process, no stages given: the type is unknown again, the registry unchanged.
    for (const result of [
      await validate('t.yaml', { text: spec('kept'), env: {} }),
      validateText('t.yaml', spec('kept'), {}),
    ]) {
      expect(result.spec).toBeUndefined();
      expect(result.diagnostics.map((d) => d.message)).toEqual([
        expect.stringMatching(/^unknown sink type 'kept'; sink types: stdout, file/),
      ]);
    }
  });

  it('a type that clashes with a built-in one is refused', async () => {
    const stdout = { ...kept, type: 'stdout' };
    await expect(validate('t.yaml', { text: spec('stdout'), env: {}, stages: [stdout] })).rejects.toThrow(
      new PluginError("stages defines the sink type 'stdout', which is a built-in sink"),
    );
  });
});

describe('definitionProblems', () => {
  it('says what to change in a definition that cannot work', () => {
    expect(definitionProblems({ ...kept })).toEqual([]);
    expect(
      definitionProblems({
        kind: 'sink',
        type: 'Bad Name',
        description: '',
        options: { type: 'object', properties: { buffer: {}, retry: {} } },
        create: 1,
      }),
    ).toEqual([
      "sink 'Bad Name': type must be a lower-case name (letters, digits, - and _)",
      "sink 'Bad Name': description must be a sentence (it documents the stage in sluice schema)",
      "sink 'Bad Name': create must be a function",
      "sink 'Bad Name': an option may not be named buffer or retry: sluice owns that key",
      "sink 'Bad Name': a sink needs batching: { defaults: { max_records, max_bytes, max_age } }",
    ]);
    expect(
      definitionProblems({ kind: 'source', type: 's', description: 'x', options: {}, create() {} }),
    ).toEqual(["source 's': options must be a Type.Object({...}) schema (use Type.Object({}) for none)"]);
  });
});
