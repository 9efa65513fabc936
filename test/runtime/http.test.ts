/**
 * The operations endpoint served in-process beside a real pipeline: /ready follows the pipeline
 * through starting, running, a sink retrying, draining and stopped; /live turns 503 once it
 * failed; every metric name it exposes is documented in docs/metrics.md and nothing more.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Type } from '@sinclair/typebox';
import { afterEach, describe, expect, it } from 'vitest';
import { type OpsServer, parseListenAddress, startOpsServer } from '../../src/runtime/http.ts';
import { defineSink, type SinkDefinition } from '../../src/stages/define.ts';
import { buildPipeline, stageMetrics, until } from './helpers.ts';

const LOOPBACK = { host: '127.0.0.1', port: 0 };
const servers: OpsServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

async function serve(p: { metrics: Parameters<typeof startOpsServer>[0]['metrics'] }): Promise<OpsServer> {
  const s = await startOpsServer(p, LOOPBACK);
  servers.push(s);
  return s;
}

async function get(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve: () => void = () => undefined;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** A sink whose opening and writes the test controls: open waits for a gate; writes fail or hang on demand. */
function controlledSink() {
  const control = {
    opened: deferred(),
    failing: false,
    hold: undefined as Promise<void> | undefined,
    writesHeld: 0,
  };
  const def = defineSink({
    type: 'test',
    kind: 'sink',
    description: 'test sink',
    options: Type.Object({}),
    batching: { defaults: { max_records: 20, max_bytes: 1 << 30, max_age: 10 } },
    create: () => ({
      open: () => control.opened.promise,
      write: async () => {
        if (control.failing) throw new Error('connect ECONNREFUSED 127.0.0.1:1');
        if (control.hold) {
          control.writesHeld++;
          await control.hold;
        }
        return undefined;
      },
    }),
  }) as unknown as SinkDefinition;
  return { def, control };
}

const SPEC = `
version: 1
name: ops
sources:
  gen: { type: generate, rate: 2000, fields: { n: 'i' } }
sinks:
  out: { type: stdout, from: [gen], retry: { backoff: 10ms, max_backoff: 20ms }, max_in_flight: 1 }
`;

describe('GET /ready and /live', () => {
  it('503 while starting, 200 running, 503 while a sink retries, 200 again, 503 draining and stopped', async () => {
    const { def, control } = controlledSink();
    const p = buildPipeline(SPEC, { sinks: { out: def } });
    const ops = await serve(p);
    const run = p.run();

    // The sink has not opened yet: starting.
    const starting = await get(`${ops.url}/ready`);
    expect(starting.status).toBe(503);
    expect(starting.body).toMatchObject({ ready: false, state: 'starting' });
    expect((await get(`${ops.url}/live`)).status).toBe(200);

    control.opened.resolve();
    await until(() => stageMetrics(p, 'out').recordsOut > 0, 10_000, 'first delivery');
    expect(await get(`${ops.url}/ready`)).toEqual({
      status: 200,
      body: { ready: true, state: 'running', reason: 'running' },
    });

    control.failing = true;
    await until(() => stageMetrics(p, 'out').health.state === 'retrying', 10_000, 'sink retrying');
    const retrying = await get(`${ops.url}/ready`);
    expect(retrying.status).toBe(503);
    expect(retrying.body).toMatchObject({ ready: false, state: 'running' });
    expect(retrying.body.reason).toContain('out');
    expect(retrying.body.retrying).toEqual([
      expect.objectContaining({ stage: 'out', reason: 'connect ECONNREFUSED 127.0.0.1:1' }),
    ]);
    expect((await get(`${ops.url}/live`)).status).toBe(200);

    control.failing = false;
    await until(() => stageMetrics(p, 'out').health.state === 'ok', 10_000, 'sink recovered');
    expect((await get(`${ops.url}/ready`)).status).toBe(200);

    // A write that does not finish keeps the drain going for as long as the test wants.
    const release = deferred();
    control.hold = release.promise;
    await until(() => control.writesHeld > 0, 10_000, 'a held write');
    p.stop('test');
    const draining = await get(`${ops.url}/ready`);
    expect(draining).toMatchObject({ status: 503, body: { ready: false, state: 'draining' } });

    control.hold = undefined;
    release.resolve();
    expect((await run).ok).toBe(true);
    expect(await get(`${ops.url}/ready`)).toMatchObject({ status: 503, body: { state: 'stopped' } });
    // The process still runs and the pipeline did not fail: alive.
    expect(await get(`${ops.url}/live`)).toEqual({ status: 200, body: { live: true, state: 'stopped' } });
  });

  it('/live is 503 once the pipeline failed', async () => {
    const def = defineSink({
      type: 'test',
      kind: 'sink',
      description: 'test sink',
      options: Type.Object({}),
      batching: { defaults: { max_records: 20, max_bytes: 1 << 30, max_age: 10 } },
      create: () => ({
        open: async () => {
          throw new Error('table missing');
        },
        write: async () => undefined,
      }),
    }) as unknown as SinkDefinition;
    const p = buildPipeline(SPEC, { sinks: { out: def } });
    const ops = await serve(p);
    expect((await p.run()).ok).toBe(false);
    expect(await get(`${ops.url}/live`)).toEqual({ status: 503, body: { live: false, state: 'failed' } });
    expect(await get(`${ops.url}/ready`)).toMatchObject({ status: 503, body: { state: 'failed' } });
  });
});

describe('GET /stats and the rest', () => {
  it('/stats is the snapshot the live view draws; unknown paths 404, other methods 405', async () => {
    const { def, control } = controlledSink();
    control.opened.resolve();
    const p = buildPipeline(SPEC.replace('rate: 2000, ', 'count: 300, '), { sinks: { out: def } });
    const ops = await serve(p);
    await p.run();
    const { status, body } = await get(`${ops.url}/stats`);
    expect(status).toBe(200);
    expect(body).toEqual(JSON.parse(JSON.stringify({ ...p.metrics.snapshot(), at: body.at })));
    expect(body.stages).toEqual([
      expect.objectContaining({ name: 'gen', recordsOut: 300 }),
      expect.objectContaining({ name: 'out', recordsOut: 300 }),
    ]);
    expect((await fetch(`${ops.url}/nope`)).status).toBe(404);
    expect((await fetch(`${ops.url}/ready`, { method: 'POST' })).status).toBe(405);
  });
});

describe('/metrics names', () => {
  it('every metric the endpoint exposes is documented in docs/metrics.md, and every documented one is exposed', async () => {
    const { def, control } = controlledSink();
    control.opened.resolve();
    const p = buildPipeline(SPEC.replace('rate: 2000, ', 'count: 50, '), { sinks: { out: def } });
    const ops = await serve(p);
    await p.run();
    const res = await fetch(`${ops.url}/metrics`);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const exposed = new Set([...(await res.text()).matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]));
    const doc = readFileSync(resolve(import.meta.dirname, '../../docs/metrics.md'), 'utf8');
    const documented = new Set([...doc.matchAll(/^\| `(sluice_[a-z_]+)` \|/gm)].map((m) => m[1]));
    expect(exposed.size).toBeGreaterThan(15);
    expect([...exposed].sort()).toEqual([...documented].sort());
    for (const name of exposed) {
      if (name.endsWith('_total')) continue;
      // Counters end in _total; everything else is a gauge or the histogram.
      expect(doc).toMatch(new RegExp(`\\| \`${name}\` \\| (gauge|histogram) \\|`));
    }
  });
});

describe('parseListenAddress', () => {
  it('a bare port is loopback; a named host is kept; nonsense is refused', () => {
    expect(parseListenAddress('4195')).toEqual({ host: '127.0.0.1', port: 4195 });
    expect(parseListenAddress(':4195')).toEqual({ host: '127.0.0.1', port: 4195 });
    expect(parseListenAddress('0.0.0.0:9000')).toEqual({ host: '0.0.0.0', port: 9000 });
    expect(parseListenAddress('[::1]:0')).toEqual({ host: '::1', port: 0 });
    expect(parseListenAddress('localhost:80')).toEqual({ host: 'localhost', port: 80 });
    expect(parseListenAddress('70000')).toBeUndefined();
    expect(parseListenAddress('http://x:1')).toBeUndefined();
    expect(parseListenAddress('host:')).toBeUndefined();
  });
});
