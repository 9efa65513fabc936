import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { RecordInit } from '../../src/runtime/record.ts';
import { generateSource, random } from '../../src/stages/sources/generate.ts';
import { MemoryScope, runSource } from '../runtime/stage-harness.ts';

const fields = {
  n: 'i',
  lote: '"L" + string(i / 50 + 1)',
  r: 'rand',
  pick: '["a", "b", "c"][int(rand * 3.0)]',
};

describe('generate', () => {
  it('produces `count` records whose fields are CEL over i and a seeded rand', async () => {
    const run = await runSource(generateSource, { count: 120, seed: 3, fields }, { batchSize: 50 });
    expect(run.records).toHaveLength(120);
    expect(run.batches.map((b) => b.length)).toEqual([50, 50, 20]);
    const v = run.records.map((r) => r.value as { n: number; lote: string; r: number; pick: string });
    expect(v.map((x) => x.n)).toEqual([...Array(120).keys()]);
    // i is a CEL int: i / 50 divides as integers.
    expect(v[49].lote).toBe('L1');
    expect(v[50].lote).toBe('L2');
    expect(v.every((x) => x.r >= 0 && x.r < 1)).toBe(true);
    expect(new Set(v.map((x) => x.pick))).toEqual(new Set(['a', 'b', 'c']));
    expect(run.records[7]).toMatchObject({ position: '7', meta: { index: 7 } });
  });

  it('is reproducible: same seed, same records; another seed, other values', async () => {
    const a = await runSource(generateSource, { count: 50, seed: 3, fields });
    const b = await runSource(generateSource, { count: 50, seed: 3, fields });
    const c = await runSource(generateSource, { count: 50, seed: 4, fields });
    expect(b.records.map((r) => r.value)).toEqual(a.records.map((r) => r.value));
    expect(c.records.map((r) => (r.value as { r: number }).r)).not.toEqual(
      a.records.map((r) => (r.value as { r: number }).r),
    );
    expect(random(1, 2 ** 40, 1)).not.toBe(random(1, 2 ** 40 + 2 ** 32, 1));
  });

  it('commits the highest contiguous acked index and resumes after it', async () => {
    // The third batch (indices 20..29) fails: nothing past 19 may be committed.
    let batch = 0;
    const first = await runSource(
      generateSource,
      { count: 60, seed: 3, fields },
      { batchSize: 10, ack: () => (batch++ === 2 ? new Error('lost') : undefined) },
    );
    expect(first.scope.commits.map((c) => c[1])).toEqual(['9', '19']);
    const resumed = await runSource(
      generateSource,
      { count: 60, seed: 3, fields },
      { batchSize: 10, checkpoint: first.scope.committed },
    );
    expect(resumed.records.map((r) => (r.value as { n: number }).n)).toEqual(
      [...Array(40).keys()].map((k) => k + 20),
    );
    // The same index gives the same record on every run.
    expect(resumed.records[0].value).toEqual(first.records[20].value);
    expect(resumed.scope.commits.at(-1)).toEqual(['generate', '59']);
  });

  it('repeats earlier records exactly for the share given by `duplicates`', async () => {
    const run = await runSource(generateSource, {
      count: 2000,
      seed: 9,
      duplicates: 0.1,
      fields: { id: 'i', r: 'rand' },
    });
    const ids = run.records.map((r) => (r.value as { id: number }).id);
    const repeats = ids.length - new Set(ids).size;
    expect(repeats).toBeGreaterThan(140);
    expect(repeats).toBeLessThan(260);
    // A repeat is the whole earlier record, not only its id, and comes from at most 50 back.
    const byId = new Map<number, unknown>();
    run.records.forEach((r, index) => {
      const v = r.value as { id: number };
      if (byId.has(v.id)) {
        expect(r.value).toEqual(byId.get(v.id));
        expect(index - v.id).toBeLessThanOrEqual(50);
      } else byId.set(v.id, r.value);
    });
  });

  it('a field that fails goes to the error output with its index; its batch still completes', async () => {
    const run = await runSource(
      generateSource,
      { count: 20, fields: { n: 'i', inv: '10 / (i - 5)' } },
      { batchSize: 10 },
    );
    expect(run.records).toHaveLength(19);
    expect(run.failures).toHaveLength(1);
    expect(run.failures[0].input).toMatchObject({ position: '5', meta: { index: 5 } });
    expect(run.failures[0].reason).toMatch(/division by zero/i);
    expect(run.scope.commits.at(-1)).toEqual(['generate', '19']);
  });

  it('sets the key from its expression', async () => {
    const run = await runSource(generateSource, { count: 3, fields: { n: 'i' }, key: '"k" + string(n % 2)' });
    expect(run.records.map((r) => r.key)).toEqual(['k0', 'k1', 'k0']);
  });

  it('keeps to `rate`, and stops an unbounded run when aborted', async () => {
    const t0 = performance.now();
    const run = await runSource(
      generateSource,
      { rate: 1000, fields: { n: 'i' } },
      { batchSize: 20, stopAfter: 200 },
    );
    const took = performance.now() - t0;
    expect(run.records).toHaveLength(200);
    // 200 records at 1000/s: the last batch is due at 180ms at the earliest.
    expect(took).toBeGreaterThanOrEqual(170);
  });

  it('says where it resumes, and why a finished count generates nothing', async () => {
    const run = async (checkpoint: Record<string, string>) => {
      const logs: { level: number; msg: string }[] = [];
      const log = pino({ level: 'info' }, { write: (l: string) => logs.push(JSON.parse(l)) });
      const source = generateSource.create(
        { count: 10, fields: { n: 'i' } },
        {
          name: 'gen',
          pipeline: 'p',
          log,
          metrics: undefined as never,
          stateDir: '/state',
        },
      );
      const records: RecordInit[] = [];
      await source.run({
        signal: new AbortController().signal,
        checkpoints: new MemoryScope(checkpoint),
        emit: async (batch, onAck) => {
          records.push(...batch);
          onAck?.();
        },
        fail: async (_i, _r, onAck) => onAck?.(),
      });
      return { logs, records };
    };
    expect((await run({})).logs.map((l) => l.msg)).toEqual(['no checkpoint: generating from record 0']);
    const resumed = await run({ generate: '6' });
    expect(resumed.records).toHaveLength(3);
    expect(resumed.logs.map((l) => l.msg)).toEqual(['resuming after record 6']);
    const done = await run({ generate: '9' });
    expect(done.records).toEqual([]);
    expect(done.logs).toEqual([
      expect.objectContaining({
        level: 40,
        msg: "source 'gen' reads nothing: all 10 records were generated by an earlier run (positions in /state/p.checkpoint.json); use another --state-dir or `sluice state reset <spec> --source gen --yes` to generate them again",
      }),
    ]);
  });
});
