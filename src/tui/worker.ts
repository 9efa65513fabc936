/**
 * The live view's own thread. Laying out and writing a frame takes a few milliseconds of
 * JavaScript; here it never runs between the pipeline's batches. The main thread only posts
 * a snapshot now and then; this thread owns the terminal (its own handles on it) and the
 * keyboard, and posts back when a quit key is pressed.
 */

import tty from 'node:tty';
import { parentPort, workerData } from 'node:worker_threads';
import type { PipelineSnapshot } from '../runtime/metrics.ts';
import { mountScreen } from './screen.ts';

export interface WorkerInput {
  first: PipelineSnapshot;
  color: boolean;
}

export type ToWorker =
  | { type: 'snapshot'; snapshot: PipelineSnapshot }
  | { type: 'resize'; columns: number; rows: number }
  | { type: 'console'; method: 'log' | 'info' | 'warn' | 'error' | 'debug'; text: string }
  | { type: 'stop' };

export type FromWorker =
  | { type: 'ready' }
  | { type: 'quit' }
  | { type: 'stopped' }
  | { type: 'failed'; message: string };

const port = parentPort;
if (port) {
  const post = (m: FromWorker): void => port.postMessage(m);
  try {
    const { first, color } = workerData as WorkerInput;
    // New handles on the same terminal: libuv reopens the device, so they do not disturb the
    // main thread's stdout (whose writes still land in the same place).
    const stdout = new tty.WriteStream(1);
    const stdin = new tty.ReadStream(0);
    const screen = mountScreen(first, {
      stdout,
      stdin,
      color,
      patchConsole: true,
      onQuit: () => post({ type: 'quit' }),
    });
    port.on('message', (m: ToWorker) => {
      if (m.type === 'snapshot') screen.push(m.snapshot);
      else if (m.type === 'resize') {
        // A worker gets no SIGWINCH; the main thread relays the new size.
        stdout.columns = m.columns;
        stdout.rows = m.rows;
        stdout.emit('resize');
      } else if (m.type === 'console') console[m.method](m.text);
      else if (m.type === 'stop') {
        void screen.unmount().then(() => {
          stdin.destroy();
          post({ type: 'stopped' });
        });
      }
    });
    post({ type: 'ready' });
  } catch (err) {
    post({ type: 'failed', message: (err as Error).message });
  }
}
