/**
 * The private Redis of a `--workers` primary when no `cluster.redis` is configured: a
 * `redis-server` child listening only on a unix socket in `<dataDir>/redis/` (no TCP port), with
 * AOF (`appendfsync everysec`) and `maxmemory-policy noeviction`, its log in `redis.log` there.
 * Ready once it answers PING on the socket. A `redis-server` left running by a primary that was
 * SIGKILLed (its pid file names it) is stopped before a new one starts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { delimiter, isAbsolute, join, resolve } from 'node:path';

/** Longest unix socket path Linux accepts (sun_path is 108 bytes with its NUL). */
const MAX_SOCKET_PATH = 107;

export class PrivateRedisError extends Error {}

export interface PrivateRedisOptions {
  /** The data directory; the Redis files go to `<dataDir>/redis/`. */
  dataDir: string;
  /** The executable; default: `redis-server` found on PATH. */
  executable?: string;
  /** Deadline for the first PING answer (default 30 s). */
  startTimeoutMs?: number;
  /** PATH to search (default `process.env.PATH`). */
  path?: string;
}

/** The executable to run: `configured` if given (checked), else `redis-server` on PATH. */
export function findRedisServer(configured: string | undefined, path = process.env.PATH ?? ''): string {
  if (configured !== undefined) {
    const file = resolve(configured);
    if (!isExecutable(file)) throw new PrivateRedisError(`redisServer ${configured} is not an executable file`);
    return file;
  }
  for (const dir of path.split(delimiter)) {
    if (dir === '') continue;
    const file = join(dir, 'redis-server');
    if (isExecutable(file)) return file;
  }
  throw new PrivateRedisError(
    '--workers needs Redis: no redis-server on PATH (install Redis 7 or later, give its path with --redis-server / redisServer, or use your own with --cluster-redis)',
  );
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, fsConstants.X_OK);
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

export class PrivateRedis {
  readonly dir: string;
  /** The unix socket: what the workers get as their cluster Redis "URL" (ioredis takes a path). */
  readonly socket: string;
  readonly executable: string;
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  #stopping = false;
  /** Called when the server exits without being asked to (the primary restarts it). */
  onUnexpectedExit: (code: number | null, signal: NodeJS.Signals | null) => void = () => {};

  constructor(private readonly options: PrivateRedisOptions) {
    this.dir = join(resolve(options.dataDir), 'redis');
    this.socket = join(this.dir, 'redis.sock');
    if (!isAbsolute(this.socket) || Buffer.byteLength(this.socket) > MAX_SOCKET_PATH) {
      throw new PrivateRedisError(
        `the private Redis socket ${this.socket} is longer than ${MAX_SOCKET_PATH} bytes (a unix socket limit): use a shorter --data-dir, or --cluster-redis`,
      );
    }
    this.executable = findRedisServer(options.executable, options.path);
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** Starts the server and resolves once it answers PING; rejects with one line saying why not. */
  async start(): Promise<void> {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    await this.#stopLeftover();
    this.#stopping = false;
    const args = [
      '--port',
      '0',
      '--unixsocket',
      this.socket,
      '--unixsocketperm',
      '700',
      '--dir',
      this.dir,
      '--appendonly',
      'yes',
      '--appendfsync',
      'everysec',
      '--save',
      '',
      '--maxmemory-policy',
      'noeviction',
      '--daemonize',
      'no',
      '--pidfile',
      join(this.dir, 'redis.pid'),
      '--logfile',
      join(this.dir, 'redis.log'),
    ];
    // Its own process group: a Ctrl-C or `kill -- -PGID` meant for the broker must not stop
    // Redis before the workers have left the cluster; the primary stops it last.
    const child = spawn(this.executable, args, { cwd: this.dir, stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    this.#child = child;
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-2000)));
    let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    let spawnError: Error | undefined;
    let ready = false;
    this.#exited = new Promise<void>((done) => {
      child.once('error', (err) => {
        spawnError = err;
        done();
      });
      child.once('exit', (code, signal) => {
        exit = { code, signal };
        if (this.#child === child) this.#child = undefined;
        if (!this.#stopping && ready) this.onUnexpectedExit(code, signal);
        done();
      });
    });
    const deadline = Date.now() + (this.options.startTimeoutMs ?? 30_000);
    while (!(await ping(this.socket))) {
      if (spawnError !== undefined) throw new PrivateRedisError(`cannot run ${this.executable}: ${spawnError.message}`);
      if (exit !== undefined) throw new PrivateRedisError(`redis-server exited at start (${exit.code ?? exit.signal}): ${this.#lastWords(stderr)}`);
      if (Date.now() > deadline) {
        await this.stop();
        throw new PrivateRedisError(`redis-server did not answer on ${this.socket} in time: ${this.#lastWords(stderr)}`);
      }
      await new Promise<void>((r) => setTimeout(r, 25));
    }
    ready = true;
  }

  /** SIGTERM (Redis writes its AOF and removes its socket) and waits; SIGKILL after `timeoutMs`. */
  async stop(timeoutMs = 10_000): Promise<void> {
    this.#stopping = true;
    const child = this.#child;
    if (child === undefined) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    await this.#exited;
    clearTimeout(timer);
  }

  /** SIGKILL without waiting (the primary's forced exit). */
  kill(): void {
    this.#stopping = true;
    this.#child?.kill('SIGKILL');
  }

  /** A server started by a primary that died without stopping it: its pid file is still there. */
  async #stopLeftover(): Promise<void> {
    const pidFile = join(this.dir, 'redis.pid');
    if (!existsSync(pidFile)) return;
    const pid = Number.parseInt(readFileSync(pidFile, 'utf8'), 10);
    if (!Number.isInteger(pid) || pid <= 0 || !isRedisServer(pid)) return;
    process.kill(pid, 'SIGTERM');
    const deadline = Date.now() + 10_000;
    while (isRedisServer(pid) && Date.now() < deadline) await new Promise<void>((r) => setTimeout(r, 25));
    if (isRedisServer(pid)) process.kill(pid, 'SIGKILL');
  }

  #lastWords(stderr: string): string {
    const fromLog = (() => {
      try {
        return readFileSync(join(this.dir, 'redis.log'), 'utf8');
      } catch {
        return '';
      }
    })();
    const lines = `${fromLog}\n${stderr}`.split('\n').filter((l) => l.trim() !== '');
    const telling = lines.filter((l) => /#|error|fatal|can't|cannot|denied|bad/i.test(l)).pop() ?? lines.pop() ?? 'no output';
    return telling.trim();
  }
}

/** Whether `pid` is a running redis-server (Linux: /proc/<pid>/cmdline). */
function isRedisServer(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes('redis-server');
  } catch {
    return false;
  }
}

/** One PING on the unix socket; true on +PONG. */
function ping(socket: string): Promise<boolean> {
  return new Promise<boolean>((resolveReply) => {
    const s = connect(socket);
    let reply = '';
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      s.destroy();
      resolveReply(ok);
    };
    const timer = setTimeout(() => done(false), 1000);
    s.on('connect', () => s.write('PING\r\n'));
    s.on('data', (d: Buffer) => {
      reply += d.toString('latin1');
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
    s.on('error', () => done(false));
  });
}
