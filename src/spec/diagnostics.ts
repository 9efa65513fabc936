// biome-ignore-all lint/suspicious/noTemplateCurlyInString: messages quote ${VAR} syntax on purpose
/** A problem found in a spec, with the exact span it refers to. Errors are values; only the CLI prints them. */
export type Severity = 'error' | 'warning';

export interface Span {
  line: number;
  column: number;
  endLine: number;
  endColumn: number;
}

export interface Diagnostic extends Span {
  file: string;
  severity: Severity;
  /** Stable identifier, documented in README ("Diagnostic codes"). */
  code: string;
  message: string;
  /**
   * Ranges of the file that hold a literal secret (a URL's password, a key id). Output that
   * echoes lines of the file masks them; they are not part of the JSON output.
   */
  secrets?: Span[];
}

/** Every code the validator can emit, with the one-line description used in docs and `--help`. */
export const DIAGNOSTIC_CODES = {
  'yaml-syntax': 'the file is not valid YAML',
  'duplicate-key': 'a mapping repeats a key',
  'multiple-documents': 'a spec file holds exactly one YAML document',
  'alias-limit': 'aliases expand beyond the safe limit (alias bomb)',
  'env-unset': 'a ${VAR} reference names an unset variable and has no default',
  'schema-type': 'a value has the wrong type',
  'schema-required': 'a required key is missing',
  'unknown-key': 'a key is not an option of this stage or section',
  'unknown-stage-type': 'no stage of this kind has that type',
  'schema-value': 'a value is outside what the option accepts',
  'invalid-duration': 'a duration is not a number with a unit (ms, s, m, h, d)',
  'invalid-size': 'a size is not a number with a unit (B, KiB, MiB, GiB, KB, MB, GB)',
  'invalid-template': 'a key or path template names an unknown field',
  'expr-syntax': 'an expression does not compile',
  'unknown-input': '`from` names an output that does not exist',
  cycle: 'stages feed each other in a loop',
  'sink-no-input': 'a sink reads from nothing',
  'unused-output': 'nothing reads this stage’s output',
  'duplicate-name': 'two stages share a name across sections',
  'aws-limit': 'a setting exceeds an AWS API limit',
  'literal-credential': 'a secret is written in the spec instead of coming from the environment',
  'dedup-memory': 'dedup settings whose memory bound cannot hold',
  'insecure-setting': 'a safety check is turned off',
  plugin: 'a file in `plugins` cannot be loaded, or its stage definitions are invalid or clash with others',
} as const;

export type DiagnosticCode = keyof typeof DIAGNOSTIC_CODES;

export function hasErrors(diagnostics: readonly Diagnostic[]): boolean {
  return diagnostics.some((d) => d.severity === 'error');
}
