import { describe, expect, it } from 'vitest';
import {
  bar,
  clip,
  humanBytes,
  humanCount,
  humanDuration,
  humanLag,
  humanRate,
  mibNumber,
  sparkline,
  uptime,
} from '../../src/tui/format.ts';

describe('humanised numbers', () => {
  it('keeps three significant digits with a metric suffix', () => {
    expect(humanCount(0)).toBe('0');
    expect(humanCount(7)).toBe('7');
    expect(humanCount(0.5)).toBe('0.5');
    expect(humanCount(999)).toBe('999');
    expect(humanCount(1000)).toBe('1.00k');
    expect(humanCount(12_345)).toBe('12.3k');
    expect(humanCount(123_456)).toBe('123k');
    expect(humanCount(999_999)).toBe('1.00M');
    expect(humanCount(4_560_000_000)).toBe('4.56G');
    expect(humanRate(12_345)).toBe('12.3k/s');
  });

  it('never exceeds five characters below a tera', () => {
    for (let n = 1; n < 1e12; n = n * 1.37 + 1) expect(humanCount(n).length).toBeLessThanOrEqual(5);
  });

  it('writes bytes in binary units', () => {
    expect(humanBytes(512)).toBe('512 B');
    expect(humanBytes(4.1 * 1024 * 1024)).toBe('4.10 MiB');
    expect(humanBytes(12 * 1024)).toBe('12.0 KiB');
    expect(mibNumber(0)).toBe('0');
    expect(mibNumber(4.1 * 1024 * 1024)).toBe('4.1');
    expect(mibNumber(0.31 * 1024 * 1024)).toBe('.31');
    expect(mibNumber(300 * 1024 * 1024)).toBe('300');
    expect(mibNumber(10)).toBe('<.01');
  });

  it('shortens durations and lags by unit', () => {
    expect(humanDuration(120)).toBe('120ms');
    expect(humanDuration(3400)).toBe('3.4s');
    expect(humanDuration(125_000)).toBe('2m05s');
    expect(humanDuration(3_720_000)).toBe('1h02m');
    expect(uptime(3_723_000)).toBe('1:02:03');
    expect(humanLag(250, 'ms')).toBe('250ms');
    expect(humanLag(45_000, 'records')).toBe('45.0k');
  });
});

describe('glyphs', () => {
  it('draws a bar with eighth-cell resolution and fixed width', () => {
    expect(bar(0, 4)).toBe('░░░░');
    expect(bar(1, 4)).toBe('████');
    expect(bar(0.5, 4)).toBe('██░░');
    expect(bar(0.3, 5)).toBe('█▌░░░');
    expect(bar(7, 3)).toBe('███');
    expect(bar(Number.NaN, 3)).toBe('░░░');
  });

  it('draws a right-aligned sparkline scaled to its maximum', () => {
    expect(sparkline([1, 2, 4, 8], 4)).toBe('▁▂▄█');
    expect(sparkline([0, 8], 4)).toBe('   █');
    // 60 samples in 6 cells: each cell is the mean of ten seconds.
    const minute = Array.from({ length: 60 }, (_, i) => (i < 30 ? 1 : 2));
    expect(sparkline(minute, 6, 60)).toBe('▄▄▄███');
    // Ten seconds of data on a one-minute scale fills only the newest cell.
    expect(sparkline(Array(10).fill(5), 6, 60)).toBe('     █');
    expect(sparkline([], 5, 60)).toBe('     ');
  });

  it('clips with an ellipsis', () => {
    expect(clip('partition', 6)).toBe('parti…');
    expect(clip('abc', 6)).toBe('abc');
  });
});
