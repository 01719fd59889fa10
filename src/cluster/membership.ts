/**
 * A node's membership of the cluster: its incarnation (joined at start, again after it was
 * declared dead or Redis lost its data), its lease renewed by the heartbeat (with the janitor
 * that declares lapsed nodes dead and the reading of the cluster totals), the state of its Redis
 * connection (lost, back, unresponsive), and fencing itself when it can no longer speak for its
 * sessions. The Redis side of each step is in lease.ts; what it acts on (outbox, tail, sessions,
 * core) belongs to the node (node.ts).
 */
import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import type { LiveConnection } from '../core/broker-core.js';
import type { Logger } from '../options.js';
import { checkRedis, ClusterError, declareDead, heartbeat, isAlive, janitor, readLagging, readTotals, redact } from './lease.js';
import type { ClusterCounters, ClusterOptions } from './options.js';
import type { Outbox } from './outbox.js';
import type { Keys } from './scripts.js';
import type { ClusterSessions } from './sessions.js';
import type { Tail } from './tail.js';
import { within } from './within.js';

/** What membership acts on: the node's parts. */
export interface MembershipHost {
  readonly options: ClusterOptions;
  readonly keys: Keys;
  readonly redis: Redis;
  readonly counters: ClusterCounters;
  readonly log: Logger;
  readonly core: {
    readonly sessions: { readonly size: number };
    /** Every session dropped, connections closed (the node fenced itself). */
    dropAll(close: (c: LiveConnection) => void): void;
  };
  readonly tail: Tail;
  readonly outbox: Outbox;
  readonly sessions: ClusterSessions | undefined;
  localStats(): Record<string, number>;
  /** Writes every filter this node has interest in as its whole route set (join, lapsed lease). */
  announceAll(): Promise<void>;
}

export class Membership {
  /** Current incarnation (0 before joining). */
  nid = 0;
  /** Nodes whose inbox holds more than `inboxSoftLimit` unread entries (as of the last heartbeat). */
  lagging = new Set<number>();
  readonly #h: MembershipHost;
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
  /** The Redis data epoch this node joined (see scripts.ts `epoch`). */
  #epoch = '';
  /** Last heartbeat Redis answered (for self-fencing when it stops answering). */
  #beatOkAt = 0;
  /** The node dropped its clients and sessions and waits to join again. */
  #fencedSelf = false;
  #rejoining = false;

  constructor(host: MembershipHost) {
    this.#h = host;
    // Reported through 'close'/'ready' below, once each way; the last one explains a failed start.
    host.redis.on('error', (err: Error) => {
      this.#lastError = err.message;
    });
    host.redis.on('close', () => this.#lost());
    host.redis.on('ready', () => this.#back());
  }

  /** Redis reachable and this node a member in good standing (CONNECTs are accepted). */
  get available(): boolean {
    return this.#available && this.#joined && !this.#fencedSelf;
  }

  /** Redis reachable (as far as the node knows), whatever its standing. */
  get reachable(): boolean {
    return this.#available;
  }

  /** Live nodes and the sums of their counters, as of the last heartbeat. */
  get liveNodes(): number {
    return this.#liveNodes;
  }

  get totals(): Record<string, number> {
    return this.#totals;
  }

  // ---------------------------------------------------------------------------------------------
  // Joining and leaving

  /** Connects, checks Redis's settings, joins as a new incarnation and loads routes and retained messages. */
  async start(): Promise<void> {
    try {
      await this.#h.redis.connect();
    } catch (err) {
      const why = this.#lastError || (err instanceof Error ? err.message : String(err));
      throw new ClusterError(`cannot reach Redis at ${redact(this.#h.options.redis)}: ${why}`);
    }
    await checkRedis(this.#h.redis, this.#h.log);
    await this.#join();
    this.#connectedAt = Date.now();
    this.#beatOkAt = this.#connectedAt;
    this.#available = true;
    await this.#h.tail.start(this.nid);
    this.#heartbeat = setInterval(() => void this.#beat(), this.#h.options.heartbeatMs);
    this.#heartbeat.unref();
  }

  async #join(): Promise<void> {
    const k = this.#h.keys;
    const name = this.#h.options.nodeName;
    // The first node on an empty Redis sets the epoch; a node that later finds it gone or
    // changed knows Redis lost its data.
    await this.#h.redis.set(k.epoch, `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`, 'NX');
    this.#epoch = (await this.#h.redis.get(k.epoch)) ?? '';
    const nid = Number(await this.#h.redis.incr(k.seq));
    const old = await this.#h.redis.get(k.name(name));
    if (old !== null) {
      const oldNid = Number(old);
      const info = oldNid === this.nid ? null : await this.#h.redis.get(k.node(oldNid));
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
      if (await declareDead(this.#h.redis, k, oldNid, this.#h.options.leaseMs, true))
        this.#h.log.info({ node: name, previous: oldNid }, 'cluster: removed the previous incarnation of this node');
    }
    this.nid = nid;
    await this.#h.redis.set(k.name(name), String(nid));
    const beat = await this.#beatOnce();
    if (beat < 0) throw new ClusterError(`incarnation ${nid} was declared dead while joining`);
    // The inbox exists from now on; writers use NOMKSTREAM, so a dead node's inbox stays gone.
    await this.#h.redis.xadd(k.inbox(nid), '*', 'init', '1');
    this.#joined = true;
    await this.#h.announceAll();
    this.#h.log.info({ node: name, nodeId: nid }, 'cluster: joined');
  }

  /** Stops forwarding and heartbeats and removes this incarnation's routes and lease (graceful leave). */
  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    if (this.#heartbeat !== undefined) clearInterval(this.#heartbeat);
    this.#h.sessions?.order.stop();
    await this.#h.tail.stop();
    try {
      // Bounded: a node that cannot reach Redis still stops (the others declare it dead after the lease).
      await within(this.#h.options.leaseMs, async () => {
        await this.#h.outbox.drain();
        if (this.#joined && this.#available && !this.#fencedSelf) {
          await declareDead(this.#h.redis, this.#h.keys, this.nid, this.#h.options.leaseMs, true);
          const k = this.#h.keys;
          if ((await this.#h.redis.get(k.name(this.#h.options.nodeName))) === String(this.nid)) await this.#h.redis.del(k.name(this.#h.options.nodeName));
        }
      });
    } finally {
      this.#h.redis.disconnect();
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Heartbeat, janitor, Redis connection

  async #beatOnce(): Promise<number> {
    return heartbeat(this.#h.redis, this.#h.keys, this.#h.options, this.nid, this.#epoch, this.#h.localStats());
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
      if (this.#available && Date.now() - this.#beatSentAt > this.#h.options.heartbeatMs * 3) {
        setImmediate(() => {
          if (this.#beatPending && this.#available && !this.#stopping && Date.now() - this.#beatSentAt > this.#h.options.heartbeatMs * 3) this.#unresponsive();
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
      if (had === 0) await this.#h.announceAll();
      await this.#janitor();
      await this.#readTotals();
      await this.#h.tail.checkGaps();
    } catch (err) {
      if (!this.#stopping) this.#h.log.warn({ err: String(err) }, 'cluster: heartbeat failed');
    } finally {
      this.#beatPending = false;
    }
  }

  #unresponsive(): void {
    this.#available = false;
    this.#h.counters.redisDisconnects++;
    this.#h.log.error(
      { redis: redact(this.#h.options.redis), waitedMs: Date.now() - this.#beatSentAt },
      'cluster: Redis is not answering; acknowledgements are held and new connections refused until it is back',
    );
    // New connections for both; commands still unanswered are sent again on the new one.
    this.#h.redis.disconnect(true);
    this.#h.tail.reconnect();
  }

  /** Declares dead every node whose lease lapsed and recovers dead nodes (lease.ts janitor). */
  async #janitor(): Promise<void> {
    // After a (re)connect, give every node one lease to renew before judging it.
    if (Date.now() - this.#connectedAt < this.#h.options.leaseMs) return;
    const sessions = this.#h.sessions;
    await janitor(
      this.#h.redis,
      this.#h.keys,
      this.nid,
      this.#h.options.leaseMs,
      this.#h.log,
      sessions === undefined ? undefined : (nid) => sessions.recover(nid),
    );
  }

  async #readTotals(): Promise<void> {
    const { ids, totals } = await readTotals(this.#h.redis, this.#h.keys);
    this.#liveNodes = ids.length;
    if (totals === undefined) return;
    this.#totals = totals;
    const others = ids.filter((nid) => nid !== this.nid);
    this.lagging = await readLagging(this.#h.redis, this.#h.keys, others, this.#h.options.inboxSoftLimit, this.lagging, this.#h.log);
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
    this.#h.counters.selfFences++;
    this.#h.log.error(
      { node: this.#h.options.nodeName, nodeId: this.nid, clients: this.#h.core.sessions.size },
      `cluster: ${why}; this node fences itself: its clients are disconnected to resume elsewhere and its sessions left to the other nodes`,
    );
    this.#h.core.dropAll((c) => c.fence());
    this.#h.sessions?.reset();
    this.#h.outbox.clearRoutes();
  }

  async #rejoin(why: string): Promise<void> {
    if (this.#rejoining) return;
    this.#rejoining = true;
    try {
      this.#h.counters.rejoins++;
      this.#h.log.warn({ node: this.#h.options.nodeName, nodeId: this.nid }, `cluster: ${why}; joining again as a new incarnation`);
      this.#joined = false;
      await this.#join();
      this.#beatOkAt = Date.now();
      this.#fencedSelf = false;
      await this.#h.tail.restart(this.nid);
    } finally {
      this.#rejoining = false;
    }
  }

  #lost(): void {
    if (!this.#available || this.#stopping) return;
    this.#available = false;
    this.#h.counters.redisDisconnects++;
    this.#h.log.error(
      { redis: redact(this.#h.options.redis) },
      'cluster: Redis connection lost; acknowledgements are held and new connections refused until it is back',
    );
  }

  #back(): void {
    if (this.#available || this.#stopping || !this.#joined) return;
    this.#connectedAt = Date.now();
    // A heartbeat sent before the outage is answered on the new connection: its clock restarts now.
    this.#beatSentAt = this.#connectedAt;
    this.#available = true;
    this.#h.log.info({ redis: redact(this.#h.options.redis) }, 'cluster: Redis connection restored; resynchronising routes and retained messages');
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
          if (had === 0) await this.#h.announceAll();
          await this.#h.tail.restart(this.nid);
        }
      } catch (err) {
        this.#h.log.warn({ err: String(err) }, 'cluster: resynchronisation failed; retried at the next reconnect or heartbeat');
      }
    })();
  }

  serving(): boolean {
    if (this.#fencedSelf) return false;
    if (this.#joined && !this.#rejoining && Date.now() - this.#beatOkAt > this.#h.options.leaseMs - this.#h.options.heartbeatMs) {
      // Paused, or cut off from Redis, for nearly a lease: the others will declare this node dead
      // (or did) and take its sessions over, so it lets its clients go first (they reconnect
      // elsewhere) and handles nothing more from its inbox (that is replayed elsewhere).
      this.#selfFence('no heartbeat reached Redis for nearly a lease');
      return false;
    }
    return true;
  }
}
