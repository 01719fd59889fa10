/**
 * The native generators: bench/loadgen/connect.c (the idle scenario's connection opener) and
 * bench/loadgen/latency.c (the latency probe, bench/loadgen/latency-native.ts). Built on demand
 * by the orchestrator, started by the scenarios inside the generator process (so they inherit
 * its CPU pinning). The orchestrator passes each binary's path, or why there is none, in the
 * environment.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Path of the built connection opener (set by bench/run.ts). */
export const NATIVE_CONNECT_ENV = 'COURIER_BENCH_CONNECT';
/** Why there is no connection opener (set by bench/run.ts instead of the path). */
export const NATIVE_CONNECT_MISSING_ENV = 'COURIER_BENCH_CONNECT_MISSING';
/** Path of the built latency probe (set by bench/run.ts). */
export const NATIVE_LATENCY_ENV = 'COURIER_BENCH_LATENCY';
/** Why there is no latency probe (set by bench/run.ts instead of the path). */
export const NATIVE_LATENCY_MISSING_ENV = 'COURIER_BENCH_LATENCY_MISSING';

export type NativeProgram = 'connect' | 'latency';

const here = path.dirname(fileURLToPath(import.meta.url));

/** Compile bench/loadgen/NAME.c with `cc -O2` into `cacheDir` unless the binary there is newer than the source. */
export function buildNative(cacheDir: string, name: NativeProgram): { bin: string } | { error: string } {
  const source = path.join(here, `${name}.c`);
  const bin = path.join(cacheDir, name);
  if (existsSync(bin) && statSync(bin).mtimeMs >= statSync(source).mtimeMs) return { bin };
  mkdirSync(cacheDir, { recursive: true });
  const tmp = `${bin}.${process.pid}.tmp`;
  const r = spawnSync('cc', ['-O2', '-Wall', '-Wextra', '-o', tmp, source], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.error !== undefined) {
    const code = (r.error as NodeJS.ErrnoException).code;
    return { error: code === 'ENOENT' ? 'no C compiler (cc not found)' : `cc failed to start: ${r.error.message}` };
  }
  if (r.status !== 0) return { error: `cc failed on ${name}.c: ${r.stderr.trim().slice(-500)}` };
  if (r.stderr.trim() !== '') process.stderr.write(`bench: cc warnings for ${name}.c:\n${r.stderr}`);
  renameSync(tmp, bin); // atomic: a concurrent run never sees a half-written binary
  return { bin };
}

/** The connection opener (bench/loadgen/connect.c). */
export const buildNativeConnect = (cacheDir: string): { bin: string } | { error: string } => buildNative(cacheDir, 'connect');

export interface NativeConnectOptions {
  host: string;
  port: number;
  count: number;
  window: number;
  clientIdPrefix: string;
  version: 4 | 5;
  keepAlive: number;
  /** Source addresses 127.0.0.1..N to spread loopback clients over. */
  sources: number;
  /** Destination addresses host, host+1, ... (loopback; the broker must listen on all of them); default 1. */
  dests?: number;
  timeoutMs: number;
}

export interface NativeConnectReport {
  connected: number;
  failed: number;
  /** First connect() to last CONNACK. */
  seconds: number;
  cpu_user_us: number;
  cpu_sys_us: number;
  error?: string;
}

export interface NativePingReport {
  /** Open connections a PINGREQ was sent on. */
  pinged: number;
  /** Of those, how many answered with PINGRESP. */
  answered: number;
  seconds: number;
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of live) killChild(child);
});

/** SIGKILL `child` by PID if it is still running when this process exits. */
export function killOnExit(child: ChildProcess): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
}

/** SIGKILL by PID unless it has already exited. */
export function killChild(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(child.pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** One run of the native opener: its connections stay open until close() or kill(). */
export class NativeConnections {
  private readonly lines: string[] = [];
  private waiters: (() => void)[] = [];
  private stderr = '';
  private exited = false;

  private constructor(
    private readonly child: ChildProcess,
    readonly pid: number,
  ) {
    let buf = '';
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (s: string) => {
      buf += s;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        this.lines.push(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
      this.wake();
    });
    child.stderr!.on('data', (b: Buffer) => (this.stderr = (this.stderr + b.toString('utf8')).slice(-2000)));
    child.once('exit', () => {
      this.exited = true;
      live.delete(child);
      this.wake();
    });
    // Failures (EPIPE on stdin after it died, a failed kill) show up as 'exit' or an early end.
    child.on('error', (err) => (this.stderr += `\n${err.message}`));
    child.stdin!.on('error', () => undefined);
  }

  /** Start the opener; resolves once it has printed its report (all handshakes done or timed out). */
  static async open(bin: string, o: NativeConnectOptions): Promise<{ conns: NativeConnections; report: NativeConnectReport }> {
    const args = [o.host, o.port, o.count, o.window, o.clientIdPrefix, o.version, o.keepAlive, o.sources, Math.ceil(o.timeoutMs / 1000), o.dests ?? 1];
    const child = spawn(bin, args.map(String), { stdio: ['pipe', 'pipe', 'pipe'] });
    if (child.pid === undefined) {
      const err = await new Promise<Error>((resolve) => child.once('error', resolve));
      throw new Error(`native connect did not start: ${err.message}`);
    }
    live.add(child);
    const conns = new NativeConnections(child, child.pid);
    try {
      const line = await conns.nextLine(o.timeoutMs + 10_000);
      return { conns, report: JSON.parse(line) as NativeConnectReport };
    } catch (err) {
      conns.kill();
      throw err;
    }
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  private async nextLine(timeoutMs: number): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const line = this.lines.shift();
      if (line !== undefined) return line;
      if (this.exited) throw new Error(`native connect exited early: ${this.stderr.trim().slice(-500) || '(no output)'}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`native connect: no report within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** PINGREQ on every open connection; resolves when each has answered, been dropped, or 30 s have passed. */
  async ping(): Promise<NativePingReport> {
    this.child.stdin!.write('ping\n');
    const line = await this.nextLine(40_000);
    const r = JSON.parse(line) as Partial<NativePingReport>;
    if (typeof r.pinged !== 'number' || typeof r.answered !== 'number') throw new Error(`native connect: unexpected line ${line}`);
    return r as NativePingReport;
  }

  /** Close every connection (DISCONNECT first); returns how many the broker had dropped meanwhile. */
  async close(timeoutMs = 10_000): Promise<number> {
    try {
      this.child.stdin!.end('close\n');
      const line = await this.nextLine(timeoutMs);
      const lost = (JSON.parse(line) as { lost?: number }).lost;
      if (typeof lost !== 'number') throw new Error(`native connect: unexpected line ${line}`);
      await this.exit(timeoutMs);
      return lost;
    } finally {
      this.kill();
    }
  }

  private exit(timeoutMs: number): Promise<void> {
    if (this.exited) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** SIGKILL by PID unless it has already exited. */
  kill(): void {
    killChild(this.child);
  }
}
