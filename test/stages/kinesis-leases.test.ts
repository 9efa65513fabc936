/** The lease plan each Kinesis worker makes on its own from the lease table. */
import { describe, expect, it } from 'vitest';
import { type LeaseView, planLeases } from '../../src/stages/sources/kinesis/leases.ts';

const NOW = 1_000_000;
const shards = Array.from({ length: 8 }, (_, i) => `s${i}`);

function table(owners: Record<string, string | undefined>, extra: Partial<LeaseView> = {}) {
  return new Map(
    Object.entries(owners).map(([shardId, owner]) => [
      shardId,
      { shardId, owner, counter: 1, expires: NOW + 3_000, stealBy: undefined, ...extra } as LeaseView,
    ]),
  );
}

/** Runs every worker's plan in turn, applying takes and hand-overs, until nothing changes. */
function converge(workers: string[], owners: Record<string, string | undefined>) {
  const leases = table(owners);
  let rounds = 0;
  for (; rounds < 20; rounds++) {
    let changed = false;
    for (const me of workers) {
      const held = new Set([...leases.values()].filter((l) => l.owner === me).map((l) => l.shardId));
      const plan = planLeases({ me, now: NOW, leases, liveWorkers: workers, eligible: shards, held });
      for (const id of plan.take) {
        leases.set(id, { shardId: id, owner: me, counter: 2, expires: NOW + 3_000, stealBy: undefined });
        changed = true;
      }
      if (plan.steal) {
        // The holder hands the lease over at its next renewal.
        const l = leases.get(plan.steal.shardId) as LeaseView;
        leases.set(l.shardId, { ...l, owner: me, stealBy: undefined });
        changed = true;
      }
    }
    if (!changed) break;
  }
  const counts = workers.map((w) => [...leases.values()].filter((l) => l.owner === w).length);
  return { counts, rounds };
}

describe('kinesis lease plan', () => {
  it('takes free leases up to the fair share, ceil(shards / live workers)', () => {
    const plan = planLeases({
      me: 'a',
      now: NOW,
      leases: new Map(),
      liveWorkers: ['a', 'b', 'c'],
      eligible: shards,
      held: new Set(),
    });
    expect(plan.target).toBe(3);
    expect(plan.take).toEqual(['s0', 's1', 's2']);
    expect(plan.steal).toBeUndefined();
  });

  it('three workers converge to 3/3/2 from one holding everything, one lease per round each', () => {
    const all = Object.fromEntries(shards.map((s) => [s, 'a']));
    const { counts, rounds } = converge(['a', 'b', 'c'], all);
    expect(counts.sort()).toEqual([2, 3, 3]);
    expect(rounds).toBeLessThanOrEqual(4);
  });

  it('takes expired leases (a dead holder) and never steals from a worker at its share', () => {
    const owners = { s0: 'a', s1: 'a', s2: 'a', s3: 'b', s4: 'b', s5: 'b', s6: 'c', s7: 'c' };
    const leases = table(owners);
    for (const id of ['s6', 's7']) (leases.get(id) as LeaseView).expires = NOW - 1; // c died
    const plan = planLeases({
      me: 'a',
      now: NOW,
      leases,
      liveWorkers: ['a', 'b'],
      eligible: shards,
      held: new Set(['s0', 's1', 's2']),
    });
    expect(plan.target).toBe(4);
    expect(plan.take).toEqual(['s6']);
    // 3/3/2 is balanced: nobody asks for more.
    const steady = planLeases({
      me: 'c',
      now: NOW,
      leases: table(owners),
      liveWorkers: ['a', 'b', 'c'],
      eligible: shards,
      held: new Set(['s6', 's7']),
    });
    expect(steady).toEqual({ target: 3, take: [] });
  });

  it('asks for one lease at a time, and takes a lease handed to it whatever its share', () => {
    const owners = Object.fromEntries(shards.map((s) => [s, 'a']));
    const leases = table(owners);
    const first = planLeases({
      me: 'b',
      now: NOW,
      leases,
      liveWorkers: ['a', 'b'],
      eligible: shards,
      held: new Set(),
    });
    expect(first.steal).toMatchObject({ from: 'a', shardId: 's7' });
    (leases.get('s7') as LeaseView).stealBy = 'b';
    const waiting = planLeases({
      me: 'b',
      now: NOW,
      leases,
      liveWorkers: ['a', 'b'],
      eligible: shards,
      held: new Set(),
    });
    expect(waiting.steal).toBeUndefined();
    (leases.get('s7') as LeaseView).owner = 'b';
    const handed = planLeases({
      me: 'b',
      now: NOW,
      leases,
      liveWorkers: ['a', 'b'],
      eligible: shards,
      held: new Set(),
    });
    expect(handed.take).toEqual(['s7']);
  });

  it('only eligible shards count: a child waits for its parents, a finished shard needs no reader', () => {
    const plan = planLeases({
      me: 'a',
      now: NOW,
      leases: new Map(),
      liveWorkers: ['a', 'b'],
      eligible: ['s0', 's1'],
      held: new Set(),
    });
    expect(plan).toEqual({ target: 1, take: ['s0'] });
  });
});
