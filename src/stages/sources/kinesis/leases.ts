/**
 * How processes reading one stream share its shards, decided by each process on its own from
 * the lease table (the way the Kinesis Client Library does, without a coordinator):
 *
 * - the fair share is `ceil(shards to read / live workers)`; a worker below it takes leases that
 *   are free (never taken, released, or expired: their holder stopped renewing);
 * - when none is free, it asks a worker holding more than the fair share to hand one over, at
 *   most one request at a time, so the group converges without leases bouncing between
 *   workers; the holder checkpoints and hands the lease over at its next renewal, so the shard
 *   is never read by both;
 * - a lease handed to this worker is taken whatever the share.
 *
 * Workers are live while their heartbeat item in the same table is renewed. This module only
 * plans; aws/shard-checkpoints.ts reads and writes the table.
 */

/** One shard's lease as the table holds it. */
export interface LeaseView {
  shardId: string;
  owner: string | undefined;
  counter: number;
  /** Epoch ms; at or before now the lease is free. */
  expires: number;
  /** A worker that asked for this lease. */
  stealBy: string | undefined;
}

export interface PlanInput {
  me: string;
  now: number;
  /** Leases of the namespace by shard id (shards never leased have none). */
  leases: ReadonlyMap<string, LeaseView>;
  /** Workers whose heartbeat has not expired (this one included or not: it is added). */
  liveWorkers: readonly string[];
  /** Shards that need a reader now: not finished, every parent finished. */
  eligible: readonly string[];
  /** Shards this worker reads. */
  held: ReadonlySet<string>;
}

export interface Plan {
  /** The fair share. */
  target: number;
  /** Leases to take now: handed to this worker first, then free ones up to the share. */
  take: string[];
  /** A lease to ask its holder for, when below the share and nothing is free. */
  steal?: { shardId: string; from: string; counter: number };
}

export function planLeases(p: PlanInput): Plan {
  const workers = new Set(p.liveWorkers);
  workers.add(p.me);
  const target = p.eligible.length === 0 ? 0 : Math.ceil(p.eligible.length / workers.size);
  let mine = 0;
  const handed: string[] = [];
  const free: string[] = [];
  const counts = new Map<string, string[]>();
  for (const shardId of p.eligible) {
    if (p.held.has(shardId)) {
      mine++;
      continue;
    }
    const lease = p.leases.get(shardId);
    if (!lease || lease.owner === undefined || lease.expires <= p.now) {
      free.push(shardId);
      continue;
    }
    if (lease.owner === p.me) {
      handed.push(shardId);
      continue;
    }
    const list = counts.get(lease.owner) ?? [];
    list.push(shardId);
    counts.set(lease.owner, list);
  }
  const take = [...handed, ...free.slice(0, Math.max(0, target - mine - handed.length))];
  const plan: Plan = { target, take };
  if (mine + take.length >= target) return plan;
  // Already asked someone: wait for the hand-over before asking again.
  for (const lease of p.leases.values()) {
    if (lease.stealBy === p.me && lease.owner !== p.me && lease.expires > p.now) return plan;
  }
  let victim: string | undefined;
  let most = target;
  for (const [owner, shards] of [...counts].sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (shards.length > most) {
      most = shards.length;
      victim = owner;
    }
  }
  if (victim === undefined) return plan;
  const candidates = (counts.get(victim) ?? []).filter((s) => p.leases.get(s)?.stealBy === undefined).sort();
  const shardId = candidates[candidates.length - 1];
  if (shardId === undefined) return plan;
  plan.steal = { shardId, from: victim, counter: p.leases.get(shardId)?.counter ?? 0 };
  return plan;
}
