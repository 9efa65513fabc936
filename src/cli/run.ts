/** `sluice run`: validate, build the pipeline, show progress, stop on signals, report totals. */
import { mkdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { RunResult } from '../runtime/engine.ts';
import type { OpsServer } from '../runtime/http.ts';
import { parseListenAddress } from '../runtime/listen.ts';
import { createLogger, defaultLogFormat, isLogLevel, type LogFormat } from '../runtime/log.ts';
import type { MetricsRegistry, PipelineSnapshot } from '../runtime/metrics.ts';
import { ReloadingPipeline } from '../runtime/reload.ts';
import { PluginError, validate } from '../spec/plugins.ts';
import { formatTotals, renderPlainLines } from '../tui/plain.ts';
import { commandLineEnvFiles } from './env-file.ts';
import { colorEnabled, formatHuman } from './format.ts';
import { startReloads } from './reload.ts';

export interface RunFlags {
  tui: boolean;
  exitIdle?: number;
  stateDir: string;
  metricsInterval: number;
  logLevel: string;
  /** JSON lines, or readable lines; by default readable on a terminal, JSON otherwise. */
  logFormat?: LogFormat;
  /** Reload when the spec, its plugins or env files change (SIGHUP reloads in any case). */
  watch?: boolean;
  /** `[host:]port` of the operations endpoint; overrides `runtime.http`. */
  http?: string;
  /** Plugin files from the command line, besides those the spec lists. */
  plugins?: string[];
}

export async function runCommand(file: string, flags: RunFlags): Promise<number> {
  if (!isLogLevel(flags.logLevel)) {
    process.stderr.write(
      `sluice: '${flags.logLevel}' is not a log level (--log-level or SLUICE_LOG_LEVEL): trace, debug, info, warn, error, fatal or silent\n`,
    );
    return 2;
  }
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    process.stderr.write(
      `sluice: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}\n`,
    );
    return 2;
  }
  let validated: Awaited<ReturnType<typeof validate>>;
  try {
    validated = await validate(file, { text, plugins: flags.plugins });
  } catch (err) {
    if (!(err instanceof PluginError)) throw err;
    process.stderr.write(`sluice: ${err.message}\n`);
    return 2;
  }
  const { spec, diagnostics } = validated;
  const warnings = diagnostics.filter((d) => d.severity === 'warning');
  if (!spec) {
    process.stderr.write(formatHuman(diagnostics, new Map([[file, text]]), colorEnabled(process.stderr)));
    return 1;
  }
  if (warnings.length)
    process.stderr.write(formatHuman(warnings, new Map([[file, text]]), colorEnabled(process.stderr)));
  mkdirSync(flags.stateDir, { recursive: true });
  const screen = flags.tui && process.stdout.isTTY && process.stdin.isTTY;
  const logFile = screen ? join(flags.stateDir, `${spec.name}.log`) : undefined;
  const log: Logger = createLogger({
    level: flags.logLevel,
    // A log file is read by tools more often than by eyes: JSON unless asked otherwise.
    format: flags.logFormat ?? (logFile ? 'json' : defaultLogFormat(process.stderr)),
    base: { pipeline: spec.name },
    file: logFile,
    color: !logFile && colorEnabled(process.stderr),
  });

  let pipeline: ReloadingPipeline;
  try {
    pipeline = new ReloadingPipeline(spec, { stateDir: flags.stateDir, log, exitIdle: flags.exitIdle });
  } catch (err) {
    process.stderr.write(`sluice: cannot start ${spec.name}: ${(err as Error).message}\n`);
    return 1;
  }
  pipeline.metrics.logFile = logFile;
  const listen = flags.http ?? spec.runtime.http;
  let ops: OpsServer | undefined;
  if (listen !== undefined) {
    const opened = await openOps(pipeline, listen, log);
    if (typeof opened === 'number') return opened;
    ops = opened;
  }

  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      // Nothing past the last ack was checkpointed, so leaving now loses nothing.
      process.stderr.write(`sluice: second ${sig}, exiting without draining\n`);
      process.exit(130);
    }
    pipeline.stop(`${sig} received`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const reloads = startReloads({
    file,
    plugins: flags.plugins ?? [],
    envFiles: commandLineEnvFiles(),
    pipeline,
    log,
    watch: flags.watch ?? false,
    print: !screen,
  });
  const view = screen
    ? await startScreen(pipeline, () => onSignal('SIGINT'))
    : startPlain(pipeline, flags.metricsInterval);
  const result = await pipeline.run();
  reloads.close();
  const final = pipeline.metrics.snapshot();
  await view.stop(final);
  await ops?.close();
  log.flush?.();
  if (result.error) process.stderr.write(`sluice: ${result.error}\n`);
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  const code = exitCode(result);
  const last = lastLine(result, code);
  if (last) process.stderr.write(`sluice: ${last}\n`);
  return code;
}

/** Starts the operations endpoint before the pipeline, so /ready answers 503 while sinks open. */
async function openOps(
  pipeline: { metrics: MetricsRegistry },
  listen: string,
  log: Logger,
): Promise<OpsServer | number> {
  const address = parseListenAddress(listen);
  if (!address) {
    process.stderr.write(
      `sluice: '${listen}' is not an address to listen on: [host:]port, e.g. 127.0.0.1:4195\n`,
    );
    return 2;
  }
  try {
    // prom-client comes with the endpoint: a run without one never loads it.
    const { startOpsServer } = await import('../runtime/http.ts');
    const ops = await startOpsServer(pipeline, address);
    log.info({ url: ops.url }, `operations endpoint at ${ops.url}: /metrics /ready /live /stats`);
    return ops;
  } catch (err) {
    process.stderr.write(
      `sluice: cannot serve the operations endpoint on ${listen}: ${(err as Error).message}\n`,
    );
    return 1;
  }
}

/** The run failed, or records were left unacknowledged at exit (they will be read again). */
export const EXIT_FAILED = 1;
/** The run completed, but records went to error outputs or dead letters. */
export const EXIT_RECORD_ERRORS = 3;

export function exitCode(result: RunResult): number {
  if (!result.ok || result.unacked > 0 || result.timedOut) return EXIT_FAILED;
  if (result.errorRecords > 0) return EXIT_RECORD_ERRORS;
  return 0;
}

function lastLine(result: RunResult, code: number): string | undefined {
  const errors = result.errorRecords;
  const dead = result.deadLettered;
  const failed =
    errors === 0
      ? ''
      : `${errors} record${errors === 1 ? '' : 's'} failed: ${errors - dead} to error outputs, ${dead} to dead letters${dead > 0 ? ` (${result.deadLetterDir}; sluice dead-letter ls)` : ''}`;
  if (code === EXIT_FAILED) {
    const unacked =
      result.unacked > 0
        ? `${result.unacked} source batch${result.unacked === 1 ? ' was' : 'es were'} not acknowledged at exit and will be read again on restart`
        : '';
    return `exit ${code}: ${[result.ok ? '' : 'the pipeline failed', unacked, failed].filter(Boolean).join('; ')}`;
  }
  if (code === EXIT_RECORD_ERRORS) return `exit ${code}: completed, but ${failed}`;
  return undefined;
}

interface View {
  stop(final: PipelineSnapshot): Promise<void>;
}

function startPlain(pipeline: { metrics: MetricsRegistry }, interval: number): View {
  let prev: PipelineSnapshot | undefined;
  const timer = setInterval(() => {
    const cur = pipeline.metrics.snapshot();
    process.stderr.write(`${renderPlainLines(prev, cur).join('\n')}\n`);
    prev = cur;
  }, interval);
  return {
    async stop(final) {
      clearInterval(timer);
      process.stderr.write(`${formatTotals(final)}\n`);
    },
  };
}

async function startScreen(pipeline: { metrics: MetricsRegistry }, onQuit: () => void): Promise<View> {
  try {
    const tui = (await import('../tui/index.ts')) as {
      startTui?: (o: { snapshot: () => PipelineSnapshot; onQuit: () => void }) => View;
    };
    if (tui.startTui) return tui.startTui({ snapshot: () => pipeline.metrics.snapshot(), onQuit });
  } catch {
    // No screen UI available: fall back to plain lines.
  }
  return startPlain(pipeline, 1000);
}
