import { EventEmitter } from 'node:events';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { PipelineSnapshot } from '../../src/runtime/metrics.ts';
import { startTui } from '../../src/tui/index.ts';
import { demo } from './fixtures.ts';

/** A terminal's output side: a TTY of 80×24 that records what was written. */
class Screen extends Writable {
  isTTY = true;
  columns = 80;
  rows = 24;
  text = '';
  override _write(chunk: Buffer, _enc: string, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
}

/** A terminal's keyboard: raw-mode capable, fed by `press`. */
class Keyboard extends EventEmitter {
  isTTY = true;
  raw = false;
  private pending: string | null = null;
  setRawMode(on: boolean): this {
    this.raw = on;
    return this;
  }
  setEncoding(): this {
    return this;
  }
  read(): string | null {
    const d = this.pending;
    this.pending = null;
    return d;
  }
  press(s: string): void {
    this.pending = s;
    this.emit('readable');
  }
  resume(): this {
    return this;
  }
  pause(): this {
    return this;
  }
  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('startTui', () => {
  it('polls at most 4 times a second, quits on q, and leaves the totals on the normal screen', async () => {
    const screen = new Screen();
    const keys = new Keyboard();
    let calls = 0;
    let quits = 0;
    const snapshot = (): PipelineSnapshot => demo(calls++ * 0.25, 8000);
    const tui = startTui({
      snapshot,
      onQuit: () => quits++,
      intervalMs: 50, // asks for 20 Hz; the view caps it at 4 Hz
      stdout: screen as unknown as NodeJS.WriteStream,
      stdin: keys as unknown as NodeJS.ReadStream,
      color: false,
      patchConsole: false, // the test runner owns console
    });
    // The screen module loads on demand; wait for the first frame, then count polls.
    for (let i = 0; i < 100 && !screen.text.includes('└─enriched'); i++) await sleep(50);
    const before = calls;
    await sleep(2000);
    expect(calls - before).toBeGreaterThanOrEqual(5);
    expect(calls - before).toBeLessThanOrEqual(9);
    expect(keys.raw).toBe(true);
    // The live view draws on the alternate screen.
    expect(screen.text).toContain('\u001b[?1049h');
    expect(screen.text).toContain('└─enriched');
    expect(screen.text).toMatch(/8\.00k/);

    keys.press('q');
    await sleep(50);
    expect(quits).toBe(1);

    const final = { ...demo(10, 8000), state: 'stopped' as const };
    const mark = screen.text.length;
    await tui.stop(final);
    await tui.stop(final); // idempotent
    const after = screen.text.slice(mark);
    const leave = after.lastIndexOf('\u001b[?1049l');
    expect(leave).toBeGreaterThanOrEqual(0);
    const totals = after.slice(leave + '\u001b[?1049l'.length);
    expect(totals).toContain(
      'demo: stopped after 0:00:10\nin 80000 (8.00k/s)  out 152000 (15.2k/s)  errors 0\n',
    );
    expect(totals).toMatch(/\nlake\s+sink\s+file\s+76000\s+76000 /);
    expect(totals.match(/demo: stopped/g)).toHaveLength(1);
    expect(keys.raw).toBe(false);
    // No more polling after stop.
    const n = calls;
    await sleep(600);
    expect(calls).toBe(n);
  });
});
