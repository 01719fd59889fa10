/**
 * A session: subscriptions and the outbound QoS 1/2 state of one client id, which outlive the
 * network connection (MQTT 5.0 §4.1). The connection currently attached is an `Outlet`; while
 * none is, QoS 1/2 messages queue up to the configured limits and QoS 0 messages are dropped.
 *
 * Outbound flow: deliver() → queue → (window open) → packet id assigned, PUBLISH sent, entry
 * in flight → PUBACK, or PUBREC → PUBREL → PUBCOMP, frees the id and the window slot.
 *
 * This file holds the class and the delivery path; the queue's limits, byte accounting and
 * expiry are in session-queue.ts, the cluster's hold in session-hold.ts, and the types a session
 * is given and keeps in session-types.ts (re-exported here).
 */
import type { QoS } from '../protocol/constants.js';
import { detach as detachMessage, isExpired, messageBytes, type Message } from './message.js';
import { holdOverflows, releaseHold, startHold, type Hold } from './session-hold.js';
import { dropExpiredEntries, enqueue, NO_QUEUE, queuedExpiry, unqueued } from './session-queue.js';
import type { Journal, Outbound, Outlet, SessionEnv, SharedGroup, Subscription, Will } from './session-types.js';

export type { DeliveryCounters, Journal, Outbound, Outlet, QueueBudget, SessionEnv, SessionHost, SharedGroup, Subscription, Will } from './session-types.js';

/** Shared by every empty session: the maps below are created on first use (an idle session holds none). */
const NO_SUBSCRIPTIONS: ReadonlyMap<string, Subscription> = new Map();
const NO_INFLIGHT: ReadonlyMap<number, Outbound> = new Map();
const NO_IDS: ReadonlySet<number> = new Set();

export class Session {
  readonly clientId: string;
  /** Seconds; 0xFFFFFFFF = never. */
  expiryInterval = 0;
  outlet: Outlet | undefined = undefined;
  /** Will of the connection attached now (published if it ends abnormally). */
  will: Will | undefined = undefined;
  /** Will of the ended connection while its delay runs (MQTT 5.0 §3.1.3.2.2). */
  pendingWill: Will | undefined = undefined;
  journal: Journal | undefined = undefined;
  /** A record of this session is in the store. */
  stored = false;
  /** In a cluster: the fencing token of the claim this node holds the session by (Cluster II). */
  claimToken: string | undefined = undefined;
  /** Place and time on the core's deadline heap: the earliest of will delay and expiry (offline) and queued-message expiry (see deadlines.ts). */
  deadlineIndex = -1;
  deadlineAt = 0;
  /**
   * Earliest Message Expiry (epoch ms) among queued entries, 0 = none. It may be early (the
   * entry left the queue since): the purge at that deadline recomputes it.
   */
  queueExpiresAt = 0;
  /** Epoch ms at which the last connection ended; undefined while one is attached. */
  disconnectedAt: number | undefined = undefined;
  owner: string | undefined = undefined;
  /** Routing scratch of BrokerCore.publish: the pass that last reached this session, and its hit. */
  routeMark = 0;
  routeHit = 0;
  /** Created on first use (see NO_SUBSCRIPTIONS). */
  #subscriptions: Map<string, Subscription> | undefined = undefined;
  #inboundQos2: Set<number> | undefined = undefined;
  #inflight: Map<number, Outbound> | undefined = undefined;
  #nextId = 1;

  // Internal to the session's modules (session-queue.ts, session-hold.ts: plain functions of the
  // session, which JS #private fields would not let them reach); the rest of the broker uses
  // only the members above and the methods below.
  /** What every session of a broker shares (one field instead of four per session). */
  readonly env: SessionEnv;
  /** The queue, from `head` on (what is before it has been sent or dropped). */
  queue: Outbound[] = NO_QUEUE;
  head = 0;
  /** Bytes of what is queued and held (`queuedBytes`). */
  queueBytes = 0;
  /**
   * Cluster: while set, QoS 1/2 messages routed here directly wait in its list (journaled and
   * counted as queued, not sent) behind what the session's previous node still hands back, which
   * goes to the queue ahead of them (deliverBack); release() appends them. See ClusterSessions.
   */
  currentHold: Hold | undefined = undefined;

  constructor(clientId: string, env: SessionEnv) {
    this.clientId = clientId;
    this.env = env;
  }

  /** Subscriptions by filter. */
  get subscriptions(): ReadonlyMap<string, Subscription> {
    return this.#subscriptions ?? NO_SUBSCRIPTIONS;
  }

  setSubscription(sub: Subscription): void {
    (this.#subscriptions ??= new Map()).set(sub.filter, sub);
  }

  deleteSubscription(filter: string): boolean {
    const subs = this.#subscriptions;
    if (subs === undefined || !subs.delete(filter)) return false;
    if (subs.size === 0) this.#subscriptions = undefined;
    return true;
  }

  /** Inbound QoS 2 packet ids received, PUBREC sent, PUBREL not yet received. */
  get inboundQos2(): ReadonlySet<number> {
    return this.#inboundQos2 ?? NO_IDS;
  }

  addInbound(packetId: number): void {
    (this.#inboundQos2 ??= new Set()).add(packetId);
  }

  deleteInbound(packetId: number): boolean {
    const ids = this.#inboundQos2;
    if (ids === undefined || !ids.delete(packetId)) return false;
    if (ids.size === 0) this.#inboundQos2 = undefined;
    return true;
  }

  /** Outbound messages in flight, by packet id, in send order. */
  get inflight(): ReadonlyMap<number, Outbound> {
    return this.#inflight ?? NO_INFLIGHT;
  }

  #inflightCount(): number {
    return this.#inflight === undefined ? 0 : this.#inflight.size;
  }

  get queued(): number {
    return this.queue.length - this.head + (this.currentHold === undefined ? 0 : this.currentHold.entries.length);
  }

  get queuedBytes(): number {
    return this.queueBytes;
  }

  /** Routes one message to this session at the given QoS. */
  deliver(m: Message, qos: QoS, retain: boolean, subscriptionIds: number[] | undefined, group?: SharedGroup): void {
    const outlet = this.outlet;
    if (qos === 0) {
      if (outlet === undefined) return;
      if (outlet.congested()) {
        this.env.counters.droppedQos0++;
        return;
      }
      if (!outlet.sendPublish(m, 0, retain, 0, false, subscriptionIds)) this.env.counters.droppedTooLarge++;
      return;
    }
    const entry: Outbound = { message: m, group, seq: 0, qos, retain, subscriptionIds, packetId: 0, released: false };
    // Held behind what the previous node hands back (shared subscriptions are not handed back).
    if (this.currentHold !== undefined && group === undefined && !holdOverflows(this)) enqueue(this, entry, this.currentHold.entries);
    else if (outlet !== undefined && this.queued === 0 && this.#inflightCount() < outlet.sendQuota) {
      // Journaled once, with its packet id, by #send.
      this.#send(outlet, entry);
    } else enqueue(this, entry, undefined);
  }

  /**
   * A message the session's previous node handed back (cluster): older than anything routed
   * here directly since the session came, so it goes ahead of what is held.
   */
  deliverBack(m: Message, qos: QoS, retain: boolean, subscriptionIds: number[] | undefined): void {
    const hold = this.currentHold;
    if (hold === undefined || qos === 0) {
      this.deliver(m, qos, retain, subscriptionIds);
      return;
    }
    const entry: Outbound = { message: m, group: undefined, seq: 0, qos, retain, subscriptionIds, packetId: 0, released: false };
    // Stored with a position below the held entries' keys (set aside at the hold's start): a node
    // this session moves to before it sends them loads them in this order too.
    if (hold.back < hold.backEnd) entry.order = hold.back++;
    const outlet = this.outlet;
    if (outlet !== undefined && this.queue.length === this.head && this.#inflightCount() < outlet.sendQuota) this.#send(outlet, entry);
    else enqueue(this, entry, undefined);
  }

  /**
   * Starts holding direct deliveries (see currentHold); `overflow` runs if the session lets go by
   * itself (session-hold.ts).
   */
  hold(overflow?: () => void): void {
    startHold(this, overflow);
  }

  get holding(): boolean {
    return this.currentHold !== undefined;
  }

  /** Stops holding: what was held joins the queue behind what was handed back, and is sent as the window allows. */
  release(now: number): void {
    releaseHold(this, now);
  }

  /** Restores an outbound entry loaded from the store (in flight when it has a packet id). */
  restore(entry: Outbound): void {
    if (entry.packetId !== 0) {
      (this.#inflight ??= new Map()).set(entry.packetId, entry);
      if (entry.packetId >= this.#nextId) this.#nextId = entry.packetId === 0xffff ? 1 : entry.packetId + 1;
    } else {
      if (this.queue === NO_QUEUE) this.queue = [];
      this.queue.push(entry);
      const size = messageBytes(entry.message);
      this.queueBytes += size;
      this.env.budget.used += size;
      queuedExpiry(this, entry.message.expiresAt);
    }
  }

  #send(outlet: Outlet, entry: Outbound): void {
    const id = this.#allocateId();
    entry.packetId = id;
    (this.#inflight ??= new Map()).set(id, entry);
    // The packet id is journaled before the PUBLISH is written, so the PUBLISH leaves after its commit.
    this.journal?.updated(this, entry);
    if (!outlet.sendPublish(entry.message, entry.qos, entry.retain, id, false, entry.subscriptionIds)) {
      // [MQTT-3.1.2-25] discarded as if delivered.
      this.#inflight!.delete(id);
      this.env.counters.droppedTooLarge++;
      this.journal?.removed(this, entry);
    }
  }

  #allocateId(): number {
    let id = this.#nextId;
    const inflight = this.#inflight;
    while (inflight !== undefined && inflight.has(id)) id = id === 0xffff ? 1 : id + 1;
    this.#nextId = id === 0xffff ? 1 : id + 1;
    return id;
  }

  /** Sends queued messages while the window allows. */
  drain(now: number): void {
    const outlet = this.outlet;
    if (outlet === undefined) return;
    while (this.head < this.queue.length && this.#inflightCount() < outlet.sendQuota) {
      const entry = this.queue[this.head]!;
      this.queue[this.head++] = undefined as unknown as Outbound;
      unqueued(this, entry);
      // [MQTT-3.3.2-5] an expired message that has not started onward delivery is discarded.
      if (isExpired(entry.message, now)) {
        this.env.counters.droppedExpired++;
        this.journal?.removed(this, entry);
        continue;
      }
      this.#send(outlet, entry);
    }
    if (this.head === this.queue.length) {
      this.queue = NO_QUEUE;
      this.head = 0;
      this.queueExpiresAt = 0;
    } else if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }

  /** PUBACK (QoS 1) or PUBCOMP (QoS 2): the message is done. Returns false for an unknown id. */
  complete(packetId: number, now: number): boolean {
    const entry = this.#inflight?.get(packetId);
    if (entry === undefined) return false;
    this.#inflight!.delete(packetId);
    this.journal?.removed(this, entry);
    this.drain(now);
    return true;
  }

  /** PUBREC: the receiver has the message; PUBREL follows. `failed` (v5 reason ≥ 0x80) ends the exchange. */
  received(packetId: number, failed: boolean, now: number): boolean {
    const entry = this.#inflight?.get(packetId);
    if (entry === undefined || entry.qos !== 2) return false;
    if (failed) {
      this.#inflight!.delete(packetId);
      this.journal?.removed(this, entry);
      this.drain(now);
      return true;
    }
    if (!entry.released) {
      entry.released = true;
      this.journal?.updated(this, entry);
    }
    this.outlet?.sendPubrel(packetId);
    return true;
  }

  /** A connection takes this session: resend what is in flight [MQTT-4.4.0-1], then drain the queue. */
  attach(outlet: Outlet, now: number): void {
    this.outlet = outlet;
    this.disconnectedAt = undefined;
    for (const [id, entry] of this.inflight) {
      if (entry.released) outlet.sendPubrel(id);
      else if (!outlet.sendPublish(entry.message, entry.qos, entry.retain, id, true, entry.subscriptionIds)) {
        this.#inflight!.delete(id);
        this.env.counters.droppedTooLarge++;
        this.journal?.removed(this, entry);
      }
    }
    this.drain(now);
    if (this.queueExpiresAt !== 0) this.env.host.reschedule(this);
  }

  detach(now: number): void {
    this.outlet = undefined;
    this.disconnectedAt = now;
    // What is in flight waits for the client's return: only its own bytes (message.ts detach).
    if (this.#inflight !== undefined) for (const e of this.#inflight.values()) detachMessage(e.message);
  }

  /** Drops queued messages whose Message Expiry has passed [MQTT-3.3.2-5] (session-queue.ts). */
  dropExpired(now: number): void {
    dropExpiredEntries(this, now);
  }

  /** Every outbound entry (in flight, then queued), e.g. to release them when the session ends. */
  *entries(): IterableIterator<Outbound> {
    yield* this.inflight.values();
    for (let i = this.head; i < this.queue.length; i++) yield this.queue[i]!;
    if (this.currentHold !== undefined) yield* this.currentHold.entries;
  }

  /**
   * Removes and returns the shared-subscription entries another member may take over: QoS 1 in
   * flight and anything still queued. A QoS 2 message whose delivery has begun stays with this
   * client [MQTT-4.8.2-4], [MQTT-4.8.2-5].
   */
  takeShared(): Outbound[] {
    const out: Outbound[] = [];
    for (const [id, e] of this.inflight) {
      if (e.group !== undefined && e.qos === 1) {
        this.#inflight!.delete(id);
        this.journal?.removed(this, e);
        out.push(e);
      }
    }
    let kept: Outbound[] | undefined;
    for (let i = this.head; i < this.queue.length; i++) {
      const e = this.queue[i]!;
      if (e.group !== undefined) {
        unqueued(this, e);
        this.journal?.removed(this, e);
        out.push(e);
        kept ??= this.queue.slice(this.head, i);
      } else if (kept !== undefined) kept.push(e);
    }
    if (kept !== undefined) {
      this.queue = kept;
      this.head = 0;
    }
    return out;
  }

  /** The session ends: its queue is dropped and no longer counts against the shared budget. */
  discard(): void {
    this.env.budget.used -= this.queueBytes;
    this.queueBytes = 0;
    this.queue = NO_QUEUE;
    this.head = 0;
    this.currentHold = undefined;
    this.#inflight = undefined;
    this.queueExpiresAt = 0;
  }
}
