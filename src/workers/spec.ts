/**
 * What a `--workers` primary tells each worker (one JSON environment variable, ENV_WORKER), and
 * how a worker turns its config into a cluster node's: its own node name, the shared Redis, the
 * admin listener on worker 1 only.
 */
import { availableParallelism, hostname } from 'node:os';
import type { CourierConfig } from '../config/index.js';

export interface WorkerSpec {
  /** 1..count, stable across restarts of that worker. */
  slot: number;
  count: number;
  /** The cluster Redis: a URL, or the private Redis's unix socket path. */
  redis: string;
  /** This worker's cluster node name. */
  nodeName: string;
  /** Whether this worker serves the admin listener (worker 1). */
  admin: boolean;
}

/** `auto` → the number of cores this process may use. */
export function workerCount(count: number | 'auto'): number {
  return count === 'auto' ? Math.max(1, availableParallelism()) : count;
}

/** The node name of worker `slot`: `<cluster.nodeName or host name>-w<slot>`. */
export function workerNodeName(config: CourierConfig, slot: number): string {
  const base = config.options.cluster?.nodeName ?? config.workers?.cluster.nodeName ?? hostname();
  // Node names are at most 64 characters (config schema).
  return `${base.slice(0, 60)}-w${slot}`;
}

export function encodeSpec(spec: WorkerSpec): string {
  return JSON.stringify(spec);
}

/** The spec from the environment variable, or undefined if it is not a valid one. */
export function decodeSpec(text: string | undefined): WorkerSpec | undefined {
  if (text === undefined || text === '') return undefined;
  try {
    const v = JSON.parse(text) as Partial<WorkerSpec>;
    if (typeof v.slot !== 'number' || typeof v.count !== 'number' || typeof v.redis !== 'string' || typeof v.nodeName !== 'string') return undefined;
    return { slot: v.slot, count: v.count, redis: v.redis, nodeName: v.nodeName, admin: v.admin === true };
  } catch {
    return undefined;
  }
}

/** The config of a worker: a cluster node on the shared Redis under its own name; admin on worker 1 only. */
export function workerConfig(config: CourierConfig, spec: WorkerSpec): CourierConfig {
  const options = { ...config.options };
  options.cluster = { ...config.workers?.cluster, ...options.cluster, redis: spec.redis, nodeName: spec.nodeName };
  if (!spec.admin) options.admin = null;
  return { ...config, options };
}
