/** The plain interval lines and the totals table (`sluice run --no-tui`) say when a sink is waiting out an outage. */
import { describe, expect, it } from 'vitest';
import type { PipelineSnapshot } from '../../src/runtime/metrics.ts';
import { formatTotals, renderPlainLines } from '../../src/tui/plain.ts';
import { stage, T0 } from '../tui/fixtures.ts';

const snap = (over: Parameters<typeof stage>[0]): PipelineSnapshot => ({
  pipeline: 'p',
  state: 'running',
  startedAt: T0,
  at: T0 + 60_000,
  stages: [stage({ name: 'gen', kind: 'source', type: 'generate' }), stage(over)],
});

describe('plain lines', () => {
  it('show a retrying sink with its reason, how long it has retried and when it last succeeded', () => {
    const cur = snap({
      name: 'warehouse',
      kind: 'sink',
      type: 'mysql',
      held: 4000,
      heldLimit: 50_000,
      health: {
        state: 'retrying',
        reason: 'connect ECONNREFUSED 127.0.0.1:3306',
        since: T0 + 48_000,
        lastSuccessAt: T0 + 46_000,
      },
    });
    const line = renderPlainLines(undefined, cur)[1];
    expect(line).toContain('retrying 12s: connect ECONNREFUSED 127.0.0.1:3306; last success 14s ago');
    expect(line).toContain('held 4.00k/50.0k');
  });

  it('say nothing about health when the sink is fine, and count dead letters in the totals', () => {
    const cur = snap({ name: 'lake', kind: 'sink', type: 's3', deadLettered: 7, errors: 7 });
    expect(renderPlainLines(undefined, cur)[1]).not.toMatch(/retrying|held/);
    expect(renderPlainLines(undefined, cur)[1]).toContain('dead letters 7');
    const table = formatTotals(cur).split('\n');
    expect(table[0]).toBe('p: running after 0:01:00');
    expect(table[2].split(/\s{2,}/)).toEqual([
      'stage',
      'kind',
      'type',
      'in',
      'out',
      'errors',
      'dead',
      'dup',
      'dropped',
      'retries',
      'bytes out',
      'lag',
      'other',
    ]);
    expect(table[3]).toMatch(/^-+( {2}-+){12}$/);
    expect(table.at(-1)).toMatch(/^lake\s+sink\s+s3\s+0\s+0\s+7\s+7\s/);
  });
});
