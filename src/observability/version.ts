/** Courier's version, from the package's package.json (two levels above src/observability and dist/observability). */
import { readFileSync } from 'node:fs';

let cached: string | undefined;

export function courierVersion(): string {
  if (cached === undefined) {
    try {
      const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
      cached = pkg.version ?? 'unknown';
    } catch {
      cached = 'unknown';
    }
  }
  return cached;
}
