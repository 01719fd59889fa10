/**
 * What a cluster node writes to Redis in one event-loop turn: forward batches (one inbox entry
 * per destination node), retained changes and route changes, sent together at the end of the
 * turn (script calls as single commands in one socket write: calls.ts says why not a pipeline).
 * Every queued write gets a number (`writes`); an acknowledgement that depends on write n waits
 * for `commitPoint(n)`, the promise of the turn's calls that carry it. Every script call carries
 * this incarnation's `pipe:<nid>` key and the next call number, so a call that the Redis client
 * sends again after a reconnect is applied once (scripts.ts, guard).
 */
import type { Redis } from 'ioredis';
import type { Message } from '../core/message.js';
import type { Logger } from '../options.js';
import type { ClusterCounters } from './options.js';
import { corked } from './calls.js';
import { assignGroups, type RouteTable } from './routes.js';
import { MAX_ROUTE_OPS, RETAINED_LOG_MAXLEN, ROUTE_LOG_MAXLEN, type Keys } from './scripts.js';
import { StoredForwards, type StoreAppender } from './stored-forwards.js';
import { BatchWriter, encodeRetained } from './wire.js';

/** The node an outbox writes for. */
export interface OutboxOwner {
  readonly nid: number;
  readonly joined: boolean;
  readonly routes: RouteTable;
  readonly counters: ClusterCounters;
  /** Nodes behind on their inbox: QoS 0 forwards to them are dropped (counted). */
  readonly lagging: ReadonlySet<number>;
  /** Redis refused a write as coming from a node without a lease. */
  fenced(why: string): void;
}

/** The cluster's scripts, each call a single command (calls.ts). */
interface Scripted {
  courierRoutes(...args: Array<string | Buffer | number>): Promise<unknown>;
  courierRetain(...args: Array<string | Buffer | number>): Promise<unknown>;
  courierForward(...args: Array<string | Buffer | number>): Promise<unknown>;
  courierMarks(...args: Array<string | Buffer | number>): Promise<unknown>;
}

export class Outbox {
  readonly #node: OutboxOwner;
  readonly #redis: Redis;
  readonly #keys: Keys;
  readonly #log: Logger;
  /** Route changes not yet written: filter → true (+) / false (-). */
  readonly #routeOps = new Map<string, boolean>();
  /** Forward batches of this turn by destination node. */
  readonly #batches = new Map<number, BatchWriter>();
  readonly #retains: Message[] = [];
  /** Hand-overs waiting for the session store's next commit (see appender), by node and client id. */
  readonly #storedHandovers = new Map<string, BatchWriter>();
  /** Barriers for sessions that moved (move-order.ts), behind this turn's forwards. */
  readonly #marks: Array<{ nid: number; kind: 'b' | 'a' | 'c'; clientId: string; seq: number; as: number; gone: (() => void) | undefined }> = [];
  readonly #groupTurn = new Map<string, number>();
  readonly #groupScratch = new Map<number, string[]>();
  #flushScheduled = false;
  /**
   * Numbers of the script calls sent (scripts.ts, guard): one more per call, in the order they
   * are sent, never reset (a new incarnation has its own key, so it may go on counting).
   */
  #calls = 0;
  /** Writes queued so far (ClusterLink.writes), the last one sent, and the last one Redis accepted. */
  writes = 0;
  #sent = 0;
  #confirmed = 0;
  /** Turns whose calls are in flight, oldest first, each with the last write number it carries. */
  readonly #flights: Array<{ upTo: number; done: Promise<void> }> = [];
  /**
   * Cluster II: the session store, which writes hand-overs and answers to barriers in its own
   * atomic commit, after the writes of the same turn: with the inbox trim of the entries that
   * caused them (a node that dies has either done both or neither), and behind the entries a
   * refused commit redirects to a session's new node (which must arrive first).
   */
  appender: StoreAppender | undefined = undefined;
  /** A client's QoS 2 forwards, written in the session store's commit with its inbound packet id. */
  readonly #storedForwards: StoredForwards;
  /** The promise handed out for writes of this turn, settled by the calls that send them. */
  #next: { promise: Promise<void>; resolve: () => void; reject: (err: unknown) => void } | undefined = undefined;

  constructor(node: OutboxOwner, redis: Redis, keys: Keys, log: Logger) {
    this.#node = node;
    this.#redis = redis;
    this.#keys = keys;
    this.#log = log;
    this.#storedForwards = new StoredForwards(node, keys);
  }

  /** A 0↔1 change of this node's interest in a filter. */
  route(filter: string, on: boolean): void {
    if (this.#routeOps.get(filter) === !on) this.#routeOps.delete(filter);
    else this.#routeOps.set(filter, on);
    this.writes++;
    if (this.#node.joined) this.#schedule();
  }

  /** Route changes not written yet are dropped (the whole set is being announced). */
  clearRoutes(): void {
    this.#routeOps.clear();
  }

  /** Writes `filters` as this node's whole route set (join, lapsed lease), replacing what was there. */
  async announce(filters: readonly string[]): Promise<void> {
    this.#routeOps.clear();
    for (let i = 0; i === 0 || i < filters.length; i += MAX_ROUTE_OPS) {
      const args = this.#routesCall(i === 0);
      for (const f of filters.slice(i, i + MAX_ROUTE_OPS)) args.push('+', f);
      await (this.#redis as unknown as Scripted).courierRoutes(...args);
    }
  }

  /** The head of a ROUTES call (scripts.ts), its number taken; the (op, filter) pairs follow. */
  #routesCall(reset: boolean): Array<string | number> {
    const k = this.#keys;
    const nid = this.#node.nid;
    return [k.node(nid), k.routes(nid), k.rlog, k.pipe(nid), nid, ROUTE_LOG_MAXLEN, reset ? '1' : '0', ++this.#calls];
  }

  /** Sends what is queued and resolves once every call in flight has been answered. */
  async drain(): Promise<void> {
    this.#flush();
    await Promise.all(this.#flights.map((f) => f.done.catch(() => {})));
  }

  /** The session store: hand-overs and answers exist only on nodes that have one (Cluster II). */
  #store(): StoreAppender {
    if (this.appender === undefined) throw new Error('cluster: a hand-over or an answer without a session store');
    return this.appender;
  }

  /**
   * Queues `m` for the session `clientId` on node `nid` only (an `o` inbox entry: a session that
   * moved there), written with the store's commit of this turn; messages handed over until then join it.
   */
  handOver(nid: number, clientId: string, m: Message): void {
    const key = `${nid}\0${clientId}`;
    let w = this.#storedHandovers.get(key);
    if (w === undefined) {
      const entry = (w = new BatchWriter(256));
      this.#storedHandovers.set(key, entry);
      this.#store().append(this.#keys.inbox(nid), () => {
        if (this.#storedHandovers.get(key) === entry) this.#storedHandovers.delete(key);
        return ['o', clientId, 'f', String(this.#node.nid), 'b', entry.finish()];
      });
    }
    w.add(m, true, undefined);
  }

  /**
   * Queues a barrier (`b`) or an answer (`a`) for a moved session to node `nid` (see
   * move-order.ts), from this node or, for a dead node's recovery, `as` that node. `gone` runs
   * when the inbox of `nid` no longer exists (the node left or died: it cannot answer).
   */
  mark(nid: number, kind: 'b' | 'a' | 'c', clientId: string, seq: number, as = this.#node.nid, gone?: () => void): void {
    // An answer goes behind this node's hand-overs and redirects (the store's commits); a
    // barrier or a cut behind this node's forwards (this pipeline).
    if (kind === 'a') {
      this.#store().append(this.#keys.inbox(nid), () => [kind, clientId, 'n', String(as), 's', String(seq)], gone);
      return;
    }
    this.#marks.push({ nid, kind, clientId, seq, as, gone });
    this.writes++;
    this.#schedule();
  }

  /** `destinations` (when given) receives the nodes this message is sent to. */
  forward(m: Message, localGroups: readonly string[] | undefined, destinations?: number[]): readonly string[] | undefined {
    const routes = this.#node.routes;
    if (routes.size === 0) return localGroups;
    const match = routes.match(m.topic);
    const plain = match.plain;
    if (plain.size === 0 && match.groups.size === 0) return localGroups;
    let keep: readonly string[] | undefined = localGroups;
    const assigned = this.#groupScratch;
    // One node per matching group, in turn among the nodes with members (this one included).
    if (match.groups.size > 0) keep = assignGroups(match.groups, localGroups, this.#groupTurn, assigned);
    const lagging = this.#node.lagging;
    // A client's QoS 2 forwards go through the session store when there is one (stored-forwards.ts).
    const store = m.qos === 2 && m.origin !== '' ? this.appender : undefined;
    for (const nid of plain) {
      const groups = assigned.get(nid);
      assigned.delete(nid);
      if (store !== undefined && this.#storedForwards.add(store, m, nid, true, groups)) {
        destinations?.push(nid);
        continue;
      }
      // A node far behind on its inbox gets no QoS 0 (best effort); Redis memory stays bounded.
      if (m.qos === 0 && lagging.size > 0 && lagging.has(nid)) {
        this.#node.counters.forwardsDroppedLagging++;
        continue;
      }
      this.#batch(nid).add(m, true, groups);
      destinations?.push(nid);
    }
    for (const [nid, groups] of assigned) {
      if (m.qos === 0 && lagging.size > 0 && lagging.has(nid)) {
        this.#node.counters.forwardsDroppedLagging++;
        continue;
      }
      if (store !== undefined && this.#storedForwards.add(store, m, nid, false, groups)) {
        destinations?.push(nid);
        continue;
      }
      this.#batch(nid).add(m, false, groups);
      destinations?.push(nid);
    }
    assigned.clear();
    return keep;
  }

  #batch(nid: number): BatchWriter {
    let w = this.#batches.get(nid);
    if (w === undefined) {
      w = new BatchWriter();
      this.#batches.set(nid, w);
    }
    this.#node.counters.forwardedOut++;
    this.writes++;
    this.#schedule();
    return w;
  }

  retain(m: Message): void {
    this.writes++;
    this.#retains.push(m);
    this.#schedule();
  }

  commitPoint(upTo: number): Promise<void> | null {
    if (upTo <= this.#confirmed) return null;
    if (upTo > this.#sent) {
      // Not sent yet: it leaves with the rest of this turn (one write per turn, however many
      // acknowledgements wait for it), and the promise is that of the turn's calls.
      this.#schedule();
      if (this.#next === undefined) {
        let resolve!: () => void;
        let reject!: (err: unknown) => void;
        const promise = new Promise<void>((res, rej) => {
          resolve = res;
          reject = rej;
        });
        this.#next = { promise, resolve, reject };
      }
      return this.#next.promise;
    }
    for (const f of this.#flights) if (f.upTo >= upTo) return f.done;
    return null;
  }

  #schedule(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    process.nextTick(() => this.#flush());
  }

  #flush(): void {
    this.#flushScheduled = false;
    const next = this.#next;
    this.#next = undefined;
    if (!this.#node.joined) {
      next?.resolve();
      return;
    }
    const hasRoutes = this.#routeOps.size > 0;
    const hasRetains = this.#retains.length > 0;
    let hasBatches = false;
    for (const w of this.#batches.values()) if (w.count > 0) hasBatches = true;
    const hasMarks = this.#marks.length > 0;
    if (!hasRoutes && !hasRetains && !hasBatches && !hasMarks) {
      this.#sent = this.writes;
      next?.resolve();
      return;
    }
    const upTo = this.writes;
    this.#sent = upTo;
    const done = corked(this.#redis, () => this.#send(hasRoutes));
    const flight = { upTo, done };
    this.#flights.push(flight);
    const settle = (): void => {
      const i = this.#flights.indexOf(flight);
      if (i >= 0) this.#flights.splice(i, 1);
    };
    done.then(
      () => {
        if (upTo > this.#confirmed) this.#confirmed = upTo;
        settle();
        next?.resolve();
      },
      (err: unknown) => {
        settle();
        next?.reject(err);
        this.#log.error({ err: String(err) }, 'cluster: write to Redis failed');
      },
    );
  }

  /**
   * Issues the turn's script calls, in the order routes, retained changes, forwards, marks;
   * resolves once all are answered, rejects with the first error (FENCED: the node is told).
   */
  #send(hasRoutes: boolean): Promise<void> {
    const k = this.#keys;
    const me = this.#node.nid;
    const pipe = k.pipe(me);
    const r = this.#redis as unknown as Scripted;
    const calls: Array<Promise<unknown>> = [];
    if (hasRoutes) {
      // Routes first: a subscriber's interest is announced before anything that depends on it.
      const ops = [...this.#routeOps];
      this.#routeOps.clear();
      this.#node.counters.routeChanges += ops.length;
      for (let i = 0; i < ops.length; i += MAX_ROUTE_OPS) {
        const args = this.#routesCall(false);
        for (const [filter, on] of ops.slice(i, i + MAX_ROUTE_OPS)) args.push(on ? '+' : '-', filter);
        calls.push(r.courierRoutes(...args));
      }
    }
    for (const m of this.#retains) {
      this.#node.counters.retainedChanges++;
      const retained = m.payload.length === 0 ? '' : encodeRetained(m);
      calls.push(r.courierRetain(k.ret, k.retVer, k.retLog, k.dead(me), pipe, m.topic, retained, RETAINED_LOG_MAXLEN, ++this.#calls));
    }
    this.#retains.length = 0;
    // One atomic call for every destination: a node that received a message of this turn from
    // here can tell (from the destination list) which other nodes got it in the same step.
    const forward: Array<string | Buffer | number> = [k.dead(me), pipe, String(me), '', k.inboxPrefix, k.movedPrefix, 0];
    const counts: number[] = [];
    const dests: number[] = [];
    for (const [nid, w] of this.#batches) {
      if (w.count === 0) continue;
      this.#node.counters.forwardBatches++;
      forward.push(nid, w.finish());
      counts.push(w.count);
      dests.push(nid);
      w.reset();
    }
    if (dests.length > 0) {
      forward[3] = dests.join(',');
      forward[6] = ++this.#calls;
      calls.push(
        r.courierForward(...forward).then((reply) => {
          // Per destination: 0 = its inbox is gone (it left or died, and nobody adopted its sessions).
          if (Array.isArray(reply))
            counts.forEach((count, j) => {
              if (reply[j] === 0) this.#node.counters.forwardsToGoneNodes += count;
            });
        }),
      );
    }
    // Barriers and cuts: behind this turn's forwards, in one call.
    if (this.#marks.length > 0) {
      const args: Array<string | number> = [k.dead(me), pipe, ++this.#calls];
      const gone: Array<(() => void) | undefined> = [];
      for (const m of this.#marks) {
        args.push(k.inbox(m.nid), m.kind, m.clientId, String(m.as), String(m.seq));
        gone.push(m.gone);
      }
      this.#marks.length = 0;
      calls.push(
        r.courierMarks(...args).then((reply) => {
          // Per mark: 0 = no inbox, no entry.
          if (Array.isArray(reply)) for (let j = 0; j < gone.length; j++) if (reply[j] === 0) gone[j]?.();
        }),
      );
    }
    const fenced = (err: unknown): never => {
      // Nothing that depended on this turn's writes is acknowledged.
      if (err instanceof Error && /FENCED/.test(err.message)) this.#node.fenced(`Redis refused a write of this node (${err.message})`);
      throw err;
    };
    return Promise.all(calls).then(() => {}, fenced);
  }
}
