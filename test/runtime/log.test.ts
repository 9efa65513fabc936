/** The run's logs: level names and ISO times in JSON, readable lines in the pretty form. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it, vi } from 'vitest';
import { runCommand } from '../../src/cli/run.ts';
import { createLogger, prettyLine } from '../../src/runtime/log.ts';
import { tempDir } from './helpers.ts';

async function linesOf(format: 'json' | 'pretty'): Promise<string[]> {
  const file = join(tempDir(), 'run.log');
  const log = createLogger({ level: 'info', format, base: { pipeline: 'p' }, file });
  log.debug('not shown');
  log.warn({ stage: 'lake', reason: 'connection refused', attempt: 3 }, 'sink lake is retrying');
  log.info({ sources: ['a', 'b'] }, 'reloaded');
  await new Promise<void>((resolve) => log.flush(() => resolve()));
  await sleep(20);
  return readFileSync(file, 'utf8').trim().split('\n');
}

describe('logs', () => {
  it('json: level names and ISO times', async () => {
    const [warn, info] = (await linesOf('json')).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(warn).toMatchObject({ level: 'warn', pipeline: 'p', stage: 'lake', attempt: 3 });
    expect(warn.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(info.level).toBe('info');
  });

  it('pretty: time, level, stage, message, then the other fields', async () => {
    const [warn, info] = await linesOf('pretty');
    expect(warn).toMatch(
      /^\d{4}-\d\d-\d\dT[\d:.]+Z WARN {2}\[lake\] sink lake is retrying {2}reason="connection refused" attempt=3$/,
    );
    expect(info).toMatch(/ INFO {2}reloaded {2}sources=\["a","b"\]$/);
    expect(prettyLine('{"level":"error","time":"t","msg":"m"}', true)).toBe('t \u001b[31mERROR\u001b[0m m\n');
    expect(prettyLine('not json\n', false)).toBe('not json\n');
  });

  it('an unknown level is a usage error before anything starts', async () => {
    const write = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      const code = await runCommand('nope.yaml', {
        tui: false,
        stateDir: tempDir(),
        metricsInterval: 1000,
        logLevel: 'verbose',
      });
      expect(code).toBe(2);
      expect(String(write.mock.calls[0][0])).toMatch(/'verbose' is not a log level/);
    } finally {
      write.mockRestore();
    }
  });
});
