/**
 * `sluice run` on a terminal: a live view of the pipeline, redrawn from metric snapshots a
 * few times a second. It polls on its own timer and only copies counters out, so the
 * pipeline never waits for the screen. When the run ends the live view goes away and the
 * totals table is printed on the normal screen, where it stays in the scrollback.
 */
// Must come first: it decides which React build the imports below load.
import './production.ts';
import { render } from 'ink';
import React from 'react';
import type { PipelineSnapshot } from '../runtime/metrics.ts';
import { App } from './app.ts';
import { RateTracker, type View } from './model.ts';
import { formatTotals } from './plain.ts';

export type { Rates, StageRow, View } from './model.ts';
export { RateTracker } from './model.ts';
export { formatLine, formatTotals, lagText, renderPlainLines } from './plain.ts';

/** Never redraw faster than this: 4 Hz reads as live and costs the pipeline next to nothing. */
export const MIN_INTERVAL_MS = 250;

export interface TuiOptions {
  snapshot: () => PipelineSnapshot;
  /** Called on `q` or Ctrl-C (each press); the runtime drains and later calls `stop`. */
  onQuit: () => void;
  /** Redraw period, at least 250 ms. */
  intervalMs?: number;
  stdout?: NodeJS.WriteStream;
  stdin?: NodeJS.ReadStream;
  /** Colours on or off; off when NO_COLOR is set. */
  color?: boolean;
  /** Route stray console output around the frame instead of through it (default true). */
  patchConsole?: boolean;
}

export interface Tui {
  /** Unmounts the live view and prints the final totals to the normal screen. */
  stop(final: PipelineSnapshot): Promise<void>;
}

export function noColor(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.NO_COLOR !== undefined && env.NO_COLOR !== '';
}

export function startTui(opts: TuiOptions): Tui {
  const stdout = opts.stdout ?? process.stdout;
  const interval = Math.max(MIN_INTERVAL_MS, opts.intervalMs ?? MIN_INTERVAL_MS);
  const color = opts.color ?? !noColor();
  const tracker = new RateTracker();
  const element = (view: View): React.ReactElement =>
    React.createElement(App, { view, onQuit: opts.onQuit, color });

  const instance = render(element(tracker.update(opts.snapshot())), {
    stdout,
    stdin: opts.stdin ?? process.stdin,
    // Ctrl-C arrives as a key in raw mode; it goes to onQuit so it drains like SIGINT.
    exitOnCtrlC: false,
    patchConsole: opts.patchConsole ?? true,
    alternateScreen: true,
    incrementalRendering: true,
    maxFps: 1000 / interval,
    // A terminal is a terminal even when CI is set in the environment.
    interactive: stdout.isTTY === true,
  });

  let failures = 0;
  const timer = setInterval(() => {
    try {
      instance.rerender(element(tracker.update(opts.snapshot())));
      failures = 0;
    } catch {
      // A bad frame must not take the pipeline down; a view that keeps failing stops redrawing.
      if (++failures >= 10) clearInterval(timer);
    }
  }, interval);
  // The view never keeps the process alive on its own.
  timer.unref();

  let stopped: Promise<void> | undefined;
  return {
    stop(final) {
      stopped ??= (async () => {
        clearInterval(timer);
        instance.unmount();
        await instance.waitUntilExit().catch(() => undefined);
        stdout.write(`${formatTotals(final)}\n`);
      })();
      return stopped;
    },
  };
}
