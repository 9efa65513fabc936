// Writes the stage reference, docs/stages/*.md, from the built-in stage definitions: npm run docs
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderDocsTree } from '../src/cli/docs.ts';
import { definitions } from '../src/stages/registry.ts';

const dir = join(import.meta.dirname, '..', 'docs', 'stages');
const files = renderDocsTree(definitions);
mkdirSync(dir, { recursive: true });
// A page of a stage type that no longer exists must not linger.
for (const name of readdirSync(dir)) if (name.endsWith('.md') && !files.has(name)) rmSync(join(dir, name));
for (const [name, text] of files) writeFileSync(join(dir, name), text);
process.stdout.write(`${files.size} files written to docs/stages/\n`);
