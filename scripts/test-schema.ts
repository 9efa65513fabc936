// Prints the JSON Schema of pipeline test files: npm run schema:test > schemas/test.schema.json
import { testJsonSchema } from '../src/testing/schema.ts';

process.stdout.write(`${JSON.stringify(testJsonSchema(), null, 2)}\n`);
