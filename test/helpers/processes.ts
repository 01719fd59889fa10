/**
 * Child processes for multi-process tests (courier nodes, redis-server): spawn with output captured
 * line by line, wait for a line or for exit (always with a deadline), signal by PID, and never leak.
 *
 * Every process spawned here is in one module-wide registry: a ProcessGroup's killAll() (call it in
 * after()) SIGKILLs its own, and a process 'exit' hook SIGKILLs whatever is still running and
 * removes the temp dirs made by tempDir(), so a crashed or timed-out test file leaves nothing behind.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';

const running = new Set<ChildProcess>();
const tempDirs = new Set<string>();
let exitHooked = false;

function hookExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  process.on('exit', () => {
    for (const child of running) {
      try {
        child.kill('SIGKILL');
      } catch {
        // Already gone.
      }
    }
    for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  });
}

/** A fresh directory under the OS temp dir, removed by removeTempDir() or at process exit. */
export function tempDir(prefix: string): string {
  hookExit();
  const dir = mkdtempSync(join(tmpdir(), `${prefix}-`));
  tempDirs.add(dir);
  return dir;
}

export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

/**
 * `n` distinct free TCP ports on 127.0.0.1: all are held open at once (so they differ), then
 * released. As with any free-port probe, another process could take one before it is used.
 */
export async function freePorts(n: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const server = createServer();
      servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', () => resolve());
      });
    }
    return servers.map((s) => (s.address() as AddressInfo).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => (s.listening ? s.close(() => resolve()) : resolve()))));
  }
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export type Stream = 'stdout' | 'stderr';

/** A spawned program: output as text and complete lines, waits with deadlines, signals by PID. */
export interface TrackedProcess {
  readonly pid: number;
  readonly name: string;
  readonly child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Complete lines written so far to `stream`. */
  lines(stream?: Stream): readonly string[];
  /** Calls `listener` for each complete line from now on; returns an unsubscribe function. */
  onLine(listener: (line: string, stream: Stream) => void): () => void;
  /**
   * Resolves with the first line (already written or yet to come) that `predicate` accepts;
   * rejects on timeout, or if the process exits without writing one.
   */
  waitForLine(predicate: (line: string, stream: Stream) => boolean, timeoutMs?: number, what?: string): Promise<string>;
  /** The exit status once the process has exited (and its output is closed), else undefined. */
  exit(): Exit | undefined;
  /** Resolves with the exit status; rejects after `timeoutMs`. */
  exited(timeoutMs?: number): Promise<Exit>;
  /** Sends `signal` by PID if the process is still running; false if it already exited. */
  signal(signal: NodeJS.Signals): boolean;
  /** Output tail for failure messages. */
  describe(): string;
}

/** The processes one test file (or one helper) started; killAll() stops exactly those. */
export class ProcessGroup {
  private readonly mine = new Set<TrackedProcess>();

  /** A group whose processes are SIGKILLed in an after() hook of the current suite (or file). */
  static scoped(): ProcessGroup {
    const group = new ProcessGroup();
    after(() => group.killAll());
    return group;
  }

  spawn(command: string, args: readonly string[], options: SpawnOptions = {}): TrackedProcess {
    hookExit();
    const proc = spawnTracked(command, args, options);
    this.mine.add(proc);
    proc.child.once('close', () => this.mine.delete(proc));
    return proc;
  }

  /** The processes of this group that have not exited yet. */
  alive(): TrackedProcess[] {
    return [...this.mine].filter((p) => p.exit() === undefined);
  }

  /** SIGKILLs every process of this group still running and waits (bounded) until they are gone. */
  async killAll(timeoutMs = 10_000): Promise<void> {
    const procs = [...this.mine];
    for (const p of procs) p.signal('SIGKILL');
    await Promise.all(procs.map((p) => p.exited(timeoutMs)));
    this.mine.clear();
  }
}

const MAX_TEXT = 1 << 20;

function spawnTracked(command: string, args: readonly string[], options: SpawnOptions): TrackedProcess {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  const name = `${command.split('/').pop()} ${args.join(' ')}`.slice(0, 160);
  let spawnError: Error | undefined;
  let exit: Exit | undefined;
  const text: Record<Stream, string> = { stdout: '', stderr: '' };
  const partial: Record<Stream, string> = { stdout: '', stderr: '' };
  const lines: Record<Stream, string[]> = { stdout: [], stderr: [] };
  const lineListeners = new Set<(line: string, stream: Stream) => void>();
  const changed = new Set<() => void>();
  const notify = (): void => {
    for (const f of [...changed]) f();
  };

  const feed = (stream: Stream, chunk: string): void => {
    // Keep the last MiB of raw text for describe(); lines are all kept.
    text[stream] = (text[stream] + chunk).slice(-MAX_TEXT);
    const parts = (partial[stream] + chunk).split('\n');
    partial[stream] = parts.pop() ?? '';
    for (const line of parts) {
      lines[stream].push(line);
      for (const l of [...lineListeners]) l(line, stream);
    }
    notify();
  };
  child.stdout?.setEncoding('utf8').on('data', (d: string) => feed('stdout', d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => feed('stderr', d));
  child.on('error', (e) => {
    spawnError = e;
    notify();
  });
  child.on('close', (code, signal) => {
    for (const stream of ['stdout', 'stderr'] as const) {
      if (partial[stream] !== '') feed(stream, '\n');
    }
    exit = { code, signal };
    running.delete(child);
    notify();
  });
  if (child.pid === undefined) {
    throw new Error(`cannot spawn ${command}: ${spawnError?.message ?? 'no pid'}`);
  }
  running.add(child);
  const pid = child.pid;

  const describe = (): string => `${name} (pid ${pid})\n--- stdout ---\n${text.stdout.slice(-3000)}\n--- stderr ---\n${text.stderr.slice(-3000)}`;

  const until = <T>(check: () => T | undefined, timeoutMs: number, what: string, failOnExit: boolean): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const finish = (f: () => void): void => {
        clearTimeout(timer);
        changed.delete(poll);
        f();
      };
      const poll = (): void => {
        const hit = check();
        if (hit !== undefined) return finish(() => resolve(hit));
        if (spawnError) return finish(() => reject(new Error(`${what}: ${spawnError?.message}\n${describe()}`)));
        if (failOnExit && exit) return finish(() => reject(new Error(`${what}: exited with ${exit?.code ?? exit?.signal} first\n${describe()}`)));
      };
      const timer = setTimeout(() => finish(() => reject(new Error(`${what}: timed out after ${timeoutMs} ms\n${describe()}`))), timeoutMs);
      timer.unref();
      changed.add(poll);
      poll();
    });

  return {
    pid,
    name,
    child,
    stdout: () => text.stdout,
    stderr: () => text.stderr,
    lines: (stream = 'stdout') => lines[stream],
    onLine: (listener) => {
      lineListeners.add(listener);
      return () => lineListeners.delete(listener);
    },
    waitForLine: (predicate, timeoutMs = 10_000, what = `waiting for a line from ${name}`) => {
      // Scan incrementally: each poll looks only at lines not yet seen.
      const seen: Record<Stream, number> = { stdout: 0, stderr: 0 };
      return until(
        () => {
          for (const stream of ['stdout', 'stderr'] as const) {
            const all = lines[stream];
            for (; seen[stream] < all.length; seen[stream]++) {
              const line = all[seen[stream]]!;
              if (predicate(line, stream)) return line;
            }
          }
          return undefined;
        },
        timeoutMs,
        what,
        true,
      );
    },
    exit: () => exit,
    exited: (timeoutMs = 15_000) => until(() => exit, timeoutMs, `waiting for ${name} to exit`, false),
    signal: (signal) => {
      if (exit !== undefined || child.exitCode !== null || child.signalCode !== null) return false;
      try {
        process.kill(pid, signal);
        return true;
      } catch {
        return false;
      }
    },
    describe,
  };
}
