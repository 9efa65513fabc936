/**
 * Start-up stays cheap: a command loads the clients of the systems it talks to and nothing else.
 * Every stage module is imported by the registry, so one client imported at the top of a stage
 * file (or Ajv compiling the schemas again, or the live view) would be paid by every `sluice
 * validate` in CI. This checks which modules load, not how long they take: it holds on a busy
 * machine, and bench/startup.bench.ts measures the time.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'sluice-startup-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// A load hook sees every module the child loads, ESM or CommonJS; the list goes to a file at exit.
const hook = `
import { registerHooks } from 'node:module';
import { writeFileSync } from 'node:fs';
const loaded = [];
registerHooks({ load(url, context, next) { loaded.push(url); return next(url, context); } });
process.on('exit', () => writeFileSync(process.env.SLUICE_TEST_LOADED, [...loaded, ...process.moduleLoadList].join('\\n')));
`;

/** Packages no command may load unless a stage of the spec talks to that system. */
const CLIENTS = [
  '@aws-sdk/',
  '@smithy/node-http-handler',
  '@platformatic/kafka',
  'aws-msk-iam-sasl-signer-js',
  'mysql2',
  'pg',
  'hyparquet-writer',
  'hyparquet',
];
/** Loaded only by the live view, the operations endpoint, or for a schema not compiled ahead. */
const VIEW_AND_OPS = ['ink', 'react', 'prom-client'];
const AJV_COMPILER = 'ajv/dist/ajv.js';

/**
 * Node's own modules no start may load: HTTP and TLS are for the stages that serve or call, and
 * an ESM import of node:http or node:https builds their whole namespace, which loads http2 and
 * undici too (tens of milliseconds). Node's list of the built-ins it loaded names them.
 */
const HEAVY_BUILTINS = ['NativeModule http', 'NativeModule https', 'NativeModule http2', 'NativeModule tls'];
const UNDICI = 'NativeModule internal/deps/undici/undici';

/** The packages a command loaded (names under node_modules), and whether Ajv's compiler was one. */
function loadedBy(args: string[]): { packages: Set<string>; ajvCompiler: boolean; builtins: string[] } {
  const out = join(
    dir,
    `loaded-${args
      .join('-')
      .replace(/[^\w.-]/g, '_')
      .slice(0, 80)}.txt`,
  );
  const r = spawnSync(
    join(root, 'node_modules/.bin/node'),
    ['--import', `data:text/javascript,${encodeURIComponent(hook)}`, 'src/cli.ts', ...args],
    { cwd: root, encoding: 'utf8', timeout: 60_000, env: { ...process.env, SLUICE_TEST_LOADED: out } },
  );
  expect(r.status, r.stderr).toBe(0);
  const urls = readFileSync(out, 'utf8').split('\n');
  const packages = new Set<string>();
  for (const url of urls) {
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
    if (m) packages.add(m[1]);
  }
  const builtins = urls.filter((u) => HEAVY_BUILTINS.includes(u) || u === UNDICI);
  return { packages, ajvCompiler: urls.some((u) => u.endsWith(AJV_COMPILER)), builtins };
}

const matching = (packages: Set<string>, names: readonly string[]): string[] =>
  [...packages].filter((p) => names.some((n) => (n.endsWith('/') ? p.startsWith(n) : p === n))).sort();

describe('start-up', () => {
  it('validate of every shipped pipeline loads no client, no view, no endpoint and no Ajv compiler', () => {
    // Between them the shipped pipelines use every system: Kinesis, SNS, S3, Firehose, DynamoDB,
    // Kafka (with MSK IAM), MySQL, PostgreSQL, Parquet.
    const specs = readdirSync(join(root, 'pipelines'))
      .filter((f) => /\.ya?ml$/.test(f))
      .map((f) => join('pipelines', f));
    const { packages, ajvCompiler, builtins } = loadedBy(['validate', ...specs]);
    expect(matching(packages, [...CLIENTS, ...VIEW_AND_OPS])).toEqual([]);
    expect(builtins, 'HTTP, TLS and fetch load only for a stage that serves or calls').toEqual([]);
    expect(packages.has('pino'), 'validate builds no pipeline, so it needs no logger').toBe(false);
    expect(
      ajvCompiler,
      'Ajv compiled a built-in schema at start: schemas/*.validators.cjs is stale, run `npm run validators`',
    ).toBe(false);
  });

  it('a run of generate -> enrich -> stdout loads no client, view or endpoint', () => {
    const spec = join(dir, 'small.yaml');
    writeFileSync(
      spec,
      [
        'version: 1',
        'name: small',
        'sources:',
        "  gen: { type: generate, count: 10, fields: { a: 'i' } }",
        'transforms:',
        "  enriched: { type: enrich, from: [gen], set: { b: 'a * 2' } }",
        'sinks:',
        '  out: { type: stdout, from: [enriched] }',
      ].join('\n'),
    );
    const { packages, ajvCompiler, builtins } = loadedBy([
      'run',
      spec,
      '--no-tui',
      '--state-dir',
      join(dir, 'state'),
    ]);
    expect(matching(packages, [...CLIENTS, ...VIEW_AND_OPS])).toEqual([]);
    expect(builtins).toEqual([]);
    expect(ajvCompiler).toBe(false);
  });

  it('sluice test of the demo loads no client, view or endpoint', () => {
    const { packages, ajvCompiler } = loadedBy(['test', 'pipelines/demo.test.yaml']);
    expect(matching(packages, [...CLIENTS, ...VIEW_AND_OPS])).toEqual([]);
    expect(ajvCompiler).toBe(false);
  });

  it('the hook does see a client when a stage of the spec uses one', () => {
    // Without this, the empty lists above could mean the hook saw nothing. The S3 sink's preview
    // builds its client (and sends nothing).
    const { packages } = loadedBy(['test', 'pipelines/feedlot-to-lake.test.yaml']);
    expect(packages.has('@aws-sdk/client-s3')).toBe(true);
    // And Node's list names a built-in when something loads it: the ops endpoint serves HTTP.
    const spec = join(dir, 'served.yaml');
    writeFileSync(
      spec,
      [
        'version: 1',
        'name: served',
        'sources:',
        "  gen: { type: generate, count: 1, fields: { a: 'i' } }",
        'sinks:',
        '  out: { type: stdout, from: [gen] }',
      ].join('\n'),
    );
    const served = loadedBy([
      'run',
      spec,
      '--no-tui',
      '--http',
      '127.0.0.1:0',
      '--state-dir',
      join(dir, 'state-served'),
    ]);
    expect(served.builtins).toContain('NativeModule http');
  });
});
