/**
 * A CommonJS dependency required on its first use instead of when Courier is imported
 * (ARCHITECTURE.md, "Optional dependencies load on first use"):
 *
 *   const prom = lazyRequire<typeof import('prom-client')>('prom-client');
 *   new (prom().Registry)();   // prom-client is required here, once
 *
 * A module that needs only the dependency's types imports them with `import type`.
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

export function lazyRequire<T>(specifier: string): () => T {
  let loaded: T | undefined;
  return () => (loaded ??= require(specifier) as T);
}
