/**
 * A session: subscriptions and the outbound QoS 1/2 state of one client id, which outlive the
 * network connection (MQTT 5.0 §4.1). The connection currently attached is an `Outlet`; while
 * none is, QoS 1/2 messages queue up to the configured limits and QoS 0 messages are dropped.
 *
 * Outbound flow: deliver() → queue → (window open) → packet id assigned, PUBLISH sent, entry
 * in flight → PUBACK, or PUBREC → PUBREL → PUBCOMP, frees the id and the window slot.
 */
import type { ProtocolVersion, QoS } from '../protocol/constants.js';
import type { SessionLimits } from '../options.js';
import { detach as detachMessage, isExpired, messageBytes, type Message } from './message.js';

/** The connection side, as the session sees it. */
export interface Outlet {
  readonly version: ProtocolVersion;
  /** How many QoS 1/2 PUBLISHes may be unacknowledged at once (the client's Receive Maximum, capped). */
  readonly sendQuota: number;
  /** True when the socket is backed up beyond its limit; QoS 0 messages are dropped then. */
  congested(): boolean;
  /** Writes a PUBLISH; false when it was discarded (larger than the client's Maximum Packet Size). */
  sendPublish(m: Message, qos: QoS, retain: boolean, packetId: number, dup: boolean, subscriptionIds: number[] | undefined): boolean;
  sendPubrel(packetId: number): void;
  /**
   * A QoS 1/2 message for this session was not queued (queue full, or the store's budget): for
   * outlets that count their own drops (a bridge). Called on the drop paths only.
   */
  dropped?(why: 'queue-full' | 'budget'): void;
}

export interface Subscription {
  readonly filter: string;
  readonly qos: QoS;
  readonly noLocal: boolean;
  readonly retainAsPublished: boolean;
  readonly retainHandling: 0 | 1 | 2;
  readonly subscriptionId: number | undefined;
}

/** A shared subscription group (`$share/{group}/{filter}`) and its members by client id. */
export interface SharedGroup {
  readonly group: string;
  readonly filter: string;
  readonly members: Map<string, Subscription>;
  /** Members in subscription order (round-robin walks it). */
  readonly order: string[];
  cursor: number;
  sticky: string | undefined;
}

export interface Outbound {
  readonly message: Message;
  /** Set when delivered through a shared subscription (redistributed if this member drops). */
  readonly group?: SharedGroup | undefined;
  /** Store key (order of the session's queue); 0 while not journaled. */
  seq: number;
  /** The key it was written under. */
  seqWritten?: number;
  /** 0 not journaled, 1 journaled but not yet written, 2 written referencing a stored message, 3 written with the message inline. */
  journaled?: 0 | 1 | 2 | 3;
  /**
   * Where it stands in the stored queue when that is not its key: handed back while the session
   * held later messages (see Session.hold). Keys only grow in the order of writing (the cluster's
   * store tells a fenced node's new entries by their key), so the order is kept beside the key.
   */
  order?: number;
  readonly qos: QoS;
  readonly retain: boolean;
  readonly subscriptionIds: number[] | undefined;
  /** 0 until sent. */
  packetId: number;
  /** PUBREC received, PUBREL sent; waiting for PUBCOMP. */
  released: boolean;
}

export interface Will {
  readonly message: Message;
  readonly delaySeconds: number;
}

/** Persistence of a session's outbound entries (set by the core for sessions that outlive their connection). */
export interface Journal {
  added(session: Session, entry: Outbound): void;
  updated(session: Session, entry: Outbound): void;
  removed(session: Session, entry: Outbound): void;
  /**
   * Sets aside `count` numbers below every key `added` gives from now on and returns the first:
   * queue positions (`Outbound.order`) for what is handed back while a session holds.
   */
  reserve?(count: number): number;
}

/** A session's hold (see Session.hold). */
interface Hold {
  /** The direct deliveries held, in order. */
  readonly entries: Outbound[];
  overflow: (() => void) | undefined;
  /**
   * Queue positions set aside when the hold began (Journal.reserve), for what is handed back
   * meanwhile (older than anything held): the next one, and the end of the block (exclusive; 0: none).
   */
  back: number;
  readonly backEnd: number;
}

/** The session's owner (one object for all sessions): told when the session's next deadline may have moved earlier. */
export interface SessionHost {
  reschedule(session: Session): void;
}

/** What all sessions of one broker share: limits, the queue budget, delivery counters, their owner. */
export interface SessionEnv {
  readonly limits: SessionLimits;
  readonly budget: QueueBudget;
  readonly counters: DeliveryCounters;
  readonly host: SessionHost;
}

/** Queued bytes across all sessions, shared; `max` 0 = unlimited. */
export interface QueueBudget {
  used: number;
  max: number;
  /** Messages dropped because the budget was reached. */
  dropped: number;
}

/** Delivery outcomes across all sessions (shared by every session of a broker; in `broker.stats()`). */
export interface DeliveryCounters {
  /** QoS 0 messages dropped because the client's socket was backed up. */
  droppedQos0: number;
  /** QoS 1/2 messages dropped because the session queue was full. */
  droppedQueueFull: number;
  /** Messages that expired before delivery [MQTT-3.3.2-5]. */
  droppedExpired: number;
  /** Messages discarded because they exceeded the client's Maximum Packet Size [MQTT-3.1.2-25]. */
  droppedTooLarge: number;
}

/** Shared by every empty session: the maps below are created on first use (an idle session holds none). */
const NO_SUBSCRIPTIONS: ReadonlyMap<string, Subscription> = new Map();
const NO_INFLIGHT: ReadonlyMap<number, Outbound> = new Map();
const NO_IDS: ReadonlySet<number> = new Set();
/** The queue of every session with nothing queued (frozen: a push must replace it first). */
const NO_QUEUE: Outbound[] = Object.freeze([]) as unknown as Outbound[];

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

  /** What every session of a broker shares (one field instead of four per session). */
  readonly #env: SessionEnv;
  #queue: Outbound[] = NO_QUEUE;
  #head = 0;
  /**
   * Cluster: while set, QoS 1/2 messages routed here directly wait in its list (journaled and
   * counted as queued, not sent) behind what the session's previous node still hands back, which
   * goes to the queue ahead of them (deliverBack); release() appends them. See ClusterSessions.
   */
  #hold: Hold | undefined = undefined;
  #queuedBytes = 0;
  #nextId = 1;

  constructor(clientId: string, env: SessionEnv) {
    this.clientId = clientId;
    this.#env = env;
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
    return this.#queue.length - this.#head + (this.#hold === undefined ? 0 : this.#hold.entries.length);
  }

  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  /** Routes one message to this session at the given QoS. */
  deliver(m: Message, qos: QoS, retain: boolean, subscriptionIds: number[] | undefined, group?: SharedGroup): void {
    const outlet = this.outlet;
    if (qos === 0) {
      if (outlet === undefined) return;
      if (outlet.congested()) {
        this.#env.counters.droppedQos0++;
        return;
      }
      if (!outlet.sendPublish(m, 0, retain, 0, false, subscriptionIds)) this.#env.counters.droppedTooLarge++;
      return;
    }
    const entry: Outbound = { message: m, group, seq: 0, qos, retain, subscriptionIds, packetId: 0, released: false };
    // Held behind what the previous node hands back (shared subscriptions are not handed back).
    if (this.#hold !== undefined && group === undefined && !this.#holdOverflows()) this.#enqueue(entry, this.#hold.entries);
    else if (outlet !== undefined && this.queued === 0 && this.#inflightCount() < outlet.sendQuota) {
      // Journaled once, with its packet id, by #send.
      this.#send(outlet, entry);
    } else this.#enqueue(entry, undefined);
  }

  /**
   * A message the session's previous node handed back (cluster): older than anything routed
   * here directly since the session came, so it goes ahead of what is held.
   */
  deliverBack(m: Message, qos: QoS, retain: boolean, subscriptionIds: number[] | undefined): void {
    const hold = this.#hold;
    if (hold === undefined || qos === 0) {
      this.deliver(m, qos, retain, subscriptionIds);
      return;
    }
    const entry: Outbound = { message: m, group: undefined, seq: 0, qos, retain, subscriptionIds, packetId: 0, released: false };
    // Stored with a position below the held entries' keys (set aside at the hold's start): a node
    // this session moves to before it sends them loads them in this order too.
    if (hold.back < hold.backEnd) entry.order = hold.back++;
    const outlet = this.outlet;
    if (outlet !== undefined && this.#queue.length === this.#head && this.#inflightCount() < outlet.sendQuota) this.#send(outlet, entry);
    else this.#enqueue(entry, undefined);
  }

  /**
   * Starts holding direct deliveries (see #hold). `overflow` runs when the session lets go by
   * itself: holding must never be why a message is dropped, so once the session's queue is half
   * full (count or bytes) what is held joins the queue and order becomes best effort (the other
   * half stays for what is handed back, which is older).
   */
  hold(overflow?: () => void): void {
    if (this.#hold !== undefined) {
      this.#hold.overflow = overflow;
      return;
    }
    // Positions for what is handed back while holding: at most a queue's worth (the hold lets go at half).
    const count = this.#env.limits.maxQueuedMessages;
    const back = this.journal?.reserve?.(count) ?? 0;
    this.#hold = { entries: [], overflow, back, backEnd: back === 0 ? 0 : back + count };
  }

  /** Whether the hold just ended because the queue is half full (see hold). */
  #holdOverflows(): boolean {
    const limits = this.#env.limits;
    if (this.queued * 2 < limits.maxQueuedMessages && this.#queuedBytes * 2 < limits.maxQueuedBytes) return false;
    const overflow = this.#hold?.overflow;
    this.release(Date.now());
    overflow?.();
    return true;
  }

  get holding(): boolean {
    return this.#hold !== undefined;
  }

  /** Stops holding: what was held joins the queue behind what was handed back, and is sent as the window allows. */
  release(now: number): void {
    const hold = this.#hold;
    if (hold === undefined) return;
    this.#hold = undefined;
    const held = hold.entries;
    if (held.length === 0) return;
    if (this.#queue === NO_QUEUE) this.#queue = [];
    let earlier = false;
    // Not journaled again behind what was handed back meanwhile: a commit of that refused by a
    // newer claim would hand the entries to the claimant as new while it loaded them already
    // (QoS 2 duplicates in the --workers soak). What was handed back meanwhile is stored with
    // a position below their keys (see hold), so the stored order is this order.
    for (const e of held) {
      this.#queue.push(e);
      if (this.#queuedExpiry(e.message.expiresAt)) earlier = true;
    }
    if (earlier) this.#env.host.reschedule(this);
    this.drain(now);
  }

  /** Restores an outbound entry loaded from the store (in flight when it has a packet id). */
  restore(entry: Outbound): void {
    if (entry.packetId !== 0) {
      (this.#inflight ??= new Map()).set(entry.packetId, entry);
      if (entry.packetId >= this.#nextId) this.#nextId = entry.packetId === 0xffff ? 1 : entry.packetId + 1;
    } else {
      if (this.#queue === NO_QUEUE) this.#queue = [];
      this.#queue.push(entry);
      const size = messageBytes(entry.message);
      this.#queuedBytes += size;
      this.#env.budget.used += size;
      this.#queuedExpiry(entry.message.expiresAt);
    }
  }

  /** A message with this expiry joined the queue; true when it is now the earliest. */
  #queuedExpiry(expiresAt: number): boolean {
    if (expiresAt === 0 || (this.queueExpiresAt !== 0 && this.queueExpiresAt <= expiresAt)) return false;
    this.queueExpiresAt = expiresAt;
    return true;
  }

  #unqueued(entry: Outbound): void {
    const size = messageBytes(entry.message);
    this.#queuedBytes -= size;
    this.#env.budget.used -= size;
  }

  /** Queues `entry` (into `held` when given, see #hold), within the session's and the broker's limits. */
  #enqueue(entry: Outbound, held: Outbound[] | undefined): void {
    const limits = this.#env.limits;
    const size = messageBytes(entry.message);
    const budget = this.#env.budget;
    if (budget.max > 0 && budget.used + size > budget.max) {
      budget.dropped++;
      this.outlet?.dropped?.('budget');
      return;
    }
    while (this.queued >= limits.maxQueuedMessages || this.#queuedBytes + size > limits.maxQueuedBytes) {
      if (limits.queueFullPolicy === 'drop-oldest' && this.#queue.length > this.#head) {
        const old = this.#queue[this.#head]!;
        this.#queue[this.#head++] = undefined as unknown as Outbound;
        this.#unqueued(old);
        this.#env.counters.droppedQueueFull++;
        this.outlet?.dropped?.('queue-full');
        this.journal?.removed(this, old);
      } else {
        this.#env.counters.droppedQueueFull++;
        this.outlet?.dropped?.('queue-full');
        return;
      }
    }
    // Kept until the window opens or the client returns: only its own bytes (message.ts detach).
    detachMessage(entry.message);
    if (held !== undefined) held.push(entry);
    else {
      if (this.#queue === NO_QUEUE) this.#queue = [];
      this.#queue.push(entry);
    }
    this.#queuedBytes += size;
    budget.used += size;
    this.journal?.added(this, entry);
    // Expired messages leave the queue at their deadline, not at the next drain: they must not
    // hold the queue's room (or the store's) from live ones while the client is away.
    if (this.#queuedExpiry(entry.message.expiresAt)) this.#env.host.reschedule(this);
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
      this.#env.counters.droppedTooLarge++;
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
    while (this.#head < this.#queue.length && this.#inflightCount() < outlet.sendQuota) {
      const entry = this.#queue[this.#head]!;
      this.#queue[this.#head++] = undefined as unknown as Outbound;
      this.#unqueued(entry);
      // [MQTT-3.3.2-5] an expired message that has not started onward delivery is discarded.
      if (isExpired(entry.message, now)) {
        this.#env.counters.droppedExpired++;
        this.journal?.removed(this, entry);
        continue;
      }
      this.#send(outlet, entry);
    }
    if (this.#head === this.#queue.length) {
      this.#queue = NO_QUEUE;
      this.#head = 0;
      this.queueExpiresAt = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
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
        this.#env.counters.droppedTooLarge++;
        this.journal?.removed(this, entry);
      }
    }
    this.drain(now);
    if (this.queueExpiresAt !== 0) this.#env.host.reschedule(this);
  }

  detach(now: number): void {
    this.outlet = undefined;
    this.disconnectedAt = now;
    // What is in flight waits for the client's return: only its own bytes (message.ts detach).
    if (this.#inflight !== undefined) for (const e of this.#inflight.values()) detachMessage(e.message);
  }

  /**
   * Drops queued messages whose Message Expiry has passed [MQTT-3.3.2-5]; one in flight stays
   * (its delivery has begun). Recomputes `queueExpiresAt`.
   */
  dropExpired(now: number): void {
    const queue = this.#queue;
    let next = 0;
    let kept: Outbound[] | undefined;
    for (let i = this.#head; i < queue.length; i++) {
      const e = queue[i]!;
      const at = e.message.expiresAt;
      if (at !== 0 && at <= now) {
        this.#unqueued(e);
        this.#env.counters.droppedExpired++;
        this.journal?.removed(this, e);
        kept ??= queue.slice(this.#head, i);
        continue;
      }
      if (at !== 0 && (next === 0 || at < next)) next = at;
      if (kept !== undefined) kept.push(e);
    }
    if (kept !== undefined) {
      this.#queue = kept;
      this.#head = 0;
    }
    this.queueExpiresAt = next;
  }

  /** Every outbound entry (in flight, then queued), e.g. to release them when the session ends. */
  *entries(): IterableIterator<Outbound> {
    yield* this.inflight.values();
    for (let i = this.#head; i < this.#queue.length; i++) yield this.#queue[i]!;
    if (this.#hold !== undefined) yield* this.#hold.entries;
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
    for (let i = this.#head; i < this.#queue.length; i++) {
      const e = this.#queue[i]!;
      if (e.group !== undefined) {
        this.#unqueued(e);
        this.journal?.removed(this, e);
        out.push(e);
        kept ??= this.#queue.slice(this.#head, i);
      } else if (kept !== undefined) kept.push(e);
    }
    if (kept !== undefined) {
      this.#queue = kept;
      this.#head = 0;
    }
    return out;
  }

  /** The session ends: its queue is dropped and no longer counts against the shared budget. */
  discard(): void {
    this.#env.budget.used -= this.#queuedBytes;
    this.#queuedBytes = 0;
    this.#queue = NO_QUEUE;
    this.#head = 0;
    this.#hold = undefined;
    this.#inflight = undefined;
    this.queueExpiresAt = 0;
  }
}
