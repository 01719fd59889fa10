/**
 * The `--workers N` primary: starts the private Redis (unless `cluster.redis` is set), forks N
 * workers with node:cluster (they share every listening port, as balance.ts says), logs one
 * "listening on" line once all are ready, restarts a worker that dies (RestartPolicy: backoff,
 * and a non-zero exit instead of a crash loop), and on SIGTERM/SIGINT stops the workers gracefully, then the Redis. It serves no client itself.
 */
import cluster, { type Worker } from 'node:cluster';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { join, resolve } from 'node:path';
import { ENV_WORKER, type CourierConfig } from '../config/index.js';
import type { CourierLogger } from '../log.js';
import { PrivateRedis, PrivateRedisError } from './private-redis.js';
import { RestartPolicy } from './restarts.js';
import { workersBalance } from './balance.js';
import { encodeSpec, workerCount, workerNodeName, type WorkerSpec } from './spec.js';
import { READY_MESSAGE, type ReadyMessage } from './worker.js';

export interface PrimaryIO {
  stderr: { write(text: string): unknown };
  cwd: string;
  /** The command's arguments, given to every worker as they are. */
  argv: readonly string[];
  onSignal: (handler: (signal: NodeJS.Signals) => void) => () => void;
  /** SIGHUP: passed on to every worker (each rereads its TLS certificates). */
  onReloadSignal?: (handler: () => void) => () => void;
  forceExit: (code: number) => void;
}

/** A worker that does not stop within this after SIGTERM is killed. */
const STOP_TIMEOUT_MS = 30_000;
/** Slot of the private Redis in the restart policy. */
const REDIS_SLOT = 0;

export async function runPrimary(config: CourierConfig, logger: CourierLogger, io: PrimaryIO): Promise<number> {
  const workers = config.workers;
  if (workers === undefined) throw new Error('runPrimary without workers');
  const count = workerCount(workers.count);
  const log = logger.child({ worker: 0 });
  const dataDir = resolve(io.cwd, config.options.dataDir ?? './data');
  const fail = (message: string): number => {
    log.fatal({}, message);
    io.stderr.write(`courier: ${message}\n`);
    return 1;
  };

  let unlock: () => void;
  try {
    unlock = lockDataDir(dataDir);
  } catch (err) {
    return fail(err instanceof Error ? err.message : String(err));
  }

  let stopSignal: NodeJS.Signals | undefined;
  let wake: () => void = () => {};
  const stopped = new Promise<void>((r) => (wake = r));
  const live = new Map<Worker, number>();
  let redis: PrivateRedis | undefined;
  const offSignal = io.onSignal((signal) => {
    if (stopSignal === undefined) {
      stopSignal = signal;
      log.info({ signal }, 'shutting down');
      wake();
      return;
    }
    const code = 128 + (osConstants.signals[signal] ?? 0);
    log.warn({ signal, exitCode: code }, 'second signal: exiting without waiting for shutdown');
    for (const w of live.keys()) w.process.kill('SIGKILL');
    redis?.kill();
    unlock();
    io.forceExit(code);
  });

  const offReload = io.onReloadSignal?.(() => {
    log.info({ signal: 'SIGHUP' }, 'passing SIGHUP on to the workers');
    for (const w of live.keys()) w.process.kill('SIGHUP');
  });

  try {
    let redisUrl = config.options.cluster?.redis;
    if (redisUrl === undefined) {
      try {
        redis = new PrivateRedis({ dataDir, ...(workers.redisServer === undefined ? {} : { executable: workers.redisServer }) });
        await redis.start();
      } catch (err) {
        return fail(err instanceof PrivateRedisError ? err.message : `cannot start the private Redis: ${String(err)}`);
      }
      redisUrl = redis.socket;
      log.info({ redisPid: redis.pid, socket: redis.socket }, 'private Redis started');
    }

    const policy = new RestartPolicy();
    let giveUp: string | undefined;
    const slots = new Map<number, Worker>();
    const listeners = new Map<number, unknown[]>();
    let allReady: () => void = () => {};
    const started = new Promise<void>((r) => (allReady = r));
    let startFailure: string | undefined;
    let running = false;

    const balance = workersBalance(workers.balance, process.env, process.platform);
    cluster.schedulingPolicy = balance === 'rr' ? cluster.SCHED_RR : cluster.SCHED_NONE;
    cluster.setupPrimary({ exec: process.argv[1]!, args: [...io.argv], execArgv: process.execArgv, silent: false });

    const fork = (slot: number): void => {
      const spec: WorkerSpec = { slot, count, redis: redisUrl, nodeName: workerNodeName(config, slot), admin: slot === 1 };
      const worker = cluster.fork({ [ENV_WORKER]: encodeSpec(spec) });
      live.set(worker, slot);
      slots.set(slot, worker);
      worker.on('message', (m: unknown) => {
        if (!isReady(m)) return;
        policy.ready(slot, Date.now());
        listeners.set(slot, m.listeners);
        if (running) log.info({ slot, workerPid: worker.process.pid }, `worker ${slot} ready`);
        else if (listeners.size === count) allReady();
      });
      worker.on('exit', (code, signal) => {
        live.delete(worker);
        if (slots.get(slot) === worker) slots.delete(slot);
        if (stopSignal !== undefined || giveUp !== undefined) return;
        const why = signal ?? `code ${code}`;
        if (!running) {
          startFailure ??= `worker ${slot} exited while starting (${why})`;
          wake();
          return;
        }
        const d = policy.exited(slot, Date.now());
        if (!d.restart) {
          giveUp = `worker ${slot} keeps failing (${d.failures} times in a row, last: ${why}); stopping`;
          wake();
          return;
        }
        log.warn({ slot, workerPid: worker.process.pid, exit: why, restartInMs: d.delayMs }, `worker ${slot} exited (${why}); restarting it`);
        setTimeout(() => {
          if (stopSignal === undefined && giveUp === undefined) fork(slot);
        }, d.delayMs);
      });
    };

    if (redis !== undefined) {
      const r = redis;
      r.onUnexpectedExit = (code, signal) => {
        if (stopSignal !== undefined || giveUp !== undefined) return;
        const d = policy.exited(REDIS_SLOT, Date.now());
        const why = signal ?? `code ${code}`;
        if (!d.restart) {
          giveUp = `the private Redis keeps failing (${d.failures} times in a row, last: ${why}); stopping`;
          wake();
          return;
        }
        log.warn({ exit: why, restartInMs: d.delayMs }, 'the private Redis exited; restarting it (workers reconnect by themselves)');
        setTimeout(() => {
          if (stopSignal !== undefined || giveUp !== undefined) return;
          r.start().then(
            () => {
              policy.ready(REDIS_SLOT, Date.now());
              log.info({ redisPid: r.pid }, 'private Redis restarted');
            },
            (err: unknown) => {
              giveUp = `cannot restart the private Redis: ${err instanceof Error ? err.message : String(err)}`;
              wake();
            },
          );
        }, d.delayMs);
      };
      policy.ready(REDIS_SLOT, Date.now());
    }

    for (let slot = 1; slot <= count; slot++) fork(slot);
    await Promise.race([started, stopped]);
    if (startFailure === undefined && stopSignal === undefined) {
      running = true;
      const first = (listeners.get(1) ?? []) as Array<{ url?: unknown }>;
      const urls = first.map((l) => String(l.url)).join(', ');
      log.info(
        { listeners: first, workers: count, balance, pids: [...slots.values()].map((w) => w.process.pid), dataDir: config.options.dataDir ?? './data' },
        `listening on ${urls || 'no listeners'} (${count} workers)`,
      );
      await stopped;
    }

    const t0 = Date.now();
    await stopWorkers(live);
    await redis?.stop();
    redis = undefined;
    if (startFailure !== undefined) return fail(`${startFailure}; see its log lines above`);
    if (giveUp !== undefined) return fail(giveUp);
    log.info({ signal: stopSignal, shutdownMs: Date.now() - t0 }, 'stopped');
    return 0;
  } finally {
    offSignal();
    offReload?.();
    if (redis !== undefined) await redis.stop();
    unlock();
  }
}

function isReady(m: unknown): m is ReadyMessage {
  return typeof m === 'object' && m !== null && (m as { type?: unknown }).type === READY_MESSAGE && Array.isArray((m as { listeners?: unknown }).listeners);
}

/** SIGTERM to every worker (each closes gracefully), SIGKILL to those still there after the timeout. */
async function stopWorkers(live: Map<Worker, number>): Promise<void> {
  const all = [...live.keys()];
  await Promise.all(
    all.map(
      (w) =>
        new Promise<void>((done) => {
          if (w.isDead()) return done();
          const timer = setTimeout(() => w.process.kill('SIGKILL'), STOP_TIMEOUT_MS);
          w.once('exit', () => {
            clearTimeout(timer);
            done();
          });
          w.process.kill('SIGTERM');
        }),
    ),
  );
}

/** `<dataDir>/courier.lock` with the primary's PID: the same lock a single broker's store takes. */
function lockDataDir(dataDir: string): () => void {
  mkdirSync(dataDir, { recursive: true });
  const file = join(dataDir, 'courier.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(file, `${process.pid}\n`, { flag: 'wx' });
      let held = true;
      return () => {
        if (held) rmSync(file, { force: true });
        held = false;
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST')
        throw new Error(`data directory ${dataDir} is not writable: ${(err as Error).message}`, { cause: err });
      const pid = Number.parseInt(readFileSync(file, 'utf8'), 10);
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid))
        throw new Error(`data directory ${dataDir} is in use by another broker (pid ${pid}, ${file})`, { cause: err });
      rmSync(file, { force: true });
    }
  }
  throw new Error(`data directory ${dataDir} could not be locked (${file})`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
