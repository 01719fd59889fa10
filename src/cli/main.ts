/**
 * The `courier` command: parse flags, load the config (flags > env > file > defaults), start the
 * broker, log one line listing the listeners, and shut down gracefully on SIGINT/SIGTERM.
 *
 * Exit codes: 0 clean stop (or --help/--version/--check-config OK); 1 runtime failure (port in
 * use, ...); 2 bad flags or config; 128+n when a second signal n forces the exit.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { constants as osConstants } from 'node:os';
import type { DestinationStream } from 'pino';
import { ConfigError, ENV_WORKER, loadConfig, type ConfigFlags, type CourierConfig } from '../config/index.js';
import { decodeSpec, workerConfig } from '../workers/spec.js';
import { createLogger, LOG_LEVELS, type CourierLogger } from '../log.js';
import type { BrokerOptions } from '../options.js';
import type { BoundAddress } from '../transport/types.js';
import { CLIENT_TOOLS, runClientTool } from './client-tools.js';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** What the CLI needs of a broker (the library's `Broker` has more). */
export interface CliBroker {
  listen(): Promise<BoundAddress[]>;
  close(): Promise<void>;
  /** Rereads TLS certificate files (on SIGHUP). */
  reloadTls?(): boolean;
  on(event: 'error', listener: (err: Error) => void): unknown;
}

export interface CliIO {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
  env: Record<string, string | undefined>;
  cwd: string;
  /** Where JSON log lines go; default file descriptor 1 (stdout). */
  logDestination: number | DestinationStream;
  createBroker: (options: BrokerOptions) => Promise<CliBroker>;
  /** Subscribes to stop signals; returns an unsubscribe function. Default: SIGINT and SIGTERM on `process`. */
  onSignal: (handler: (signal: NodeJS.Signals) => void) => () => void;
  /** Subscribes to the reload signal (SIGHUP: reread TLS certificates); returns an unsubscribe function. */
  onReloadSignal?: (handler: () => void) => () => void;
  /** Called when a second signal forces the exit. Default: `process.exit`. */
  forceExit: (code: number) => void;
}

const defaultIO = (): CliIO => ({
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  cwd: process.cwd(),
  logDestination: 1,
  // Loaded on demand: --help, --version and --check-config never load the broker.
  createBroker: async (options) => (await import('../index.js')).createBroker(options),
  onSignal: (handler) => {
    process.on('SIGINT', handler);
    process.on('SIGTERM', handler);
    return () => {
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
    };
  },
  onReloadSignal: (handler) => {
    process.on('SIGHUP', handler);
    return () => process.off('SIGHUP', handler);
  },
  forceExit: (code) => process.exit(code),
});

const OPTIONS = {
  host: { type: 'string' },
  port: { type: 'string', short: 'p' },
  'ws-port': { type: 'string' },
  'ws-path': { type: 'string' },
  'data-dir': { type: 'string' },
  config: { type: 'string', short: 'c' },
  'log-level': { type: 'string' },
  'cluster-redis': { type: 'string' },
  'node-name': { type: 'string' },
  'admin-port': { type: 'string' },
  workers: { type: 'string' },
  'workers-balance': { type: 'string' },
  'redis-server': { type: 'string' },
  'check-config': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'v' },
} as const;

export const USAGE = `Usage: courier [options]
       courier passwd FILE USER [--password P] [--delete]
       courier pub|sub|rr|bench [options]   (MQTT client tools; courier pub --help)

Runs the Courier MQTT broker (MQTT 3.1, 3.1.1 and 5.0 over TCP, WebSocket, TLS and WSS; TLS via the config file).
"passwd" adds, changes or deletes a user in a password file (courier passwd --help).
"pub", "sub", "rr" and "bench" publish, subscribe, send a request and measure, with mosquitto_pub/sub/rr's flags.

Options:
  --host HOST            interface to bind (default 127.0.0.1; 0.0.0.0 for all)
  -p, --port N           MQTT over TCP port (default 1883; 0 = any free port; "off" disables)
  --ws-port N            MQTT over WebSocket port (default 8083; 0 = any free port; "off" disables)
  --ws-path PATH         WebSocket path (default /mqtt)
  --data-dir DIR         state directory (default ./data)
  -c, --config FILE      config file, JSON or YAML (default $COURIER_CONFIG, else none)
  --log-level LEVEL      ${LOG_LEVELS.join(', ')} (default info)
  --cluster-redis URL    run as a cluster node on this Redis (redis://host:port; docs/clustering.md)
  --node-name NAME       this node's name in the cluster (default: the host name)
  --admin-port N         admin listener: API, /metrics, dashboard (default 18083 on 127.0.0.1; "off" disables)
  --workers N|auto       run N worker processes sharing the ports as one broker ("auto": one per core;
                         a private redis-server in the data dir unless --cluster-redis is given)
  --workers-balance B    how the workers share a port: "shared" (they accept from the shared socket;
                         the default on Linux) or "rr" (the primary hands connections out in turn)
  --redis-server PATH    the redis-server executable --workers starts (default: found on PATH)
  --check-config FILE    validate FILE (with the environment and flags) and exit
  -h, --help             show this help and exit
  -v, --version          print the version and exit

Precedence: flags > environment (COURIER_*) > config file > defaults.
Every key, variable and flag: docs/configuration.md.
Logs go to stdout: readable lines on a terminal, JSON lines otherwise (COURIER_LOG_FORMAT=json forces JSON).
Exit codes: 0 stopped cleanly, 1 runtime error, 2 bad flags or config.
`;

export function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
  return pkg.version ?? 'unknown';
}

export async function main(argv: string[], overrides: Partial<CliIO> = {}): Promise<number> {
  // Subcommand; `overrides` pass through (with `stdin` too, see PasswdIO in ./passwd.ts).
  if (argv[0] === 'passwd') return (await import('./passwd.js')).passwdMain(argv.slice(1), overrides);
  if (CLIENT_TOOLS.has(argv[0] ?? '')) return runClientTool(argv[0]!, argv.slice(1));
  const io: CliIO = { ...defaultIO(), ...overrides };
  const fail = (message: string, code: number): number => {
    io.stderr.write(`courier: ${message}\n`);
    return code;
  };

  let values: ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>['values'];
  try {
    const parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
    if (parsed.positionals.length > 0) {
      return fail(`unexpected argument "${parsed.positionals[0]}" (try --help)`, EXIT_USAGE);
    }
    values = parsed.values;
  } catch (err) {
    return fail(`${describeArgError(err)} (try --help)`, EXIT_USAGE);
  }

  if (values.help) {
    io.stdout.write(USAGE);
    return EXIT_OK;
  }
  if (values.version) {
    io.stdout.write(`courier ${version()}\n`);
    return EXIT_OK;
  }

  const flags: ConfigFlags = {};
  if (values.host !== undefined) flags.host = values.host;
  if (values.port !== undefined) flags.port = values.port;
  if (values['ws-port'] !== undefined) flags.wsPort = values['ws-port'];
  if (values['ws-path'] !== undefined) flags.wsPath = values['ws-path'];
  if (values['data-dir'] !== undefined) flags.dataDir = values['data-dir'];
  if (values['log-level'] !== undefined) flags.logLevel = values['log-level'];
  if (values['cluster-redis'] !== undefined) flags.clusterRedis = values['cluster-redis'];
  if (values['node-name'] !== undefined) flags.nodeName = values['node-name'];
  if (values['admin-port'] !== undefined) flags.adminPort = values['admin-port'];
  if (values.workers !== undefined) flags.workers = values.workers;
  if (values['workers-balance'] !== undefined) flags.workersBalance = values['workers-balance'];
  if (values['redis-server'] !== undefined) flags.redisServer = values['redis-server'];

  const checkOnly = values['check-config'] !== undefined;
  let config: CourierConfig;
  try {
    const file = values['check-config'] ?? values.config;
    config = await loadConfig({ env: io.env, flags, cwd: io.cwd, ...(file !== undefined ? { file } : {}) });
  } catch (err) {
    if (err instanceof ConfigError) {
      io.stderr.write(err.lines.map((l) => `${l}\n`).join(''));
      return EXIT_USAGE;
    }
    throw err;
  }
  if (checkOnly) {
    for (const w of config.warnings) io.stderr.write(`warning: ${w}\n`);
    io.stdout.write('config OK\n');
    return EXIT_OK;
  }

  const logger = createLogger({ level: config.logLevel, destination: io.logDestination });
  if (config.workers !== undefined) {
    const spec = decodeSpec(io.env[ENV_WORKER]);
    if (spec === undefined) {
      for (const w of config.warnings) logger.warn({ worker: 0 }, w);
      const { runPrimary } = await import('../workers/primary.js');
      return runPrimary(config, logger, { ...io, argv });
    }
    // A worker of a --workers primary: a cluster node under its own name (src/workers/).
    const { leavePrimary, onWorkerStopSignal, reportReady } = await import('../workers/worker.js');
    const code = await run(
      workerConfig(config, spec),
      logger.child({ worker: spec.slot }),
      { ...io, onSignal: onWorkerStopSignal },
      {
        label: `worker ${spec.slot} `,
        listening: reportReady,
      },
    );
    await leavePrimary();
    return code;
  }
  for (const w of config.warnings) logger.warn({}, w);
  return run(config, logger, io);
}

/** How a worker of `--workers` differs in run(): its "listening" line, and whom it tells. */
interface RunHooks {
  label: string;
  listening(listeners: unknown[]): void;
}

async function run(config: CourierConfig, logger: CourierLogger, io: CliIO, hooks?: RunHooks): Promise<number> {
  // Signals are watched from the start, so one arriving while the broker starts still stops it.
  let stopSignal: NodeJS.Signals | undefined;
  let wake: (() => void) | undefined;
  const stopped = new Promise<void>((resolve) => (wake = resolve));
  const unsubscribe = io.onSignal((signal) => {
    if (stopSignal === undefined) {
      stopSignal = signal;
      logger.info({ signal }, 'shutting down');
      wake?.();
      return;
    }
    const code = 128 + (osConstants.signals[signal] ?? 0);
    logger.warn({ signal, exitCode: code }, 'second signal: exiting without waiting for shutdown');
    io.forceExit(code);
  });

  try {
    let broker: CliBroker;
    try {
      // The command serves the admin listener unless it is switched off (admin.port: null); the
      // library starts none unless asked.
      broker = await io.createBroker({ ...config.options, admin: config.options.admin === undefined ? {} : config.options.admin, logger });
    } catch (err) {
      logger.fatal({ err }, 'broker failed to start');
      return failStart(io, `cannot start: ${errorMessage(err)}`);
    }
    broker.on('error', (err) => logger.error({ err }, 'broker error'));

    let addresses: BoundAddress[];
    try {
      addresses = await broker.listen();
    } catch (err) {
      logger.fatal({ err }, 'cannot listen');
      await broker.close().catch(() => {});
      return failStart(io, describeListenError(err));
    }
    const offReload = io.onReloadSignal?.(() => {
      logger.info({ signal: 'SIGHUP' }, 'reloading TLS certificates');
      broker.reloadTls?.();
    });
    const listeners = addresses.map((a, i) => ({ ...a, url: urlOf(a, wsPathOf(config.options, addresses, i)) }));
    logger.info(
      { listeners, dataDir: config.options.dataDir ?? './data', version: version() },
      `${hooks?.label ?? ''}listening on ${listeners.map((l) => l.url).join(', ') || 'no listeners'}`,
    );
    hooks?.listening(listeners);

    if (stopSignal === undefined) await stopped;
    offReload?.();
    const started = Date.now();
    await broker.close();
    logger.info({ signal: stopSignal, shutdownMs: Date.now() - started }, 'stopped');
    return EXIT_OK;
  } finally {
    unsubscribe();
  }
}

function failStart(io: CliIO, message: string): number {
  io.stderr.write(`courier: ${message}\n`);
  return EXIT_FAILURE;
}

function wsPathOf(options: BrokerOptions, addresses: BoundAddress[], index: number): string {
  if (!options.listeners) return options.wsPath ?? '/mqtt';
  // Listeners bind in order; the n-th ws address belongs to the n-th ws listener.
  const nth = addresses.slice(0, index).filter((a) => a.transport === addresses[index]?.transport).length;
  const listener = options.listeners.filter((l) => l.type === addresses[index]?.transport)[nth];
  return listener?.path ?? options.wsPath ?? '/mqtt';
}

function urlOf(a: BoundAddress, wsPath: string): string {
  const host = a.host.includes(':') ? `[${a.host}]` : a.host;
  const scheme = a.transport === 'tcp' ? 'mqtt' : a.transport === 'tls' ? 'mqtts' : a.transport;
  return `${scheme}://${host}:${a.port}${a.transport === 'ws' || a.transport === 'wss' ? wsPath : ''}`;
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function describeListenError(err: unknown): string {
  const e = err as NodeJS.ErrnoException & { address?: string; port?: number };
  const where = e.address !== undefined && e.port !== undefined ? `${e.address}:${e.port}` : 'the configured address';
  switch (e.code) {
    case 'EADDRINUSE':
      return `cannot listen on ${where}: address already in use (is another broker running? try --port)`;
    case 'EACCES':
      return `cannot listen on ${where}: permission denied (ports below 1024 need privileges)`;
    case 'EADDRNOTAVAIL':
      return `cannot listen on ${where}: address not available on this machine (check --host)`;
    default:
      return `cannot listen: ${errorMessage(err)}`;
  }
}

function describeArgError(err: unknown): string {
  const e = err as { code?: string; message?: string };
  const msg = e.message ?? String(err);
  if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    const name = /'([^']+)'/.exec(msg)?.[1];
    return name ? `unknown option ${name}` : msg.split('. ')[0]!;
  }
  if (e.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
    const name = /--[a-z][a-z-]*/.exec(msg)?.[0];
    return name ? `option ${name} needs a value` : msg;
  }
  return msg;
}
