/**
 * The list of config keys, derived from the zod schema (through its JSON Schema), so that the
 * environment mapping, the flag table and docs/configuration.md cannot drift from the schema.
 */
import { z } from 'zod';
import { configSchema } from './schema.js';

export type ValueKind = 'integer' | 'number' | 'boolean' | 'string' | 'null' | 'array' | 'object';

export interface ConfigKey {
  /** e.g. ['mqtt', 'maxPacketSize']. */
  path: string[];
  kinds: ValueKind[];
  description: string;
  enum?: readonly unknown[];
  minimum?: number;
  maximum?: number;
}

interface JsonSchemaNode {
  type?: string;
  anyOf?: JsonSchemaNode[];
  properties?: Record<string, JsonSchemaNode>;
  enum?: unknown[];
  const?: unknown;
  minimum?: number;
  maximum?: number;
  description?: string;
}

let cache: ConfigKey[] | undefined;

/** Every leaf key (objects are descended into; arrays such as `listeners` are leaves). */
export function configKeys(): ConfigKey[] {
  if (cache) return cache;
  const root = z.toJSONSchema(configSchema, { unrepresentable: 'any' }) as JsonSchemaNode;
  const out: ConfigKey[] = [];
  const walk = (node: JsonSchemaNode, path: string[]) => {
    for (const [name, child] of Object.entries(node.properties ?? {})) {
      const p = [...path, name];
      if (child.type === 'object' && child.properties) {
        walk(child, p);
        continue;
      }
      const variants = child.anyOf ?? [child];
      const kinds = new Set<ValueKind>();
      let info: JsonSchemaNode = child;
      for (const v of variants) {
        if (v.type) kinds.add(v.type as ValueKind);
        if (v.type !== 'null') info = { ...v, description: child.description ?? v.description };
      }
      const key: ConfigKey = { path: p, kinds: [...kinds], description: child.description ?? '' };
      const values = info.enum ?? (info.const !== undefined ? [info.const] : undefined);
      if (values) key.enum = values;
      if (info.minimum !== undefined) key.minimum = info.minimum;
      if (info.maximum !== undefined) key.maximum = info.maximum;
      out.push(key);
    }
  };
  walk(root, []);
  cache = out;
  return out;
}

/** Names of the object keys (sections) at a path: `[]` → top-level keys, `['mqtt']` → mqtt's keys. */
export function keysUnder(path: readonly string[]): string[] {
  const names = new Set<string>();
  for (const k of configKeys()) {
    if (k.path.length > path.length && path.every((seg, i) => k.path[i] === seg)) names.add(k.path[path.length]!);
  }
  return [...names];
}

export function findKey(path: readonly string[]): ConfigKey | undefined {
  return configKeys().find((k) => k.path.length === path.length && k.path.every((seg, i) => seg === path[i]));
}

/**
 * Turns a string from the environment or the command line into the type the key expects, so
 * `COURIER_PORT=1884` is the number 1884. A string that does not convert is left as it is, for
 * the schema to reject with a message naming the key.
 */
export function coerceString(key: ConfigKey | undefined, raw: string): unknown {
  if (!key) return raw;
  const text = raw.trim();
  const kinds = key.kinds;
  if (kinds.includes('null') && /^(null|none|off|disabled?)$/i.test(text)) return null;
  if ((kinds.includes('integer') || kinds.includes('number')) && /^-?\d+(\.\d+)?$/.test(text)) return Number(text);
  if (kinds.includes('boolean')) {
    if (/^(true|yes|on|1)$/i.test(text)) return true;
    if (/^(false|no|off|0)$/i.test(text)) return false;
  }
  if (kinds.includes('array') || kinds.includes('object')) {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      return raw;
    }
  }
  return raw;
}
