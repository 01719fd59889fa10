/**
 * Helpers for tests against real peers nobody here wrote: spawned programs (mosquitto_pub/sub,
 * Paho Python, Chromium, the courier CLI), with output capture, event waits and cleanup by PID.
 *
 * Peer gating: a suite whose peer is missing is skipped with a clear reason, unless
 * COURIER_REQUIRE_PEERS=1 (as in CI), in which case a failing test names the missing peer.
 */
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { accessSync, constants as fsConstants } from 'node:fs';
import { createServer } from 'node:net';
import { test } from 'node:test';

export const REQUIRE_PEERS = process.env.COURIER_REQUIRE_PEERS === '1';

/**
 * Returns `{ skip }` options for a describe() of tests that need a peer. `missing` is undefined
 * when the peer is there, else why it is not. With COURIER_REQUIRE_PEERS=1 a missing peer adds a
 * failing test instead of a silent skip.
 */
export function peerGate(peer: string, missing: string | undefined): { skip: string | false } {
  if (missing === undefined) return { skip: false };
  if (REQUIRE_PEERS) {
    void test(`peer ${peer} is available (COURIER_REQUIRE_PEERS=1)`, () => {
      throw new Error(`${peer} is required but missing: ${missing}`);
    });
  }
  return { skip: `${peer} missing: ${missing} (set COURIER_REQUIRE_PEERS=1 to fail instead)` };
}

/** undefined when `path` is an executable file, else why not. */
export function missingExecutable(path: string): string | undefined {
  try {
    accessSync(path, fsConstants.X_OK);
    return undefined;
  } catch {
    return `${path} is not an executable`;
  }
}

/** undefined when `python` can import `module`, else why not. */
export function missingPythonModule(python: string, module: string): string | undefined {
  const exe = missingExecutable(python);
  if (exe) return exe;
  const r = spawnSync(python, ['-c', `import ${module}`], { encoding: 'utf8', timeout: 10_000 });
  return r.status === 0 ? undefined : `${python} cannot import ${module}: ${(r.stderr || r.error?.message || '').trim().split('\n').pop()}`;
}

/** A spawned program whose output is collected and whose end can be awaited. */
export interface Peer {
  readonly child: ChildProcess;
  readonly name: string;
  stdout(): string;
  stderr(): string;
  /** Resolves when stdout (or stderr with `stream: 'stderr'`) matches; rejects on timeout or exit. */
  waitFor(pattern: RegExp, options?: { timeoutMs?: number; stream?: 'stdout' | 'stderr' }): Promise<RegExpMatchArray>;
  /** Resolves with the exit code (null if killed) and signal; rejects on timeout. */
  exited(timeoutMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal?: NodeJS.Signals): void;
}

/** Tracks every process a test file starts, so an after() hook can kill them all by PID. */
export class Peers {
  private readonly running = new Set<ChildProcess>();

  spawn(command: string, args: readonly string[], options: SpawnOptions = {}): Peer {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], ...options });
    this.running.add(child);
    const name = `${command.split('/').pop()} ${args.join(' ')}`.slice(0, 120);
    let out = '';
    let err = '';
    const changed = new Set<() => void>();
    const notify = () => {
      for (const f of [...changed]) f();
    };
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      notify();
    });
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      err += d;
      notify();
    });
    let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    let spawnError: Error | undefined;
    child.on('error', (e) => {
      spawnError = e;
      notify();
    });
    child.on('close', (code, signal) => {
      exit = { code, signal };
      this.running.delete(child);
      notify();
    });
    const describe = () => `${name}\n--- stdout ---\n${out.slice(-2000)}\n--- stderr ---\n${err.slice(-2000)}`;

    const until = <T>(check: () => T | undefined, timeoutMs: number, what: string, failOnExit: boolean): Promise<T> =>
      new Promise<T>((resolve, reject) => {
        const done = (f: () => void) => {
          clearTimeout(timer);
          changed.delete(poll);
          f();
        };
        const poll = () => {
          const hit = check();
          if (hit !== undefined) return done(() => resolve(hit));
          if (spawnError) return done(() => reject(new Error(`${what}: ${spawnError?.message}\n${describe()}`)));
          if (failOnExit && exit) return done(() => reject(new Error(`${what}: exited with ${exit?.code ?? exit?.signal} first\n${describe()}`)));
        };
        const timer = setTimeout(() => done(() => reject(new Error(`${what}: timed out after ${timeoutMs} ms\n${describe()}`))), timeoutMs);
        changed.add(poll);
        poll();
      });

    return {
      child,
      name,
      stdout: () => out,
      stderr: () => err,
      waitFor: (pattern, o = {}) =>
        until(() => (o.stream === 'stderr' ? err : out).match(pattern) ?? undefined, o.timeoutMs ?? 10_000, `waiting for ${pattern} from ${name}`, true),
      exited: (timeoutMs = 15_000) => until(() => exit, timeoutMs, `waiting for ${name} to exit`, false),
      kill: (signal = 'SIGTERM') => {
        if (child.pid !== undefined && exit === undefined) child.kill(signal);
      },
    };
  }

  /** Kills (SIGKILL) every process still running and waits for them to go. */
  async killAll(): Promise<void> {
    const waits = [...this.running].map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once('close', () => resolve());
          child.kill('SIGKILL');
        }),
    );
    await Promise.all(waits);
    this.running.clear();
  }
}

/** A free TCP port on 127.0.0.1 (only for peers that cannot take port 0 themselves). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Rejects after `ms` unless `promise` settles first: a guard against hangs, never a wait. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms);
    }),
  ]);
}
