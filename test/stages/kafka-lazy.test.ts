/**
 * The Kafka client costs most of the registry's import time, so it must load only when a Kafka
 * stage starts: `sluice validate` and pipelines without Kafka never pay for it.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));

// A load hook sees every module the child loads, ESM or CommonJS, before it runs.
const script = `
const { registerHooks } = await import('node:module');
const loaded = [];
registerHooks({
  load(url, context, next) {
    if (url.includes('@platformatic/kafka')) loaded.push(url);
    return next(url, context);
  },
});
const { definitions } = await import('./src/stages/registry.ts');
const { MetricsRegistry } = await import('./src/runtime/metrics.ts');
const { pino } = await import('pino');
const metrics = new MetricsRegistry('lazy');
const created = [];
for (const d of definitions.filter((d) => d.type === 'kafka')) {
  const opts = d.kind === 'source'
    ? { brokers: '127.0.0.1:9', topics: ['t'], group: 'g' }
    : { brokers: '127.0.0.1:9', topic: 't', key: 'string(id)' };
  const ctx = { name: d.kind, pipeline: 'lazy', log: pino({ level: 'silent' }), metrics: metrics.stage(d.kind, d.kind, d.type), stateDir: '.' };
  if (d.create(opts, ctx)) created.push(d.kind);
}
console.log(JSON.stringify({ created, loaded }));
await import('./src/stages/kafka/runtime.ts');
console.log(JSON.stringify({ loaded }));
`;

describe('kafka client loading', () => {
  it('is not loaded by importing the registry or creating the Kafka stages, only when they start', () => {
    const child = spawnSync('node_modules/.bin/node', ['--input-type=module', '-e', script], {
      cwd: root,
      encoding: 'utf8',
      timeout: 30_000,
    });
    const lines = child.stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { created?: string[]; loaded: string[] });
    expect(lines[0], child.stderr).toBeDefined();
    expect(lines[0].created?.sort()).toEqual(['sink', 'source']);
    expect(lines[0].loaded).toEqual([]);
    // The hook does see the client once the module the stages import at start is loaded.
    expect(child.status, child.stderr).toBe(0);
    expect(lines[1].loaded.length).toBeGreaterThan(0);
  });
});
