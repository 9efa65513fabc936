/**
 * The Ink side of the live view: mounts the app on a pair of terminal streams and redraws it
 * from each snapshot it is given. Runs on whichever thread owns the screen (a worker by
 * default, see index.ts), so it knows nothing of timers or the pipeline.
 */
// Must come first: it decides which React build the imports below load.
import './production.ts';
import { render } from 'ink';
import React from 'react';
import type { PipelineSnapshot } from '../runtime/metrics.ts';
import { App } from './app.ts';
import { RateTracker, type View } from './model.ts';

/** Key presses redraw at once, but never more than 4 times a second. */
export const MAX_FPS = 4;

export interface ScreenOptions {
  stdout: NodeJS.WriteStream;
  stdin: NodeJS.ReadStream;
  color: boolean;
  onQuit: () => void;
  patchConsole: boolean;
}

export interface Screen {
  /** Redraws from a new snapshot; rates come from the difference to earlier ones. */
  push(snapshot: PipelineSnapshot): void;
  /** Leaves the alternate screen and gives the keyboard back. */
  unmount(): Promise<void>;
}

export function mountScreen(first: PipelineSnapshot, opts: ScreenOptions): Screen {
  const tracker = new RateTracker();
  const element = (view: View): React.ReactElement =>
    React.createElement(App, { view, onQuit: opts.onQuit, color: opts.color });
  const instance = render(element(tracker.update(first)), {
    stdout: opts.stdout,
    stdin: opts.stdin,
    // Ctrl-C arrives as a key in raw mode; it goes to onQuit so it drains like SIGINT.
    exitOnCtrlC: false,
    patchConsole: opts.patchConsole,
    alternateScreen: true,
    incrementalRendering: true,
    maxFps: MAX_FPS,
    // A terminal is a terminal even when CI is set in the environment.
    interactive: opts.stdout.isTTY === true,
  });
  let failures = 0;
  let done = false;
  return {
    push(snapshot) {
      if (done || failures >= 10) return;
      try {
        instance.rerender(element(tracker.update(snapshot)));
        failures = 0;
      } catch {
        // A bad frame must not take the pipeline down; a view that keeps failing stops redrawing.
        failures++;
      }
    },
    async unmount() {
      if (done) return;
      done = true;
      instance.unmount();
      await instance.waitUntilExit().catch(() => undefined);
    },
  };
}
