/**
 * The README's first command: the demo pipeline runs to completion with no service and leaves
 * a consistent local lake. Needs no external service.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
const RECORDS = 20_000;

function ndjsonFiles(dir: string): string[] {
  return (readdirSync(dir, { recursive: true, withFileTypes: true }) as import('node:fs').Dirent[])
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));
}

const readLines = (file: string) =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('demo pipeline', () => {
  it('generates, enriches, deduplicates and partitions into a local lake, errors to their own file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-demo-'));
    const out = join(dir, 'out');
    const run = spawnSync(
      join(ROOT, 'node_modules/.bin/node'),
      ['src/cli.ts', 'run', 'pipelines/demo.yaml', '--no-tui', '--state-dir', join(dir, 'state')],
      {
        cwd: ROOT,
        encoding: 'utf8',
        env: { ...process.env, DEMO_RECORDS: String(RECORDS), DEMO_OUT: out, SLUICE_LOG_LEVEL: 'warn' },
      },
    );
    // The demo's deliberate bad records go to its error output: a completed run with failures.
    expect(run.status, run.stderr).toBe(3);
    expect(run.stderr).toMatch(
      /exit 3: completed, but \d+ records failed: \d+ to error outputs, 0 to dead letters/,
    );
    // The totals table names every stage.
    for (const stage of ['consumption', 'enriched', 'unique', 'by_day', 'lake', 'rejected'])
      expect(run.stderr).toContain(stage);

    const lakeFiles = ndjsonFiles(join(out, 'historico_diario'));
    expect(lakeFiles.every((f) => f.endsWith('.ndjson'))).toBe(true);
    const ids = new Set<string>();
    let written = 0;
    for (const file of lakeFiles) {
      // historico_diario/<fazenda>/<yyyy>/<MM>/<dd>/historico_consumo_<first>-<last>.ndjson
      const [fazenda, yyyy, mm, dd, name] = relative(join(out, 'historico_diario'), file).split('/');
      expect(name).toMatch(/^historico_consumo_\d+-\d+\.ndjson$/);
      for (const r of readLines(file)) {
        written++;
        expect(r.fazenda).toBe(fazenda);
        expect(String(r.data).slice(0, 10)).toBe(`${yyyy}-${mm}-${dd}`);
        expect(r.fazenda).toBe(r.cod_cliente === '1' ? 'fazenda_um' : 'fazenda_dois');
        expect(typeof r.consumo_real).toBe('number');
        expect(r.id_treated_data).toMatch(
          /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
        );
        // Deduplicated: every id once in the whole lake.
        expect(ids.has(String(r.id_treated_data))).toBe(false);
        ids.add(String(r.id_treated_data));
      }
    }
    const errors = ndjsonFiles(join(out, 'errors')).flatMap(readLines);
    expect(errors.length).toBeGreaterThan(RECORDS * 0.005);
    for (const e of errors) {
      expect(e).toMatchObject({ stage: 'enriched', value: { consumo_real: 'n/a' } });
      expect(e.reason).toMatch(/^set consumo_real: /);
      expect(e.meta).toHaveProperty('index');
    }
    // Nothing silently gone: written + errors + duplicates removed = generated.
    const duplicates = Number(
      /unique\s+transform\s+dedup\s+\d+\s+\d+\s+\d+\s+\d+\s+(\d+)/.exec(run.stderr)?.[1],
    );
    expect(duplicates).toBeGreaterThan(0);
    expect(written + errors.length + duplicates).toBe(RECORDS);
  }, 60_000);
});
