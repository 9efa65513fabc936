/** `sluice graph`: the wiring as Mermaid or Graphviz dot. Names and types only: no option values. */
import type { PipelineSpec } from '../spec/validate.ts';

export function toMermaid(spec: PipelineSpec): string {
  const id = (n: string) => n.replace(/[^A-Za-z0-9_]/g, '_');
  const shape = { source: ['([', '])'], transform: ['[', ']'], sink: ['[(', ')]'] } as const;
  const lines = ['flowchart LR'];
  for (const s of spec.stages) {
    const [a, b] = shape[s.kind];
    lines.push(`  ${id(s.name)}${a}"${s.name}<br/>${s.kind} ${s.type}"${b}`);
  }
  for (const s of spec.stages) {
    for (const from of s.from) {
      const [src, port] = from.split('.');
      lines.push(port ? `  ${id(src)} -. errors .-> ${id(s.name)}` : `  ${id(src)} --> ${id(s.name)}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

export function toDot(spec: PipelineSpec): string {
  const q = (s: string) => JSON.stringify(s);
  const shape = { source: 'ellipse', transform: 'box', sink: 'cylinder' } as const;
  const lines = [`digraph ${q(spec.name)} {`, '  rankdir=LR;'];
  for (const s of spec.stages)
    lines.push(`  ${q(s.name)} [shape=${shape[s.kind]}, label=${q(`${s.name}\n${s.kind} ${s.type}`)}];`);
  for (const s of spec.stages) {
    for (const from of s.from) {
      const [src, port] = from.split('.');
      lines.push(
        port ? `  ${q(src)} -> ${q(s.name)} [style=dashed, label="errors"];` : `  ${q(src)} -> ${q(s.name)};`,
      );
    }
  }
  lines.push('}');
  return `${lines.join('\n')}\n`;
}
