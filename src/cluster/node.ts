/**
 * One node of a Courier cluster on Redis: membership (incarnation, lease, heartbeat, dead-node
 * janitor: membership.ts, its Redis side in lease.ts), the replicated route table, forwarding of
 * messages to other nodes' inboxes (one stream entry per destination and event-loop turn:
 * outbox.ts) and cluster-wide retained messages with read-your-writes. Implements the core's
 * ClusterLink, mostly by handing each call to the part that does it; the core never waits for
 * Redis except through `commitPoint()`, which gates acknowledgements as the store does.
 */
import type { Redis } from 'ioredis';
import { newRedis } from './ioredis.js';
import type { ClusterLink } from '../core/cluster-link.js';
import type { Message } from '../core/message.js';
import type { Logger } from '../options.js';
import { Membership } from './membership.js';
import { Outbox } from './outbox.js';
import { RouteTable } from './routes.js';
import { defineScripts, keys, type Keys } from './scripts.js';
import { newClusterCounters, type ClusterCounters, type ClusterOptions, type ClusterStats } from './options.js';
import { Tail, type ClusterCore } from './tail.js';
import type { LiveConnection } from '../core/broker-core.js';
import type { SessionClaim } from '../core/cluster-link.js';
import { ClusterSessions, type SessionCore } from './sessions.js';
import type { RedisStore } from './redis-store.js';

export { ClusterError, redact } from './lease.js';

/** What a node needs of the broker core. */
export type NodeCore = ClusterCore &
  SessionCore & {
    /** Every session dropped, connections closed (the node fenced itself). */
    dropAll(close: (c: LiveConnection) => void): void;
  };

export class ClusterNode implements ClusterLink {
  readonly options: ClusterOptions;
  readonly keys: Keys;
  readonly routes = new RouteTable();
  readonly counters: ClusterCounters = newClusterCounters();
  /** Persistent sessions in Redis, taken over across nodes (present when the node has a RedisStore). */
  readonly sessions: ClusterSessions | undefined;
  readonly #redis: Redis;
  readonly #tail: Tail;
  /** This node's interest: filter → local references (sessions / group members). */
  readonly #interest = new Map<string, number>();
  readonly #outbox: Outbox;
  readonly #membership: Membership;
  readonly #core: NodeCore;
  readonly #store: RedisStore | undefined;
  /** Interest collected instead of announced (the route switch of a recovery, see sessions.ts). */
  #collecting = false;
  readonly #collected = new Set<string>();

  constructor(options: ClusterOptions, core: NodeCore, log: Logger, localStats: () => Record<string, number>, store?: RedisStore) {
    this.options = options;
    this.keys = keys(options.prefix);
    this.#core = core;
    this.#store = store;
    this.#redis = newRedis(options.redis, {
      lazyConnect: true,
      // Commands wait for a reconnect instead of failing: acknowledgements are withheld meanwhile.
      maxRetriesPerRequest: null,
      retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
      connectionName: `courier:${options.nodeName}`,
    });
    defineScripts(this.#redis);
    this.#tail = new Tail(this, options, core, log, this.keys);
    this.#outbox = new Outbox(this, this.#redis, this.keys, log);
    if (store !== undefined) {
      this.#outbox.appender = store;
      this.sessions = new ClusterSessions(this, store, this.keys, log, options.leaseMs);
      this.sessions.attach(core);
    }
    this.#membership = new Membership({
      options,
      keys: this.keys,
      redis: this.#redis,
      counters: this.counters,
      log,
      core,
      tail: this.#tail,
      outbox: this.#outbox,
      sessions: this.sessions,
      localStats,
      announceAll: () => this.#outbox.announce([...this.#interest.keys()]),
    });
  }

  /** The Redis connection for commands (the tail has its own for blocking reads). */
  get redis(): Redis {
    return this.#redis;
  }

  // ---------------------------------------------------------------------------------------------
  // Membership (membership.ts)

  /** Current incarnation (0 before joining). */
  get nid(): number {
    return this.#membership.nid;
  }

  /** Nodes whose inbox holds more than `inboxSoftLimit` unread entries (as of the last heartbeat). */
  get lagging(): ReadonlySet<number> {
    return this.#membership.lagging;
  }

  /** Redis reachable and this node a member in good standing (CONNECTs are accepted). */
  get available(): boolean {
    return this.#membership.available;
  }

  get joined(): boolean {
    return this.#membership.joined;
  }

  /** This incarnation may act for its sessions: joined and not fenced (SessionsOwner.standing). */
  get standing(): boolean {
    return this.#membership.standing;
  }

  /** Connects, checks Redis's settings, joins as a new incarnation and loads routes and retained messages. */
  start(): Promise<void> {
    return this.#membership.start();
  }

  /** Stops forwarding and heartbeats and removes this incarnation's routes and lease (graceful leave). */
  stop(): Promise<void> {
    return this.#membership.stop();
  }

  /** Redis refused a write as coming from a node without a lease, or declared dead. */
  fenced(why: string): void {
    this.#membership.fenced(why);
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
    return this.#membership.serving();
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
      available: this.#membership.reachable,
      nodes: Math.max(this.#membership.liveNodes, 1),
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
      totals: { ...this.#membership.totals },
    };
  }
}
