/**
 * The broker core: sessions by client id, the subscription trie, retained messages, routing,
 * wills and session expiry. It knows connections only as `Outlet`s (see session.ts) and a
 * `kick` callback for takeover, and storage only through the `Store` interface.
 */
import type { QoS } from '../protocol/constants.js';
import type { Logger, MqttOptions, SessionLimits } from '../options.js';
import type { Store, StoredMessage, StoredSession } from '../store/types.js';
import { RetainedIndex, TopicTrie } from '../topics/index.js';
import { isExpired, type Message } from './message.js';
import { Session, type Subscription, type Will } from './session.js';

export const NEVER_EXPIRES = 0xffffffff;

/** What the core tells the outside world (the Broker turns these into events). */
export interface CoreObserver {
  publish(m: Message, clientId: string): void;
  sessionExpired(clientId: string): void;
}

/** A live connection as the core sees it: something it can end when another takes its session over. */
export interface LiveConnection {
  takeover(): void;
}

export interface CoreCounters {
  messagesIn: number;
  messagesOut: number;
  willsPublished: number;
  sessionsExpired: number;
}

export class BrokerCore {
  readonly sessions = new Map<string, Session>();
  readonly live = new Map<string, LiveConnection>();
  readonly subscriptions = new TopicTrie<Subscription>();
  readonly retained = new RetainedIndex<Message>();
  readonly counters: CoreCounters = { messagesIn: 0, messagesOut: 0, willsPublished: 0, sessionsExpired: 0 };
  readonly mqtt: MqttOptions;
  readonly limits: SessionLimits;
  readonly #store: Store;
  readonly #log: Logger;
  readonly #observer: CoreObserver;
  /** Per-publish scratch: client id → index into #hits (reused to avoid allocation per message). */
  readonly #hitIndex = new Map<string, number>();
  readonly #hits: Array<{ session: Session; qos: QoS; retain: boolean; ids: number[] | undefined }> = [];

  constructor(mqtt: MqttOptions, limits: SessionLimits, store: Store, log: Logger, observer: CoreObserver) {
    this.mqtt = mqtt;
    this.limits = limits;
    this.#store = store;
    this.#log = log;
    this.#observer = observer;
  }

  /** Loads retained messages and sessions from the store; drops what expired while down. */
  async load(now: number): Promise<void> {
    for (const [topic, sm] of await this.#store.loadRetained()) {
      const m = fromStored(sm);
      if (isExpired(m, now)) this.#store.deleteRetained(topic);
      else this.retained.set(topic, m);
    }
    for (const rec of await this.#store.loadSessions()) {
      const disconnectedAt = rec.disconnectedAt ?? now;
      if (rec.expiryInterval !== NEVER_EXPIRES && disconnectedAt + rec.expiryInterval * 1000 <= now) {
        this.#store.deleteSession(rec.clientId);
        continue;
      }
      const s = new Session(rec.clientId, this.limits);
      s.expiryInterval = rec.expiryInterval;
      s.owner = rec.owner;
      for (const sub of rec.subscriptions) {
        const v: Subscription = { ...sub, subscriptionId: sub.subscriptionId };
        s.subscriptions.set(sub.filter, v);
        this.subscriptions.add(sub.filter, s.clientId, v);
      }
      for (const o of rec.outbound) {
        s.restore({ message: fromStored(o.message), qos: o.qos, retain: o.retain, subscriptionIds: o.subscriptionIds, packetId: o.packetId ?? 0, released: o.released ?? false });
      }
      for (const id of rec.inboundQos2) s.inboundQos2.add(id);
      this.sessions.set(s.clientId, s);
      s.detach(disconnectedAt);
      // A session whose connection was live at a crash ended abnormally: its will applies.
      const will = rec.pendingWill === undefined ? undefined : { message: fromStored(rec.pendingWill.message), delaySeconds: rec.pendingWill.delaySeconds };
      this.#afterConnectionEnd(s, will, disconnectedAt, now);
    }
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
      previous.takeover();
    }
    let session = this.sessions.get(clientId);
    if (session !== undefined && clean) {
      this.endSession(session);
      session = undefined;
    }
    if (session !== undefined) {
      session.clearTimers();
      session.pendingWill = undefined;
      return { session, present: true };
    }
    session = new Session(clientId, this.limits);
    this.sessions.set(clientId, session);
    return { session, present: false };
  }

  /** Ends a session for good: its pending will goes out, its subscriptions and state are removed. */
  endSession(session: Session): void {
    session.clearTimers();
    const will = session.pendingWill;
    session.pendingWill = undefined;
    if (will !== undefined) this.publishWill(will, session.clientId);
    for (const filter of session.subscriptions.keys()) this.subscriptions.remove(filter, session.clientId);
    session.subscriptions.clear();
    if (this.sessions.get(session.clientId) === session) this.sessions.delete(session.clientId);
    this.#store.deleteSession(session.clientId);
  }

  /**
   * The connection holding `session` ended. `will` is the will to publish (undefined after a
   * normal DISCONNECT). Session Expiry and Will Delay then run as MQTT 5.0 §3.1.2.11 and §3.1.3.2.2 say.
   */
  connectionEnded(session: Session, will: Will | undefined, now: number): void {
    session.detach(now);
    this.#afterConnectionEnd(session, will, now, now);
  }

  #afterConnectionEnd(session: Session, will: Will | undefined, endedAt: number, now: number): void {
    const expiry = session.expiryInterval;
    if (expiry === 0) {
      if (will !== undefined) session.pendingWill = will;
      this.endSession(session);
      return;
    }
    if (will !== undefined) {
      const due = endedAt + will.delaySeconds * 1000;
      if (due <= now) this.publishWill(will, session.clientId);
      else {
        // Sent at the earlier of the will delay and the end of the session [MQTT-3.1.3-9].
        session.pendingWill = will;
        session.willTimer = setTimeout(() => {
          session.willTimer = undefined;
          const w = session.pendingWill;
          session.pendingWill = undefined;
          if (w !== undefined) this.publishWill(w, session.clientId);
          this.persist(session);
        }, due - now);
        session.willTimer.unref();
      }
    }
    if (expiry !== NEVER_EXPIRES) {
      const due = endedAt + expiry * 1000;
      session.expiryTimer = setTimeout(() => {
        session.expiryTimer = undefined;
        this.counters.sessionsExpired++;
        this.#log.debug({ clientId: session.clientId }, 'session expired');
        this.endSession(session);
        this.#observer.sessionExpired(session.clientId);
      }, Math.max(0, due - now));
      session.expiryTimer.unref();
    }
    this.persist(session);
  }

  publishWill(will: Will, clientId: string): void {
    this.counters.willsPublished++;
    this.publish(will.message, clientId);
  }

  /**
   * Routes one message: retained store first [MQTT-3.3.1-5], then every matching subscription.
   * A client with several matching subscriptions gets one copy at the highest granted QoS,
   * carrying every matching subscription identifier [MQTT-3.3.4-3], [MQTT-3.3.4-5].
   * Returns the number of sessions the message was routed to.
   */
  publish(m: Message, clientId: string): number {
    this.counters.messagesIn++;
    if (m.retain) this.setRetained(m);
    this.#observer.publish(m, clientId);
    const hits = this.#hits;
    const index = this.#hitIndex;
    const sessions = this.sessions;
    this.subscriptions.match(m.topic, (sub, subscriber) => {
      // [MQTT-3.8.3-3] No Local: not back to the publisher's own connection.
      if (sub.noLocal && subscriber === m.origin) return;
      const qos = (sub.qos < m.qos ? sub.qos : m.qos) as QoS;
      // [MQTT-3.3.1-12] / [MQTT-3.3.1-13] Retain As Published, else the retain flag is cleared.
      const retain = sub.retainAsPublished && m.retain;
      const at = index.get(subscriber);
      if (at === undefined) {
        const session = sessions.get(subscriber);
        if (session === undefined) return;
        index.set(subscriber, hits.length);
        hits.push({ session, qos, retain, ids: sub.subscriptionId === undefined ? undefined : [sub.subscriptionId] });
        return;
      }
      const hit = hits[at]!;
      if (qos > hit.qos) hit.qos = qos;
      if (retain) hit.retain = true;
      if (sub.subscriptionId !== undefined) (hit.ids ??= []).push(sub.subscriptionId);
    });
    const n = hits.length;
    for (let i = 0; i < n; i++) {
      const h = hits[i]!;
      h.session.deliver(m, h.qos, h.retain, h.ids);
    }
    this.counters.messagesOut += n;
    hits.length = 0;
    index.clear();
    return n;
  }

  /** Stores or (empty payload) deletes the retained message of a topic [MQTT-3.3.1-6], [MQTT-3.3.1-7]. */
  setRetained(m: Message): void {
    if (!this.mqtt.retainAvailable) return;
    if (m.payload.length === 0) {
      if (this.retained.delete(m.topic)) this.#store.deleteRetained(m.topic);
      return;
    }
    this.retained.set(m.topic, m);
    this.#store.putRetained(m.topic, toStored(m));
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
      this.retained.delete(topic);
      this.#store.deleteRetained(topic);
    }
    return out;
  }

  /** Adds or replaces a subscription [MQTT-3.8.4-3]; returns whether one with that filter existed. */
  subscribe(session: Session, sub: Subscription): boolean {
    const existed = session.subscriptions.has(sub.filter);
    session.subscriptions.set(sub.filter, sub);
    this.subscriptions.add(sub.filter, session.clientId, sub);
    return existed;
  }

  unsubscribe(session: Session, filter: string): boolean {
    if (!session.subscriptions.delete(filter)) return false;
    this.subscriptions.remove(filter, session.clientId);
    return true;
  }

  /** Writes the session record through to the store (only sessions that outlive their connection). */
  persist(session: Session): void {
    if (session.expiryInterval === 0 || this.sessions.get(session.clientId) !== session) return;
    this.#store.putSession(toStoredSession(session));
  }
}

export function toStored(m: Message): StoredMessage {
  const s: StoredMessage = { topic: m.topic, payload: m.payload, qos: m.qos, retain: m.retain, expiresAt: m.expiresAt, origin: m.origin };
  if (m.properties !== undefined) s.properties = m.properties;
  return s;
}

export function fromStored(s: StoredMessage): Message {
  return { topic: s.topic, payload: s.payload, qos: s.qos, retain: s.retain, properties: s.properties, expiresAt: s.expiresAt, origin: s.origin, encoded: undefined };
}

function toStoredSession(s: Session): StoredSession {
  const rec: StoredSession = {
    clientId: s.clientId,
    expiryInterval: s.expiryInterval,
    subscriptions: [...s.subscriptions.values()].map((sub) => {
      const out: StoredSession['subscriptions'][number] = {
        filter: sub.filter, qos: sub.qos, noLocal: sub.noLocal, retainAsPublished: sub.retainAsPublished, retainHandling: sub.retainHandling,
      };
      if (sub.subscriptionId !== undefined) out.subscriptionId = sub.subscriptionId;
      return out;
    }),
    outbound: [...s.inflight.values(), ...s.queuedMessages()].map((o) => {
      const out: StoredSession['outbound'][number] = { message: toStored(o.message), qos: o.qos, retain: o.retain };
      if (o.subscriptionIds !== undefined) out.subscriptionIds = o.subscriptionIds;
      if (o.packetId !== 0) out.packetId = o.packetId;
      if (o.released) out.released = true;
      return out;
    }),
    inboundQos2: [...s.inboundQos2],
  };
  if (s.disconnectedAt !== undefined) rec.disconnectedAt = s.disconnectedAt;
  if (s.pendingWill !== undefined) rec.pendingWill = { message: toStored(s.pendingWill.message), delaySeconds: s.pendingWill.delaySeconds };
  if (s.owner !== undefined) rec.owner = s.owner;
  return rec;
}
