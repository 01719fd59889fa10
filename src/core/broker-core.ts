/**
 * The broker core: sessions by client id, the subscription trie, retained messages, routing,
 * wills and session expiry. It knows connections only as `Outlet`s (see session.ts) and a
 * `kick` callback for takeover, and storage only through the `Store` interface.
 *
 * This class is the facade the rest of the broker uses, and it routes (the hot path stays in
 * this one class). Its other jobs live behind it: its side towards the store (core-storage.ts,
 * which it extends: commit points, atomic units, flush, inbound QoS 2 ids, handed-over entries),
 * the session lifecycle (session-lifecycle.ts), sessions restored from the store
 * (session-restore.ts), the outbound journal (journal.ts), retained messages (retained.ts), wills
 * (wills.ts), the choice of a shared group's member (shared-groups.ts) and the records the store
 * keeps (stored-records.ts).
 */
import type { QoS } from '../protocol/constants.js';
import type { Logger, MqttOptions, SessionLimits } from '../options.js';
import type { Store, StoredMessage, StoredOutbound, StoredSession } from '../store/types.js';
import { TopicTrie, type RetainedIndex } from '../topics/index.js';
import type { Message } from './message.js';
import { Deadlines, systemClock, type Clock } from './deadlines.js';
import { Session, type DeliveryCounters, type SessionEnv, type SessionHost, type SharedGroup, type Subscription, type Will } from './session.js';
import type { ClusterLink } from './cluster-link.js';
import { LatencySampler } from './latency.js';
import { OutboundJournal } from './journal.js';
import { RetainedMessages, type RetainedExpiry } from './retained.js';
import { SessionLifecycle } from './session-lifecycle.js';
import { SessionRestore } from './session-restore.js';
import { pickMember } from './shared-groups.js';
import { fromStored } from './stored-records.js';
import { publishGatedWill } from './wills.js';
import { subscribe, unsubscribe } from './subscription-index.js';
import type { CoreCounters, CoreObserver, LiveConnection, SessionFilter } from './core-types.js';
import { CoreStorage } from './core-storage.js';

export { NEVER_EXPIRES } from './session-lifecycle.js';
export { fromStored, toStored } from './stored-records.js';
export type { RetainedExpiry } from './retained.js';
export type { CoreCounters, CoreObserver, LiveConnection, SessionFilter } from './core-types.js';

function isGroup(v: Subscription | SharedGroup): v is SharedGroup {
  return (v as SharedGroup).members !== undefined;
}

export class BrokerCore extends CoreStorage {
  readonly sessions = new Map<string, Session>();
  readonly live = new Map<string, LiveConnection>();
  /** Subscriptions by filter: a client's own (key = client id) or a shared group (key = NUL + group name). */
  readonly subscriptions = new TopicTrie<Subscription | SharedGroup>();
  /** Shared subscription groups by `group/filter` [MQTT-4.8.2]. */
  readonly shared = new Map<string, SharedGroup>();
  readonly retained: RetainedIndex<Message>;
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
  /** Sampled delivery latency (1 message in 64; see latency.ts). */
  readonly latency = new LatencySampler();
  /** Set when this node is part of a cluster (before `load`): it learns interest, forwards and retained changes. */
  cluster: ClusterLink | undefined = undefined;
  /** Will delay, session expiry and queued-message expiry of every session, and the expiry of retained messages, on one timer (see deadlines.ts). */
  readonly deadlines: Deadlines<Session | RetainedExpiry>;
  readonly #retained: RetainedMessages;
  readonly #lifecycle: SessionLifecycle;
  readonly #restore: SessionRestore;

  constructor(mqtt: MqttOptions, limits: SessionLimits, store: Store, log: Logger, observer: CoreObserver, clock: Clock = systemClock) {
    const journal = new OutboundJournal(store);
    super(store, journal);
    this.mqtt = mqtt;
    this.limits = limits;
    this.#log = log;
    this.#observer = observer;
    this.deadlines = new Deadlines<Session | RetainedExpiry>((item, now) => {
      if (item instanceof Session) this.#lifecycle.sessionDue(item, now);
      else this.#retained.due(item);
    }, clock);
    const retained = (this.#retained = new RetainedMessages(mqtt, store, this.deadlines, this));
    this.retained = retained.index;
    const host: SessionHost = { reschedule: (s) => this.#lifecycle.schedule(s) };
    /** Shared by every session of this broker (Session keeps one reference to it). */
    const sessionEnv: SessionEnv = { limits, budget: this.queueBudget, counters: this.delivery, host };
    const redistribute = (s: Session, keep: boolean): void => this.#redistribute(s, keep);
    const lifecycle = (this.#lifecycle = new SessionLifecycle(this, { store, log, observer, sessionEnv, journal, redistribute }));
    this.#restore = new SessionRestore(this, { store, log, sessionEnv, journal, retained, lifecycle });
  }

  /** Stops the deadline timer (broker shutdown). */
  stop(): void {
    this.deadlines.stop();
  }

  /** Loads retained messages and sessions from the store; drops what expired while down (see session-restore.ts). */
  load(now: number): Promise<void> {
    return this.#restore.load(now);
  }

  /** Puts a stored session back in memory, offline; undefined when it had expired (see SessionRestore.restoreSession). */
  restoreSession(
    rec: StoredSession,
    entries: ReadonlyArray<[number, StoredOutbound]>,
    inbound: readonly number[],
    messages: ReadonlyMap<number, Message>,
    now: number,
    wills: boolean,
    claimToken?: string,
  ): Session | undefined {
    return this.#restore.restoreSession(rec, entries, inbound, messages, now, wills, claimToken);
  }

  /** Another node took this session over (cluster): dropped here without a store write or a will (see SessionLifecycle.evict). */
  evict(clientId: string): void {
    this.#lifecycle.evict(clientId);
  }

  /** Every session dropped, connections closed with `close`, no wills, no store writes (a node that fenced itself). */
  dropAll(close: (c: LiveConnection) => void): void {
    this.#lifecycle.dropAll(close);
  }

  /** Publishes a will read from the store (a session taken over from another node), authorized as any will. */
  publishStoredWill(message: StoredMessage, clientId: string, owner: string | undefined): void {
    publishGatedWill(this, this.#log, fromStored(message), clientId, owner);
  }

  /** CONNECT: finds or creates the session for a client id (see SessionLifecycle.openSession). */
  openSession(clientId: string, clean: boolean): { session: Session; present: boolean } {
    return this.#lifecycle.openSession(clientId, clean);
  }

  /** Ends a session for good: its pending will goes out, its subscriptions and state are removed (and, in a cluster, its ownership released unless `release` is false). */
  endSession(session: Session, release = true): void {
    this.#lifecycle.endSession(session, release);
  }

  /** After CONNECT: the session is written to the store when it outlives its connection or has a will. */
  connected(session: Session): void {
    this.#lifecycle.connected(session);
  }

  /** The connection holding `session` ended; `will` undefined after a normal DISCONNECT (see SessionLifecycle.connectionEnded). */
  connectionEnded(session: Session, will: Will | undefined, now: number): void {
    this.#lifecycle.connectionEnded(session, will, now);
  }

  publishWill(will: Will, clientId: string): void {
    publishGatedWill(this, this.#log, will.message, clientId, this.sessions.get(clientId)?.owner);
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
    if (m.retain) this.#retained.set(m);
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
    if (m.retain) this.#retained.apply(m);
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

  /** Stores or (empty payload) deletes the retained message of a topic (see RetainedMessages.set). */
  setRetained(m: Message): void {
    this.#retained.set(m);
  }

  /** Removes a topic's retained message from the in-memory index only (cluster). */
  dropRetained(topic: string): void {
    this.#retained.drop(topic);
  }

  /** Applies a retained change to the in-memory index only (cluster: the store is the cluster's). */
  applyRetained(m: Message): void {
    this.#retained.apply(m);
  }

  /** Retained messages matching a filter, expired ones removed on the way. */
  retainedMatching(filter: string, now: number): Message[] {
    return this.#retained.matching(filter, now);
  }

  /** Adds or replaces a subscription [MQTT-3.8.4-3]; returns whether one with that filter existed (see subscription-index.ts). */
  subscribe(session: Session, sub: Subscription): boolean {
    return subscribe(this, session, sub);
  }

  unsubscribe(session: Session, filter: string): boolean {
    return unsubscribe(this, session, filter);
  }

  /**
   * Shared subscription delivery: one member of the group gets the message (MQTT 5.0 §4.8.2),
   * chosen by the configured strategy among connected members (a member with a persistent
   * session that is offline only when nobody is connected). Returns false when no member could take it.
   */
  #deliverShared(g: SharedGroup, m: Message, exclude: string | undefined): boolean {
    const clientId = pickMember(g, m.topic, exclude, this.sessions, this.mqtt.sharedSubscriptionStrategy);
    if (clientId === undefined) return false;
    const session = this.sessions.get(clientId)!;
    const sub = g.members.get(clientId)!;
    const qos = (sub.qos < m.qos ? sub.qos : m.qos) as QoS;
    session.deliver(m, qos, sub.retainAsPublished && m.retain, sub.subscriptionId === undefined ? undefined : [sub.subscriptionId], g);
    return true;
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
    this.#lifecycle.persist(session);
  }
}

const EMPTY: readonly string[] = [];

function admits(f: SessionFilter, clientId: string): boolean {
  if (f.only !== undefined && !f.only.has(clientId)) return false;
  return f.exclude === undefined || !f.exclude.has(clientId);
}

function groupKey(g: SharedGroup): string {
  return `${g.group}/${g.filter}`;
}
