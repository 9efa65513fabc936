// biome-ignore-all lint/suspicious/noTemplateCurlyInString: specs are full of ${VAR} references
/**
 * Wiring checks on specs where some stage failed its own checks: that stage still reads its
 * inputs and is still a name others may read, so the only diagnostics are the real ones.
 */
import { describe, expect, it } from 'vitest';
import type { Diagnostic } from '../../src/spec/diagnostics.ts';
import { validateText } from '../../src/spec/validate.ts';

const lines = (...l: string[]) => `${l.join('\n')}\n`;
const codes = (text: string, env: Record<string, string> = {}) =>
  validateText('spec.yaml', text, env).diagnostics.map((d: Diagnostic) => `${d.line}:${d.code}`);

/** gen → f → out, with `sink` lines replacing the valid sink `out`. */
const chain = (...sink: string[]) =>
  lines(
    'version: 1', //                                     1
    'name: t', //                                        2
    'sources:', //                                       3
    "  gen: {type: generate, fields: {a: '1'}}", //      4
    'transforms:', //                                    5
    "  f: {type: filter, from: [gen], where: 'true'}", // 6
    'sinks:', //                                         7
    ...sink, //                                          8 on
  );

describe('a stage that failed validation still counts in the wiring', () => {
  it('a sink with a required option unset: only env-unset, its input is not unused', () => {
    const text = chain(
      '  out:',
      '    type: file',
      '    from: [f]',
      '    dir: ${OUT_DIR}',
      "    path: '{seq}'",
    );
    expect(codes(text)).toEqual(['11:env-unset']);
    // Set, the spec is valid: the sink was the only reader of f.
    expect(codes(text, { OUT_DIR: '/tmp/x' })).toEqual([]);
  });

  it('a sink with an unknown key: only that error', () => {
    const text = chain('  out:', '    type: stdout', '    from: [f]', '    formatt: ndjson');
    expect(codes(text)).toEqual(['11:unknown-key']);
  });

  it('a transform missing an option: only schema-required, its source is not unused', () => {
    const text = lines(
      'version: 1',
      'name: t',
      'sources:',
      "  gen: {type: generate, fields: {a: '1'}}",
      'transforms:',
      '  f: {type: filter, from: [gen]}',
      'sinks:',
      '  out: {type: stdout, from: [f]}',
    );
    expect(codes(text)).toEqual(['6:schema-required']);
  });

  it('an input naming a stage of an unknown type is not unknown', () => {
    const text = lines(
      'version: 1',
      'name: t',
      'sources:',
      "  gen: {type: generatr, fields: {a: '1'}}",
      'sinks:',
      '  out: {type: stdout, from: [gen]}',
    );
    expect(codes(text)).toEqual(['4:unknown-stage-type']);
  });

  it('a `from` entry that is unset: only env-unset, the stage it meant is not unused', () => {
    const text = chain('  out:', '    type: stdout', '    from: ["${INPUT}"]');
    expect(codes(text)).toEqual(['10:env-unset']);
    expect(codes(text, { INPUT: 'f' })).toEqual([]);
  });

  it('a stage whose `from` is not a list, or that is not a mapping: nothing is called unused', () => {
    expect(codes(chain('  out: {type: stdout, from: f}'))).toEqual(['8:schema-type']);
    expect(codes(chain('  out: stdout'))).toEqual(['8:schema-type']);
  });

  it('a section that is not a mapping hides its names: inputs naming them are not unknown', () => {
    const text = lines(
      'version: 1',
      'name: t',
      'sources: [gen]',
      'sinks:',
      '  out: {type: stdout, from: [gen]}',
    );
    expect(codes(text)).toEqual(['3:schema-type']);
  });

  it('real wiring errors of or about a broken stage are still reported', () => {
    // A broken stage reading an unknown name; a sink read directly although it is broken.
    const text = chain(
      '  out: {type: stdout, from: [f, nope], formatt: x}',
      '  x: {type: stdout, from: [out]}',
    );
    expect(codes(text)).toEqual(['8:unknown-input', '8:unknown-key', '9:unknown-input']);
  });

  it('a loop through a broken stage is still a cycle', () => {
    const text = lines(
      'version: 1',
      'name: t',
      'sources:',
      "  gen: {type: generate, fields: {a: '1'}}",
      'transforms:',
      "  a: {type: filter, from: [gen, b], where: 'true'}",
      '  b: {type: filter, from: [a]}',
      'sinks:',
      '  out: {type: stdout, from: [b]}',
    );
    expect(codes(text)).toEqual(['6:cycle', '7:schema-required']);
  });

  it('a stage nothing reads is still unused when another stage is broken', () => {
    const text = lines(
      'version: 1',
      'name: t',
      'sources:',
      "  gen: {type: generate, fields: {a: '1'}}",
      "  spare: {type: generate, fields: {a: '1'}}",
      'sinks:',
      '  out: {type: file, from: [gen], dir: "${OUT_DIR}", path: x}',
    );
    const diags = validateText('spec.yaml', text, {}).diagnostics;
    expect(diags.map((d) => `${d.line}:${d.code}:${d.severity}`)).toEqual([
      '5:unused-output:warning',
      '7:env-unset:error',
    ]);
  });
});
