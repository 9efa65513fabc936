/**
 * The operations endpoint against running pipelines, read by clients that are not sluice's own:
 * /metrics parsed by Python's prometheus_client (its counters equal the totals at exit), and
 * `sluice top` attached from a real terminal (tmux) to a pipeline running in another process.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOpsServer } from '../../src/runtime/http.ts';
import type { PipelineSnapshot, StageSnapshot } from '../../src/runtime/metrics.ts';
import { buildPipeline, testSink } from '../runtime/helpers.ts';
import {
  BROKERS,
  createTopic,
  deleteTopic,
  kcatProduce,
  requireKafka,
  SluiceProcess,
  suffix,
} from './kafka-harness.ts';
import { pythonBin } from './services.ts';

const root = resolve(import.meta.dirname, '../..');
const dir = mkdtempSync(join(tmpdir(), 'sluice-http-'));
const topics: string[] = [];

afterAll(async () => {
  for (const t of topics) await deleteTopic(t);
  rmSync(dir, { recursive: true, force: true });
});

interface Sample {
  family: string;
  type: string;
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The exposition as Python's prometheus_client parser reads it. */
function parseWithPrometheusClient(text: string): Sample[] {
  const script = `
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        out.append({"family": fam.name, "type": fam.type, "name": s.name, "labels": s.labels, "value": s.value})
print(json.dumps(out))
`;
  const py = pythonBin();
  const r = spawnSync(py, ['-c', script], { input: text, encoding: 'utf8' });
  if (r.status !== 0)
    throw new Error(
      `${py} could not parse the exposition (prometheus_client missing? run scripts/services.sh up and eval "$(scripts/services.sh env)"):\n${r.stderr}`,
    );
  return JSON.parse(r.stdout) as Sample[];
}

function value(samples: Sample[], name: string, labels: Record<string, string>): number | undefined {
  const s = samples.find(
    (x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v),
  );
  return s?.value;
}

/** What each counter must equal for a stage, from the same figures the totals table prints. */
function expectedCounters(s: StageSnapshot): Record<string, number | undefined> {
  return {
    sluice_stage_received_records_total: s.kind === 'source' ? undefined : s.recordsIn,
    sluice_stage_sent_records_total: s.recordsOut,
    sluice_stage_sent_bytes_total: s.bytesOut,
    sluice_stage_failed_records_total: s.errors,
    sluice_stage_dropped_records_total: s.dropped,
    sluice_stage_duplicate_records_total: s.kind === 'transform' ? s.duplicates : undefined,
    sluice_stage_dead_lettered_records_total: s.deadLettered,
    sluice_sink_retried_records_total: s.kind === 'sink' ? s.retries : undefined,
  };
}

describe('/metrics read by prometheus_client', () => {
  it('parses, and after the run every counter equals the final totals; the histogram is consistent', async () => {
    // Two transient failures first: the sink retries, so the retry counter has something to show.
    const sink = testSink((_batch, call) => {
      if (call < 2) throw new Error('connect ECONNREFUSED');
      return undefined;
    });
    const p = buildPipeline(
      `
version: 1
name: scrape
sources:
  gen:
    type: generate
    count: 3000
    seed: 7
    duplicates: 0.05
    fields: { id: 'string(i)', v: 'i % 97 == 0 ? dyn("bad") : dyn(i)' }
transforms:
  unique: { type: dedup, from: [gen], key: id }
  doubled: { type: enrich, from: [unique], set: { w: 'v * 2' } }
  even: { type: filter, from: [doubled], where: 'w % 4 == 0' }
sinks:
  out: { type: stdout, from: [even], retry: { backoff: 5ms, max_backoff: 10ms } }
`,
      { sinks: { out: sink } },
    );
    const ops = await startOpsServer(p, { host: '127.0.0.1', port: 0 });
    try {
      const result = await p.run();
      expect(result.ok).toBe(true);
      const final = p.metrics.snapshot();
      const samples = parseWithPrometheusClient(await (await fetch(`${ops.url}/metrics`)).text());

      const stage = (name: string): StageSnapshot =>
        final.stages.find((s) => s.name === name) as StageSnapshot;
      // The run did something in every counter that matters.
      expect(stage('unique').duplicates).toBeGreaterThan(0);
      expect(stage('doubled').errors).toBeGreaterThan(0);
      expect(stage('doubled').deadLettered).toBe(stage('doubled').errors);
      expect(stage('even').dropped).toBeGreaterThan(0);
      expect(stage('out').retries).toBeGreaterThan(0);

      for (const s of final.stages) {
        const labels = { pipeline: 'scrape', stage: s.name, kind: s.kind, type: s.type };
        for (const [name, want] of Object.entries(expectedCounters(s))) {
          expect({ stage: s.name, name, v: value(samples, name, labels) }).toEqual({
            stage: s.name,
            name,
            v: want,
          });
        }
      }
      // Every counter family is a counter to the parser (the name ends in _total).
      for (const s of samples.filter((x) => x.name.endsWith('_total'))) expect(s.type).toBe('counter');

      // The batch histogram of the sink: cumulative buckets, +Inf = count = batches timed.
      const labels = { stage: 'out' };
      const buckets = samples
        .filter((x) => x.name === 'sluice_stage_batch_duration_seconds_bucket' && x.labels.stage === 'out')
        .map((x) => [x.labels.le, x.value] as const);
      expect(buckets.length).toBe(14);
      for (let i = 1; i < buckets.length; i++)
        expect(buckets[i][1]).toBeGreaterThanOrEqual(buckets[i - 1][1]);
      const count = value(samples, 'sluice_stage_batch_duration_seconds_count', labels);
      expect(buckets.at(-1)).toEqual(['+Inf', count]);
      expect(count).toBe(stage('out').batchLatency?.count);
      expect(count).toBeGreaterThan(2);
      expect(value(samples, 'sluice_stage_batch_duration_seconds_sum', labels)).toBeGreaterThan(0);

      expect(value(samples, 'sluice_pipeline_state', { state: 'stopped' })).toBe(1);
      expect(value(samples, 'sluice_pipeline_state', { state: 'running' })).toBe(0);
      expect(value(samples, 'sluice_pipeline_ready', {})).toBe(0);
      expect(value(samples, 'sluice_sink_retrying', labels)).toBe(0);
      expect(value(samples, 'sluice_sink_last_success_age_seconds', labels)).toBeGreaterThanOrEqual(0);
      expect(value(samples, 'sluice_source_checkpoint_age_seconds', { stage: 'gen' })).toBeGreaterThanOrEqual(
        0,
      );
    } finally {
      await ops.close();
    }
  });
});

/** Rows of the totals table `sluice run` prints at exit, by stage, keyed by column title. */
function totalsTable(stderr: string): Map<string, Record<string, string>> {
  const lines = stderr.split('\n');
  const at = lines.findIndex((l) => /^stage\s+kind\s+type\s/.test(l));
  if (at < 0) throw new Error(`no totals table in:\n${stderr}`);
  const titles = lines[at].trim().split(/\s{2,}/);
  const rows = new Map<string, Record<string, string>>();
  for (const line of lines.slice(at + 2)) {
    const cells = line.trim().split(/\s{2,}/);
    if (cells.length < 5 || !['source', 'transform', 'sink'].includes(cells[1])) break;
    rows.set(cells[0], Object.fromEntries(titles.map((t, i) => [t, cells[i] ?? ''])));
  }
  return rows;
}

describe('sluice run --http (a Kafka pipeline in its own process)', () => {
  beforeAll(async () => {
    await requireKafka();
  });

  it('serves /metrics whose counters equal the totals table printed at exit, with lag per partition', async () => {
    const topic = `sluice-http-${suffix()}`;
    topics.push(topic);
    await createTopic(topic, 2);
    const lines = Array.from({ length: 2000 }, (_, i) =>
      i % 50 === 0 ? `k${i}\t{"i": ${i}, "v": "broken"}` : `k${i}\t{"i": ${i}, "v": ${i}}`,
    );
    await kcatProduce(topic, lines);
    const spec = join(dir, 'kafka.yaml');
    writeFileSync(
      spec,
      `
version: 1
name: kafka-ops
sources:
  orders: { type: kafka, brokers: '${BROKERS}', topics: ['${topic}'], group: 'g-${topic}', start: earliest }
transforms:
  priced: { type: enrich, from: [orders], set: { total: 'v * 3' } }
sinks:
  lake:
    type: file
    from: [priced]
    dir: '${join(dir, 'lake')}'
    path: 'part_{first_position}{ext}'
    buffer: { max_age: 100ms }
`,
    );
    const run = new SluiceProcess(spec, {}, [
      '--http',
      '127.0.0.1:0',
      '--exit-idle',
      '6s',
      '--state-dir',
      join(dir, 'state'),
    ]);
    const url = await waitFor('the endpoint address', () => {
      const line = run.logs().find((l) => typeof l.url === 'string');
      return line?.url as string | undefined;
    });
    // Everything read and written, and the lag (queried every 2 s) caught up: the run now idles
    // until --exit-idle ends it, so nothing changes between this scrape and the totals at exit.
    await waitFor('all records written and no lag', async () => {
      const snap = (await (await fetch(`${url}/stats`)).json()) as PipelineSnapshot;
      const lake = snap.stages.find((s) => s.name === 'lake');
      const lag = Object.values(snap.stages.find((s) => s.name === 'orders')?.lagByPartition ?? {});
      return lake?.recordsOut === 2000 - 40 && lag.length === 2 && lag.every((v) => v === 0)
        ? true
        : undefined;
    });
    // What an orchestrator's probe sees, asked with curl.
    const probe = execFileSync('curl', ['-s', '-w', ' %{http_code}', `${url}/ready`], { encoding: 'utf8' });
    expect(probe).toBe('{"ready":true,"state":"running","reason":"running"}\n 200');
    const samples = parseWithPrometheusClient(await (await fetch(`${url}/metrics`)).text());
    const done = await run.done;
    expect(done.code).toBe(3); // completed; the 40 broken records went to dead letters

    const table = totalsTable(done.stderr);
    expect([...table.keys()]).toEqual(['orders', 'priced', 'lake']);
    const columns: Record<string, string> = {
      in: 'sluice_stage_received_records_total',
      out: 'sluice_stage_sent_records_total',
      errors: 'sluice_stage_failed_records_total',
      dead: 'sluice_stage_dead_lettered_records_total',
      dropped: 'sluice_stage_dropped_records_total',
    };
    for (const [name, row] of table) {
      const labels = { pipeline: 'kafka-ops', stage: name };
      for (const [column, metric] of Object.entries(columns)) {
        if (row[column] === '-') continue; // a source reads no input
        expect({ name, column, v: String(value(samples, metric, labels)) }).toEqual({
          name,
          column,
          v: row[column],
        });
      }
    }
    expect(table.get('priced')?.errors).toBe('40');
    expect(table.get('priced')?.dead).toBe('40');
    expect(table.get('lake')?.out).toBe('1960');

    // Kafka lag per partition, labelled <topic>/<partition>, caught up.
    const lag = samples.filter((s) => s.name === 'sluice_source_lag_records');
    expect(lag.map((s) => s.labels.partition).sort()).toEqual([`${topic}/0`, `${topic}/1`]);
    for (const s of lag) expect(s.value).toBe(0);
    expect(lag[0].labels).toMatchObject({
      pipeline: 'kafka-ops',
      stage: 'orders',
      kind: 'source',
      type: 'kafka',
    });
  });
});

async function waitFor<T>(
  what: string,
  probe: () => T | undefined | Promise<T | undefined>,
  ms = 60_000,
): Promise<T> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const got = await Promise.resolve()
      .then(probe)
      .catch(() => undefined);
    if (got !== undefined) return got;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return port;
}

describe('sluice top in a real terminal', () => {
  const socket = `sluice-top-${randomBytes(4).toString('hex')}`;
  const tmux = (...args: string[]): string =>
    execFileSync('tmux', ['-L', socket, ...args], { encoding: 'utf8' });
  const screen = (): string => tmux('capture-pane', '-p', '-t', 'top', '-S', '-50');
  const sh = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  let pipeline: ReturnType<typeof spawn> | undefined;

  beforeAll(() => {
    if (spawnSync('tmux', ['-V']).status !== 0) throw new Error('tmux is missing: apt-get install -y tmux');
  });
  afterAll(() => {
    spawnSync('tmux', ['-L', socket, 'kill-server']);
    pipeline?.kill('SIGKILL');
  });

  it('says it cannot reach the endpoint and retries, then shows the stages; q quits top and the pipeline runs on', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const node = join(root, 'node_modules/.bin/node');
    tmux(
      'new-session',
      '-d',
      '-s',
      'top',
      '-x',
      '100',
      '-y',
      '30',
      `cd ${sh(root)} && ${sh(node)} src/cli.ts top --http ${url}; echo TOP_EXIT=$?; sleep 600`,
    );
    const waitScreen = (what: string, test: (text: string) => boolean): Promise<string> =>
      waitFor(
        what,
        () => {
          const text = screen();
          return test(text) ? text : undefined;
        },
        30_000,
      ).catch((err: Error) => {
        throw new Error(`${err.message}; the screen was:\n${screen()}`);
      });

    const unreachable = await waitScreen('the unreachable notice', (t) => t.includes('cannot reach'));
    expect(unreachable).toContain(
      `sluice top: cannot reach ${url}/stats: ECONNREFUSED; retrying every 500ms`,
    );

    const spec = join(dir, 'top.yaml');
    writeFileSync(
      spec,
      `
version: 1
name: watched
sources:
  ticks: { type: generate, rate: 200, fields: { n: 'i' } }
transforms:
  kept: { type: filter, from: [ticks], where: 'n % 2 == 0' }
sinks:
  files: { type: file, from: [kept], dir: '${join(dir, 'top-out')}', path: 'part_{first_position}{ext}' }
`,
    );
    pipeline = spawn(
      node,
      [
        'src/cli.ts',
        'run',
        spec,
        '--no-tui',
        '--http',
        `127.0.0.1:${port}`,
        '--state-dir',
        join(dir, 'top-state'),
      ],
      {
        cwd: root,
        stdio: 'ignore',
      },
    );
    const exited = new Promise<number | null>((r) => pipeline?.on('exit', (code) => r(code)));

    const live = await waitScreen(
      'the live view',
      (t) => /^sluice watched {2}● running/m.test(t) && /kept/.test(t),
    );
    for (const name of ['ticks', 'kept', 'files'])
      expect(live).toMatch(new RegExp(`^.[│├└─╌ ]*${name}\\s`, 'm'));

    tmux('send-keys', '-t', 'top', 'q');
    await waitScreen('top to exit', (t) => t.includes('TOP_EXIT='));
    expect(screen()).toMatch(/TOP_EXIT=0\b/);

    // The pipeline did not stop: it still answers, runs, and moves records.
    const stats = async () => (await (await fetch(`${url}/stats`)).json()) as PipelineSnapshot;
    const before = (await stats()).stages.find((s) => s.name === 'files')?.recordsOut ?? 0;
    expect((await stats()).state).toBe('running');
    await waitFor('more records after top quit', async () =>
      ((await stats()).stages.find((s) => s.name === 'files')?.recordsOut ?? 0) > before ? true : undefined,
    );
    expect((await fetch(`${url}/live`)).status).toBe(200);

    pipeline.kill('SIGTERM');
    expect(await exited).toBe(0);
    pipeline = undefined;
  });
});
