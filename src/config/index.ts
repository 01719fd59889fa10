/** Config: file (JSON/YAML) + environment + flags → validated `BrokerOptions`. */
export {
  loadConfig,
  parseConfig,
  parseConfigText,
  readConfigFile,
  configFromEnv,
  envNameToPath,
  pathToEnvName,
  FLAG_KEYS,
  ENV_PREFIX,
  ENV_CONFIG_FILE,
  ENV_WORKER,
  type WorkersConfig,
  type CourierConfig,
  type ConfigFlags,
  type LoadConfigInput,
} from './load.js';
export { ConfigError, formatIssue, formatPath, type ConfigIssue } from './errors.js';
export { configSchema, MAX_PACKET_SIZE_LIMIT, type ConfigFile } from './schema.js';
export { configKeys, type ConfigKey } from './keys.js';
