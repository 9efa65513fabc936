/**
 * At-least-once: a checkpoint never passes a record that is not durable in every sink, and a
 * restart from it delivers every record at least once.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ErrorValue } from '../../src/runtime/record.ts';
import { StageError } from '../../src/stages/define.ts';
import {
  buildPipeline,
  collectingSink,
  indices,
  MemoryCheckpointStore,
  stageMetrics,
  tempDir,
  testSink,
  until,
} from './helpers.ts';

const COUNT = 1000;

const spec = (sinks = 'out', retry = 'retry: { max_attempts: 2, backoff: 1ms }') => `
version: 1
name: acks
runtime: { batch_size: 10, checkpoint_interval: 5ms }
sources:
  gen: { type: generate, count: ${COUNT}, fields: { n: 'i' } }
sinks:
${sinks
  .split(',')
  .map(
    (s) =>
      `  ${s}: { type: stdout, from: [gen], buffer: { max_records: 10, max_age: 5ms }, ${retry}, max_in_flight: 4 }`,
  )
  .join('\n')}
`;

/** Every dead letter of one stage, read synchronously (so a checkpoint hook can look). */
function deadLetters(stateDir: string, pipeline: string, stage: string): ErrorValue[] {
  const dir = join(stateDir, pipeline, 'dead-letter', stage);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .sort()
    .flatMap((f) =>
      readFileSync(join(dir, f), 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as ErrorValue),
    );
}

/** Positions the store saved for the generator, as numbers. */
const commits = (store: MemoryCheckpointStore) => store.saved.map((s) => Number(s.positions.generate));

/**
 * Watches every checkpoint save: each must be covered by records the sink already has.
 * Returns the violations (empty when the guarantee holds).
 */
function watchCheckpoints(store: MemoryCheckpointStore, delivered: Set<number>, stateDir?: string): string[] {
  const violations: string[] = [];
  store.onSave = (_source, positions) => {
    const upTo = Number(positions.generate);
    // A dead letter on disk is as good as delivered: it is durable and can be replayed.
    const dead = new Set(
      stateDir ? deadLetters(stateDir, 'acks', 'out').map((l) => (l.value as { n: number }).n) : [],
    );
    for (let n = 0; n <= upTo; n++) {
      if (!delivered.has(n) && !dead.has(n)) {
        violations.push(`checkpoint ${upTo} passes record ${n}, which is not durable`);
        return;
      }
    }
  };
  return violations;
}

describe('acks and checkpoints', () => {
  it('never checkpoints past a batch the sink is still retrying; once it recovers every record is delivered', async () => {
    const failing = new Set([137, 502, 874]);
    const store = new MemoryCheckpointStore();
    const delivered = new Set<number>();
    const violations = watchCheckpoints(store, delivered);
    let down = true;
    let failedWrites = 0;
    const flaky = testSink((batch) => {
      const ns = indices(batch.records.map((r) => r.value));
      if (down && ns.some((n) => failing.has(n))) {
        failedWrites++;
        throw new StageError('disk on fire', { retryable: true });
      }
      for (const n of ns) delivered.add(n);
      return undefined;
    });
    const stateDir = tempDir();
    const p = buildPipeline(spec('out', 'retry: { backoff: 1ms, max_backoff: 10ms }'), {
      sinks: { out: flaky },
      checkpointStore: store,
      stateDir,
    });
    const done = p.run();
    // The outage is waited out: far more attempts than any fixed retry count, nothing given up.
    await until(() => failedWrites >= 60, 10_000, 'retries during the outage');
    await new Promise((r) => setTimeout(r, 30));
    expect(Math.max(...commits(store))).toBe(129);
    expect(stageMetrics(p, 'out').health.state).toBe('retrying');
    expect(stageMetrics(p, 'out').health.reason).toBe('disk on fire');
    expect(stageMetrics(p, 'out').errors).toBe(0);
    down = false;
    const result = await done;
    expect(result.ok).toBe(true);
    expect(result.errorRecords).toBe(0);
    expect(violations).toEqual([]);
    expect(delivered.size).toBe(COUNT);
    expect(Math.max(...commits(store))).toBe(COUNT - 1);
    expect(stageMetrics(p, 'out').health.state).toBe('ok');
    expect(existsSync(join(stateDir, 'acks', 'dead-letter'))).toBe(false);
  });

  it('retry.max_attempts caps a transient failure: the records then become dead letters, and only then are acked', async () => {
    const store = new MemoryCheckpointStore();
    const stateDir = tempDir();
    const delivered = new Set<number>();
    const violations = watchCheckpoints(store, delivered, stateDir);
    let attempts = 0;
    const flaky = testSink((batch) => {
      const ns = indices(batch.records.map((r) => r.value));
      if (ns.includes(502)) {
        attempts++;
        throw new StageError('disk on fire', { retryable: true });
      }
      for (const n of ns) delivered.add(n);
      return undefined;
    });
    const p = buildPipeline(spec('out', 'retry: { max_attempts: 3, backoff: 1ms }'), {
      sinks: { out: flaky },
      checkpointStore: store,
      stateDir,
    });
    const result = await p.run();
    expect(result.ok).toBe(true);
    expect(attempts).toBe(3);
    expect(result.errorRecords).toBe(10);
    expect(result.deadLettered).toBe(10);
    expect(violations).toEqual([]);
    expect(Math.max(...commits(store))).toBe(COUNT - 1);
    const letters = deadLetters(stateDir, 'acks', 'out');
    expect(letters.map((l) => (l.value as { n: number }).n)).toEqual([
      500, 501, 502, 503, 504, 505, 506, 507, 508, 509,
    ]);
    expect(letters[0].reason).toBe('gave up after 3 attempts (retry.max_attempts: 3): disk on fire');
    expect(letters[0].stage).toBe('out');
  });

  it('a record the sink rejects fails alone: its neighbours are delivered, it becomes a dead letter', async () => {
    const store = new MemoryCheckpointStore();
    const stateDir = tempDir();
    const delivered = new Set<number>();
    const violations = watchCheckpoints(store, delivered, stateDir);
    const sink = testSink((batch) => {
      const failed = [];
      for (let i = 0; i < batch.records.length; i++) {
        const n = (batch.records[i].value as { n: number }).n;
        if (n === 421) failed.push({ index: i, reason: 'row rejected', retryable: false });
        else delivered.add(n);
      }
      return failed.length ? { failed } : undefined;
    });
    const p = buildPipeline(spec(), { sinks: { out: sink }, checkpointStore: store, stateDir });
    const result = await p.run();
    expect(result.ok).toBe(true);
    expect(violations).toEqual([]);
    expect(delivered.size).toBe(COUNT - 1);
    expect(Math.max(...commits(store))).toBe(COUNT - 1);
    expect(stageMetrics(p, 'out').errors).toBe(1);
    expect(stageMetrics(p, 'out').deadLettered).toBe(1);
    const letters = deadLetters(stateDir, 'acks', 'out');
    expect(letters).toHaveLength(1);
    expect(letters[0]).toMatchObject({
      stage: 'out',
      reason: 'row rejected',
      value: { n: 421 },
      position: '421',
    });
  });

  it('a whole batch failing on an encoding error is split until the poison record is alone', async () => {
    const stateDir = tempDir();
    const delivered = new Set<number>();
    let writes = 0;
    const sink = testSink((batch) => {
      writes++;
      // What JSON.stringify does with a value nested too deep: a RangeError for the whole batch.
      if (batch.records.some((r) => (r.value as { n: number }).n === 333))
        throw new RangeError('Maximum call stack size exceeded');
      for (const r of batch.records) delivered.add((r.value as { n: number }).n);
      return undefined;
    });
    const p = buildPipeline(spec(), { sinks: { out: sink }, stateDir });
    const result = await p.run();
    expect(result.ok).toBe(true);
    expect(delivered.size).toBe(COUNT - 1);
    expect(delivered.has(333)).toBe(false);
    expect(result.errorRecords).toBe(1);
    const letters = deadLetters(stateDir, 'acks', 'out');
    expect(letters).toHaveLength(1);
    expect(letters[0].reason).toContain('Maximum call stack size exceeded');
    // 100 batches, plus the halves of the one poison batch of 10 (10 → 5 → 3 → 2 → 1 and their siblings).
    expect(writes).toBeLessThan(100 + 10);
    expect(stageMetrics(p, 'out').extra.bisections).toBeGreaterThan(0);
  });

  it('a record fanned out to two sinks is acked only when both wrote it', async () => {
    const store = new MemoryCheckpointStore();
    const inA = new Set<number>();
    const inB = new Set<number>();
    const both = new Set<number>();
    const violations = watchCheckpoints(store, both);
    const mark = (own: Set<number>, other: Set<number>, n: number) => {
      own.add(n);
      if (other.has(n)) both.add(n);
    };
    let bDown = true;
    let bFailures = 0;
    const a = testSink((batch) => {
      for (const r of batch.records) mark(inA, inB, (r.value as { n: number }).n);
      return undefined;
    });
    const b = testSink((batch) => {
      const ns = indices(batch.records.map((r) => r.value));
      if (bDown && ns.includes(655)) {
        bFailures++;
        throw new Error('b is down');
      }
      for (const n of ns) mark(inB, inA, n);
      return undefined;
    });
    const p = buildPipeline(spec('a,b', 'retry: { backoff: 1ms, max_backoff: 5ms }'), {
      sinks: { a, b },
      checkpointStore: store,
    });
    const done = p.run();
    await until(() => bFailures >= 20 && inA.size === COUNT, 10_000, 'b retrying while a has everything');
    await new Promise((r) => setTimeout(r, 30));
    expect(Math.max(...commits(store))).toBe(649);
    bDown = false;
    expect((await done).ok).toBe(true);
    expect(violations).toEqual([]);
    expect(inA.size).toBe(COUNT);
    expect(inB.size).toBe(COUNT);
    expect(Math.max(...commits(store))).toBe(COUNT - 1);
  });

  it('fan-out branches do not see what a transform on another branch did to the record', async () => {
    // Three readers of one output, one of them slow: copies for later branches must not be
    // taken after the first branch already transformed the shared record.
    const plain = collectingSink();
    const enriched = collectingSink();
    const slow = testSink(async () => {
      await new Promise((r) => setTimeout(r, 2));
      return undefined;
    });
    const p = buildPipeline(
      `
version: 1
name: fanout
runtime: { batch_size: 10, channel_capacity: 1 }
sources:
  gen: { type: generate, count: 300, fields: { n: 'i' } }
transforms:
  more: { type: enrich, from: [gen], set: { doubled: 'n * 2' } }
  part: { type: partition, from: [more], by: '"p" + string(n % 3)' }
sinks:
  enriched: { type: stdout, from: [part] }
  slow: { type: stdout, from: [gen], buffer: { max_records: 10 }, max_in_flight: 1 }
  plain: { type: stdout, from: [gen] }
`,
      { sinks: { enriched: enriched.def, plain: plain.def, slow } },
    );
    expect((await p.run()).ok).toBe(true);
    expect(plain.values).toHaveLength(300);
    expect(enriched.values).toHaveLength(300);
    const touched = plain.records.filter(
      (r) => Object.keys(r.value as object).length !== 1 || r.partition !== undefined,
    );
    expect(touched).toEqual([]);
    for (const r of enriched.records) expect(r.partition).toMatch(/^p[012]$/);
  });
});

describe('records routed to an error output', () => {
  it('hold the checkpoint back until the error output wrote them', async () => {
    const store = new MemoryCheckpointStore();
    const handled = new Set<number>();
    const violations = watchCheckpoints(store, handled);
    let releaseErrors!: () => void;
    const errorsGate = new Promise<void>((r) => {
      releaseErrors = r;
    });
    const main = testSink((batch) => {
      for (const r of batch.records) handled.add((r.value as { n: number }).n);
      return undefined;
    });
    const errors = testSink(async (batch) => {
      await errorsGate;
      for (const r of batch.records) handled.add((r.meta as { index: number }).index);
      return undefined;
    });
    const p = buildPipeline(
      `
version: 1
name: errs
runtime: { batch_size: 10, checkpoint_interval: 5ms }
sources:
  gen: { type: generate, count: 300, fields: { n: 'i', inv: '100 / (i % 97 - 5)' } }
sinks:
  main: { type: stdout, from: [gen], buffer: { max_records: 10, max_age: 5ms } }
  errors: { type: stdout, from: [gen.errors], buffer: { max_records: 1000, max_age: 5ms } }
`,
      { sinks: { main, errors }, checkpointStore: store },
    );
    const done = p.run();
    // The main sink has everything but the failed records; the error sink still holds those.
    await until(() => handled.size === 296, 10_000, 'main sink');
    await new Promise((r) => setTimeout(r, 50));
    expect(violations).toEqual([]);
    expect(Math.max(-1, ...commits(store))).toBeLessThan(5);
    releaseErrors();
    expect((await done).ok).toBe(true);
    expect(violations).toEqual([]);
    expect(handled.size).toBe(300);
    expect(Math.max(...commits(store))).toBe(299);
  });
});
