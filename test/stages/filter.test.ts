import { describe, expect, it } from 'vitest';
import { AckGroup } from '../../src/runtime/ack.ts';
import { filterTransform } from '../../src/stages/transforms/filter.ts';
import { record, transform } from '../runtime/stage-harness.ts';

describe('filter', () => {
  it('keeps records for which `where` is true; drops (and acks) the others', async () => {
    const process = transform(filterTransform, { where: 'quantidade_animais > 0' });
    let settled = false;
    const group = new AckGroup(3, () => {
      settled = true;
    });
    const rs = [5, 0, 7].map((q) => record({ quantidade_animais: q }, { ack: group }));
    const run = await process(rs);
    expect(run.pushed).toEqual([rs[0], rs[2]]);
    expect(run.dropped).toEqual([rs[1]]);
    expect(settled).toBe(false);
    rs[0].ack.resolve();
    rs[2].ack.resolve();
    expect(settled).toBe(true);
  });

  it('a non-boolean result or an evaluation error goes to the error output', async () => {
    const process = transform(filterTransform, { where: 'has(record.x) ? x : int(y) > 1' });
    const run = await process([record({ x: 'yes' }), record({ y: 'nope' }), record({ y: 3 })]);
    expect(run.pushed).toHaveLength(1);
    expect(run.failed.map((f) => f[1])).toEqual([
      'where must give true or false, gave string',
      expect.stringMatching(/^where: /),
    ]);
  });
});
