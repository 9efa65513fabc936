/**
 * One 8-shard stream read by three `sluice run` processes sharing a DynamoDB lease table on moto,
 * while a producer keeps putting: the split converges to 3/3/2; a process killed with SIGKILL
 * has its shards read by the others once its leases expire; restarted, it gets a fair share
 * back; every record put is read, duplicates only where a shard changed hands (counted); and a
 * shard changes reader no more often than its lease changed owner (never two readers at once).
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { boto3, type CliRun, createStream, requireMoto, runCli, tempDir, unique } from './kinesis-harness.ts';

beforeAll(async () => {
  await requireMoto();
});

const LEASE = 3_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Read {
  worker: string;
  id: number;
  shard: string;
  at: number;
}

interface Lease {
  lease_key: string;
  lease_owner?: string;
  lease_counter?: number;
  lease_expires?: number;
}

describe('kinesis source: three processes balance an 8-shard stream', () => {
  it('converges, fails over, rebalances, and reads every record', { timeout: 150_000 }, async () => {
    const stream = unique('scale');
    const table = unique('sluice-leases');
    await createStream(stream, 8);
    const dir = await tempDir();
    const spec = join(dir, 'scale.yaml');
    await writeFile(
      spec,
      `version: 1
name: scale
sources:
  src:
    type: kinesis
    stream: ${stream}
    start: trim_horizon
    poll_interval: 200ms
    idle_interval: 200ms
    shard_refresh: 5s
    checkpoint: { dynamodb: { table: ${table}, lease_duration: ${LEASE}ms } }
transforms:
  tagged: { type: enrich, from: [src], set: { shard: 'meta.shard_id' } }
sinks:
  out: { type: stdout, from: [tagged] }
`,
    );
    const reads: Read[] = [];
    const owners = new Map<string, string>(); // lease owner id → worker name
    const start = (worker: string): CliRun => {
      const run = runCli(spec, {}, ['--state-dir', join(dir, worker)]);
      let partial = '';
      run.child.stdout?.on('data', (d: Buffer) => {
        const at = Date.now();
        const text = partial + d.toString();
        const lines = text.split('\n');
        partial = lines.pop() ?? '';
        for (const l of lines) {
          const v = JSON.parse(l) as { id: number; shard: string };
          reads.push({ worker, id: v.id, shard: v.shard, at });
        }
      });
      return run;
    };
    const leases = async () => {
      const all = await boto3<Lease[]>(
        `t = boto3.resource("dynamodb").Table(arg)
try:
    items = t.scan(ConsistentRead=True)["Items"]
except t.meta.client.exceptions.ResourceNotFoundException:
    items = []  # not created yet by the first process
out = [{k: (int(v) if k in ("lease_counter", "lease_expires") else v) for k, v in i.items()} for i in items]`,
        table,
      );
      return all.filter((l) => !l.lease_key.includes('#worker/'));
    };
    /** Live leases per process (by pid in the owner id: host:pid:random). */
    const split = async (procs: Record<string, CliRun>) => {
      const now = Date.now();
      const byPid = new Map(Object.entries(procs).map(([w, p]) => [String(p.child.pid), w]));
      const counts: Record<string, number> = Object.fromEntries(Object.keys(procs).map((w) => [w, 0]));
      const shardsOf: Record<string, string[]> = {};
      for (const l of await leases()) {
        if (!l.lease_owner || (l.lease_expires ?? 0) <= now) continue;
        const w = byPid.get(l.lease_owner.split(':')[1]);
        if (!w) continue;
        owners.set(l.lease_owner, w);
        counts[w]++;
        shardsOf[w] ??= [];
        shardsOf[w].push(l.lease_key.split('/').pop() as string);
      }
      return { counts, shardsOf };
    };
    const waitSplit = async (procs: Record<string, CliRun>, want: number[], ms: number) => {
      const t0 = Date.now();
      for (;;) {
        const s = await split(procs);
        if (JSON.stringify(Object.values(s.counts).sort()) === JSON.stringify(want)) return Date.now() - t0;
        if (Date.now() - t0 > ms)
          throw new Error(`no ${want} split after ${ms} ms: ${JSON.stringify(s.counts)}`);
        await sleep(250);
      }
    };

    // A producer putting 40 records every 200 ms until told to stop.
    const stopFile = join(dir, 'stop');
    const produced = boto3<number>(
      `import os, random
c = boto3.client("kinesis")
n = 0
while not os.path.exists(arg["stop"]):
    recs = [{"Data": json.dumps({"id": n + i}).encode(), "PartitionKey": str(random.random())} for i in range(40)]
    r = c.put_records(StreamName=arg["s"], Records=recs)
    assert r["FailedRecordCount"] == 0, r
    n += 40
    time.sleep(0.2)
out = n`,
      { s: stream, stop: stopFile },
    );

    const procs: Record<string, CliRun> = { p1: start('p1'), p2: start('p2'), p3: start('p3') };
    const converged = await waitSplit(procs, [2, 3, 3], 12 * LEASE);

    // SIGKILL one: nothing released, its leases expire and the others take them.
    const { shardsOf } = await split(procs);
    const victim = Object.keys(shardsOf).find((w) => shardsOf[w].length === 3) as string;
    procs[victim].child.kill('SIGKILL');
    await procs[victim].exited;
    const killedAt = Date.now();
    const survivors = Object.fromEntries(Object.entries(procs).filter(([w]) => w !== victim));
    const failover = await waitSplit(survivors, [4, 4], 4 * LEASE);
    const failoverMs = Date.now() - killedAt;

    // Started again, it gets a fair share back through hand-overs.
    const back = start(`${victim}b`);
    const regrouped = { ...survivors, [`${victim}b`]: back };
    const rebalanced = await waitSplit(regrouped, [2, 3, 3], 12 * LEASE);

    await writeFile(stopFile, '');
    const total = await produced;
    for (let t = 0; t < 120 && new Set(reads.map((r) => r.id)).size < total; t++) await sleep(250);
    for (const p of Object.values(regrouped)) p.child.kill('SIGTERM');
    for (const p of Object.values(regrouped)) expect(await p.exited, p.stderr().slice(-2000)).toBe(0);

    // Every record put was read.
    const seen = new Map<number, Read[]>();
    for (const r of reads) seen.set(r.id, [...(seen.get(r.id) ?? []), r]);
    expect(seen.size).toBe(total);
    for (let id = 0; id < total; id++) expect(seen.has(id), `record ${id}`).toBe(true);

    // Per shard, the reader changes no more often than the lease changed owner.
    const final = await leases();
    const switchesByShard = new Map<string, number>();
    for (const l of final) {
      const shard = l.lease_key.split('/').pop() as string;
      const ofShard = reads.filter((r) => r.shard === shard).sort((a, b) => a.at - b.at);
      let switches = 0;
      for (let i = 1; i < ofShard.length; i++) if (ofShard[i].worker !== ofShard[i - 1].worker) switches++;
      switchesByShard.set(shard, switches);
      expect(switches, `reader changes of ${shard}`).toBeLessThanOrEqual((l.lease_counter ?? 1) - 1);
    }
    // Duplicates only in shards that changed hands (the records read past the last checkpoint).
    const dups = [...seen.values()].filter((rs) => rs.length > 1);
    for (const rs of dups)
      expect(switchesByShard.get(rs[0].shard), `duplicate ${rs[0].id}`).toBeGreaterThan(0);
    console.log(
      `kinesis scale: ${total} records, ${dups.length} read twice (${((100 * dups.length) / total).toFixed(1)} %); ` +
        `3/3/2 after ${converged} ms; failover to 4/4 ${failoverMs} ms after SIGKILL (waited ${failover} ms); ` +
        `fair share back after ${rebalanced} ms; lease ${LEASE} ms`,
    );
  });
});
