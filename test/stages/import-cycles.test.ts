/**
 * No import cycles in src/: the stage contract (stages/define.ts) is imported by the runtime
 * and by every stage, so it may import only leaf modules. Type-only imports count too: a cycle
 * of types still ties two layers together. Imports are read with TypeScript's own pre-processor,
 * so the check needs nothing besides the compiler the project already has.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const src = resolve(import.meta.dirname, '..', '..', 'src');

/**
 * Cycles inside one stage's own folder that predate this check: a stage module and its helpers
 * importing each other's option types. Each is a known debt; no other cycle may appear.
 */
const KNOWN: readonly (readonly string[])[] = [
  ['stages/sinks/mysql/connection.ts', 'stages/sinks/mysql/index.ts', 'stages/sinks/mysql/sink.ts'],
  ['stages/sinks/postgres/index.ts', 'stages/sinks/postgres/sink.ts'],
  ['stages/sources/kinesis.ts', 'stages/sources/kinesis/reader.ts'],
];

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(path);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [path] : [];
  });
}

/** Each file's relative imports within src/ (static, type-only, re-exports and dynamic ones). */
function importGraph(files: readonly string[]): Map<string, string[]> {
  const known = new Set(files);
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const { importedFiles } = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
    const targets = importedFiles
      .map((i) => i.fileName)
      .filter((s) => s.startsWith('.'))
      .map((s) => resolve(dirname(file), s))
      .filter((p) => known.has(p));
    graph.set(file, [...new Set(targets)]);
  }
  return graph;
}

/** Groups of files that import each other, directly or around a loop (Tarjan's components). */
function cycles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const groups: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v) ?? 0, low.get(w) ?? 0));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v) ?? 0, index.get(w) ?? 0));
    }
    if (low.get(v) !== index.get(v)) return;
    const group: string[] = [];
    let w: string | undefined;
    do {
      w = stack.pop();
      if (w === undefined) break;
      onStack.delete(w);
      group.push(w);
    } while (w !== v);
    const selfImport = group.length === 1 && (graph.get(v) ?? []).includes(v);
    if (group.length > 1 || selfImport) groups.push(group.map((f) => relative(src, f)).sort());
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return groups;
}

describe('imports in src/', () => {
  const graph = importGraph(sourceFiles(src));
  const found = cycles(graph);

  it('form no cycle besides the known ones inside a stage folder', () => {
    const known = new Set(KNOWN.map((g) => g.join(' ')));
    const fresh = found.filter((g) => !known.has(g.join(' ')));
    expect(fresh, `import cycles: ${fresh.map((g) => g.join(' ⇄ ')).join('; ')}`).toEqual([]);
  });

  it('leave the stage contract and the runtime out of every cycle', () => {
    const involved = found.flat().filter((f) => f === 'stages/define.ts' || f.startsWith('runtime/'));
    expect(involved).toEqual([]);
  });

  it('give the contract only leaf modules to import: none of them imports the contract back', () => {
    const define = join(src, 'stages', 'define.ts');
    const reaches = (from: string, seen = new Set<string>()): boolean => {
      if (from === define) return true;
      if (seen.has(from)) return false;
      seen.add(from);
      return (graph.get(from) ?? []).some((to) => reaches(to, seen));
    };
    for (const dep of graph.get(define) ?? []) expect(reaches(dep), relative(src, dep)).toBe(false);
    // The runtime does import the contract, which is the direction the layers go.
    expect(graph.get(join(src, 'runtime', 'engine.ts'))).toContain(define);
  });

  it('finds a cycle when there is one (the check itself works)', () => {
    const a = join(src, 'a.ts');
    const b = join(src, 'b.ts');
    expect(
      cycles(
        new Map([
          [a, [b]],
          [b, [a]],
        ]),
      ),
    ).toEqual([['a.ts', 'b.ts']]);
  });
});
