/**
 * `sluice run` on a terminal: a live view of the pipeline, redrawn from metric snapshots a
 * few times a second. The pipeline's thread only copies counters out on a timer and posts
 * them; rates, layout and drawing happen on the view's own worker thread, so the pipeline
 * never waits for the screen. When the run ends the live view goes away and the totals table
 * is printed on the normal screen, where it stays in the scrollback.
 */
import { writeSync } from 'node:fs';
import { extname } from 'node:path';
import { format } from 'node:util';
import { Worker } from 'node:worker_threads';
import type { PipelineSnapshot } from '../runtime/metrics.ts';
import { formatTotals } from './plain.ts';
import type { FromWorker, ToWorker, WorkerInput } from './worker.ts';

export type { Rates, StageRow, View } from './model.ts';
export { RateTracker } from './model.ts';
export { formatLine, formatTotals, lagText, renderPlainLines } from './plain.ts';

/** Never redraw faster than 4 Hz. */
export const MIN_INTERVAL_MS = 250;
/** Redraw at 2 Hz unless asked otherwise: rates are measured over a second anyway. */
export const DEFAULT_INTERVAL_MS = 500;

export interface TuiOptions {
  snapshot: () => PipelineSnapshot;
  /** Called on `q` or Ctrl-C (each press); the runtime drains and later calls `stop`. */
  onQuit: () => void;
  /** Redraw period: 500 ms by default, at least 250 ms. */
  intervalMs?: number;
  /** Terminal streams to use instead of the process's own; the view then runs on this thread. */
  stdout?: NodeJS.WriteStream;
  stdin?: NodeJS.ReadStream;
  /** Colours on or off; off when NO_COLOR is set. */
  color?: boolean;
  /** Route stray console output around the frame instead of through it (default true). */
  patchConsole?: boolean;
  /** Where frames are drawn: a worker thread (default on the process's terminal) or this thread. */
  thread?: 'worker' | 'main';
}

export interface Tui {
  /** Unmounts the live view and prints the final totals to the normal screen. */
  stop(final: PipelineSnapshot): Promise<void>;
}

export function noColor(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.NO_COLOR !== undefined && env.NO_COLOR !== '';
}

export function startTui(opts: TuiOptions): Tui {
  const interval = Math.max(MIN_INTERVAL_MS, opts.intervalMs ?? DEFAULT_INTERVAL_MS);
  const color = opts.color ?? !noColor();
  const ownTerminal = opts.stdout === undefined && opts.stdin === undefined;
  if (opts.thread !== 'main' && ownTerminal && process.stdout.isTTY && process.stdin.isTTY) {
    return startInWorker(opts, interval, color);
  }
  return startInThread(opts, interval, color);
}

/** Everything on the calling thread: for custom streams (tests) or when a worker cannot start. */
function startInThread(opts: TuiOptions, interval: number, color: boolean): Tui {
  const stdout = opts.stdout ?? process.stdout;
  let stopped: Promise<void> | undefined;
  // Loaded on demand: a worker-drawn view never loads React on the pipeline's thread.
  const mounted = import('./screen.ts').then(({ mountScreen }) => {
    if (stopped) return undefined;
    const screen = mountScreen(opts.snapshot(), {
      stdout,
      stdin: opts.stdin ?? process.stdin,
      color,
      onQuit: opts.onQuit,
      patchConsole: opts.patchConsole ?? true,
    });
    const timer = setInterval(() => screen.push(opts.snapshot()), interval);
    // The view never keeps the process alive on its own.
    timer.unref();
    return { screen, timer };
  });
  return {
    stop(final) {
      stopped ??= (async () => {
        const m = await mounted.catch(() => undefined);
        if (m) {
          clearInterval(m.timer);
          await m.screen.unmount();
        }
        stdout.write(`${formatTotals(final)}\n`);
      })();
      return stopped;
    },
  };
}

const CONSOLE_METHODS = ['log', 'info', 'warn', 'error', 'debug'] as const;
/** Leave the alternate screen, show the cursor: what Ink would do, for an exit without `stop`. */
const RESTORE = '\u001b[?1049l\u001b[?25h';

function startInWorker(opts: TuiOptions, interval: number, color: boolean): Tui {
  const input: WorkerInput = { first: opts.snapshot(), color };
  // Beside this module, with its extension (.ts when run from source, .js when built).
  const entry = new URL(`./worker${extname(new URL(import.meta.url).pathname)}`, import.meta.url);
  const worker = new Worker(entry, { workerData: input, stdout: false });
  worker.unref();
  const send = (m: ToWorker): void => worker.postMessage(m);
  let ready = false;
  let fallback: Tui | undefined;
  let stopping = false;
  let onStopped: (() => void) | undefined;

  worker.on('message', (m: FromWorker) => {
    if (m.type === 'ready') ready = true;
    else if (m.type === 'quit') opts.onQuit();
    else if (m.type === 'stopped') onStopped?.();
    else if (m.type === 'failed') fail();
  });
  worker.on('error', () => fail());
  worker.on('exit', () => onStopped?.());
  // A worker that cannot draw (no terminal handles, say) leaves the view to this thread.
  function fail(): void {
    if (fallback || stopping) return;
    cleanup();
    void worker.terminate();
    fallback = startInThread({ ...opts, thread: 'main' }, interval, color);
  }

  const timer = setInterval(() => {
    if (ready && !fallback) send({ type: 'snapshot', snapshot: opts.snapshot() });
  }, interval);
  timer.unref();

  const onResize = (): void =>
    send({ type: 'resize', columns: process.stdout.columns, rows: process.stdout.rows });
  process.stdout.on('resize', onResize);
  // A process that exits without `stop` (a second Ctrl-C) must not leave the terminal on the
  // alternate screen; Node itself restores the keyboard mode of its stdio at exit.
  const onExit = (): void => {
    if (ready) writeSync(1, RESTORE);
  };
  process.on('exit', onExit);

  // Console output of libraries would cut through the frame: the view prints it above instead.
  const saved = CONSOLE_METHODS.map((k) => [k, console[k]] as const);
  if (opts.patchConsole ?? true) {
    for (const method of CONSOLE_METHODS) {
      console[method] = (...args: unknown[]) => send({ type: 'console', method, text: format(...args) });
    }
  }

  function cleanup(): void {
    clearInterval(timer);
    process.stdout.off('resize', onResize);
    process.off('exit', onExit);
    for (const [k, fn] of saved) console[k] = fn;
  }

  let stopped: Promise<void> | undefined;
  return {
    stop(final) {
      stopped ??= (async () => {
        if (fallback) return fallback.stop(final);
        stopping = true;
        cleanup();
        const gone = new Promise<void>((resolve) => {
          onStopped = resolve;
          setTimeout(resolve, 3000).unref();
        });
        send({ type: 'stop' });
        await gone;
        await worker.terminate();
        process.stdout.write(`${formatTotals(final)}\n`);
      })();
      return stopped;
    },
  };
}
