// Writes the compiled validators of the built-in schemas: npm run validators
// (schemas/pipeline.validators.cjs and schemas/test.validators.cjs; see src/spec/validators.ts).
import { writeFileSync } from 'node:fs';
import { standaloneModule } from '../src/spec/standalone.ts';
import type { ValidatorSet } from '../src/spec/validators.ts';

for (const set of ['pipeline', 'test'] as const satisfies ValidatorSet[]) {
  const file = new URL(`../schemas/${set}.validators.cjs`, import.meta.url);
  writeFileSync(file, standaloneModule(set));
  process.stdout.write(`wrote schemas/${set}.validators.cjs\n`);
}
