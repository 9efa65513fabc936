/**
 * Packages loaded on first use instead of when the module that uses them is imported. Every
 * stage module is imported by the registry, so a client imported at the top of a stage file is
 * paid by every command (`sluice validate` loaded the AWS SDK, mysql2 and pg for a spec that
 * uses none of them). A stage keeps its client behind `lazy(...)` and reaches it in `create()`
 * or later; types still come from `import type`.
 *
 * Synchronous on purpose: `create()` is synchronous in the stage contract, and a client built
 * there keeps throwing its configuration errors exactly where it did before.
 */
import { createRequire } from 'node:module';

const load = createRequire(import.meta.url);

/** A function returning the package's exports, loading it the first time it is called. */
export function lazy<T>(specifier: string): () => T {
  let loaded: T | undefined;
  return () => {
    loaded ??= load(specifier) as T;
    return loaded;
  };
}
