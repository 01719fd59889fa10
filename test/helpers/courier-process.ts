/**
 * A `courier` process for multi-process tests (cluster nodes, crash tests): the real CLI on
 * 127.0.0.1 with its JSON log lines parsed, waits on log lines, signals by PID and restart on the
 * same ports and data dir.
 *
 *   const group = ProcessGroup.scoped();       // SIGKILLs what it started in after()
 *   const a = await startCourier(group, { args: ['--cluster-redis', redis.url, '--node-name', 'a'] });
 *   await a.waitForLog((l) => l.msg === 'joined cluster');
 *   await a.sigkill(); const a2 = await a.restart();
 *
 * Which build runs: `entry: 'dist'` is `node bin/courier.js` (what users run; `npm test` builds
 * it first); `'source'` is test/fixtures/courier-cli.ts under tsx (what crash.test.ts runs).
 * Default: $COURIER_TEST_ENTRY, else 'dist' when dist/ is at least as new as every file in src/,
 * else 'source' — so iterating with scripts/run-tests.js without a build never runs a stale dist.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir, type Exit, type ProcessGroup, type TrackedProcess } from './processes.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'bin/courier.js');
const DIST_MAIN = join(ROOT, 'dist/cli/main.js');
const SOURCE_CLI = join(ROOT, 'test/fixtures/courier-cli.ts');

export type CourierEntry = 'dist' | 'source';

/** One parsed JSON log line (pino): `level` is the level's name, `msg` the message. */
export interface LogLine {
  level: string;
  msg: string;
  time?: string;
  pid?: number;
  [key: string]: unknown;
}

export interface CourierProcessOptions {
  /** MQTT TCP port (default 0: a free one, read back from the "listening on" log line). */
  port?: number;
  /** WebSocket port (default 0: a free one); 'off' for none. */
  wsPort?: number | 'off';
  /** --data-dir (default: a fresh temp dir, removed at process exit). */
  dataDir?: string;
  /** --log-level (default 'info'; above info, readiness cannot be seen: use waitReady: false). */
  logLevel?: string;
  /** More flags, as they are (e.g. the cluster's). */
  args?: readonly string[];
  /** Added to the environment; the parent's COURIER_* variables are never passed on. */
  env?: Readonly<Record<string, string>>;
  entry?: CourierEntry;
  /** Wait for the "listening on" line before resolving (default true). */
  waitReady?: boolean;
  /** Deadline for that line (default 30 s: a loaded CI machine can take seconds to start node). */
  readyTimeoutMs?: number;
}

export interface CourierProcess {
  readonly pid: number;
  /** The MQTT port: the bound one once ready, else the requested one (0 if unknown yet). */
  readonly port: number;
  readonly wsPort: number | undefined;
  /** mqtt://127.0.0.1:PORT */
  readonly url: string;
  readonly dataDir: string;
  readonly entry: CourierEntry;
  /** The courier flags it was started with. */
  readonly argv: readonly string[];
  readonly options: Readonly<CourierProcessOptions>;
  readonly process: TrackedProcess;
  /** Resolves once the "listening on" line was logged (rejects if it exits or times out first). */
  ready(timeoutMs?: number): Promise<void>;
  /** Every JSON log line so far (stdout). */
  logs(): readonly LogLine[];
  /** stdout lines that are not JSON, and stderr lines. */
  otherOutput(): readonly string[];
  /** First log line (already logged or yet to come) that `predicate` accepts; rejects on timeout or exit. */
  waitForLog(predicate: (line: LogLine) => boolean, timeoutMs?: number, what?: string): Promise<LogLine>;
  /** Exit status, undefined while running. */
  exit(): Exit | undefined;
  exited(timeoutMs?: number): Promise<Exit>;
  sigkill(timeoutMs?: number): Promise<Exit>;
  /** SIGTERM (plus SIGCONT if stopped) and wait for the exit: a graceful shutdown. */
  sigterm(timeoutMs?: number): Promise<Exit>;
  sigstop(): void;
  sigcont(): void;
  /**
   * Starts a new process with the same flags, ports (the bound ones) and data dir, in the same
   * group; stops this one first (SIGTERM) if it still runs.
   */
  restart(overrides?: Partial<CourierProcessOptions>): Promise<CourierProcess>;
}

let defaultEntry: CourierEntry | undefined;

/** See the module comment. */
export function resolveEntry(): CourierEntry {
  const env = process.env.COURIER_TEST_ENTRY;
  if (env === 'dist' || env === 'source') return env;
  if (defaultEntry === undefined) defaultEntry = existsSync(DIST_MAIN) && newestMtime(join(ROOT, 'src')) <= statSync(DIST_MAIN).mtimeMs ? 'dist' : 'source';
  return defaultEntry;
}

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

export async function startCourier(group: ProcessGroup, options: CourierProcessOptions = {}): Promise<CourierProcess> {
  const entry = options.entry ?? resolveEntry();
  const level = options.logLevel ?? 'info';
  if (options.waitReady !== false && !['trace', 'debug', 'info'].includes(level)) {
    throw new Error(`startCourier: readiness is the "listening on" info line, so logLevel ${level} needs waitReady: false`);
  }
  const dataDir = options.dataDir ?? tempDir('courier-node');
  const wsPort = options.wsPort ?? 0;
  const argv = [
    '--host',
    '127.0.0.1',
    '--port',
    String(options.port ?? 0),
    '--ws-port',
    String(wsPort),
    // No admin listener unless a test asks for one (its default port would clash between processes).
    ...((options.args ?? []).some((a) => a.startsWith('--admin-port')) ? [] : ['--admin-port', 'off']),
    '--data-dir',
    dataDir,
    '--log-level',
    level,
    ...(options.args ?? []),
  ];
  // tsx resolved here: the child runs in the data dir, where `--import tsx` would not find it.
  const command = entry === 'dist' ? [BIN] : ['--import', import.meta.resolve('tsx'), SOURCE_CLI];
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('COURIER_') && v !== undefined) env[k] = v;
  Object.assign(env, options.env ?? {});
  const proc = group.spawn(process.execPath, [...command, ...argv], { cwd: dataDir, env });

  const logs: LogLine[] = [];
  const other: string[] = [];
  const take = (line: string, stream: 'stdout' | 'stderr'): void => {
    const parsed = stream === 'stdout' ? parseLogLine(line) : undefined;
    if (parsed) logs.push(parsed);
    else if (line !== '') other.push(`${stream}: ${line}`);
  };
  for (const line of proc.lines('stdout')) take(line, 'stdout');
  for (const line of proc.lines('stderr')) take(line, 'stderr');
  proc.onLine(take);

  let boundPort = options.port ?? 0;
  let boundWs: number | undefined = typeof wsPort === 'number' ? wsPort : undefined;
  const waitForLog = (predicate: (line: LogLine) => boolean, timeoutMs = 10_000, what = 'a log line'): Promise<LogLine> => {
    let seen = 0;
    return proc
      .waitForLine(
        () => {
          for (; seen < logs.length; seen++) if (predicate(logs[seen]!)) return true;
          return false;
        },
        timeoutMs,
        `courier pid ${proc.pid}: waiting for ${what}`,
      )
      .then(() => logs[seen]!);
  };
  let readyPromise: Promise<void> | undefined;
  const ready = (timeoutMs = options.readyTimeoutMs ?? 30_000): Promise<void> =>
    (readyPromise ??= waitForLog((l) => l.msg.startsWith('listening on'), timeoutMs, 'the "listening on" line').then((line) => {
      const listeners = Array.isArray(line.listeners) ? (line.listeners as Array<{ transport?: unknown; port?: unknown }>) : [];
      const port = (t: string): number | undefined => {
        const p = listeners.find((l) => l.transport === t)?.port;
        return typeof p === 'number' ? p : undefined;
      };
      boundPort = port('tcp') ?? boundPort;
      boundWs = port('ws') ?? (wsPort === 'off' ? undefined : boundWs);
    }));

  let stopped = false;
  const cp: CourierProcess = {
    pid: proc.pid,
    get port() {
      return boundPort;
    },
    get wsPort() {
      return boundWs;
    },
    get url() {
      return `mqtt://127.0.0.1:${boundPort}`;
    },
    dataDir,
    entry,
    argv,
    options,
    process: proc,
    ready,
    logs: () => logs,
    otherOutput: () => other,
    waitForLog,
    exit: () => proc.exit(),
    exited: (timeoutMs = 15_000) => proc.exited(timeoutMs),
    sigkill: (timeoutMs = 10_000) => {
      proc.signal('SIGKILL');
      return proc.exited(timeoutMs);
    },
    sigterm: (timeoutMs = 15_000) => {
      proc.signal('SIGTERM');
      if (stopped) cp.sigcont();
      return proc.exited(timeoutMs);
    },
    sigstop: () => {
      if (proc.signal('SIGSTOP')) stopped = true;
    },
    sigcont: () => {
      if (proc.signal('SIGCONT')) stopped = false;
    },
    restart: async (overrides = {}) => {
      if (proc.exit() === undefined) await cp.sigterm();
      const ws = options.wsPort === 'off' ? 'off' : (boundWs ?? 0);
      return startCourier(group, { ...options, port: boundPort, wsPort: ws, dataDir, entry, ...overrides });
    },
  };
  if (options.waitReady !== false) await ready();
  return cp;
}

/** A stdout line as a log line, or undefined if it is not a JSON object with string level and msg. */
export function parseLogLine(line: string): LogLine | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const value: unknown = JSON.parse(line);
    if (typeof value !== 'object' || value === null) return undefined;
    const rec = value as Record<string, unknown>;
    return typeof rec.level === 'string' && typeof rec.msg === 'string' ? (rec as LogLine) : undefined;
  } catch {
    return undefined;
  }
}
