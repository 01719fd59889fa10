/**
 * The generated part of docs/configuration.md: every config key with its type, default,
 * environment variable and description, and every flag. A test keeps the doc equal to this.
 */
import { defaultLimits, defaultMqttOptions, defaultPersistence, defaultSessionLimits } from '../options.js';
import { DEFAULT_LOG_LEVEL } from '../log.js';
import { defaultClusterOptions } from '../cluster/options.js';
import { configKeys, type ConfigKey } from './keys.js';
import { MAX_WORKERS } from './schema.js';
import { FLAG_KEYS, pathToEnvName } from './load.js';
import { DEFAULT_ADMIN_PORT } from '../admin/defaults.js';

/** Defaults of the top-level keys (documented in BrokerOptions; applied by the broker). */
const TOP_LEVEL_DEFAULTS: Record<string, unknown> = {
  host: '127.0.0.1',
  port: 1883,
  wsPort: 8083,
  wsPath: '/mqtt',
  tlsPort: 8883,
  wssPort: 8084,
  dataDir: './data',
  listeners: undefined,
  'log.level': DEFAULT_LOG_LEVEL,
  // The `courier` command's admin listener (the library starts none unless `admin` is given).
  'admin.host': '127.0.0.1',
  'admin.port': DEFAULT_ADMIN_PORT,
  'admin.allowInsecure': false,
  'sys.interval': 10,
  'sys.events': false,
};

export function defaultOf(path: readonly string[]): unknown {
  const [section, name] = path;
  if (section === 'mqtt' && name) return defaultMqttOptions[name as keyof typeof defaultMqttOptions];
  if (section === 'sessions' && name) return defaultSessionLimits[name as keyof typeof defaultSessionLimits];
  if (section === 'persistence' && name) return defaultPersistence[name as keyof typeof defaultPersistence];
  if (section === 'limits' && name) return defaultLimits[name as keyof typeof defaultLimits];
  if (section === 'cluster' && name) return (defaultClusterOptions as Record<string, unknown>)[name];
  return TOP_LEVEL_DEFAULTS[path.join('.')];
}

function typeOf(k: ConfigKey): string {
  if (k.path[0] === 'listeners') return 'list of `{type, host?, port, path?, tls?, maxConnections?}`';
  if (k.path[0] === 'workers') return `integer 1–${MAX_WORKERS} \\| \`"auto"\``;
  if (k.path[0] === 'bridges') return 'list of bridges (docs/bridges.md)';
  const base = k.enum
    ? k.enum.map((v) => `\`${JSON.stringify(v)}\``).join(' \\| ')
    : k.kinds
        .filter((t) => t !== 'null')
        .map((t) => {
          if (t !== 'integer') return t;
          if (k.minimum !== undefined && k.maximum !== undefined && k.maximum < Number.MAX_SAFE_INTEGER) return `integer ${k.minimum}–${k.maximum}`;
          if (k.minimum !== undefined) return `integer ≥ ${k.minimum}`;
          return t;
        })
        .join(' \\| ');
  return k.kinds.includes('null') ? `${base} \\| \`null\`` : base;
}

function cell(value: unknown): string {
  return value === undefined ? '—' : `\`${JSON.stringify(value)}\``;
}

export function renderReference(): string {
  const rows = configKeys().map((k) => {
    const key = `\`${k.path.join('.')}\``;
    return `| ${key} | ${typeOf(k)} | ${cell(defaultOf(k.path))} | \`${pathToEnvName(k.path)}\` | ${k.description} |`;
  });
  const flags = Object.values(FLAG_KEYS).map((f) => `| \`${f.flag}\` | \`${f.path.join('.')}\` | \`${pathToEnvName(f.path)}\` |`);
  return [
    '### Keys',
    '',
    '| key | type | default | environment variable | description |',
    '|---|---|---|---|---|',
    ...rows,
    '',
    '### Flags that set keys',
    '',
    '| flag | key | environment variable |',
    '|---|---|---|',
    ...flags,
    '',
  ].join('\n');
}
