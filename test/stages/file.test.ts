import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { Positions } from '../../src/runtime/checkpoint.ts';
import type { RecordInit } from '../../src/runtime/record.ts';
import { fileSource } from '../../src/stages/sources/file.ts';
import { buildPipeline, collectingSink, stageMetrics, tempDir } from '../runtime/helpers.ts';
import { MemoryScope, runSource } from '../runtime/stage-harness.ts';

const values = (run: { records: { value: unknown }[] }) => run.records.map((r) => r.value);

interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

/** Runs the source to its end with a logger that keeps every line, acking everything at once. */
async function runLogged(
  options: Parameters<typeof fileSource.create>[0],
  checkpoint: Positions = {},
): Promise<{ logs: LogLine[]; records: RecordInit[]; failures: string[]; scope: MemoryScope }> {
  const logs: LogLine[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => logs.push(JSON.parse(line) as LogLine) });
  const dir = tempDir();
  const source = fileSource.create(options, {
    name: 'input',
    pipeline: 'logged',
    log,
    metrics: undefined as never,
    stateDir: dir,
  });
  const scope = new MemoryScope(checkpoint);
  const records: RecordInit[] = [];
  const failures: string[] = [];
  await source.run({
    signal: new AbortController().signal,
    checkpoints: scope,
    emit: async (batch, onAck) => {
      records.push(...batch);
      onAck?.();
    },
    fail: async (_input, reason, onAck) => {
      failures.push(reason);
      onAck?.();
    },
  });
  return { logs, records, failures, scope };
}

const messages = (logs: LogLine[], level?: number) =>
  logs.filter((l) => level === undefined || l.level === level).map((l) => l.msg);

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

  it('reads lines a chunk at a time: CRLF, characters split between chunks, no final newline, resume', async () => {
    const dir = tempDir();
    const f = join(dir, 'big.ndjson');
    // Lines of varied length with a 4-byte character in each, so that chunk boundaries (64 KiB)
    // fall inside characters and inside lines; every third line ends with CRLF, some are blank.
    const lines: string[] = [];
    const lineOf: number[] = []; // the line number of each record
    let text = '';
    let n = 0;
    for (let i = 0; i < 6000; i++) {
      const line = JSON.stringify({ i, s: `𝄞${'x'.repeat(i % 53)}é` });
      lines.push(line);
      lineOf.push(++n);
      if (i % 3 === 0) text += `${line}\r\n`;
      else if (i % 7 === 0) {
        text += `${line}\n \n`; // and a blank line, which counts
        n++;
      } else text += `${line}\n`;
    }
    writeFileSync(f, text.slice(0, -1)); // the last line has no newline
    const run = await runSource(fileSource, { path: f, format: 'ndjson' });
    expect(run.failures).toEqual([]);
    expect(values(run)).toEqual(lines.map((l) => JSON.parse(l)));
    expect(run.records.map((r) => (r.meta as { line: number }).line)).toEqual(lineOf);
    const at = lineOf;
    // Resuming mid-file skips exactly the lines before the checkpoint.
    const resumed = await runLogged({ path: f, format: 'ndjson' }, { [f]: String(at[4000] - 1) });
    expect(resumed.records.map((r) => r.value)).toEqual(lines.slice(4000).map((l) => JSON.parse(l)));
  });

  it('format lines keeps each line as it was, without its line end', async () => {
    const dir = tempDir();
    const f = join(dir, 'a.txt');
    writeFileSync(f, 'one\r\ntwo\n\nthree  \r\nfour');
    const run = await runSource(fileSource, { path: f, format: 'lines' });
    expect(values(run)).toEqual(['one', 'two', '', 'three  ', 'four']);
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

describe('file source: where it resumes', () => {
  it('says once per file whether it starts, resumes or has nothing new, and warns when nothing at all is read', async () => {
    const dir = tempDir();
    const a = join(dir, 'a.ndjson');
    const b = join(dir, 'b.ndjson');
    const c = join(dir, 'c.ndjson');
    writeFileSync(a, '{"n":1}\n{"n":2}\n{"n":3}\n');
    writeFileSync(b, '{"n":1}\n{"n":2}\n');
    writeFileSync(c, '{"n":1}\n');
    const first = await runLogged({ path: `${dir}/*.ndjson` }, { [b]: '1' });
    expect(messages(first.logs)).toEqual([
      `no checkpoint for ${a}: reading it from its first line`,
      `resuming ${b} after line 1`,
      `no checkpoint for ${c}: reading it from its first line`,
    ]);
    expect(first.records).toHaveLength(5);

    // Everything read: each file says it is complete, and the source says why it read nothing.
    const second = await runLogged({ path: `${dir}/*.ndjson` }, first.scope.committed);
    expect(second.records).toEqual([]);
    const info = messages(second.logs, 30);
    expect(info).toEqual(
      [a, b, c].map(
        (f, i) =>
          `file ${f} is complete at line ${[3, 2, 1][i]}: nothing new to read; use another --state-dir or \`sluice state reset <spec>\` to read it again`,
      ),
    );
    const warn = messages(second.logs, 40);
    expect(warn).toHaveLength(1);
    expect(warn[0]).toContain(`every file matching ${dir}/*.ndjson was already read to its end`);
    expect(warn[0]).toContain('sluice state reset <spec> --source input --yes');
    expect(warn[0]).toContain('logged.checkpoint.json');

    // A file that grew resumes after its checkpoint; no warning since something was read.
    writeFileSync(c, '{"n":1}\n{"n":2}\n');
    const third = await runLogged({ path: `${dir}/*.ndjson` }, first.scope.committed);
    expect(values(third)).toEqual([{ n: 2 }]);
    expect(messages(third.logs)).toContain(`resuming ${c} after line 1`);
    expect(messages(third.logs, 40)).toEqual([]);
  });

  it('warns when a file has fewer lines than its checkpoint (replaced or truncated)', async () => {
    const dir = tempDir();
    const f = join(dir, 'short.ndjson');
    writeFileSync(f, '{"n":1}\n');
    const run = await runLogged({ path: f }, { [f]: '10' });
    expect(run.records).toEqual([]);
    expect(messages(run.logs, 40)[0]).toBe(
      `file ${f} has 1 lines, fewer than its checkpoint (line 10): it was truncated or replaced, so nothing is read from it; \`sluice state reset <spec>\` reads it again from the start`,
    );
  });

  it('counts items for JSON arrays', async () => {
    const dir = tempDir();
    const f = join(dir, 'arr.json');
    writeFileSync(f, '[{"n":1},{"n":2}]');
    const run = await runLogged({ path: f, format: 'json' }, { [f]: '2' });
    expect(messages(run.logs, 30)[0]).toMatch(`file ${f} is complete at item 2`);
  });
});

describe('file source: input limits', () => {
  const deep = (levels: number) => `${'{"a":'.repeat(levels)}1${'}'.repeat(levels)}`;

  it('routes lines nested past max_depth or larger than max_record_bytes to the error output, and reads on', async () => {
    const dir = tempDir();
    const f = join(dir, 'limits.ndjson');
    const big = JSON.stringify({ pad: 'x'.repeat(10_000) });
    writeFileSync(f, [deep(3), deep(64), deep(65), deep(1000), big, '{"ok":true}'].join('\n'));
    const run = await runSource(fileSource, { path: f, max_record_bytes: 8192 });
    expect(run.records.map((r) => r.meta?.line)).toEqual([1, 2, 6]);
    expect(run.failures.map((x) => x.reason)).toEqual([
      `${f}:3: value nested deeper than 64 levels`,
      `${f}:4: value nested deeper than 64 levels`,
      `${f}:5: record of 10010 bytes is larger than max_record_bytes (8192)`,
    ]);
    // The error output gets the text (an excerpt when too large), which always encodes.
    expect(run.failures[2].input.value).toHaveLength(1025);
    for (const x of run.failures) expect(() => JSON.stringify(x.input.value)).not.toThrow();
    // The refused lines do not hold the checkpoint back once handled.
    expect(run.scope.committed[f]).toBe('6');
  });

  it('honours a smaller max_depth, for csv sizes and for JSON array items', async () => {
    const dir = tempDir();
    const f = join(dir, 'd.ndjson');
    writeFileSync(f, '{"a":{"b":1}}\n{"a":{"b":{"c":1}}}\n');
    const run = await runSource(fileSource, { path: f, max_depth: 2 });
    expect(run.records).toHaveLength(1);
    expect(run.failures[0].reason).toBe(`${f}:2: value nested deeper than 2 levels`);

    const arr = join(dir, 'd.json');
    writeFileSync(arr, '[{"a":{"b":1}},{"a":{"b":{"c":1}}}]');
    const items = await runSource(fileSource, { path: arr, format: 'json', max_depth: 2 });
    expect(values(items)).toEqual([{ a: { b: 1 } }]);
    expect(items.failures[0].reason).toBe(`${arr}:2: value nested deeper than 2 levels`);

    const csv = join(dir, 'd.csv');
    writeFileSync(csv, `a,b\n1,2\n3,${'y'.repeat(100)}\n5,6\n`);
    const rows = await runSource(fileSource, { path: csv, format: 'csv', max_record_bytes: 50 });
    expect(values(rows)).toEqual([
      { a: '1', b: '2' },
      { a: '5', b: '6' },
    ]);
    expect(rows.failures[0].reason).toMatch(
      `${csv}:3: record of 103 bytes is larger than max_record_bytes (50)`,
    );
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
