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
import { DEAD, HEARTBEAT, keys, MAX_ROUTE_OPS, RETAIN, ROUTE_LOG_MAXLEN, ROUTES, type Keys } from './scripts.js';
import type { ClusterCounters, ClusterOptions, ClusterStats } from './options.js';
import { Tail, type ClusterCore } from './tail.js';

type ScriptFn = (...args: Array<string | Buffer | number>) => Promise<unknown>;
interface Scripted {
  courierHeartbeat: ScriptFn;
  courierDead: ScriptFn;
  courierRoutes: ScriptFn;
  courierRetain: ScriptFn;
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
  };
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

  constructor(options: ClusterOptions, core: ClusterCore, log: Logger, localStats: () => Record<string, number>) {
    this.options = options;
    this.keys = keys(options.prefix);
    this.#log = log;
    this.#localStats = localStats;
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
    const r = this.#redis as unknown as Redis;
    r.defineCommand('courierHeartbeat', { numberOfKeys: 4, lua: HEARTBEAT });
    r.defineCommand('courierDead', { numberOfKeys: 7, lua: DEAD });
    r.defineCommand('courierRoutes', { numberOfKeys: 3, lua: ROUTES });
    r.defineCommand('courierRetain', { numberOfKeys: 3, lua: RETAIN });
    this.#tail = new Tail(this, options, core, log, this.keys);
    this.#outbox = new Outbox(this, this.#redis, this.keys, log);
  }

  get #scripts(): Scripted {
    return this.#redis as unknown as Scripted;
  }

  /** The Redis connection for commands (the tail has its own for blocking reads). */
  get redis(): Redis {
    return this.#redis;
  }

  get available(): boolean {
    return this.#available;
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
    const nid = Number(await this.#redis.incr(k.seq));
    const old = await this.#redis.get(k.name(name));
    if (old !== null) {
      const oldNid = Number(old);
      const info = await this.#redis.get(k.node(oldNid));
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
    await this.#tail.stop();
    try {
      await this.#outbox.drain();
      if (this.#joined && this.#available) {
        await this.#dead(this.nid, true);
        const k = this.keys;
        if ((await this.#redis.get(k.name(this.options.nodeName))) === String(this.nid)) await this.#redis.del(k.name(this.options.nodeName));
      }
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
      await this.#scripts.courierHeartbeat(k.node(this.nid), k.nodes, k.dead(this.nid), k.stats(this.nid), this.nid, this.options.leaseMs, info, stats),
    );
  }

  async #beat(): Promise<void> {
    if (this.#stopping) return;
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
    this.#beatPending = true;
    this.#beatSentAt = Date.now();
    try {
      const had = await this.#beatOnce();
      if (had < 0) {
        await this.#rejoin('this node was declared dead (no heartbeat within the lease)');
        return;
      }
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
      if (await this.#dead(nid, false)) this.#log.warn({ nodeId: nid }, 'cluster: node declared dead (lease expired); its routes are removed');
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

  /** Redis refused a write as coming from a node without a lease. */
  fenced(why: string): void {
    void this.#rejoin(why).catch(() => {});
  }

  async #rejoin(why: string): Promise<void> {
    this.counters.rejoins++;
    this.#log.warn({ node: this.options.nodeName, nodeId: this.nid }, `cluster: ${why}; joining again as a new incarnation`);
    this.#joined = false;
    await this.#join();
    await this.#tail.restart(this.nid);
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
        const had = await this.#beatOnce();
        if (had < 0) await this.#rejoin('this node was declared dead while Redis was unreachable');
        else {
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
      this.#outbox.route(filter, on);
    }
  }

  forward(m: Message, localGroups: readonly string[] | undefined): readonly string[] | undefined {
    return this.#outbox.forward(m, localGroups);
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
    const k = this.keys;
    const filters = [...this.#interest.keys()];
    this.#outbox.clearRoutes();
    for (let i = 0; i === 0 || i < filters.length; i += MAX_ROUTE_OPS) {
      const args: Array<string | number> = [k.node(this.nid), k.routes(this.nid), k.rlog, this.nid, ROUTE_LOG_MAXLEN, i === 0 ? '1' : '0'];
      for (const f of filters.slice(i, i + MAX_ROUTE_OPS)) args.push('+', f);
      await this.#scripts.courierRoutes(...args);
    }
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
