/**
 * Starting and stopping the brokers under test, each pinned to one CPU with taskset.
 * Every process started here is tracked by PID so that run.ts can kill them on any exit.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const BROKERS = ['courier', 'mosquitto', 'aedes', 'node-floor', 'courier-cli'] as const;
/** Not a broker: the least a Node process does for the idle and latency scenarios (node-floor.ts). */
export const FLOOR_SCENARIOS: readonly string[] = ['idle', 'latency'];
export type BrokerName = (typeof BROKERS)[number];

export interface RunningBroker {
  name: BrokerName;
  pid: number;
  host: string;
  port: number;
  /** e.g. "dist" or "src" for Courier. */
  detail: string;
  /** Collects garbage on SIGUSR2 (the Node launchers, started with --expose-gc). */
  gcSignal?: boolean;
  stop(): Promise<void>;
  output(): string;
}

export interface BrokerOptions {
  cpu: string;
  /** Raise the soft open-files limit to this before exec (0 = leave it). */
  nofile: number;
  /** Durable variant: Courier with its durable store, Mosquitto with persistence. */
  durable?: boolean;
  /** Address to listen on (default 127.0.0.1; 0.0.0.0 to take connections on every 127.x address). */
  listenHost?: string;
  /** courier-cli: extra arguments for bin/courier.js (e.g. "--workers auto"). */
  cliArgs?: string;
}

const here = path.dirname(fileURLToPath(import.meta.url));
const live = new Map<number, ChildProcess>();

/** Kill everything still running, synchronously (safe in 'exit' handlers). */
export function killAll(): void {
  for (const [pid, child] of live) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
    child.unref();
  }
  live.clear();
}

/**
 * Runs `main` with the process's arguments when `moduleUrl` is the script node was started with
 * (not when imported): what it started is killed on SIGINT or a failure.
 */
export function runAsMain(moduleUrl: string, main: (argv: string[]) => Promise<void>): void {
  if (process.argv[1] === undefined || path.resolve(process.argv[1]) !== fileURLToPath(moduleUrl)) return;
  process.on('SIGINT', () => {
    killAll();
    process.exit(130);
  });
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
    killAll();
    process.exit(1);
  });
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Spawn `cmd args` through `sh` (to raise `ulimit -n`) and `taskset -c cpu`; both exec, so
 * the PID we get is the program's own.
 */
export function pinnedSpawn(cpu: string, nofile: number, cmd: string, args: string[], env?: NodeJS.ProcessEnv): ChildProcess {
  const script = `${nofile > 0 ? `ulimit -n ${nofile} 2>/dev/null; ` : ''}exec taskset -c "$0" "$@"`;
  const child = spawn('/bin/sh', ['-c', script, cpu, cmd, ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: env ?? process.env,
  });
  if (child.pid !== undefined) {
    const pid = child.pid;
    live.set(pid, child);
    child.once('exit', () => live.delete(pid));
  }
  return child;
}

function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

async function stopChild(child: ChildProcess, graceMs = 3000): Promise<void> {
  const pid = child.pid;
  if (pid === undefined) return;
  if (child.exitCode === null && child.signalCode === null) {
    child.kill('SIGTERM');
    if (!(await waitExit(child, graceMs))) {
      child.kill('SIGKILL');
      await waitExit(child, 2000);
    }
  }
  live.delete(pid);
}

function collect(child: ChildProcess): () => string {
  let out = '';
  const add = (b: Buffer): void => {
    out = (out + b.toString('utf8')).slice(-4000);
  };
  child.stdout?.on('data', add);
  child.stderr?.on('data', add);
  return () => out;
}

/** Node launchers print `READY <port> [detail]`. */
function waitReady(child: ChildProcess, name: string, ms: number): Promise<{ port: number; detail: string }> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`${name} did not become ready in ${ms} ms`)), ms);
    child.stdout?.on('data', (b: Buffer) => {
      buf += b.toString('utf8');
      const m = /READY (\d+)(?: (\S+))?/.exec(buf);
      if (m !== null) {
        clearTimeout(timer);
        resolve({ port: Number(m[1]), detail: m[2] ?? '' });
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited before ready (code ${code}, signal ${signal})`));
    });
  });
}

async function waitPort(child: ChildProcess, name: string, port: number, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${name} exited with code ${child.exitCode}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${name} did not open port ${port} in ${ms} ms`);
}

async function startNode(name: 'courier' | 'aedes' | 'node-floor', opts: BrokerOptions): Promise<RunningBroker> {
  const script = path.join(here, `${name}.ts`);
  // BENCH_NODE_ARGS adds Node flags to the Node brokers, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"
  // to profile one under load (the profile is written when the launcher exits after the scenario).
  const extra = (process.env.BENCH_NODE_ARGS ?? '').split(/\s+/).filter((a) => a !== '');
  // --expose-gc: the launchers collect garbage on SIGUSR2 (gc-signal.ts), for RSS readings after a forced GC.
  const args = ['--expose-gc', ...extra, '--import', 'tsx', script, '0'];
  if (name === 'courier') args.push(opts.durable === true ? 'durable' : 'memory');
  const env = { ...process.env, BENCH_LISTEN_HOST: opts.listenHost ?? '127.0.0.1' };
  const child = pinnedSpawn(opts.cpu, opts.nofile, process.execPath, args, env);
  const output = collect(child);
  try {
    const { port, detail } = await waitReady(child, name, 30_000);
    return { name, pid: child.pid!, host: '127.0.0.1', port, detail, stop: () => stopChild(child), output, gcSignal: true };
  } catch (err) {
    await stopChild(child);
    throw new Error(`${(err as Error).message}\n${output()}`, { cause: err });
  }
}

export function mosquittoConfig(port: number, durable: boolean, dir: string, host = '127.0.0.1'): string {
  return [
    `listener ${port} ${host}`,
    'allow_anonymous true',
    `persistence ${durable ? 'true' : 'false'}`,
    ...(durable ? [`persistence_location ${dir}/`, 'autosave_interval 1800'] : []),
    // Keep logging off the measured path (Courier and Aedes log nothing here either).
    'log_dest stderr',
    'log_type error',
    'log_type warning',
    'connection_messages false',
    '',
  ].join('\n');
}

async function startMosquitto(opts: BrokerOptions): Promise<RunningBroker> {
  const port = await freePort();
  const dir = mkdtempSync(path.join(tmpdir(), 'courier-bench-mosquitto-'));
  const conf = path.join(dir, 'mosquitto.conf');
  writeFileSync(conf, mosquittoConfig(port, opts.durable === true, dir, opts.listenHost));
  const child = pinnedSpawn(opts.cpu, opts.nofile, '/usr/sbin/mosquitto', ['-c', conf]);
  const output = collect(child);
  const stop = async (): Promise<void> => {
    await stopChild(child);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitPort(child, 'mosquitto', port, 10_000);
  } catch (err) {
    await stop();
    throw new Error(`${(err as Error).message}\n${output()}`, { cause: err });
  }
  return { name: 'mosquitto', pid: child.pid!, host: '127.0.0.1', port, detail: 'persistence ' + String(opts.durable === true), stop, output };
}

/**
 * Courier through its command line (bin/courier.js, built dist/), with `opts.cliArgs` added:
 * the hook for `courier --workers N`, whose worker processes are children of this one (the
 * idle scenario sums CPU and RSS over the process tree). In-memory store, no WebSocket listener.
 */
async function startCourierCli(opts: BrokerOptions): Promise<RunningBroker> {
  const port = await freePort();
  const dir = mkdtempSync(path.join(tmpdir(), 'courier-bench-cli-'));
  const bin = path.join(here, '../../bin/courier.js');
  const extra = (opts.cliArgs ?? '').split(/\s+/).filter((a) => a !== '');
  const args = [bin, '--host', opts.listenHost ?? '127.0.0.1', '--port', String(port), '--ws-port', 'off', '--data-dir', dir, '--log-level', 'warn', ...extra];
  const env = { ...process.env, COURIER_PERSISTENCE__ENGINE: 'memory', COURIER_SECURITY__ALLOW_ANONYMOUS: 'true' };
  const child = pinnedSpawn(opts.cpu, opts.nofile, process.execPath, args, env);
  const output = collect(child);
  const stop = async (): Promise<void> => {
    // A --workers primary stops its workers and then its private redis-server (in a process group
    // of its own: a SIGKILLed primary leaves it running); with 100,000 connections that takes
    // longer than the 3 s other brokers get.
    await stopChild(child, 60_000);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitPort(child, 'courier-cli', port, 30_000);
  } catch (err) {
    await stop();
    throw new Error(`${(err as Error).message}\n${output()}`, { cause: err });
  }
  return { name: 'courier-cli', pid: child.pid!, host: '127.0.0.1', port, detail: `cli ${extra.join(' ')}`.trim(), stop, output };
}

export function startBroker(name: BrokerName, opts: BrokerOptions): Promise<RunningBroker> {
  if (name === 'mosquitto') return startMosquitto(opts);
  if (name === 'courier-cli') return startCourierCli(opts);
  return startNode(name, opts);
}
