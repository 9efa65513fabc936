/**
 * The logger of a run: pino, with level names (`"level":"warn"`) and ISO times, as JSON lines
 * for collectors, or as one readable line per entry for a person at a terminal (`pretty`).
 *
 * The pretty form is a small formatter of pino's own lines rather than pino-pretty: sluice's
 * entries are flat (a message, a stage, a few scalar fields), a formatter of a few dozen lines
 * prints them, and the installed package does without pino-pretty's dozen dependencies and its
 * start-up cost. It writes synchronously, like the JSON form, so the last lines before a crash
 * are not lost.
 */
import pino, { type DestinationStream, type Logger } from 'pino';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const LOG_FORMATS = ['json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export const isLogLevel = (v: string): v is LogLevel => (LOG_LEVELS as readonly string[]).includes(v);

export interface LoggerOptions {
  level: LogLevel;
  format: LogFormat;
  /** Fields on every line (the pipeline's name). */
  base?: Record<string, unknown>;
  /** Where lines go: stderr (default) or a file, while a screen UI owns the terminal. */
  file?: string;
  /** Colours the level of pretty lines (a terminal that wants them). */
  color?: boolean;
}

export function createLogger(opts: LoggerOptions): Logger {
  const out: DestinationStream = opts.file
    ? pino.destination({ dest: opts.file, sync: false, mkdir: true })
    : pino.destination({ fd: 2, sync: true });
  const dest = opts.format === 'pretty' ? prettyStream(out, opts.color ?? false) : out;
  return pino(
    {
      level: opts.level,
      base: opts.base ?? null,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    dest,
  );
}

/** The format for logs that go to stderr: pretty for a person at a terminal, JSON for a collector. */
export function defaultLogFormat(stream: { isTTY?: boolean }): LogFormat {
  return stream.isTTY ? 'pretty' : 'json';
}

const LEVEL_COLOURS: Record<string, number> = {
  trace: 90,
  debug: 36,
  info: 32,
  warn: 33,
  error: 31,
  fatal: 35,
};
/** Fields every line shows in its own place, or that the reader already knows. */
const PLACED = new Set(['level', 'time', 'msg', 'pipeline', 'stage', 'pid', 'hostname']);

/** Turns pino's JSON lines into `time LEVEL [stage] message key=value …`. */
function prettyStream(out: DestinationStream, color: boolean): DestinationStream {
  const stream = {
    write(line: string) {
      out.write(prettyLine(line, color));
    },
    flush(cb: (err?: Error) => void) {
      const flushable = out as { flush?: (cb: (err?: Error) => void) => void };
      if (flushable.flush) flushable.flush(cb);
      else cb();
    },
  };
  return stream;
}

export function prettyLine(line: string, color: boolean): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const level = String(entry.level ?? '');
  const label = level.toUpperCase().padEnd(5);
  const code = LEVEL_COLOURS[level];
  const shown = color && code ? `\u001b[${code}m${label}\u001b[0m` : label;
  const stage = entry.stage === undefined ? '' : ` [${String(entry.stage)}]`;
  const fields = Object.entries(entry)
    .filter(([k, v]) => !PLACED.has(k) && v !== undefined)
    .map(([k, v]) => `${k}=${fieldText(v)}`);
  const rest = fields.length ? `  ${fields.join(' ')}` : '';
  return `${String(entry.time ?? '')} ${shown}${stage} ${String(entry.msg ?? '')}${rest}\n`;
}

function fieldText(v: unknown): string {
  if (typeof v === 'string') return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
  return JSON.stringify(v) ?? String(v);
}
