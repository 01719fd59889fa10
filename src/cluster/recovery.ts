/**
 * Recovery of a dead node (Cluster II), for ClusterSessions: adopts its offline persistent
 * sessions (wills as stored), switches its routes to this node's in one route-log entry, replays
 * its unhandled inbox (to the sessions adopted here, and handed over to those its clients took
 * elsewhere meanwhile), and answers the kicks and barriers in it for it.
 */
import type { Redis } from 'ioredis';
import type { Logger } from '../options.js';
import type { SessionFilter } from '../core/broker-core.js';
import type { RedisStore } from './redis-store.js';
import { BatchError, readBatch } from './wire.js';
import { field, handedOverEntries, markOf } from './stream-fields.js';
import { filterMatches } from '../topics/index.js';
import { ROUTE_LOG_MAXLEN, SWITCH as SWITCH_LUA, type Keys } from './scripts.js';
import { nidOf, type SessionCore, type SessionCounters, type SessionsOwner } from './sessions.js';

/**
 * A replay waits while a connected session it feeds has its queue more than half full (as the
 * inbox reader does), so a dead node's backlog reaches its clients instead of overflowing their
 * queues; at most this long in all, so one client that does not read cannot stall a recovery.
 */
const REPLAY_PRESSURE_BUDGET_MS = 10_000;

/** What the recovery needs of ClusterSessions. */
export interface RecoveryHost {
  readonly owner: SessionsOwner;
  readonly store: RedisStore;
  readonly keys: Keys;
  readonly log: Logger;
  readonly leaseMs: number;
  readonly counters: SessionCounters;
  core(): SessionCore;
  /** Holds this node's inbox until the returned release runs (ClusterSessions.quiet). */
  hold(): () => void;
  /** Remembers that this node took `clientId` (with these filters) from node `from`. */
  remember(from: number, clientId: string, filters: readonly string[]): void;
  /** The sessions this node took from node `from` (still remembered). */
  members(from: number): Set<string> | undefined;
  /** Where a session that moved on from this node went, if known. */
  tombstone(clientId: string): { readonly to: number } | undefined;
  /** Forwards still naming the dead node go to these sessions' new nodes for a while. */
  movedFrom(dead: number, sessions: Map<string, { to: number; filters: string[] }>): void;
  /** The dead node's answer (read in its inbox) to a barrier or kick of ours. */
  answered(clientId: string, seq: number, from: number): void;
  /** Outbound entries redirected to a session here. */
  redirected(clientId: string, entries: Buffer[]): void;
  /** Outbound entries redirected to a session that went to node `to`: handed over there; how many. */
  passOnRedirected(to: number, clientId: string, entries: Buffer[]): number;
}

export class Recovery {
  readonly #h: RecoveryHost;
  readonly #recovering = new Set<number>();

  constructor(host: RecoveryHost) {
    this.#h = host;
  }

  /** Recovers the dead incarnation `dead` unless another node holds its recovery lock. */
  async recover(dead: number): Promise<void> {
    if (this.#recovering.has(dead)) return;
    this.#recovering.add(dead);
    try {
      await this.#recover(dead);
    } finally {
      this.#recovering.delete(dead);
    }
  }

  async #recover(dead: number): Promise<void> {
    const k = this.#h.keys;
    const owner = this.#h.owner;
    const redis = owner.redis;
    const me = owner.nid;
    // Every step after an await checks that this incarnation still stands (see SessionsOwner.standing).
    const stands = (): void => {
      if (!owner.standing || owner.nid !== me) throw new Error(`incarnation ${me} fenced itself or was replaced during the recovery`);
    };
    stands();
    const lock = await redis.set(k.recover(dead), String(me), 'PX', this.#h.leaseMs, 'NX');
    if (lock === null) return;
    stands();
    const started = Date.now();
    const core = this.#h.core();
    const adopted = new Set<string>();
    const cids = await redis.smembers(k.own(dead));
    stands();
    let wills = 0;
    for (let i = 0; i < cids.length; i += 64) {
      const chunk = cids.slice(i, i + 64);
      const results = await Promise.all(chunk.map((cid) => this.#h.store.adopt(cid, dead, me)));
      stands();
      const now = Date.now();
      results.forEach((r, j) => {
        const cid = chunk[j]!;
        if (r === null) return;
        if (r.session === undefined) {
          // A clean session without a will: nothing to take over.
          this.#h.store.release(cid, r.token).catch(() => {});
          return;
        }
        if (core.sessions.has(cid)) core.evict(cid);
        if (r.session.will !== undefined) wills++;
        owner.collectInterest(true);
        try {
          const s = core.restoreSession(r.session, r.outbound, r.inbound, new Map(), now, true, r.token);
          if (s !== undefined) {
            adopted.add(cid);
            this.#h.remember(
              dead,
              cid,
              r.session.subscriptions.map((x) => x.filter),
            );
          }
        } finally {
          owner.collectInterest(false);
        }
        this.#h.counters.adopted++;
      });
    }
    // The adopted sessions' interest replaces the dead node's in one route-log entry: a publisher
    // sends each message either to the dead inbox (replayed below) or here, never both or neither.
    const filters = owner.takeCollected();
    // From the switch until the replay is prepared, this node's inbox waits: forwards that still
    // name the dead node arrive here (x entries) and need to know where its moved sessions went.
    const release = this.#h.hold();
    try {
      await this.#switchAndReplay(dead, adopted, filters, started, wills, stands);
    } finally {
      release();
    }
  }

  async #switchAndReplay(dead: number, adopted: Set<string>, filters: string[], started: number, wills: number, stands: () => void): Promise<void> {
    const k = this.#h.keys;
    const owner = this.#h.owner;
    const redis = owner.redis;
    const me = owner.nid;
    const core = this.#h.core();
    await redis.eval(
      SWITCH_LUA,
      7,
      k.node(me),
      k.routes(me),
      k.rlog,
      k.routes(dead),
      k.inbox(dead),
      k.recovered(dead),
      k.moved(dead),
      me,
      ROUTE_LOG_MAXLEN,
      dead,
      ...filters,
    );
    stands();
    owner.routes.dropNode(dead);
    // A recovery resumed after an attempt that failed midway: what that attempt adopted here counts too.
    for (const cid of this.#h.members(dead) ?? []) adopted.add(cid);
    const answers: Array<[number, string, number]> = [];
    const replayed = await this.#replay(dead, adopted, answers, stands);
    // What the replay caused is committed before the dead inbox goes.
    await core.commitPoint();
    // The kicks and barriers in the dead inbox are answered for it, behind what the replay handed over.
    for (const [to, cid, seq] of answers) {
      if (to === me) this.#h.answered(cid, seq, dead);
      else owner.mark(to, 'a', cid, seq, dead);
    }
    await redis.multi().del(k.recovered(dead), k.own(dead), k.recover(dead)).srem(k.orphans, String(dead)).exec();
    this.#h.counters.recoveries++;
    this.#h.log.warn(
      { nodeId: dead, sessions: adopted.size, wills, replayed, ms: Date.now() - started },
      'cluster: recovered a dead node (sessions adopted, wills as stored, its unhandled inbox replayed)',
    );
  }

  /**
   * Replays the dead node's unhandled inbox: to the sessions adopted here, and (handed over) to
   * those its clients took elsewhere meanwhile (a kick in the inbox names each and its new
   * node; that node leaves messages the dead node also got to this replay).
   */
  async #replay(dead: number, adopted: ReadonlySet<string>, answers: Array<[number, string, number]>, stands: () => void): Promise<number> {
    const key = this.#h.keys.recovered(dead);
    const redis = this.#h.owner.redis;
    const core = this.#h.core();
    const direct = new Set(adopted);
    const only: SessionFilter = { only: direct, back: true };
    const entries = await readAll(redis, key);
    // The last check: a replay once begun runs to its end (aborted midway, its retry would
    // deliver again what was delivered already).
    stands();
    const moved = new Map<string, number>();
    for (const [, fields] of entries) {
      const kind = fields[0]?.toString();
      const mark = kind === 'b' ? markOf(fields) : undefined;
      if (mark !== undefined) answers.push([mark.from, fields[1]!.toString(), mark.seq]);
      if (kind !== 'k') continue;
      const cid = fields[1]!.toString();
      let to = nidOf(field(fields, 't')?.toString() ?? '');
      if (!Number.isFinite(to) || to === dead) continue;
      answers.push([to, cid, 0]);
      if (to === this.#h.owner.nid) {
        // Claimed here from the dead node before it was declared dead: replayed to it directly,
        // never also handed over to ourselves (that delivered the dead inbox to it twice).
        if (core.sessions.has(cid)) {
          direct.add(cid);
          continue;
        }
        // It moved on from here since: its new node gets the dead node's messages from us.
        const t = this.#h.tombstone(cid);
        if (t === undefined) continue;
        to = t.to;
      }
      moved.set(cid, to);
    }
    const handOver = new Map<string, { to: number; filters: string[] }>();
    if (moved.size > 0) {
      // The subscriptions of the moved sessions, as their new nodes stored them.
      const cids = [...moved.keys()];
      const recs = await Promise.all(cids.map((cid) => this.#h.store.loadSession(cid).then((l) => l.session)));
      stands();
      cids.forEach((cid, i) => {
        const rec = recs[i];
        if (rec !== undefined) handOver.set(cid, { to: moved.get(cid)!, filters: rec.subscriptions.map((x) => x.filter) });
      });
    }
    // Forwards that still name the dead node reach this node (x entries) for a while: they go to
    // those sessions too.
    if (handOver.size > 0) {
      this.#h.movedFrom(dead, handOver);
    }
    let n = 0;
    let waited = 0;
    for (const [, fields] of entries) {
      while (waited < REPLAY_PRESSURE_BUDGET_MS && core.forwardPressure()) {
        await new Promise((r) => setTimeout(r, 5));
        waited += 5;
        if (waited >= REPLAY_PRESSURE_BUDGET_MS)
          this.#h.log.warn({ nodeId: dead }, 'cluster: a replay waited its budget for slow receivers; going on (full queues drop as configured)');
      }
      const kind = fields[0]?.toString();
      try {
        if (kind === 'f' || kind === 'x') {
          const b = field(fields, 'b');
          if (b === undefined) continue;
          n += readBatch(b, (f) => {
            core.publishForwarded(f.message, f.plain, f.groups, only);
            for (const [cid, h] of handOver) if (h.filters.some((flt) => filterMatches(flt, f.message.topic))) this.#h.owner.handOver(h.to, cid, f.message);
          });
        } else if (kind === 'o') {
          // Handed over to a session the dead node had taken: to it here, or where it went since.
          const cid = fields[1]!.toString();
          const b = field(fields, 'b');
          if (b === undefined) continue;
          const h = handOver.get(cid);
          if (direct.has(cid)) {
            const one: SessionFilter = { only: new Set([cid]), back: true };
            n += readBatch(b, (f) => core.publishForwarded(f.message, true, undefined, one));
          } else if (h !== undefined) n += readBatch(b, (f) => this.#h.owner.handOver(h.to, cid, f.message));
        } else if (kind === 'r') {
          const cid = fields[1]!.toString();
          const h = handOver.get(cid);
          if (direct.has(cid)) {
            const list = handedOverEntries(fields);
            this.#h.redirected(cid, list);
            n += list.length;
          } else if (h !== undefined) n += this.#h.passOnRedirected(h.to, cid, handedOverEntries(fields));
        }
      } catch (err) {
        if (!(err instanceof BatchError)) throw err;
        this.#h.log.error({ nodeId: dead, err: err.message }, 'cluster: unreadable entry of a dead inbox skipped');
      }
    }
    this.#h.counters.replayed += n;
    return n;
  }
}

async function readAll(redis: Redis, key: string): Promise<Array<[Buffer, Buffer[]]>> {
  const out: Array<[Buffer, Buffer[]]> = [];
  let from = '-';
  for (;;) {
    const batch = (await redis.xrangeBuffer(key, from, '+', 'COUNT', 512)) as Array<[Buffer, Buffer[]]>;
    if (batch.length === 0) return out;
    out.push(...batch);
    from = `(${batch[batch.length - 1]![0].toString()}`;
  }
}
