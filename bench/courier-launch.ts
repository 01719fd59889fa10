/**
 * Starting `bin/courier.js` for the workers benches (bench/workers.ts, bench/workers-connect.ts):
 * a free port, no WebSocket or admin listener, an in-memory store, logging at warn, pinned to
 * `cpu` with 65,536 descriptors; with `--workers N` in the arguments, waits until the primary has
 * its N workers and the private Redis, and then two seconds more for every worker to listen (the
 * primary hands connections only to workers that listen).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, pinnedSpawn } from './brokers/index.js';

export interface LaunchedCourier {
  port: number;
  /** The process started (the primary with `--workers`). */
  pid: number;
  /** Its workers: how many the arguments asked for (0 without `--workers`). */
  workers: number;
  stop(): Promise<void>;
}

/** Child processes of `pid` (pgrep -P); none when it has none or is gone. */
export function children(pid: number): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' })
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map(Number);
  } catch {
    return [];
  }
}

async function portOpen(port: number): Promise<boolean> {
  const net = await import('node:net');
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Starts Courier from the checkout at `root` with `args` added (see the module comment). */
export async function launchCourier(o: {
  label: string;
  root: string;
  cpu: string;
  args: readonly string[];
  env?: Record<string, string>;
}): Promise<LaunchedCourier> {
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'courier-bench-workers-'));
  const args = [
    path.join(o.root, 'bin/courier.js'),
    '--port',
    String(port),
    '--ws-port',
    'off',
    '--admin-port',
    'off',
    '--data-dir',
    dir,
    '--log-level',
    'warn',
    ...o.args,
  ];
  const child = pinnedSpawn(o.cpu, 65536, process.execPath, args, { ...process.env, COURIER_PERSISTENCE__ENGINE: 'memory', ...o.env });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-4000)));
  child.stderr?.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-4000)));
  const pid = child.pid!;
  const wi = o.args.indexOf('--workers');
  const workers = wi < 0 ? 0 : Number(o.args[wi + 1]);
  const want = workers === 0 ? 0 : workers + 1; // the workers and the private Redis
  const deadline = Date.now() + 60_000;
  while (!(await portOpen(port)) || children(pid).length < want) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`${o.label} did not start: ${out}`);
    await sleep(100);
  }
  if (workers > 0) await sleep(2000);
  return {
    port,
    pid,
    workers,
    stop: async () => {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 20_000);
      if (child.exitCode === null) await new Promise((r) => child.once('exit', r));
      clearTimeout(t);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
