/**
 * One node of a Courier cluster on Redis: membership (incarnation, lease, heartbeat, dead-node
 * janitor), the replicated route table, forwarding of messages to other nodes' inboxes (one
 * stream entry per destination and event-loop turn) and cluster-wide retained messages with
 * read-your-writes. Implements the core's ClusterLink; the core never waits for Redis except
 * through `commitPoint()`, which gates acknowledgements as the store does.
 */
import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import { newRedis } from './ioredis.js';
import type { ClusterLink } from '../core/cluster-link.js';
import type { Message } from '../core/message.js';
import type { Logger } from '../options.js';
import { Outbox } from './outbox.js';
import { RouteTable } from './routes.js';
import { defineScripts, keys, ROUTE_LOG_MAXLEN, type Keys } from './scripts.js';
import type { ClusterCounters, ClusterOptions, ClusterStats } from './options.js';
import { Tail, type ClusterCore } from './tail.js';
import type { LiveConnection } from '../core/broker-core.js';
import type { SessionClaim } from '../core/cluster-link.js';
import { ClusterSessions, type SessionCore } from './sessions.js';
import { within } from './within.js';
import type { RedisStore } from './redis-store.js';

/** What a node needs of the broker core. */
export type NodeCore = ClusterCore &
  SessionCore & {
    /** Every session dropped, connections closed (the node fenced itself). */
    dropAll(close: (c: LiveConnection) => void): void;
  };

type ScriptFn = (...args: Array<string | Buffer | number>) => Promise<unknown>;
interface Scripted {
  courierHeartbeat: ScriptFn;
  courierDead: ScriptFn;
}

/** Thrown by `start()` when the node cannot join (duplicate name, unsafe Redis settings). */
export class ClusterError extends Error {}

export class ClusterNode implements ClusterLink {
  readonly options: ClusterOptions;
  readonly keys: Keys;
  readonly routes = new RouteTable();
  readonly counters: ClusterCounters = {
    forwardedOut: 0,
    forwardBatches: 0,
    forwardedIn: 0,
    forwardsToGoneNodes: 0,
    forwardsDroppedLagging: 0,
    routeChanges: 0,
    retainedChanges: 0,
    rejoins: 0,
    redisDisconnects: 0,
    selfFences: 0,
  };
  /** Persistent sessions in Redis, taken over across nodes (present when the node has a RedisStore). */
  readonly sessions: ClusterSessions | undefined;
  /** Current incarnation (0 before joining). */
  nid = 0;
  readonly #log: Logger;
  readonly #localStats: () => Record<string, number>;
  readonly #redis: Redis;
  readonly #tail: Tail;
  /** This node's interest: filter → local references (sessions / group members). */
  readonly #interest = new Map<string, number>();
  readonly #outbox: Outbox;
  /** Nodes whose inbox holds more than `inboxSoftLimit` unread entries (as of the last heartbeat). */
  lagging = new Set<number>();
  #joined = false;
  #available = false;
  #connectedAt = 0;
  #stopping = false;
  #heartbeat: NodeJS.Timeout | undefined = undefined;
  #totals: Record<string, number> = {};
  /** A heartbeat in flight and when it was sent (an unanswered one means Redis is unreachable). */
  #beatPending = false;
  #beatSentAt = 0;
  #liveNodes = 0;
  #lastError = '';
  readonly #core: NodeCore;
  readonly #store: RedisStore | undefined;
  /** The Redis data epoch this node joined (see scripts.ts `epoch`). */
  #epoch = '';
  /** Last heartbeat Redis answered (for self-fencing when it stops answering). */
  #beatOkAt = 0;
  /** The node dropped its clients and sessions and waits to join again. */
  #fencedSelf = false;
  #rejoining = false;
  /** Interest collected instead of announced (the route switch of a recovery, see sessions.ts). */
  #collecting = false;
  readonly #collected = new Set<string>();

  constructor(options: ClusterOptions, core: NodeCore, log: Logger, localStats: () => Record<string, number>, store?: RedisStore) {
    this.options = options;
    this.keys = keys(options.prefix);
    this.#log = log;
    this.#localStats = localStats;
    this.#core = core;
    this.#store = store;
    this.#redis = newRedis(options.redis, {
      lazyConnect: true,
      // Commands wait for a reconnect instead of failing: acknowledgements are withheld meanwhile.
      maxRetriesPerRequest: null,
      retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
      connectionName: `courier:${options.nodeName}`,
    });
    // Reported through 'close'/'ready' below, once each way; the last one explains a failed start.
    this.#redis.on('error', (err: Error) => {
      this.#lastError = err.message;
    });
    this.#redis.on('close', () => this.#lost());
    this.#redis.on('ready', () => this.#back());
    defineScripts(this.#redis);
    this.#tail = new Tail(this, options, core, log, this.keys);
    this.#outbox = new Outbox(this, this.#redis, this.keys, log);
    if (store !== undefined) {
      this.#outbox.appender = store;
      this.sessions = new ClusterSessions(this, store, this.keys, log, options.leaseMs);
      this.sessions.attach(core);
    }
  }

  get #scripts(): Scripted {
    return this.#redis as unknown as Scripted;
  }

  /** The Redis connection for commands (the tail has its own for blocking reads). */
  get redis(): Redis {
    return this.#redis;
  }

  /** Redis reachable and this node a member in good standing (CONNECTs are accepted). */
  get available(): boolean {
    return this.#available && this.#joined && !this.#fencedSelf;
  }

  // ---------------------------------------------------------------------------------------------
  // Joining and leaving

  /** Connects, checks Redis's settings, joins as a new incarnation and loads routes and retained messages. */
  async start(): Promise<void> {
    try {
      await this.#redis.connect();
    } catch (err) {
      const why = this.#lastError || (err instanceof Error ? err.message : String(err));
      throw new ClusterError(`cannot reach Redis at ${redact(this.options.redis)}: ${why}`);
    }
    await this.#checkRedis();
    await this.#join();
    this.#connectedAt = Date.now();
    this.#beatOkAt = this.#connectedAt;
    this.#available = true;
    await this.#tail.start(this.nid);
    this.#heartbeat = setInterval(() => void this.#beat(), this.options.heartbeatMs);
    this.#heartbeat.unref();
  }

  async #checkRedis(): Promise<void> {
    const info = String(await this.#redis.info('memory')) + String(await this.#redis.info('persistence'));
    const policy = /maxmemory_policy:(\S+)/.exec(info)?.[1];
    // An evicting Redis may drop a lease, a route set or an inbox: silent loss. Refuse it.
    if (policy !== undefined && policy !== 'noeviction') {
      throw new ClusterError(
        `Redis maxmemory-policy is "${policy}": the cluster needs "noeviction" (an evicting Redis drops routes, leases and messages); set maxmemory-policy noeviction`,
      );
    }
    if (/aof_enabled:0/.test(info)) {
      this.#log.warn({}, 'Redis has appendonly off: a Redis restart loses the cluster state (routes and retained messages); set appendonly yes');
    }
  }

  async #join(): Promise<void> {
    const k = this.keys;
    const name = this.options.nodeName;
    // The first node on an empty Redis sets the epoch; a node that later finds it gone or
    // changed knows Redis lost its data.
    await this.#redis.set(k.epoch, `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`, 'NX');
    this.#epoch = (await this.#redis.get(k.epoch)) ?? '';
    const nid = Number(await this.#redis.incr(k.seq));
    const old = await this.#redis.get(k.name(name));
    if (old !== null) {
      const oldNid = Number(old);
      const info = oldNid === this.nid ? null : await this.#redis.get(k.node(oldNid));
      if (info !== null) {
        let holder: { host?: string; pid?: number } = {};
        try {
          holder = JSON.parse(info) as typeof holder;
        } catch {
          // unreadable: treated as another host
        }
        const here = holder.host === hostname();
        if (!here || holder.pid === undefined || isAlive(holder.pid)) {
          throw new ClusterError(
            `node name "${name}" is in use by a live node (incarnation ${oldNid}, pid ${holder.pid ?? '?'} on ${holder.host ?? '?'}); choose another --node-name or stop that node`,
          );
        }
      }
      // The previous incarnation of this node: its routes and inbox go before this one starts.
      if (await this.#dead(oldNid, true)) this.#log.info({ node: name, previous: oldNid }, 'cluster: removed the previous incarnation of this node');
    }
    this.nid = nid;
    await this.#redis.set(k.name(name), String(nid));
    const beat = await this.#beatOnce();
    if (beat < 0) throw new ClusterError(`incarnation ${nid} was declared dead while joining`);
    // The inbox exists from now on; writers use NOMKSTREAM, so a dead node's inbox stays gone.
    await this.#redis.xadd(k.inbox(nid), '*', 'init', '1');
    this.#joined = true;
    await this.#announceAll();
    this.#log.info({ node: name, nodeId: nid }, 'cluster: joined');
  }

  /** Stops forwarding and heartbeats and removes this incarnation's routes and lease (graceful leave). */
  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    if (this.#heartbeat !== undefined) clearInterval(this.#heartbeat);
    this.sessions?.order.stop();
    await this.#tail.stop();
    try {
      // Bounded: a node that cannot reach Redis still stops (the others declare it dead after the lease).
      await within(this.options.leaseMs, async () => {
        await this.#outbox.drain();
        if (this.#joined && this.#available && !this.#fencedSelf) {
          await this.#dead(this.nid, true);
          const k = this.keys;
          if ((await this.#redis.get(k.name(this.options.nodeName))) === String(this.nid)) await this.#redis.del(k.name(this.options.nodeName));
        }
      });
    } finally {
      this.#redis.disconnect();
    }
  }

  async #dead(nid: number, force: boolean): Promise<boolean> {
    const k = this.keys;
    const r = await this.#scripts.courierDead(
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
      this.options.leaseMs,
      force ? '1' : '0',
      ROUTE_LOG_MAXLEN,
    );
    return r === 1;
  }

  // ---------------------------------------------------------------------------------------------
  // Heartbeat, janitor, Redis connection

  async #beatOnce(): Promise<number> {
    const k = this.keys;
    const info = JSON.stringify({ name: this.options.nodeName, host: hostname(), pid: process.pid });
    const stats = JSON.stringify(this.#localStats());
    return Number(
      await this.#scripts.courierHeartbeat(
        k.node(this.nid),
        k.nodes,
        k.dead(this.nid),
        k.stats(this.nid),
        k.epoch,
        this.nid,
        this.options.leaseMs,
        info,
        stats,
        this.#epoch,
      ),
    );
  }

  async #beat(): Promise<void> {
    if (this.#stopping) return;
    // No heartbeat answered for nearly a lease: serving() fences the node (see there).
    this.serving();
    if (this.#beatPending) {
      // A connection that stays open but answers nothing (a network partition, a frozen Redis)
      // never closes by itself: after three heartbeats without a reply it counts as lost. The
      // check runs again after pending I/O (setImmediate), so a reply that only waited for this
      // process's own busy event loop is not mistaken for silence.
      if (this.#available && Date.now() - this.#beatSentAt > this.options.heartbeatMs * 3) {
        setImmediate(() => {
          if (this.#beatPending && this.#available && !this.#stopping && Date.now() - this.#beatSentAt > this.options.heartbeatMs * 3) this.#unresponsive();
        });
      }
      return;
    }
    if (!this.#available) return;
    if (this.#fencedSelf) {
      void this.#rejoin('joining again after fencing itself').catch(() => {});
      return;
    }
    this.#beatPending = true;
    this.#beatSentAt = Date.now();
    try {
      const had = await this.#beatOnce();
      if (had === -2) {
        this.#selfFence('Redis lost its data (restarted empty)');
        await this.#rejoin('Redis lost its data');
        return;
      }
      if (had < 0) {
        this.#selfFence('this node was declared dead (no heartbeat within the lease)');
        await this.#rejoin('this node was declared dead');
        return;
      }
      this.#beatOkAt = Date.now();
      // The lease had lapsed (a Redis restart, or a long pause nobody acted on): announce again.
      if (had === 0) await this.#announceAll();
      await this.#janitor();
      await this.#readTotals();
      await this.#tail.checkGaps();
    } catch (err) {
      if (!this.#stopping) this.#log.warn({ err: String(err) }, 'cluster: heartbeat failed');
    } finally {
      this.#beatPending = false;
    }
  }

  #unresponsive(): void {
    this.#available = false;
    this.counters.redisDisconnects++;
    this.#log.error(
      { redis: redact(this.options.redis), waitedMs: Date.now() - this.#beatSentAt },
      'cluster: Redis is not answering; acknowledgements are held and new connections refused until it is back',
    );
    // New connections for both; commands still unanswered are sent again on the new one.
    this.#redis.disconnect(true);
    this.#tail.reconnect();
  }

  /** Declares dead every node whose lease lapsed (decided by Redis, idempotent, any node may run it). */
  async #janitor(): Promise<void> {
    // After a (re)connect, give every node one lease to renew before judging it.
    if (Date.now() - this.#connectedAt < this.options.leaseMs) return;
    const now = Number((await this.#redis.time())[0]) * 1000;
    const stale = await this.#redis.zrangebyscore(this.keys.nodes, '-inf', String(now - this.options.leaseMs));
    for (const s of stale) {
      const nid = Number(s);
      if (nid === this.nid) continue;
      if (await this.#dead(nid, false)) this.#log.warn({ nodeId: nid }, 'cluster: node declared dead (lease expired)');
    }
    // Dead nodes whose sessions and inbox wait for a survivor (one recovers each, by lock).
    const sessions = this.sessions;
    if (sessions === undefined) return;
    for (const s of await this.#redis.smembers(this.keys.orphans)) {
      const nid = Number(s);
      if (nid === this.nid) continue;
      sessions.recover(nid).catch((err: unknown) => this.#log.error({ nodeId: nid, err: String(err) }, 'cluster: recovery of a dead node failed; retried'));
    }
  }

  async #readTotals(): Promise<void> {
    const ids = await this.#redis.zrange(this.keys.nodes, '0', '-1');
    this.#liveNodes = ids.length;
    if (ids.length === 0) return;
    const values = await this.#redis.mget(...ids.map((id) => this.keys.stats(Number(id))));
    const totals: Record<string, number> = {};
    for (const v of values) {
      if (v === null) continue;
      try {
        for (const [key, n] of Object.entries(JSON.parse(v) as Record<string, unknown>)) if (typeof n === 'number') totals[key] = (totals[key] ?? 0) + n;
      } catch {
        // a node of another version: skipped
      }
    }
    this.#totals = totals;
    // Whether the others keep up, measured here (a paused or overloaded node cannot report it):
    // the length of each inbox, entries written and not yet read.
    const others = ids.map(Number).filter((nid) => nid !== this.nid);
    const p = this.#redis.pipeline();
    for (const nid of others) p.xlen(this.keys.inbox(nid));
    const lengths = (await p.exec()) ?? [];
    const lagging = new Set<number>();
    others.forEach((nid, i) => {
      const len = lengths[i]?.[1];
      if (typeof len === 'number' && len > this.options.inboxSoftLimit) lagging.add(nid);
    });
    for (const nid of lagging)
      if (!this.lagging.has(nid)) this.#log.warn({ nodeId: nid }, 'cluster: node is behind on its inbox; QoS 0 forwards to it are dropped until it catches up');
    this.lagging = lagging;
  }

  get joined(): boolean {
    return this.#joined;
  }

  /** This incarnation may act for its sessions: joined and not fenced (SessionsOwner.standing). */
  get standing(): boolean {
    return this.#joined && !this.#fencedSelf;
  }

  /** Redis refused a write as coming from a node without a lease, or declared dead. */
  fenced(why: string): void {
    if (this.#fencedSelf || this.#rejoining) return;
    this.#selfFence(why);
    void this.#rejoin(why).catch(() => {});
  }

  /**
   * This node may no longer speak for its sessions (declared dead, cut off from Redis, Redis lost
   * its data): every client is disconnected (5.0: DISCONNECT 0x8B) so it reconnects elsewhere,
   * every session dropped without a will or a write (the survivors adopt them and decide the
   * wills), until it joins again as a new incarnation.
   */
  #selfFence(why: string): void {
    if (this.#fencedSelf) return;
    this.#fencedSelf = true;
    this.counters.selfFences++;
    this.#log.error(
      { node: this.options.nodeName, nodeId: this.nid, clients: this.#core.sessions.size },
      `cluster: ${why}; this node fences itself: its clients are disconnected to resume elsewhere and its sessions left to the other nodes`,
    );
    this.#core.dropAll((c) => c.fence());
    this.sessions?.reset();
    this.#outbox.clearRoutes();
  }

  async #rejoin(why: string): Promise<void> {
    if (this.#rejoining) return;
    this.#rejoining = true;
    try {
      this.counters.rejoins++;
      this.#log.warn({ node: this.options.nodeName, nodeId: this.nid }, `cluster: ${why}; joining again as a new incarnation`);
      this.#joined = false;
      await this.#join();
      this.#beatOkAt = Date.now();
      this.#fencedSelf = false;
      await this.#tail.restart(this.nid);
    } finally {
      this.#rejoining = false;
    }
  }

  #lost(): void {
    if (!this.#available || this.#stopping) return;
    this.#available = false;
    this.counters.redisDisconnects++;
    this.#log.error(
      { redis: redact(this.options.redis) },
      'cluster: Redis connection lost; acknowledgements are held and new connections refused until it is back',
    );
  }

  #back(): void {
    if (this.#available || this.#stopping || !this.#joined) return;
    this.#connectedAt = Date.now();
    // A heartbeat sent before the outage is answered on the new connection: its clock restarts now.
    this.#beatSentAt = this.#connectedAt;
    this.#available = true;
    this.#log.info({ redis: redact(this.options.redis) }, 'cluster: Redis connection restored; resynchronising routes and retained messages');
    void (async () => {
      try {
        if (this.#fencedSelf) {
          await this.#rejoin('Redis is back');
          return;
        }
        const had = await this.#beatOnce();
        if (had === -2) {
          this.#selfFence('Redis lost its data (restarted empty)');
          await this.#rejoin('Redis lost its data');
        } else if (had < 0) {
          this.#selfFence('this node was declared dead while Redis was unreachable');
          await this.#rejoin('this node was declared dead while Redis was unreachable');
        } else {
          this.#beatOkAt = Date.now();
          if (had === 0) await this.#announceAll();
          await this.#tail.restart(this.nid);
        }
      } catch (err) {
        this.#log.warn({ err: String(err) }, 'cluster: resynchronisation failed; retried at the next reconnect or heartbeat');
      }
    })();
  }

  // ---------------------------------------------------------------------------------------------
  // ClusterLink

  interest(filter: string, on: boolean): void {
    const n = (this.#interest.get(filter) ?? 0) + (on ? 1 : -1);
    if (n > 0) this.#interest.set(filter, n);
    else this.#interest.delete(filter);
    // Only the 0↔1 transitions are announced.
    if ((on && n === 1) || (!on && n === 0)) {
      if (this.#collecting && on) this.#collected.add(filter);
      else if (!on && this.#collected.delete(filter)) return;
      else this.#outbox.route(filter, on);
    }
  }

  collectInterest(on: boolean): void {
    this.#collecting = on;
  }

  takeCollected(): string[] {
    const out = [...this.#collected];
    this.#collected.clear();
    return out;
  }

  // Cluster II (sessions.ts)

  claim(clientId: string, clean: boolean): Promise<SessionClaim> {
    if (this.sessions === undefined) return Promise.reject(new Error('cluster sessions need a RedisStore'));
    return this.sessions.claim(clientId, clean);
  }

  sessionEnded(clientId: string, claimToken: string | undefined): void {
    this.sessions?.ended(clientId, claimToken);
  }

  handling(on: boolean): void {
    this.#store?.hold(on);
  }

  handled(inbox: string, minid: string): void {
    const store = this.#store;
    if (store === undefined) {
      this.#redis.xtrim(inbox, 'MINID', minid).catch(() => {});
      return;
    }
    // The journal writes of what was handled go first, the trim with them.
    void this.#core.commitPoint()?.catch(() => {});
    store.trimInbox(inbox, minid);
  }

  kicked(clientId: string, token: string, clean: boolean): void {
    this.sessions?.kicked(clientId, token, clean);
  }

  redirected(clientId: string, entries: Buffer[]): void {
    this.sessions?.redirected(clientId, entries);
  }

  barrier(kind: 'b' | 'a', clientId: string, from: number, seq: number): void {
    this.sessions?.barrier(kind, clientId, from, seq);
  }

  mark(nid: number, kind: 'b' | 'a' | 'c', clientId: string, seq: number, as?: number, gone?: () => void): void {
    this.#outbox.mark(nid, kind, clientId, seq, as, gone);
  }

  excluded(destinations: string, topic: string, sender?: number, viaStore?: boolean): ReadonlySet<string> | undefined {
    return this.sessions?.excluded(destinations, topic, sender, viaStore);
  }

  cut(clientId: string, from: number): void {
    this.sessions?.cut(clientId, from);
  }

  adoptedFrom(nid: number): ReadonlySet<string> | undefined {
    return this.sessions?.adoptedFrom(nid);
  }

  excludedLocally: ReadonlySet<string> | undefined = undefined;

  forward(m: Message, localGroups: readonly string[] | undefined): readonly string[] | undefined {
    const sessions = this.sessions;
    this.excludedLocally = undefined;
    if (sessions === undefined || !sessions.tracking) return this.#outbox.forward(m, localGroups);
    const dests: number[] = [];
    const keep = this.#outbox.forward(m, localGroups, dests);
    if (sessions.handingOver) sessions.handOver(m, dests);
    // A session that moved here from a node this message also went to gets it from there.
    if (dests.length > 0) this.excludedLocally = sessions.excludedFor(dests, m.topic);
    return keep;
  }

  handOver(nid: number, clientId: string, m: Message): void {
    this.#outbox.handOver(nid, clientId, m);
  }

  movedOn(clientId: string): number | undefined {
    return this.sessions?.movedOn(clientId);
  }

  forwardedForDead(nid: number, m: Message): void {
    this.sessions?.forwardedForDead(nid, m);
  }

  /** A message forwarded here was handled: sessions that moved away get theirs (see ClusterSessions.handOver). */
  forwardedHere(m: Message): void {
    const sessions = this.sessions;
    if (sessions !== undefined && sessions.handingOver) sessions.handOver(m, undefined);
  }

  quiet(): Promise<void> | undefined {
    return this.sessions?.quiet();
  }

  serving(): boolean {
    if (this.#fencedSelf) return false;
    if (this.#joined && !this.#rejoining && Date.now() - this.#beatOkAt > this.options.leaseMs - this.options.heartbeatMs) {
      // Paused, or cut off from Redis, for nearly a lease: the others will declare this node dead
      // (or did) and take its sessions over, so it lets its clients go first (they reconnect
      // elsewhere) and handles nothing more from its inbox (that is replayed elsewhere).
      this.#selfFence('no heartbeat reached Redis for nearly a lease');
      return false;
    }
    return true;
  }

  retain(m: Message): void {
    this.#outbox.retain(m);
  }

  get writes(): number {
    return this.#outbox.writes;
  }

  commitPoint(upTo: number): Promise<void> | null {
    return this.#outbox.commitPoint(upTo);
  }

  retainedBarrier(): Promise<void> | null {
    return this.#tail.retainedBarrier();
  }

  /** Writes every filter this node has interest in as its whole route set (join, lapsed lease). */
  async #announceAll(): Promise<void> {
    await this.#outbox.announce([...this.#interest.keys()]);
  }

  // ---------------------------------------------------------------------------------------------

  /** Called by the tail for every message received from another node. */
  received(count: number): void {
    this.counters.forwardedIn += count;
  }

  stats(): ClusterStats {
    return {
      ...this.counters,
      node: this.options.nodeName,
      nodeId: this.nid,
      available: this.#available,
      nodes: Math.max(this.#liveNodes, 1),
      remoteRoutes: this.routes.size,
      ...(this.sessions === undefined
        ? {}
        : {
            sessions: {
              ...this.sessions.counters,
              holding: this.sessions.order.size,
              holdTimeouts: this.sessions.order.timedOut,
              holdOverflows: this.sessions.order.overflows,
            },
          }),
      totals: { ...this.#totals },
    };
  }
}

function isAlive(pid: number): boolean {
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
