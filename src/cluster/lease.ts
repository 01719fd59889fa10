/**
 * The Redis side of a node's membership, as functions of the node's Redis connection: the check
 * of Redis's settings at start, the heartbeat that renews the lease, declaring an incarnation
 * dead, the janitor that does so for lapsed leases, and the reading of the cluster totals and of
 * the other nodes' inbox lengths. No node state: membership.ts keeps it and decides.
 */
import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import type { Logger } from '../options.js';
import type { ClusterOptions } from './options.js';
import { ROUTE_LOG_MAXLEN, type Keys } from './scripts.js';

type ScriptFn = (...args: Array<string | Buffer | number>) => Promise<unknown>;
interface Scripted {
  courierHeartbeat: ScriptFn;
  courierDead: ScriptFn;
}

/** Thrown by `start()` when the node cannot join (duplicate name, unsafe Redis settings). */
export class ClusterError extends Error {}

/** Refuses an evicting Redis; warns when Redis does not persist. */
export async function checkRedis(redis: Redis, log: Logger): Promise<void> {
  const info = String(await redis.info('memory')) + String(await redis.info('persistence'));
  const policy = /maxmemory_policy:(\S+)/.exec(info)?.[1];
  // An evicting Redis may drop a lease, a route set or an inbox: silent loss. Refuse it.
  if (policy !== undefined && policy !== 'noeviction') {
    throw new ClusterError(
      `Redis maxmemory-policy is "${policy}": the cluster needs "noeviction" (an evicting Redis drops routes, leases and messages); set maxmemory-policy noeviction`,
    );
  }
  if (/aof_enabled:0/.test(info)) {
    log.warn({}, 'Redis has appendonly off: a Redis restart loses the cluster state (routes and retained messages); set appendonly yes');
  }
}

/**
 * Renews the lease of incarnation `nid` and publishes its counters (scripts.ts HEARTBEAT): -2
 * when Redis lost its data, -1 when the incarnation was declared dead, 1 when the lease was held,
 * 0 when it had lapsed and was taken again.
 */
export async function heartbeat(redis: Redis, k: Keys, options: ClusterOptions, nid: number, epoch: string, stats: Record<string, number>): Promise<number> {
  const info = JSON.stringify({ name: options.nodeName, host: hostname(), pid: process.pid });
  return Number(
    await (redis as unknown as Scripted).courierHeartbeat(
      k.node(nid),
      k.nodes,
      k.dead(nid),
      k.stats(nid),
      k.epoch,
      nid,
      options.leaseMs,
      info,
      JSON.stringify(stats),
      epoch,
    ),
  );
}

/** Declares incarnation `nid` dead (scripts.ts DEAD; `force`: without the liveness checks). True when this call did. */
export async function declareDead(redis: Redis, k: Keys, nid: number, leaseMs: number, force: boolean): Promise<boolean> {
  const r = await (redis as unknown as Scripted).courierDead(
    k.node(nid),
    k.nodes,
    k.dead(nid),
    k.routes(nid),
    k.rlog,
    k.inbox(nid),
    k.stats(nid),
    k.orphans,
    k.own(nid),
    k.pipe(nid),
    nid,
    leaseMs,
    force ? '1' : '0',
    ROUTE_LOG_MAXLEN,
  );
  return r === 1;
}

/**
 * Declares dead every node whose lease lapsed (decided by Redis, idempotent, any node may run
 * it), then starts the recovery of every dead node whose sessions and inbox wait for a survivor
 * (`recover`, when this node has sessions; one node recovers each, by lock).
 */
export async function janitor(
  redis: Redis,
  k: Keys,
  me: number,
  leaseMs: number,
  log: Logger,
  recover: ((nid: number) => Promise<void>) | undefined,
): Promise<void> {
  const now = Number((await redis.time())[0]) * 1000;
  const stale = await redis.zrangebyscore(k.nodes, '-inf', String(now - leaseMs));
  for (const s of stale) {
    const nid = Number(s);
    if (nid === me) continue;
    if (await declareDead(redis, k, nid, leaseMs, false)) log.warn({ nodeId: nid }, 'cluster: node declared dead (lease expired)');
  }
  if (recover === undefined) return;
  for (const s of await redis.smembers(k.orphans)) {
    const nid = Number(s);
    if (nid === me) continue;
    recover(nid).catch((err: unknown) => log.error({ nodeId: nid, err: String(err) }, 'cluster: recovery of a dead node failed; retried'));
  }
}

/** The live nodes and the sums of their counters as of their last heartbeats (`totals` undefined when none is live). */
export async function readTotals(redis: Redis, k: Keys): Promise<{ ids: number[]; totals?: Record<string, number> }> {
  const ids = (await redis.zrange(k.nodes, '0', '-1')).map(Number);
  if (ids.length === 0) return { ids };
  const values = await redis.mget(...ids.map((id) => k.stats(id)));
  const totals: Record<string, number> = {};
  for (const v of values) {
    if (v === null) continue;
    try {
      for (const [key, n] of Object.entries(JSON.parse(v) as Record<string, unknown>)) if (typeof n === 'number') totals[key] = (totals[key] ?? 0) + n;
    } catch {
      // a node of another version: skipped
    }
  }
  return { ids, totals };
}

/**
 * The nodes among `others` whose inbox holds more than `softLimit` unread entries, measured
 * here (a paused or overloaded node cannot report it). `lagging`: the previous set (a node that
 * starts lagging is logged once).
 */
export async function readLagging(redis: Redis, k: Keys, others: number[], softLimit: number, lagging: ReadonlySet<number>, log: Logger): Promise<Set<number>> {
  const p = redis.pipeline();
  for (const nid of others) p.xlen(k.inbox(nid));
  const lengths = (await p.exec()) ?? [];
  const behind = new Set<number>();
  others.forEach((nid, i) => {
    const len = lengths[i]?.[1];
    if (typeof len === 'number' && len > softLimit) behind.add(nid);
  });
  for (const nid of behind)
    if (!lagging.has(nid)) log.warn({ nodeId: nid }, 'cluster: node is behind on its inbox; QoS 0 forwards to it are dropped until it catches up');
  return behind;
}

export function isAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The Redis URL without its password, for logs. */
export function redact(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
}
