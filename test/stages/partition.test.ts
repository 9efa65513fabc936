import { describe, expect, it } from 'vitest';
import { partitionTransform } from '../../src/stages/transforms/partition.ts';
import { record, transform } from '../runtime/stage-harness.ts';

describe('partition', () => {
  it('sets the record partition from the expression', async () => {
    const process = transform(partitionTransform, { by: 'fazenda + "/" + format_time(data, "yyyy/MM/dd")' });
    const run = await process([record({ fazenda: 'fazenda_um', data: '2024-03-20 10:11:12' })]);
    expect(run.pushed[0].partition).toBe('fazenda_um/2024/03/20');
    expect(run.pushed[0].value).toEqual({ fazenda: 'fazenda_um', data: '2024-03-20 10:11:12' });
  });

  it('rejects empty values and paths that climb out or have empty segments', async () => {
    const process = transform(partitionTransform, { by: 'p' });
    const run = await process(['', '../etc', 'a/../../b', 'a//b', 'ok/fine'].map((p) => record({ p })));
    expect(run.pushed.map((r) => r.partition)).toEqual(['ok/fine']);
    expect(run.failed.map((f) => f[1])).toEqual([
      'by: partition expression gave an empty value',
      "by: partition '../etc' is not a safe relative path",
      "by: partition 'a/../../b' is not a safe relative path",
      "by: partition 'a//b' is not a safe relative path",
    ]);
  });

  it('an evaluation error goes to the error output', async () => {
    const process = transform(partitionTransform, { by: 'missing + "x"' });
    const run = await process([record({ other: 1 })]);
    expect(run.failed[0][1]).toMatch(/^by: /);
  });
});
