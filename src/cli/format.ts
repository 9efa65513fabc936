/** Turns diagnostics into text: human (code frame, caret), GitHub workflow commands, or JSON. */
import type { Diagnostic, Span } from '../spec/diagnostics.ts';
import { findSecrets, maskRanges } from '../spec/secrets.ts';

export type Format = 'human' | 'json' | 'github';

const paint = (on: boolean) => ({
  red: (s: string) => (on ? `\x1b[31m${s}\x1b[39m` : s),
  yellow: (s: string) => (on ? `\x1b[33m${s}\x1b[39m` : s),
  dim: (s: string) => (on ? `\x1b[2m${s}\x1b[22m` : s),
  bold: (s: string) => (on ? `\x1b[1m${s}\x1b[22m` : s),
});

export function formatHuman(
  diags: readonly Diagnostic[],
  sources: ReadonlyMap<string, string>,
  color: boolean,
): string {
  const c = paint(color);
  const secrets = secretsByFile(diags);
  let out = '';
  for (const d of diags) {
    const sev = d.severity === 'error' ? c.red(`error[${d.code}]`) : c.yellow(`warning[${d.code}]`);
    out += `${c.bold(`${d.file}:${d.line}:${d.column}`)}: ${sev}: ${d.message}\n`;
    const lines = sources.get(d.file)?.split('\n');
    const line = lines?.[d.line - 1];
    if (line !== undefined) {
      const text = maskLine(line, d.line, secrets.get(d.file) ?? []);
      const gutter = String(d.line).length;
      const width =
        d.endLine === d.line ? Math.max(1, d.endColumn - d.column) : Math.max(1, text.length - d.column + 1);
      out += `${c.dim(`${' '.repeat(gutter)} |`)}\n`;
      out += `${c.dim(`${d.line} |`)} ${text.replace(/\t/g, ' ')}\n`;
      const caret = `${' '.repeat(Math.max(0, d.column - 1))}${'^'.repeat(Math.min(width, 200))}`;
      out += `${c.dim(`${' '.repeat(gutter)} |`)} ${d.severity === 'error' ? c.red(caret) : c.yellow(caret)}\n`;
    }
  }
  return out;
}

/** GitHub Actions workflow commands: a pull request shows them inline on the spec. */
export function formatGithub(diags: readonly Diagnostic[]): string {
  const esc = (s: string) => s.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
  const prop = (s: string) => esc(s).replace(/:/g, '%3A').replace(/,/g, '%2C');
  return diags
    .map(
      (d) =>
        `::${d.severity === 'error' ? 'error' : 'warning'} file=${prop(d.file)},line=${d.line},col=${d.column},endLine=${d.endLine},endColumn=${d.endColumn},title=${prop(`sluice ${d.code}`)}::${esc(d.message)}`,
    )
    .join('\n')
    .concat(diags.length ? '\n' : '');
}

export function formatJson(diags: readonly Diagnostic[]): string {
  // Secret ranges only serve the code frame; the JSON keeps its documented fields.
  const plain = diags.map(({ secrets: _secrets, ...d }) => d);
  return `${JSON.stringify(plain, null, 2)}\n`;
}

/** Every secret range any diagnostic of a file knows of: a frame masks them whichever diagnostic it shows. */
function secretsByFile(diags: readonly Diagnostic[]): Map<string, Span[]> {
  const byFile = new Map<string, Span[]>();
  for (const d of diags) {
    if (!d.secrets?.length) continue;
    byFile.set(d.file, [...(byFile.get(d.file) ?? []), ...d.secrets]);
  }
  return byFile;
}

/**
 * Line `lineNo` of a file as a code frame may show it: the validator's secret ranges and any
 * URL password (also one in a comment, which no check reports) replaced by `*`, column for column.
 */
function maskLine(text: string, lineNo: number, secrets: readonly Span[]): string {
  const ranges = secrets
    .filter((s) => s.line <= lineNo && lineNo <= s.endLine)
    .map((s) => ({
      start: s.line === lineNo ? s.column - 1 : 0,
      end: s.endLine === lineNo ? s.endColumn - 1 : text.length,
    }));
  return maskRanges(text, [...ranges, ...findSecrets(text)]);
}

/** Colour only on a terminal, never with NO_COLOR (any value) or TERM=dumb. */
export function colorEnabled(stream: NodeJS.WriteStream): boolean {
  return Boolean(stream.isTTY) && !('NO_COLOR' in process.env) && process.env.TERM !== 'dumb';
}
