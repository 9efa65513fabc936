/** Durations and sizes are strings with units in specs, parsed once into milliseconds and bytes. */

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const SIZE_UNITS: Record<string, number> = {
  b: 1,
  kb: 1_000,
  mb: 1_000_000,
  gb: 1_000_000_000,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
};

export const DURATION_PATTERN = '^\\s*\\d+(\\.\\d+)?\\s*(ms|s|m|h|d)\\s*$';
export const SIZE_PATTERN = '^\\s*\\d+(\\.\\d+)?\\s*([KMG]i?B|B)\\s*$';

const DURATION_RE = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/;
const SIZE_RE = /^\s*(\d+(?:\.\d+)?)\s*([KMG]i?B|B)\s*$/i;

/** `500ms`, `60s`, `24h` → milliseconds; undefined when the text is not a duration. */
export function parseDuration(text: string): number | undefined {
  const m = DURATION_RE.exec(text);
  return m ? Math.round(Number(m[1]) * DURATION_UNITS[m[2]]) : undefined;
}

/** `256KiB`, `5MiB`, `1MB` → bytes; undefined when the text is not a size. */
export function parseSize(text: string): number | undefined {
  const m = SIZE_RE.exec(text);
  return m ? Math.round(Number(m[1]) * SIZE_UNITS[m[2].toLowerCase()]) : undefined;
}

export function formatBytes(n: number): string {
  if (n >= 1024 ** 3) return `${(n / 1024 ** 3).toFixed(1)} GiB`;
  if (n >= 1024 ** 2) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}
