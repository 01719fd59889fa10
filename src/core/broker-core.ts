/**
 * The broker core: sessions by client id, the subscription trie, retained messages, routing,
 * wills and session expiry. It knows connections only as `Outlet`s (see session.ts) and a
 * `kick` callback for takeover, and storage only through the `Store` interface.
 */
import type { QoS } from '../protocol/constants.js';
import type { Logger, MqttOptions, SessionLimits } from '../options.js';
import type { Store, StoredMessage, StoredOutbound, StoredSession, StoredSubscription } from '../store/types.js';
import { RetainedIndex, TopicTrie } from '../topics/index.js';
import { isExpired, type Message } from './message.js';
import { parseSharedFilter } from '../topics/validate.js';
import { Deadlines, systemClock, type Clock, type Scheduled } from './deadlines.js';
import {
  Session,
  type DeliveryCounters,
  type Journal,
  type Outbound,
  type SessionEnv,
  type SessionHost,
  type SharedGroup,
  type Subscription,
  type Will,
} from './session.js';
import type { ClusterLink } from './cluster-link.js';
import { LatencySampler } from './latency.js';

function isGroup(v: Subscription | SharedGroup): v is SharedGroup {
  return (v as SharedGroup).members !== undefined;
}

export const NEVER_EXPIRES = 0xffffffff;

/** A retained message with a Message Expiry, on the deadline heap (only these get an entry). */
export interface RetainedExpiry extends Scheduled {
  readonly topic: string;
  readonly message: Message;
}

/** What the core tells the outside world (the Broker turns these into events). */
export interface CoreObserver {
  publish(m: Message, clientId: string): void;
  sessionExpired(clientId: string): void;
}

/** A live connection as the core sees it: something it can end when another takes its session over. */
export interface LiveConnection {
  takeover(): void;
  /** Closed because this node can no longer serve the session (5.0: DISCONNECT 0x8B), dropping output not yet committed: the client goes elsewhere. */
  fence(): void;
}

export interface CoreCounters {
  messagesIn: number;
  messagesOut: number;
  willsPublished: number;
  sessionsExpired: number;
  /** Messages published here that matched no subscriber (on this node). */
  messagesUnrouted: number;
  sessionsCreated: number;
  sessionsResumed: number;
  /** Live connections ended because another connection took their client id over. */
  sessionsTakenOver: number;
}

export class BrokerCore {
  readonly sessions = new Map<string, Session>();
  readonly live = new Map<string, LiveConnection>();
  /** Subscriptions by filter: a client's own (key = client id) or a shared group (key = NUL + group name). */
  readonly subscriptions = new TopicTrie<Subscription | SharedGroup>();
  /** Shared subscription groups by `group/filter` [MQTT-4.8.2]. */
  readonly shared = new Map<string, SharedGroup>();
  readonly retained = new RetainedIndex<Message>();
  readonly counters: CoreCounters = {
    messagesIn: 0,
    messagesOut: 0,
    willsPublished: 0,
    sessionsExpired: 0,
    messagesUnrouted: 0,
    sessionsCreated: 0,
    sessionsResumed: 0,
    sessionsTakenOver: 0,
  };
  readonly mqtt: MqttOptions;
  readonly limits: SessionLimits;
  readonly #store: Store;
  readonly #log: Logger;
  readonly #observer: CoreObserver;
  /** Per-publish scratch, reused (see publish): hits by position, how many, the pass's mark. */
  readonly #hits: Array<{ session: Session | undefined; qos: QoS; retain: boolean; ids: number[] | undefined }> = [];
  #hitCount = 0;
  #routeMark = 0;
  #routing: Message | undefined = undefined;
  #groups: SharedGroup[] | undefined = undefined;
  /** Queued bytes across all sessions and their cap (limits.maxQueuedBytesTotal; 0 = none). */
  readonly queueBudget = { used: 0, max: 0, dropped: 0 };
  /** What became of messages on their way to sessions (dropped and why), all sessions together. */
  readonly delivery: DeliveryCounters = { droppedQos0: 0, droppedQueueFull: 0, droppedExpired: 0, droppedTooLarge: 0 };
  /** Authorization of a will at the moment it is published (set by the Broker when it authorizes). */
  willGate: ((m: Message, clientId: string, owner: string | undefined) => boolean | Promise<boolean>) | undefined = undefined;
  #nextMessageId = 0;
  #nextSeq = 0;
  /**
   * Every journaled entry carries its message inline (no shared message records): set in a
   * cluster, where a session moves between nodes and a shared record would need cluster-wide
   * reference counts.
   */
  inlineMessages = false;
  /** Sampled delivery latency (1 message in 64; see latency.ts). */
  readonly latency = new LatencySampler();
  /** Set when this node is part of a cluster (before `load`): it learns interest, forwards and retained changes. */
  cluster: ClusterLink | undefined = undefined;
  /** Will delay, session expiry and queued-message expiry of every session, and the expiry of retained messages, on one timer (see deadlines.ts). */
  readonly deadlines: Deadlines<Session | RetainedExpiry>;
  readonly #retainedExpiry = new Map<string, RetainedExpiry>();
  /** Shared by every session of this broker (Session keeps one reference to it). */
  readonly #sessionEnv: SessionEnv;

  constructor(mqtt: MqttOptions, limits: SessionLimits, store: Store, log: Logger, observer: CoreObserver, clock: Clock = systemClock) {
    this.mqtt = mqtt;
    this.limits = limits;
    const host: SessionHost = { reschedule: (s) => this.#schedule(s) };
    this.#sessionEnv = { limits, budget: this.queueBudget, counters: this.delivery, host };
    this.#store = store;
    this.#log = log;
    this.#observer = observer;
    this.deadlines = new Deadlines<Session | RetainedExpiry>((item, now) => {
      if (item instanceof Session) this.#sessionDue(item, now);
      else this.#retainedDue(item);
    }, clock);
  }

  /** Stops the deadline timer (broker shutdown). */
  stop(): void {
    this.deadlines.stop();
  }

  /** Loads retained messages and sessions from the store; drops what expired while down. */
  async load(now: number): Promise<void> {
    const store = this.#store;
    const snap = await store.load();
    // In a cluster, retained messages live in the cluster (src/cluster/) and are loaded from there.
    if (this.cluster === undefined)
      for (const [topic, sm] of snap.retained) {
        const m = fromStored(sm);
        if (isExpired(m, now)) store.deleteRetained(topic);
        else this.#retain(topic, m);
      }
    const messages = new Map<number, Message>();
    for (const [id, sm] of snap.messages) {
      const m = fromStored(sm);
      m.storeId = id;
      messages.set(id, m);
      if (id > this.#nextMessageId) this.#nextMessageId = id;
    }
    for (const rec of snap.sessions) {
      const entries = snap.outbound.get(rec.clientId) ?? [];
      this.restoreSession(rec, entries, snap.inbound.get(rec.clientId) ?? [], messages, now, true);
    }
    for (const [id, m] of messages) {
      if (m.refs === 0) {
        store.deleteMessage(id);
        m.storeId = 0;
      }
    }
    await store.flush();
  }

  /**
   * Puts a stored session back in memory, offline (a restart, or in a cluster a session taken
   * over from another node). A session without an end time was connected when its node stopped:
   * it ends now, abnormally. With `wills`, its will and expiry run as stored (a restart, an
   * adoption); without, the will is left to the caller (a takeover by a new connection).
   * Returns the session, or undefined when it had expired (it is then deleted).
   */
  restoreSession(
    rec: StoredSession,
    entries: ReadonlyArray<[number, StoredOutbound]>,
    inbound: readonly number[],
    messages: ReadonlyMap<number, Message>,
    now: number,
    wills: boolean,
    claimToken?: string,
  ): Session | undefined {
    const store = this.#store;
    for (const [seq] of entries) if (seq > this.#nextSeq) this.#nextSeq = seq;
    const endedAt = rec.disconnectedAt ?? now;
    if (rec.expiryInterval !== NEVER_EXPIRES && endedAt + rec.expiryInterval * 1000 <= now && rec.disconnectedAt !== undefined) {
      // Expired while nobody held it; a will still pending goes out with the session's end.
      if (wills && rec.will !== undefined) this.#gatedWill(fromStored(rec.will.message), rec.clientId, rec.owner);
      store.deleteSession(rec.clientId);
      this.cluster?.sessionEnded?.(rec.clientId, claimToken);
      return undefined;
    }
    const s = new Session(rec.clientId, this.#sessionEnv);
    s.expiryInterval = rec.expiryInterval;
    s.owner = rec.owner;
    s.stored = true;
    s.claimToken = claimToken;
    if (rec.expiryInterval > 0) s.journal = this.#journal;
    for (const sub of rec.subscriptions) {
      const v: Subscription = { ...sub, subscriptionId: sub.subscriptionId };
      this.subscribe(s, v);
    }
    for (const [seq, o] of entries) {
      // Inline (journaled 3) or a reference to a stored message (journaled 2, counted).
      let m: Message | undefined;
      if (o.message !== undefined) m = fromStored(o.message);
      else {
        m = messages.get(o.messageId);
        if (m === undefined) {
          this.#log.warn({ clientId: rec.clientId, seq, messageId: o.messageId }, 'store: outbound entry without its message; dropped');
          store.deleteOutbound(rec.clientId, seq);
          continue;
        }
        m.refs++;
      }
      s.restore({
        message: m,
        seq,
        seqWritten: seq,
        journaled: o.message !== undefined ? 3 : 2,
        qos: o.qos,
        retain: o.retain,
        subscriptionIds: o.subscriptionIds,
        packetId: o.packetId ?? 0,
        released: o.released ?? false,
      });
    }
    for (const id of inbound) s.addInbound(id);
    this.sessions.set(s.clientId, s);
    s.detach(endedAt);
    const will = !wills || rec.will === undefined ? undefined : { message: fromStored(rec.will.message), delaySeconds: rec.will.delaySeconds };
    this.#afterConnectionEnd(s, will, endedAt, now);
    return this.sessions.get(s.clientId) === s ? s : undefined;
  }

  /**
   * Another node took this session over (cluster): its connection here is closed (5.0: DISCONNECT
   * 0x8E) and its copy dropped without a store write or a will — the node that took it decides
   * the will from the stored session, so it goes out once.
   */
  evict(clientId: string): void {
    const s = this.sessions.get(clientId);
    if (s !== undefined) this.#silence(s);
    const live = this.live.get(clientId);
    if (live !== undefined) {
      this.live.delete(clientId);
      this.counters.sessionsTakenOver++;
      live.takeover();
    }
    const left = this.sessions.get(clientId);
    if (left !== undefined) {
      this.#silence(left);
      this.endSession(left, false);
    }
  }

  /** Every session dropped, connections closed with `close`, no wills, no store writes (a node that fenced itself). */
  dropAll(close: (c: LiveConnection) => void): void {
    for (const s of this.sessions.values()) this.#silence(s);
    for (const [id, c] of [...this.live]) {
      this.live.delete(id);
      close(c);
    }
    for (const s of [...this.sessions.values()]) {
      this.#silence(s);
      this.endSession(s, false);
    }
  }

  #silence(s: Session): void {
    s.will = undefined;
    s.pendingWill = undefined;
    s.journal = undefined;
    s.stored = false;
    this.deadlines.cancel(s);
  }

  /** Entries handed over by a session's previous owner (cluster): queued in the session here; false when it is not here. */
  deliverStored(clientId: string, entries: readonly StoredOutbound[]): boolean {
    const s = this.sessions.get(clientId);
    if (s === undefined) return false;
    for (const e of entries) {
      if (e.message === undefined) continue;
      const m = fromStored(e.message);
      if (isExpired(m, Date.now())) continue;
      s.deliverBack(m, e.qos, e.retain, e.subscriptionIds);
    }
    return true;
  }

  /** Deletes a client id's stored session (a claimed session that does not go on). */
  discardStored(clientId: string): void {
    this.#store.deleteSession(clientId);
  }

  /** Publishes a will read from the store (a session taken over from another node), authorized as any will. */
  publishStoredWill(message: StoredMessage, clientId: string, owner: string | undefined): void {
    this.#gatedWill(fromStored(message), clientId, owner);
  }

  /** Journal of outbound entries for sessions that are persisted: one stored message, many references. */
  /**
   * Journal of outbound entries for persisted sessions. New entries are collected during the
   * turn and written at the next commit point (before any packet can leave): a message that only
   * one new entry carries is stored inline in it (one write, one delete), one that several carry
   * is stored once and referenced by id (refcounted).
   */
  readonly #pending: Array<{ session: Session; entry: Outbound }> = [];
  readonly #journal: Journal = {
    added: (session, entry) => {
      entry.seq = ++this.#nextSeq;
      entry.journaled = 1;
      // Written at the next commit point, or at the end of this turn when no packet asks for one
      // (e.g. a will or a QoS 0 publisher's message queued for an offline session).
      if (this.#pending.length === 0) process.nextTick(() => this.#flushJournal());
      this.#pending.push({ session, entry });
    },
    updated: (session, entry) => {
      // An entry sent at once is first journaled here, packet id included (one write, not two).
      if (entry.seq === 0) this.#journal.added(session, entry);
      else if (entry.journaled !== 1) this.#store.putOutbound(session.clientId, entry.seq, this.#stored(entry));
    },
    removed: (session, entry) => {
      if (entry.seq === 0) return;
      const state = entry.journaled;
      entry.seq = 0;
      entry.journaled = 0;
      if (state === 1) return; // never written: skipped when the pending batch is flushed
      this.#store.deleteOutbound(session.clientId, entry.seqWritten ?? 0);
      if (state === 3) return; // inline: nothing else to release
      const m = entry.message;
      if (--m.refs === 0 && m.storeId !== 0) {
        this.#store.deleteMessage(m.storeId);
        m.storeId = 0;
      }
    },
  };

  #stored(entry: Outbound): StoredOutbound {
    const o = toStoredOutbound(entry);
    if (entry.journaled === 3) {
      o.messageId = 0;
      o.message = toStored(entry.message);
    }
    return o;
  }

  /** Writes the entries journaled this turn (see #journal). */
  #flushJournal(): void {
    const pending = this.#pending;
    if (pending.length === 0) return;
    const count = new Map<Message, number>();
    for (const { entry } of pending) if (entry.journaled === 1) count.set(entry.message, (count.get(entry.message) ?? 0) + 1);
    for (const { session, entry } of pending) {
      if (entry.journaled !== 1) continue;
      const m = entry.message;
      entry.seqWritten = entry.seq;
      if (this.inlineMessages || (m.storeId === 0 && count.get(m) === 1)) {
        entry.journaled = 3;
      } else {
        if (m.storeId === 0) {
          m.storeId = ++this.#nextMessageId;
          this.#store.putMessage(m.storeId, toStored(m));
        }
        m.refs++;
        entry.journaled = 2;
      }
      this.#store.putOutbound(session.clientId, entry.seq, this.#stored(entry));
    }
    pending.length = 0;
  }

  /**
   * Resolves when every store write so far is committed, and (in a cluster) the cluster writes
   * up to `clusterMark` are accepted; null when nothing is outstanding.
   */
  commitPoint(clusterMark = 0): Promise<void> | null {
    this.#flushJournal();
    const stored = this.#store.commitPoint();
    const link = this.cluster;
    if (link === undefined || clusterMark === 0) return stored;
    const clustered = link.commitPoint(clusterMark);
    if (clustered === null) return stored;
    return stored === null ? clustered : Promise.all([stored, clustered]).then(() => undefined);
  }

  /** Read-your-writes for retained messages across a cluster (see ClusterLink.retainedBarrier). */
  retainedBarrier(): Promise<void> | null {
    return this.cluster?.retainedBarrier() ?? null;
  }

  /** Writes what is pending and resolves once the store has committed it. */
  async flush(): Promise<void> {
    this.#flushJournal();
    await this.#store.flush();
  }

  /**
   * Opens (true) or closes (false) a unit of writes that the store commits atomically: what was
   * journaled goes to the store before the unit closes.
   */
  atomic(on: boolean): void {
    if (!on) this.#flushJournal();
    this.#store.atomic?.(on);
  }

  /** Inbound QoS 2 id received (PUBREC about to go out) [MQTT-4.3.3-8]. */
  inboundReceived(session: Session, packetId: number): void {
    session.addInbound(packetId);
    if (session.journal !== undefined) this.#store.putInbound(session.clientId, packetId);
  }

  /** Inbound QoS 2 id released by PUBREL; false when it was not pending. */
  inboundReleased(session: Session, packetId: number): boolean {
    if (!session.deleteInbound(packetId)) return false;
    if (session.journal !== undefined) this.#store.deleteInbound(session.clientId, packetId);
    return true;
  }

  /**
   * CONNECT: finds or creates the session for a client id. A live connection holding it is
   * taken over [MQTT-3.1.4-3]; Clean Start discards the old session [MQTT-3.1.2-4], otherwise it is
   * resumed and a pending will cancelled [MQTT-3.1.3-9].
   */
  openSession(clientId: string, clean: boolean): { session: Session; present: boolean } {
    const previous = this.live.get(clientId);
    if (previous !== undefined) {
      this.live.delete(clientId);
      this.counters.sessionsTakenOver++;
      previous.takeover();
    }
    let session = this.sessions.get(clientId);
    if (session !== undefined && clean) {
      this.endSession(session);
      session = undefined;
    }
    if (session !== undefined) {
      this.deadlines.cancel(session);
      session.pendingWill = undefined;
      this.counters.sessionsResumed++;
      return { session, present: true };
    }
    session = new Session(clientId, this.#sessionEnv);
    this.sessions.set(clientId, session);
    this.counters.sessionsCreated++;
    return { session, present: false };
  }

  /** Ends a session for good: its pending will goes out, its subscriptions and state are removed (and, in a cluster, its ownership released unless `release` is false). */
  endSession(session: Session, release = true): void {
    this.deadlines.cancel(session);
    // Shared-subscription QoS 1 messages it held go to another member (MQTT 5.0 §4.8.2).
    if (this.shared.size > 0) this.#redistribute(session, false);
    const will = session.pendingWill;
    session.pendingWill = undefined;
    if (will !== undefined) this.publishWill(will, session.clientId);
    for (const filter of [...session.subscriptions.keys()]) this.unsubscribe(session, filter);
    if (this.sessions.get(session.clientId) === session) this.sessions.delete(session.clientId);
    const journal = session.journal;
    if (journal !== undefined) {
      for (const entry of [...session.entries()]) journal.removed(session, entry);
      for (const id of session.inboundQos2) this.#store.deleteInbound(session.clientId, id);
      session.journal = undefined;
    }
    if (session.stored) {
      session.stored = false;
      this.#store.deleteSession(session.clientId);
    }
    session.discard();
    if (release && session.claimToken !== undefined) this.cluster?.sessionEnded?.(session.clientId, session.claimToken);
  }

  /**
   * After CONNECT: a session that outlives its connection, or whose connection has a will, is
   * written to the store (a will survives a crash and is published on restart).
   */
  connected(session: Session): void {
    if (session.expiryInterval > 0 && session.journal === undefined) {
      session.journal = this.#journal;
      for (const entry of session.entries()) this.#journal.added(session, entry);
      for (const id of session.inboundQos2) this.#store.putInbound(session.clientId, id);
    }
    this.persist(session);
  }

  /**
   * The connection holding `session` ended. `will` is the will to publish (undefined after a
   * normal DISCONNECT). Session Expiry and Will Delay then run as MQTT 5.0 §3.1.2.11 and §3.1.3.2.2 say.
   */
  connectionEnded(session: Session, will: Will | undefined, now: number): void {
    session.detach(now);
    if (this.shared.size > 0) this.#redistribute(session, true);
    this.#afterConnectionEnd(session, will, now, now);
  }

  #afterConnectionEnd(session: Session, will: Will | undefined, endedAt: number, now: number): void {
    session.will = undefined;
    const expiry = session.expiryInterval;
    if (expiry === 0) {
      if (will !== undefined) session.pendingWill = will;
      this.endSession(session);
      return;
    }
    if (will !== undefined) {
      // Sent at the earlier of the will delay and the end of the session [MQTT-3.1.3-9].
      if (endedAt + will.delaySeconds * 1000 <= now) this.publishWill(will, session.clientId);
      else session.pendingWill = will;
    }
    this.#schedule(session);
    this.persist(session);
  }

  /**
   * Puts a session on the deadline heap at the earliest of: the expiry of a queued message
   * [MQTT-3.3.2-5] and, while offline, its will delay and its session expiry, both counted from
   * the absolute time its connection ended (`disconnectedAt`, which the store keeps, so a
   * restart resumes the same deadlines) [MQTT-3.1.2-23], [MQTT-3.1.3-9]. A Session Expiry
   * Interval of 0xFFFFFFFF never ends the session (5.0 §3.1.2.11.2, no statement id).
   */
  #schedule(session: Session): void {
    const ended = session.disconnectedAt;
    let at = session.queueExpiresAt === 0 ? Infinity : session.queueExpiresAt;
    if (ended !== undefined && session.outlet === undefined) {
      const will = session.pendingWill;
      if (will !== undefined && ended + will.delaySeconds * 1000 < at) at = ended + will.delaySeconds * 1000;
      if (session.expiryInterval !== NEVER_EXPIRES) {
        const expires = ended + session.expiryInterval * 1000;
        if (expires < at) at = expires;
      }
    }
    if (at === Infinity) this.deadlines.cancel(session);
    else this.deadlines.schedule(session, at);
  }

  /** A session's deadline came: expired messages leave its queue, its will goes out, its session ends. */
  #sessionDue(session: Session, now: number): void {
    if (this.sessions.get(session.clientId) !== session) return;
    if (session.queueExpiresAt !== 0 && session.queueExpiresAt <= now) session.dropExpired(now);
    const ended = session.disconnectedAt;
    if (ended === undefined || session.outlet !== undefined) {
      this.#schedule(session);
      return;
    }
    const will = session.pendingWill;
    if (will !== undefined && ended + will.delaySeconds * 1000 <= now) {
      session.pendingWill = undefined;
      this.publishWill(will, session.clientId);
      this.persist(session);
    }
    if (session.expiryInterval !== NEVER_EXPIRES && ended + session.expiryInterval * 1000 <= now) {
      this.counters.sessionsExpired++;
      this.#log.debug({ clientId: session.clientId }, 'session expired');
      // A will still pending goes out with the session's end (endSession) [MQTT-3.1.3-9].
      this.endSession(session);
      this.#observer.sessionExpired(session.clientId);
      return;
    }
    this.#schedule(session);
  }

  publishWill(will: Will, clientId: string): void {
    this.#gatedWill(will.message, clientId, this.sessions.get(clientId)?.owner);
  }

  /** Publishes a will if the authorizer allows it (wills are authorized when they are published). */
  #gatedWill(message: Message, clientId: string, owner: string | undefined): void {
    const ok = this.willGate === undefined ? true : this.willGate(message, clientId, owner);
    const go = (allowed: boolean): void => {
      if (!allowed) {
        this.#log.info({ clientId, topic: message.topic }, 'will not authorized; dropped');
        return;
      }
      this.counters.willsPublished++;
      this.publish(message, clientId);
    };
    if (typeof ok === 'boolean') go(ok);
    else ok.then(go, (err: unknown) => this.#log.error({ err, clientId }, 'will authorization failed; will dropped'));
  }

  /**
   * Routes one message: retained store first [MQTT-3.3.1-5], then every matching subscription.
   * A client with several matching subscriptions gets one copy at the highest granted QoS,
   * carrying every matching subscription identifier [MQTT-3.3.4-3], [MQTT-3.3.4-5].
   * Returns the number of sessions the message was routed to.
   */
  publish(m: Message, clientId: string): number {
    this.counters.messagesIn++;
    this.latency.routed(m);
    if (m.retain) this.setRetained(m);
    // The event comes before routing: a handler that publishes in turn is routed first, so the
    // scratch below is never in use twice. Routing itself runs no outside code synchronously
    // (deliveries are written to corked outputs, flushed on the next tick).
    this.#observer.publish(m, clientId);
    const routed = this.#route(m, true, undefined);
    if (routed === 0) this.counters.messagesUnrouted++;
    return routed;
  }

  /**
   * A message of this node only (the broker's `$SYS` tree): retained in memory when `retain` (never
   * written to the store, never sent to a cluster, where each node has its own tree), delivered
   * to this node's subscribers, not counted as received.
   */
  publishLocal(m: Message): number {
    if (m.retain) this.applyRetained(m);
    return this.#route(m, true, EMPTY);
  }

  /**
   * A message another cluster node forwarded: delivered to this node's plain subscriptions when
   * `plain`, and to the shared groups named (that node chose this one to serve them). Not
   * forwarded again, and retained state comes through the cluster's retained log, not from here.
   */
  publishForwarded(m: Message, plain: boolean, groups: readonly string[] | undefined, sessions?: SessionFilter): number {
    return this.#route(m, plain, groups ?? EMPTY, sessions);
  }

  /** Connected sessions that received forwarded messages lately (see forwardPressure). */
  readonly #forwardTargets = new Set<Session>();

  /**
   * Whether a connected session that receives messages from other nodes has its queue more than
   * half full: the cluster then reads its inbox more slowly (the messages wait, durable, in
   * Redis) instead of overflowing the queue. Offline sessions never hold it back.
   */
  forwardPressure(): boolean {
    const limits = this.limits;
    for (const s of this.#forwardTargets) {
      if (s.outlet !== undefined && (s.queued * 2 > limits.maxQueuedMessages || s.queuedBytes * 2 > limits.maxQueuedBytes)) return true;
      this.#forwardTargets.delete(s);
    }
    return false;
  }

  /**
   * Routing shared by both: `forwarded` undefined for a message published here (shared groups
   * found by matching, offered to the cluster link), else the group keys to serve.
   */
  #route(m: Message, plain: boolean, forwarded: readonly string[] | undefined, sessions?: SessionFilter): number {
    // Routing scratch lives on the core and the sessions (no closure, map or hit object per
    // message): a session seen in this pass carries this pass's mark and the index of its hit.
    this.#routing = m;
    this.#routeMark = this.#routeMark === Number.MAX_SAFE_INTEGER ? 1 : this.#routeMark + 1;
    this.#hitCount = 0;
    this.#groups = undefined;
    let n = 0;
    let shared = 0;
    try {
      this.subscriptions.match(m.topic, this.#onMatch, this);
      let groups = this.#groups as SharedGroup[] | undefined;
      this.#groups = undefined;
      const link = this.cluster;
      if (forwarded !== undefined) {
        groups = undefined;
        for (const key of forwarded) {
          const g = this.shared.get(key);
          if (g !== undefined) (groups ??= []).push(g);
        }
      } else if (link !== undefined) {
        const keep = link.forward(m, groups?.map(groupKey));
        if (groups !== undefined) groups = keep === undefined ? undefined : groups.filter((g) => keep.includes(groupKey(g)));
        const excluded = link.excludedLocally;
        if (excluded !== undefined && excluded.size > 0) sessions = { exclude: excluded };
      }
      if (groups !== undefined) for (const g of groups) if (this.#deliverShared(g, m, undefined)) shared++;
      const hits = this.#hits;
      const count = this.#hitCount;
      for (let i = 0; i < count; i++) {
        const h = hits[i]!;
        const session = h.session!;
        h.session = undefined;
        const ids = h.ids;
        h.ids = undefined;
        if (sessions !== undefined && !admits(sessions, session.clientId)) continue;
        if (plain) {
          if (sessions !== undefined && sessions.back === true) session.deliverBack(m, h.qos, h.retain, ids);
          else session.deliver(m, h.qos, h.retain, ids);
          if (forwarded !== undefined && h.qos > 0) this.#forwardTargets.add(session);
          n++;
        }
      }
    } finally {
      this.#routing = undefined;
    }
    this.counters.messagesOut += n + shared;
    return n + shared;
  }

  /** One matching subscription of the message being routed (called by the trie, `this` = core). */
  #onMatch(this: BrokerCore, sub: Subscription | SharedGroup, subscriber: string): void {
    const m = this.#routing!;
    if (isGroup(sub)) {
      (this.#groups ??= []).push(sub);
      return;
    }
    // [MQTT-3.8.3-3] No Local: not back to the publisher's own connection.
    if (sub.noLocal && subscriber === m.origin) return;
    const qos = (sub.qos < m.qos ? sub.qos : m.qos) as QoS;
    // [MQTT-3.3.1-12] / [MQTT-3.3.1-13] Retain As Published, else the retain flag is cleared.
    const retain = sub.retainAsPublished && m.retain;
    const session = this.sessions.get(subscriber);
    if (session === undefined) return;
    if (session.routeMark === this.#routeMark) {
      // Several subscriptions of one client: one copy at the highest QoS with every identifier.
      const hit = this.#hits[session.routeHit]!;
      if (qos > hit.qos) hit.qos = qos;
      if (retain) hit.retain = true;
      if (sub.subscriptionId !== undefined) (hit.ids ??= []).push(sub.subscriptionId);
      return;
    }
    session.routeMark = this.#routeMark;
    const at = this.#hitCount++;
    session.routeHit = at;
    const ids = sub.subscriptionId === undefined ? undefined : [sub.subscriptionId];
    const hit = this.#hits[at];
    if (hit === undefined) {
      this.#hits.push({ session, qos, retain, ids });
      return;
    }
    hit.session = session;
    hit.qos = qos;
    hit.retain = retain;
    hit.ids = ids;
  }

  /** Stores or (empty payload) deletes the retained message of a topic [MQTT-3.3.1-6], [MQTT-3.3.1-7]. */
  setRetained(m: Message): void {
    if (!this.mqtt.retainAvailable) return;
    const link = this.cluster;
    if (link !== undefined) {
      // The cluster keeps retained messages; this node's index is updated at once (so this
      // node reads its own write) and again, in cluster order, from the retained log.
      this.applyRetained(m);
      link.retain(m);
      return;
    }
    if (m.payload.length === 0) {
      if (this.#unretain(m.topic)) this.#store.deleteRetained(m.topic);
      return;
    }
    this.#retain(m.topic, m);
    this.#store.putRetained(m.topic, toStored(m));
  }

  /** Removes a topic's retained message from the in-memory index only (cluster). */
  dropRetained(topic: string): void {
    this.#unretain(topic);
  }

  /** Applies a retained change to the in-memory index only (cluster: the store is the cluster's). */
  applyRetained(m: Message): void {
    if (m.payload.length === 0) this.#unretain(m.topic);
    else this.#retain(m.topic, m);
  }

  /** Sets a topic's retained message; one with a Message Expiry goes on the deadline heap. */
  #retain(topic: string, m: Message): void {
    this.#cancelRetainedExpiry(topic);
    this.retained.set(topic, m);
    if (m.expiresAt === 0) return;
    const r: RetainedExpiry = { deadlineIndex: -1, deadlineAt: 0, topic, message: m };
    this.#retainedExpiry.set(topic, r);
    this.deadlines.schedule(r, m.expiresAt);
  }

  #unretain(topic: string): boolean {
    this.#cancelRetainedExpiry(topic);
    return this.retained.delete(topic);
  }

  #cancelRetainedExpiry(topic: string): void {
    if (this.#retainedExpiry.size === 0) return;
    const r = this.#retainedExpiry.get(topic);
    if (r === undefined) return;
    this.deadlines.cancel(r);
    this.#retainedExpiry.delete(topic);
  }

  /** A retained message's expiry came: it is no longer kept, in memory or in the store [MQTT-3.3.2-5]. */
  #retainedDue(r: RetainedExpiry): void {
    if (this.#retainedExpiry.get(r.topic) !== r) return;
    this.#unretain(r.topic);
    if (this.cluster === undefined) this.#store.deleteRetained(r.topic);
  }

  /** Retained messages matching a filter, expired ones removed on the way. */
  retainedMatching(filter: string, now: number): Message[] {
    const out: Message[] = [];
    const expired: string[] = [];
    this.retained.match(filter, (topic, m) => {
      if (isExpired(m, now)) expired.push(topic);
      else out.push(m);
    });
    for (const topic of expired) {
      this.#unretain(topic);
      if (this.cluster === undefined) this.#store.deleteRetained(topic);
    }
    return out;
  }

  /** Adds or replaces a subscription [MQTT-3.8.4-3]; returns whether one with that filter existed. */
  subscribe(session: Session, sub: Subscription): boolean {
    const existed = session.subscriptions.has(sub.filter);
    session.setSubscription(sub);
    const sf = parseSharedFilter(sub.filter);
    if (sf === null) {
      this.subscriptions.add(sub.filter, session.clientId, sub);
      if (!existed) this.cluster?.interest(sub.filter, true);
      return existed;
    }
    const key = `${sf.group}/${sf.filter}`;
    let g = this.shared.get(key);
    if (g === undefined) {
      g = { group: sf.group, filter: sf.filter, members: new Map(), order: [], cursor: 0, sticky: undefined };
      this.shared.set(key, g);
      this.subscriptions.add(sf.filter, `\u0000${sf.group}`, g);
    }
    if (!g.members.has(session.clientId)) {
      g.order.push(session.clientId);
      this.cluster?.interest(sub.filter, true);
    }
    g.members.set(session.clientId, sub);
    return existed;
  }

  unsubscribe(session: Session, filter: string): boolean {
    if (!session.deleteSubscription(filter)) return false;
    const sf = parseSharedFilter(filter);
    if (sf === null) {
      this.subscriptions.remove(filter, session.clientId);
      this.cluster?.interest(filter, false);
      return true;
    }
    const key = `${sf.group}/${sf.filter}`;
    const g = this.shared.get(key);
    if (g !== undefined && g.members.delete(session.clientId)) {
      this.cluster?.interest(filter, false);
      g.order.splice(g.order.indexOf(session.clientId), 1);
      if (g.sticky === session.clientId) g.sticky = undefined;
      if (g.members.size === 0) {
        this.shared.delete(key);
        this.subscriptions.remove(sf.filter, `\u0000${sf.group}`);
      }
    }
    return true;
  }

  /**
   * Shared subscription delivery: one member of the group gets the message (MQTT 5.0 §4.8.2),
   * chosen by the configured strategy among connected members (a member with a persistent
   * session that is offline only when nobody is connected). Returns false when no member could take it.
   */
  #deliverShared(g: SharedGroup, m: Message, exclude: string | undefined): boolean {
    const clientId = this.#pick(g, m.topic, exclude);
    if (clientId === undefined) return false;
    const session = this.sessions.get(clientId)!;
    const sub = g.members.get(clientId)!;
    const qos = (sub.qos < m.qos ? sub.qos : m.qos) as QoS;
    session.deliver(m, qos, sub.retainAsPublished && m.retain, sub.subscriptionId === undefined ? undefined : [sub.subscriptionId], g);
    return true;
  }

  #pick(g: SharedGroup, topic: string, exclude: string | undefined): string | undefined {
    const order = g.order;
    const n = order.length;
    if (n === 0) return undefined;
    const online = (id: string): boolean => id !== exclude && this.sessions.get(id)?.outlet !== undefined;
    switch (this.mqtt.sharedSubscriptionStrategy) {
      case 'sticky':
        if (g.sticky !== undefined && online(g.sticky)) return g.sticky;
        g.sticky = this.#scan(g, online, Math.floor(Math.random() * n));
        return g.sticky ?? this.#offline(g, exclude);
      case 'random':
        return this.#scan(g, online, Math.floor(Math.random() * n)) ?? this.#offline(g, exclude);
      case 'hash': {
        let h = 0;
        for (let i = 0; i < topic.length; i++) h = (Math.imul(h, 31) + topic.charCodeAt(i)) | 0;
        return this.#scan(g, online, (h >>> 0) % n) ?? this.#offline(g, exclude);
      }
      default: {
        const start = g.cursor % n;
        const id = this.#scan(g, online, start);
        if (id !== undefined) g.cursor = order.indexOf(id) + 1;
        return id ?? this.#offline(g, exclude);
      }
    }
  }

  /** The first member from `start` on (wrapping) that passes `ok`. */
  #scan(g: SharedGroup, ok: (id: string) => boolean, start: number): string | undefined {
    const order = g.order;
    for (let i = 0; i < order.length; i++) {
      const id = order[(start + i) % order.length]!;
      if (ok(id)) return id;
    }
    return undefined;
  }

  /** With nobody connected: a member whose session outlives its connection (the message queues there). */
  #offline(g: SharedGroup, exclude: string | undefined): string | undefined {
    return this.#scan(g, (id) => id !== exclude && (this.sessions.get(id)?.expiryInterval ?? 0) > 0, g.cursor % g.order.length);
  }

  /**
   * A member's connection ended with shared-subscription messages not yet acknowledged (or
   * still queued): they go to another member of their group instead of waiting or being lost
   * (MQTT 5.0 §4.8.2 allows this; a QoS 2 message already PUBREC'd stays, the member has it).
   */
  #redistribute(session: Session, keep = true): void {
    const taken = session.takeShared();
    for (const entry of taken) {
      const g = entry.group!;
      const moved = this.shared.get(`${g.group}/${g.filter}`) === g && this.#deliverShared(g, entry.message, session.clientId);
      // Nobody else can take it: it stays with this member (queued if the session persists).
      if (!moved && keep) session.deliver(entry.message, entry.qos, entry.retain, entry.subscriptionIds, g);
    }
  }

  /** Writes the session record through to the store (sessions that outlive their connection, or carry a will). */
  persist(session: Session): void {
    if (this.sessions.get(session.clientId) !== session) return;
    if (session.journal === undefined && session.will === undefined && !session.stored) return;
    session.stored = true;
    this.#store.putSession(toStoredSession(session));
  }
}

const EMPTY: readonly string[] = [];

/** Which sessions a forwarded message may reach (cluster recovery of a dead node; see src/cluster/node.ts). */
export interface SessionFilter {
  readonly only?: ReadonlySet<string>;
  readonly exclude?: ReadonlySet<string>;
  /** Handed back by a session's previous node (Session.deliverBack): ahead of what the session holds. */
  readonly back?: boolean;
}

function admits(f: SessionFilter, clientId: string): boolean {
  if (f.only !== undefined && !f.only.has(clientId)) return false;
  return f.exclude === undefined || !f.exclude.has(clientId);
}

function groupKey(g: SharedGroup): string {
  return `${g.group}/${g.filter}`;
}

export function toStored(m: Message): StoredMessage {
  const s: StoredMessage = { topic: m.topic, payload: m.payload, qos: m.qos, retain: m.retain, expiresAt: m.expiresAt, origin: m.origin };
  if (m.properties !== undefined) s.properties = m.properties;
  return s;
}

export function fromStored(s: StoredMessage): Message {
  return {
    topic: s.topic,
    payload: s.payload,
    qos: s.qos,
    retain: s.retain,
    properties: s.properties,
    expiresAt: s.expiresAt,
    origin: s.origin,
    encoded: undefined,
    storeId: 0,
    refs: 0,
  };
}

function toStoredSession(s: Session): StoredSession {
  const rec: StoredSession = {
    clientId: s.clientId,
    expiryInterval: s.expiryInterval,
    subscriptions: [...s.subscriptions.values()].map((sub) => {
      const out: StoredSubscription = {
        filter: sub.filter,
        qos: sub.qos,
        noLocal: sub.noLocal,
        retainAsPublished: sub.retainAsPublished,
        retainHandling: sub.retainHandling,
      };
      if (sub.subscriptionId !== undefined) out.subscriptionId = sub.subscriptionId;
      return out;
    }),
  };
  if (s.disconnectedAt !== undefined) rec.disconnectedAt = s.disconnectedAt;
  const will = s.will ?? s.pendingWill;
  if (will !== undefined) {
    rec.will = { message: toStored(will.message), delaySeconds: will.delaySeconds };
    if (s.will === undefined) rec.willPending = true;
  }
  if (s.owner !== undefined) rec.owner = s.owner;
  return rec;
}

function toStoredOutbound(e: Outbound): StoredOutbound {
  const o: StoredOutbound = { messageId: e.message.storeId, qos: e.qos, retain: e.retain };
  if (e.subscriptionIds !== undefined) o.subscriptionIds = e.subscriptionIds;
  if (e.packetId !== 0) o.packetId = e.packetId;
  if (e.released) o.released = true;
  return o;
}
