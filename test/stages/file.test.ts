import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { fileSource } from '../../src/stages/sources/file.ts';
import { buildPipeline, collectingSink, stageMetrics, tempDir } from '../runtime/helpers.ts';
import { runSource } from '../runtime/stage-harness.ts';

const values = (run: { records: { value: unknown }[] }) => run.records.map((r) => r.value);

describe('file source', () => {
  it('reads ndjson; malformed lines go to the error output with file and line number', async () => {
    const dir = tempDir();
    const f = join(dir, 'a.ndjson');
    writeFileSync(f, '{"a":1}\n{"a":2\n\n{"a":3}\nnot json\n{"a":4}\n');
    const run = await runSource(fileSource, { path: f, format: 'ndjson' });
    expect(values(run)).toEqual([{ a: 1 }, { a: 3 }, { a: 4 }]);
    expect(run.records.map((r) => r.meta)).toEqual([1, 4, 6].map((line) => ({ file: f, line })));
    expect(run.failures.map((x) => x.input.meta)).toEqual([
      { file: f, line: 2 },
      { file: f, line: 5 },
    ]);
    expect(run.failures[0].reason).toMatch(new RegExp(`^${f}:2: malformed JSON`));
    expect(run.failures[1].input.value).toBe('not json');
    expect(run.scope.committed[f]).toBe('6');
  });

  it('in a pipeline: malformed lines are counted and routed to <source>.errors', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'in.ndjson'), '{"a":1}\n{oops\n{"a":2}\n');
    const good = collectingSink();
    const bad = collectingSink();
    const p = buildPipeline(
      `
version: 1
name: malformed
sources:
  input: { type: file, path: '${dir}/*.ndjson' }
sinks:
  good: { type: stdout, from: [input] }
  bad: { type: stdout, from: [input.errors] }
`,
      { sinks: { good: good.def, bad: bad.def } },
    );
    expect((await p.run()).ok).toBe(true);
    expect(good.values).toEqual([{ a: 1 }, { a: 2 }]);
    expect(bad.values).toEqual([
      expect.objectContaining({
        stage: 'input',
        value: '{oops',
        meta: { file: join(dir, 'in.ndjson'), line: 2 },
      }),
    ]);
    expect((bad.values[0] as { reason: string }).reason).toContain('in.ndjson:2: malformed JSON');
    expect(stageMetrics(p, 'input').errors).toBe(1);
  });

  it('gunzips .gz files and reads a glob in name order', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'b.ndjson.gz'), gzipSync('{"f":"b"}\n'));
    writeFileSync(join(dir, 'a.ndjson'), '{"f":"a"}\n');
    writeFileSync(join(dir, 'c.txt'), '{"f":"c"}\n');
    const run = await runSource(fileSource, { path: join(dir, '*.ndjson*') });
    expect(values(run)).toEqual([{ f: 'a' }, { f: 'b' }]);
  });

  it('reads csv with a header; a malformed row is routed with its line and reading goes on', async () => {
    const dir = tempDir();
    const f = join(dir, 'd.csv.gz');
    writeFileSync(f, gzipSync('id,name\n1,ana\n2,"bia, b"\n3,caio,extra\n4,"di\nana"\n5,eva\n'));
    const run = await runSource(fileSource, { path: f, format: 'csv' });
    expect(values(run)).toEqual([
      { id: '1', name: 'ana' },
      { id: '2', name: 'bia, b' },
      { id: '4', name: 'di\nana' },
      { id: '5', name: 'eva' },
    ]);
    expect(run.records.map((r) => (r.meta as { line: number }).line)).toEqual([2, 3, 6, 7]);
    expect(run.failures).toHaveLength(1);
    expect(run.failures[0].input.meta).toEqual({ file: f, line: 4 });
    expect(run.failures[0].input.value).toBe('3,caio,extra');
    expect(run.failures[0].reason).toMatch(/d\.csv\.gz:4: csv: /);
  });

  it('reads a JSON array, multi-byte characters across read chunks included', async () => {
    const dir = tempDir();
    const f = join(dir, 'big.json');
    // The first item's text puts byte 65536 (the end of the first read chunk) inside a 3-byte character.
    const items: unknown[] = [{ ss: '牛'.repeat(30_000) }];
    for (let i = 0; i < 3000; i++) items.push({ i, nome: 'João da Conceição ação ñ 牛' });
    writeFileSync(f, JSON.stringify(items));
    const run = await runSource(fileSource, { path: f, format: 'json' }, { batchSize: 1000 });
    expect(values(run)).toEqual(items);
    expect(run.scope.committed[f]).toBe('3001');

    writeFileSync(join(dir, 'obj.json'), '{"not":"an array"}');
    const notArray = await runSource(fileSource, { path: join(dir, 'obj.json'), format: 'json' });
    expect(notArray.failures[0].reason).toMatch(/expects an array/);
  });

  it('reads plain lines', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'l.txt'), 'one\ntwo\r\nthree');
    const run = await runSource(fileSource, { path: join(dir, 'l.txt'), format: 'lines' });
    expect(values(run)).toEqual(['one', 'two', 'three']);
  });

  it('resumes each file after its checkpointed line', async () => {
    const dir = tempDir();
    const f = join(dir, 'r.ndjson');
    writeFileSync(f, Array.from({ length: 25 }, (_, i) => JSON.stringify({ i })).join('\n'));
    const run = await runSource(fileSource, { path: f }, { checkpoint: { [f]: '20' }, batchSize: 2 });
    expect(values(run)).toEqual([20, 21, 22, 23, 24].map((i) => ({ i })));
    expect(run.scope.commits.at(-1)).toEqual([f, '25']);
  });

  it('holds the checkpoint before a malformed line until the error output handled it', async () => {
    const dir = tempDir();
    const f = join(dir, 'h.ndjson');
    writeFileSync(f, '{"a":1}\n{"a":2}\nbad\n{"a":4}\n');
    const acks: ((e?: Error) => void)[] = [];
    const commits: string[] = [];
    const source = fileSource.create({ path: f } as never, {
      name: 'input',
      pipeline: 't',
      log: (await import('../runtime/helpers.ts')).silent,
      metrics: undefined as never,
      stateDir: dir,
      batchSize: 2,
    });
    await source.run({
      signal: new AbortController().signal,
      checkpoints: {
        load: async () => undefined,
        commit: (_p, pos) => commits.push(pos),
        flush: async () => {},
      },
      emit: async (_records, onAck) => {
        onAck?.();
      },
      fail: async (_input, _reason, onAck) => {
        if (onAck) acks.push(onAck);
      },
    });
    // Lines 1-2 acked; line 4's batch acked too, but the malformed line 3 is still pending.
    expect(commits).toEqual(['2']);
    acks[0]();
    expect(commits).toEqual(['2', '4']);
  });
});

describe('file source on stdin', () => {
  const root = resolve(import.meta.dirname, '../..');
  it('reads `-`, and a second run reads its new input whole (stdin has no checkpoint)', () => {
    const dir = tempDir();
    const spec = join(dir, 'stdin.yaml');
    writeFileSync(
      spec,
      `
version: 1
name: stdin
sources:
  input: { type: file, path: '-' }
sinks:
  print: { type: stdout, from: [input] }
`,
    );
    const run = (input: string) =>
      spawnSync(
        join(root, 'node_modules/.bin/node'),
        ['src/cli.ts', 'run', spec, '--no-tui', '--state-dir', join(dir, 'state')],
        {
          cwd: root,
          input,
          encoding: 'utf8',
          env: { ...process.env, SLUICE_LOG_LEVEL: 'warn' },
        },
      );
    const first = run('{"a":1}\n{"a":2}\n');
    expect(first.status, first.stderr).toBe(0);
    expect(first.stdout).toBe('{"a":1}\n{"a":2}\n');
    const second = run('{"b":1}\n{"b":2}\n{"b":3}\n');
    expect(second.status, second.stderr).toBe(0);
    expect(second.stdout).toBe('{"b":1}\n{"b":2}\n{"b":3}\n');
  }, 30_000);
});
