/**
 * A real redis-server for cluster tests: 127.0.0.1, a free port, its own temp dir, no RDB
 * snapshots, AOF on or off. Ready once it logged "Ready to accept connections" and answered PING.
 * restart() reuses the port and the dir, so an AOF written before kill9() is reloaded.
 *
 * Gate suites on it with redisServerGate() (peers.ts): a missing redis-server skips them, or fails
 * them under COURIER_REQUIRE_PEERS=1. COURIER_REDIS_SERVER overrides the executable's path.
 */
import { connect } from 'node:net';
import { Redis, type RedisOptions } from 'ioredis';
import { missingExecutable, peerGate } from './peers.js';
import { ProcessGroup, freePorts, removeTempDir, tempDir, type Exit, type TrackedProcess } from './processes.js';

export const REDIS_SERVER = process.env.COURIER_REDIS_SERVER ?? '/usr/bin/redis-server';

/** undefined when redis-server can be run, else why not. */
export function missingRedisServer(): string | undefined {
  return missingExecutable(REDIS_SERVER);
}

/** `{ skip }` options for a describe() whose tests need redis-server. */
export function redisServerGate(): { skip: string | false } {
  return peerGate('redis-server', missingRedisServer());
}

export interface RedisServerOptions {
  /** Append-only file on (default false: nothing persisted). */
  appendonly?: boolean;
  /** AOF fsync policy (default 'everysec', Redis's own default). */
  appendfsync?: 'always' | 'everysec' | 'no';
  /** More config, passed as is after the others, e.g. ['--maxmemory', '10mb']. */
  extraArgs?: readonly string[];
  /** Time allowed for each start (default 30 s). */
  startTimeoutMs?: number;
}

export interface RedisServer {
  readonly port: number;
  /** redis://127.0.0.1:PORT */
  readonly url: string;
  /** PID of the current redis-server process (changes on restart()). */
  readonly pid: number;
  /** Its working dir (AOF lives here); removed by close(). */
  readonly dir: string;
  /** The current process, for its log (stdout) and exit status. */
  readonly process: TrackedProcess;
  running(): boolean;
  /** SIGTERM and wait for exit (Redis fsyncs the AOF on the way out). */
  stop(timeoutMs?: number): Promise<Exit>;
  /** SIGKILL and wait for exit: nothing flushed beyond what appendfsync already wrote. */
  kill9(timeoutMs?: number): Promise<Exit>;
  /** SIGSTOP / SIGCONT: the server keeps its sockets but answers nothing while stopped. */
  freeze(): void;
  thaw(): void;
  /** Stops the server if it runs (SIGTERM), then starts it again on the same port and dir. */
  restart(): Promise<void>;
  /** A new ioredis client for this server, closed by close(). Options override the test defaults. */
  client(options?: RedisOptions): Redis;
  /** Disconnects the clients, SIGKILLs the server, removes the dir. Idempotent. */
  close(): Promise<void>;
}

const READY = /Ready to accept connections/;

export async function startRedisServer(options: RedisServerOptions = {}): Promise<RedisServer> {
  const missing = missingRedisServer();
  if (missing !== undefined) throw new Error(`redis-server missing: ${missing}`);
  const group = new ProcessGroup();
  const dir = tempDir('courier-redis');
  const clients = new Set<Redis>();
  const timeout = options.startTimeoutMs ?? 30_000;
  const args = (port: number): string[] => [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--save',
    '',
    '--appendonly',
    options.appendonly === true ? 'yes' : 'no',
    '--appendfsync',
    options.appendfsync ?? 'everysec',
    '--daemonize',
    'no',
    '--logfile',
    '',
    ...(options.extraArgs ?? []),
  ];

  const launch = async (port: number): Promise<TrackedProcess> => {
    const proc = group.spawn(REDIS_SERVER, args(port), { cwd: dir });
    try {
      await proc.waitForLine((line) => READY.test(line), timeout, `redis-server on port ${port} to be ready`);
      await ping(port, timeout);
      return proc;
    } catch (err) {
      proc.signal('SIGKILL');
      await proc.exited(timeout).catch(() => {});
      throw err;
    }
  };

  // A free port can be taken between the probe and the bind: try a few.
  let port = 0;
  let proc: TrackedProcess | undefined;
  for (let attempt = 1; proc === undefined; attempt++) {
    [port] = (await freePorts(1)) as [number];
    try {
      proc = await launch(port);
    } catch (err) {
      const inUse = err instanceof Error && /Address already in use/i.test(err.message);
      if (!inUse || attempt >= 3) {
        removeTempDir(dir);
        throw err;
      }
    }
  }
  let current: TrackedProcess = proc;
  let closed = false;

  const terminate = async (signal: NodeJS.Signals, timeoutMs: number): Promise<Exit> => {
    const p = current;
    p.signal(signal);
    if (signal === 'SIGTERM') p.signal('SIGCONT');
    return p.exited(timeoutMs);
  };

  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    get pid() {
      return current.pid;
    },
    dir,
    get process() {
      return current;
    },
    running: () => current.exit() === undefined,
    stop: (timeoutMs = 10_000) => terminate('SIGTERM', timeoutMs),
    kill9: (timeoutMs = 10_000) => terminate('SIGKILL', timeoutMs),
    freeze: () => void current.signal('SIGSTOP'),
    thaw: () => void current.signal('SIGCONT'),
    restart: async () => {
      if (closed) throw new Error('redis-server already closed');
      if (current.exit() === undefined) await terminate('SIGTERM', timeout);
      current = await launch(port);
    },
    client: (clientOptions = {}) => {
      const c = new Redis({ host: '127.0.0.1', port, connectTimeout: 2000, maxRetriesPerRequest: 1, retryStrategy: () => 50, ...clientOptions });
      c.on('error', () => {});
      clients.add(c);
      c.once('end', () => clients.delete(c));
      return c;
    },
    close: async () => {
      if (closed) return;
      closed = true;
      for (const c of clients) c.disconnect(false);
      clients.clear();
      await group.killAll();
      removeTempDir(dir);
    },
  };
}

/** One PING over a raw socket, retried (for LOADING) until +PONG or the deadline. */
async function ping(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    last = await new Promise<string>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port });
      let reply = '';
      const done = (r: string): void => {
        clearTimeout(timer);
        socket.destroy();
        resolve(r);
      };
      const timer = setTimeout(() => done(`no reply: ${reply}`), Math.max(1, deadline - Date.now()));
      socket.on('connect', () => socket.write('PING\r\n'));
      socket.on('data', (d: Buffer) => {
        reply += d.toString('latin1');
        if (reply.includes('\r\n')) done(reply.trim());
      });
      socket.on('error', (e) => done(e.message));
    });
    if (last === '+PONG') return;
    await new Promise<void>((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`redis-server on port ${port} did not answer PING within ${timeoutMs} ms (last: ${last})`);
}
