/**
 * Loading the config: one file (JSON or YAML), then the environment, then command-line flags, each
 * layer overriding the one before (flags > env > file > defaults). The merged document is
 * validated once; every error names the key path, the reason, the value and the layer it came from.
 */
import { readFile } from 'node:fs/promises';
import { extname, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import type { BrokerOptions } from '../options.js';
import { DEFAULT_LOG_LEVEL, type LogLevel } from '../log.js';
import type { ClusterOptions } from '../cluster/options.js';
import { configSchema, type ConfigFile } from './schema.js';
import { ConfigError, suggest, type ConfigIssue } from './errors.js';
import { coerceString, findKey, keysUnder } from './keys.js';

export interface CourierConfig {
  /** Ready for `createBroker` (add a `logger` and a `store` as needed). */
  options: BrokerOptions;
  logLevel: LogLevel;
  /** The config file that was read, if any (absolute path). */
  file?: string;
  /** Things that are not errors but deserve a log line (e.g. an unknown COURIER_* variable). */
  warnings: string[];
  /** Set when the config asks for worker processes (`workers`); see src/workers/. */
  workers?: WorkersConfig;
}

/** The `workers` setting and what the primary needs with it. */
export interface WorkersConfig {
  /** A number of processes, or 'auto' (one per core). */
  count: number | 'auto';
  /** `redisServer`: the executable of the private Redis (default: found on PATH). */
  redisServer?: string;
  /** `workersBalance`: how the workers share a listening port (unset: the platform's default, src/workers/balance.ts). */
  balance?: 'shared' | 'rr';
  /** The `cluster` section without `redis`, for the workers' nodes when the primary runs a private Redis. */
  cluster: Partial<Omit<ClusterOptions, 'redis'>>;
}

/** Values given on the command line, as strings, keyed by what they set. */
export interface ConfigFlags {
  host?: string;
  port?: string;
  wsPort?: string;
  wsPath?: string;
  dataDir?: string;
  logLevel?: string;
  clusterRedis?: string;
  nodeName?: string;
  adminPort?: string;
  workers?: string;
  workersBalance?: string;
  redisServer?: string;
}

/** Flag → config key. The CLI's flags and the docs are built from this table. */
export const FLAG_KEYS: Record<keyof ConfigFlags, { flag: string; path: string[] }> = {
  host: { flag: '--host', path: ['host'] },
  port: { flag: '--port', path: ['port'] },
  wsPort: { flag: '--ws-port', path: ['wsPort'] },
  wsPath: { flag: '--ws-path', path: ['wsPath'] },
  dataDir: { flag: '--data-dir', path: ['dataDir'] },
  logLevel: { flag: '--log-level', path: ['log', 'level'] },
  clusterRedis: { flag: '--cluster-redis', path: ['cluster', 'redis'] },
  nodeName: { flag: '--node-name', path: ['cluster', 'nodeName'] },
  adminPort: { flag: '--admin-port', path: ['admin', 'port'] },
  workers: { flag: '--workers', path: ['workers'] },
  workersBalance: { flag: '--workers-balance', path: ['workersBalance'] },
  redisServer: { flag: '--redis-server', path: ['redisServer'] },
};

export const ENV_PREFIX = 'COURIER_';
/** Set by a `--workers` primary in each worker's environment (src/workers/worker.ts). */
export const ENV_WORKER = 'COURIER_WORKER';
/** The config file can be named in the environment too (a `--config` flag wins). */
export const ENV_CONFIG_FILE = 'COURIER_CONFIG';
/** Variables with the prefix that are not config keys and must not warn. */
const ENV_RESERVED = new Set([ENV_CONFIG_FILE, 'COURIER_REQUIRE_PEERS', 'COURIER_LOG_FORMAT', ENV_WORKER]);
/** Short names kept for convenience where the generic mapping would need a double underscore. */
const ENV_ALIASES: Record<string, string[]> = { COURIER_LOG_LEVEL: ['log', 'level'] };

export interface LoadConfigInput {
  /** Config file path (JSON if it ends in .json, YAML otherwise). Default: $COURIER_CONFIG, else none. */
  file?: string;
  /** Default `process.env`; pass `{}` to ignore the environment. */
  env?: Record<string, string | undefined>;
  flags?: ConfigFlags;
  /** Base for a relative `file`; default `process.cwd()`. */
  cwd?: string;
}

/** Layer origins: dotted key path → where that value came from. */
type Origins = Map<string, string>;

interface Layer {
  data: Record<string, unknown>;
  origins: Origins;
}

export async function loadConfig(input: LoadConfigInput = {}): Promise<CourierConfig> {
  const env = input.env ?? process.env;
  const fileName = input.file ?? (env[ENV_CONFIG_FILE] || undefined);
  const layers: Layer[] = [];
  let file: string | undefined;
  let fileLabel: string | undefined;
  if (fileName !== undefined) {
    file = resolve(input.cwd ?? process.cwd(), fileName);
    fileLabel = fileName;
    layers.push({ data: await readConfigFile(file, fileName), origins: new Map() });
  }
  const fromEnv = configFromEnv(env);
  layers.push(fromEnv);
  layers.push(configFromFlags(input.flags ?? {}));

  const merged: Record<string, unknown> = {};
  const origins: Origins = new Map();
  for (const layer of layers) {
    mergeInto(merged, layer.data);
    for (const [k, v] of layer.origins) origins.set(k, v);
    // A later layer that sets a whole section overrides origins recorded below it.
    for (const k of [...origins.keys()]) {
      if (!layer.origins.has(k) && [...layer.origins.keys()].some((lk) => k.startsWith(`${lk}.`))) origins.delete(k);
    }
  }
  const config = validate(merged, (path) => originOf(origins, path) ?? fileLabel);
  config.warnings.unshift(...fromEnv.warnings);
  if (file !== undefined) config.file = file;
  return config;
}

/**
 * Validates one config document (already parsed from JSON/YAML, or built in code). `source`
 * names it in error messages. Throws `ConfigError`.
 */
export function parseConfig(object: unknown, source?: string): CourierConfig {
  return validate(object, () => source);
}

export async function readConfigFile(file: string, label = file): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : String(err);
    throw new ConfigError([{ path: [], reason: `cannot read config file ${label}: ${why}`, hasValue: false }]);
  }
  return parseConfigText(text, label, extname(file).toLowerCase() === '.json' ? 'json' : 'yaml');
}

/** Parses config text; an empty document is an empty config. */
export function parseConfigText(text: string, label: string, format: 'json' | 'yaml'): Record<string, unknown> {
  let data: unknown;
  if (format === 'json') {
    try {
      data = JSON.parse(text);
    } catch (err) {
      throw new ConfigError([{ path: [], reason: `${label} is not valid JSON: ${(err as Error).message}`, hasValue: false }]);
    }
  } else {
    const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
    const first = doc.errors[0];
    if (first) {
      const pos = first.linePos?.[0];
      const at = pos ? ` at line ${pos.line}, column ${pos.col}` : '';
      const what = first.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
      throw new ConfigError([{ path: [], reason: `${label} is not valid YAML${at}: ${what}`, hasValue: false }]);
    }
    data = doc.toJS();
  }
  if (data === null || data === undefined) return {};
  if (typeof data !== 'object' || Array.isArray(data)) {
    throw new ConfigError([{ path: [], reason: `${label} must hold a mapping of keys to values`, value: data, hasValue: true }]);
  }
  return data as Record<string, unknown>;
}

/**
 * `COURIER_WS_PORT` → `wsPort`; `COURIER_MQTT__MAX_PACKET_SIZE` → `mqtt.maxPacketSize`. Segments
 * match known keys ignoring case and underscores (`MAXIMUM_QOS` and `MAXIMUMQOS` → `maximumQoS`);
 * an unknown segment is camel-cased, for the schema to reject by name.
 */
export function envNameToPath(name: string): string[] {
  const path: string[] = [];
  for (const part of name.slice(ENV_PREFIX.length).split('__')) {
    const flat = part.replace(/_/g, '').toLowerCase();
    const known = keysUnder(path).find((k) => k.toLowerCase() === flat);
    path.push(known ?? part.toLowerCase().replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase()));
  }
  return path;
}

/** `['mqtt', 'maxPacketSize']` → `COURIER_MQTT__MAX_PACKET_SIZE`. */
export function pathToEnvName(path: readonly string[]): string {
  const alias = Object.entries(ENV_ALIASES).find(([, p]) => p.join('.') === path.join('.'));
  if (alias) return alias[0];
  const words = (seg: string) =>
    seg
      .replace(/QoS/g, 'Qos')
      .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
      .toUpperCase();
  return ENV_PREFIX + path.map(words).join('__');
}

export function configFromEnv(env: Record<string, string | undefined>): Layer & { warnings: string[] } {
  const data: Record<string, unknown> = {};
  const origins: Origins = new Map();
  const warnings: string[] = [];
  const topLevel = keysUnder([]);
  for (const name of Object.keys(env).sort()) {
    const raw = env[name];
    if (!name.startsWith(ENV_PREFIX) || ENV_RESERVED.has(name) || raw === undefined || raw === '') continue;
    const path = ENV_ALIASES[name] ?? envNameToPath(name);
    if (!topLevel.includes(path[0]!)) {
      const hint = suggest(path[0]!, topLevel);
      warnings.push(`ignoring environment variable ${name}: no config key "${path[0]}"` + (hint ? ` (did you mean ${pathToEnvName([hint])}?)` : ''));
      continue;
    }
    setPath(data, path, coerceString(findKey(path), raw));
    origins.set(path.join('.'), name);
  }
  return { data, origins, warnings };
}

export function configFromFlags(flags: ConfigFlags): Layer {
  const data: Record<string, unknown> = {};
  const origins: Origins = new Map();
  for (const [name, spec] of Object.entries(FLAG_KEYS) as [keyof ConfigFlags, (typeof FLAG_KEYS)[keyof ConfigFlags]][]) {
    const raw = flags[name];
    if (raw === undefined) continue;
    setPath(data, spec.path, coerceString(findKey(spec.path), raw));
    origins.set(spec.path.join('.'), spec.flag);
  }
  return { data, origins };
}

function validate(input: unknown, sourceOf: (path: (string | number)[]) => string | undefined): CourierConfig {
  const result = configSchema.safeParse(input);
  if (!result.success) {
    throw new ConfigError(result.error.issues.flatMap((issue) => toIssues(issue, input, sourceOf)));
  }
  return toCourierConfig(result.data);
}

function toIssues(issue: z.core.$ZodIssue, input: unknown, sourceOf: (path: (string | number)[]) => string | undefined): ConfigIssue[] {
  const path = issue.path.filter((p): p is string | number => typeof p !== 'symbol');
  const withSource = (i: ConfigIssue): ConfigIssue => {
    const source = sourceOf(i.path);
    return source === undefined ? i : { ...i, source };
  };
  if (issue.code === 'unrecognized_keys') {
    const known = keysUnder(path.filter((p): p is string => typeof p === 'string'));
    return issue.keys.map((key) => {
      const hint = path.includes('listeners') ? suggest(key, ['type', 'host', 'port', 'path']) : suggest(key, known);
      return withSource({
        path: [...path, key],
        reason: `unknown key${hint ? ` (did you mean "${hint}"?)` : ''}`,
        hasValue: false,
      });
    });
  }
  const value = valueAt(input, path);
  if (value === undefined && issue.code === 'invalid_type') {
    return [withSource({ path, reason: `is missing; it ${issue.message}`, hasValue: false })];
  }
  return [withSource({ path, reason: issue.message, value, hasValue: true })];
}

function toCourierConfig(c: ConfigFile): CourierConfig {
  const options: BrokerOptions = {};
  if (c.host !== undefined) options.host = c.host;
  if (c.port !== undefined) options.port = c.port;
  if (c.wsPort !== undefined) options.wsPort = c.wsPort;
  if (c.wsPath !== undefined) options.wsPath = c.wsPath;
  if (c.tls !== undefined) options.tls = { ...c.tls };
  if (c.tlsPort !== undefined) options.tlsPort = c.tlsPort;
  if (c.wssPort !== undefined) options.wssPort = c.wssPort;
  if (c.dataDir !== undefined) options.dataDir = c.dataDir;
  if (c.listeners !== undefined) options.listeners = c.listeners.map((l) => ({ ...l, ...(l.tls === undefined ? {} : { tls: { ...l.tls } }) }));
  if (c.mqtt !== undefined) options.mqtt = { ...c.mqtt };
  if (c.sessions !== undefined) options.sessions = { ...c.sessions };
  if (c.persistence !== undefined) options.persistence = { ...c.persistence };
  if (c.security !== undefined) options.security = { ...c.security };
  if (c.limits !== undefined) options.limits = { ...c.limits };
  if (c.sys !== undefined) options.sys = { ...c.sys };
  if (c.admin !== undefined) {
    const { port, ...rest } = c.admin;
    if (port === null) options.admin = null;
    else {
      options.admin = { ...rest };
      if (port !== undefined) options.admin.port = port;
      if (rest.tls !== undefined) options.admin.tls = { ...rest.tls };
      if (rest.allowedHosts !== undefined) options.admin.allowedHosts = [...rest.allowedHosts];
    }
  }
  if (c.bridges !== undefined) options.bridges = structuredClone(c.bridges);
  if (c.cluster !== undefined) {
    const { redis, ...rest } = c.cluster;
    if (redis !== undefined) options.cluster = { redis, ...rest };
  }
  const config: CourierConfig = { options, logLevel: c.log?.level ?? DEFAULT_LOG_LEVEL, warnings: [] };
  if (c.workers !== undefined) {
    const { redis: _redis, ...cluster } = c.cluster ?? {};
    config.workers = {
      count: c.workers,
      cluster,
      ...(c.redisServer === undefined ? {} : { redisServer: c.redisServer }),
      ...(c.workersBalance === undefined ? {} : { balance: c.workersBalance }),
    };
  }
  return config;
}

function originOf(origins: Origins, path: readonly (string | number)[]): string | undefined {
  const segs = path.map(String);
  for (let n = segs.length; n > 0; n--) {
    const hit = origins.get(segs.slice(0, n).join('.'));
    if (hit !== undefined) return hit;
  }
  return undefined;
}

function valueAt(input: unknown, path: readonly (string | number)[]): unknown {
  let cur = input;
  for (const seg of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string | number, unknown>)[seg];
  }
  return cur;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function setPath(target: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let cur = target;
  for (const seg of path.slice(0, -1)) {
    const next = cur[seg];
    if (!isPlainObject(next)) cur[seg] = {};
    cur = cur[seg] as Record<string, unknown>;
  }
  cur[path[path.length - 1]!] = value;
}

/** Deep merge of plain objects; arrays and scalars from `source` replace what was there. */
function mergeInto(target: Record<string, unknown>, source: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(source)) {
    const existing = target[key];
    if (isPlainObject(value) && isPlainObject(existing)) mergeInto(existing, value);
    else target[key] = isPlainObject(value) ? structuredClone(value) : value;
  }
}
