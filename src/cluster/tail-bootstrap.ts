/**
 * The tail's bootstrap (join, reconnect, gap in a trimmed log), in two steps: `readSnapshot`
 * captures the logs' positions first, then reads the full state (route sets of the live nodes,
 * the retained hash); `applySnapshot` puts that state into the route table and the core. The
 * tail then reads the logs from the captured positions: replayed changes are idempotent.
 */
import type { Redis } from 'ioredis';
import type { Message } from '../core/message.js';
import type { Logger } from '../options.js';
import { decodeRetained } from './wire.js';
import type { Keys } from './scripts.js';
import type { RouteTable } from './routes.js';
import type { ClusterCore } from './tail-types.js';

/** The cluster's state as one bootstrap read it. */
export interface Snapshot {
  /** The other nodes whose routes count (live ones, and dead ones whose sessions wait for a survivor). */
  readonly live: number[];
  /** The route set of each of `live`, in the same order. */
  readonly sets: string[][];
  readonly retained: Map<string, Message>;
  /** The last entry of the route log and of the retained log when the state was read ('0-0': none). */
  readonly routeId: string;
  readonly retId: string;
  /** `ret:ver` when the state was read. */
  readonly retVer: number;
}

/** Reads the state; `self` is asked for this node's id once the logs' positions are captured. */
export async function readSnapshot(redis: Redis, k: Keys, self: () => number, log: Logger): Promise<Snapshot> {
  const snap = await redis
    .multi()
    .xrevrange(k.rlog, '+', '-', 'COUNT', 1)
    .zrange(k.nodes, '0', '-1')
    .xrevrange(k.retLog, '+', '-', 'COUNT', 1)
    .get(k.retVer)
    .smembers(k.orphans)
    .exec();
  if (snap === null) throw new Error('cluster bootstrap: transaction aborted');
  const lastRoute = snap[0]![1] as Array<[string, string[]]>;
  // Dead nodes whose sessions wait for a survivor keep their routes and inbox until it switches
  // them (forwards to them are replayed then): their routes count as live until that switch.
  const orphans = (snap[4]![1] as string[]).map(Number);
  const me = self();
  const live = [...new Set([...(snap[1]![1] as string[]).map(Number), ...orphans])].filter((n) => n !== me);
  const lastRet = snap[2]![1] as Array<[string, string[]]>;
  const retVer = Number((snap[3]![1] as string | null) ?? 0);
  const sets = await Promise.all(live.map((nid) => redis.smembers(k.routes(nid))));
  const retained = new Map<string, Message>();
  let cursor = '0';
  do {
    const [next, flat] = await redis.hscanBuffer(k.ret, cursor, 'COUNT', 1000);
    cursor = String(next);
    for (let i = 0; i + 1 < flat.length; i += 2) {
      try {
        retained.set(flat[i]!.toString(), decodeRetained(flat[i + 1]!));
      } catch (err) {
        log.warn({ topic: flat[i]!.toString(), err: String(err) }, 'cluster: unreadable retained message skipped');
      }
    }
  } while (cursor !== '0');
  return { live, sets, retained, routeId: lastRoute[0]?.[0] ?? '0-0', retId: lastRet[0]?.[0] ?? '0-0', retVer };
}

/** Replaces the route table's and the core's retained state by the snapshot's. */
export function applySnapshot(s: Snapshot, routes: RouteTable, core: ClusterCore): void {
  const liveSet = new Set(s.live);
  for (const nid of routes.nodes()) if (!liveSet.has(nid)) routes.dropNode(nid);
  s.live.forEach((nid, i) => routes.setNode(nid, s.sets[i]!));
  for (const [topic] of [...core.retained.entries()]) if (!s.retained.has(topic)) core.dropRetained(topic);
  for (const m of s.retained.values()) core.applyRetained(m);
}
