/**
 * The life of a session in the core: opened at CONNECT (taking over a live connection), its
 * connection's end, Will Delay and Session Expiry on the deadline heap, its end for good, and
 * its record written through to the store.
 */
import type { Logger } from '../options.js';
import type { Store } from '../store/types.js';
import type { BrokerCore } from './broker-core.js';
import type { CoreObserver, LiveConnection } from './core-types.js';
import type { OutboundJournal } from './journal.js';
import { Session, type SessionEnv, type Will } from './session.js';
import { toStoredSession } from './stored-records.js';

export const NEVER_EXPIRES = 0xffffffff;

/** What the lifecycle uses of the core (the facade it sits behind). */
export type LifecycleCore = Pick<BrokerCore, 'sessions' | 'live' | 'counters' | 'deadlines' | 'shared' | 'cluster' | 'unsubscribe' | 'publishWill'>;

export interface LifecycleParts {
  readonly store: Store;
  readonly log: Logger;
  readonly observer: CoreObserver;
  readonly sessionEnv: SessionEnv;
  readonly journal: OutboundJournal;
  /** Shared-subscription messages a member held go to another member (see BrokerCore). */
  readonly redistribute: (session: Session, keep: boolean) => void;
}

export class SessionLifecycle {
  readonly #core: LifecycleCore;
  readonly #store: Store;
  readonly #log: Logger;
  readonly #observer: CoreObserver;
  readonly #sessionEnv: SessionEnv;
  readonly #journal: OutboundJournal;
  readonly #redistribute: (session: Session, keep: boolean) => void;

  constructor(core: LifecycleCore, parts: LifecycleParts) {
    this.#core = core;
    this.#store = parts.store;
    this.#log = parts.log;
    this.#observer = parts.observer;
    this.#sessionEnv = parts.sessionEnv;
    this.#journal = parts.journal;
    this.#redistribute = parts.redistribute;
  }

  /**
   * Another node took this session over (cluster): its connection here is closed (5.0: DISCONNECT
   * 0x8E) and its copy dropped without a store write or a will — the node that took it decides
   * the will from the stored session, so it goes out once.
   */
  evict(clientId: string): void {
    const core = this.#core;
    const s = core.sessions.get(clientId);
    if (s !== undefined) this.#silence(s);
    const live = core.live.get(clientId);
    if (live !== undefined) {
      core.live.delete(clientId);
      core.counters.sessionsTakenOver++;
      live.takeover();
    }
    const left = core.sessions.get(clientId);
    if (left !== undefined) {
      this.#silence(left);
      this.endSession(left, false);
    }
  }

  /** Every session dropped, connections closed with `close`, no wills, no store writes (a node that fenced itself). */
  dropAll(close: (c: LiveConnection) => void): void {
    const core = this.#core;
    for (const s of core.sessions.values()) this.#silence(s);
    for (const [id, c] of [...core.live]) {
      core.live.delete(id);
      close(c);
    }
    for (const s of [...core.sessions.values()]) {
      this.#silence(s);
      this.endSession(s, false);
    }
  }

  #silence(s: Session): void {
    s.will = undefined;
    s.pendingWill = undefined;
    s.journal = undefined;
    s.stored = false;
    this.#core.deadlines.cancel(s);
  }

  /**
   * CONNECT: finds or creates the session for a client id. A live connection holding it is
   * taken over [MQTT-3.1.4-3]; Clean Start discards the old session [MQTT-3.1.2-4], otherwise it is
   * resumed and a pending will cancelled [MQTT-3.1.3-9].
   */
  openSession(clientId: string, clean: boolean): { session: Session; present: boolean } {
    const previous = this.#core.live.get(clientId);
    if (previous !== undefined) {
      this.#core.live.delete(clientId);
      this.#core.counters.sessionsTakenOver++;
      previous.takeover();
    }
    let session = this.#core.sessions.get(clientId);
    if (session !== undefined && clean) {
      this.endSession(session);
      session = undefined;
    }
    if (session !== undefined) {
      this.#core.deadlines.cancel(session);
      session.pendingWill = undefined;
      this.#core.counters.sessionsResumed++;
      return { session, present: true };
    }
    session = new Session(clientId, this.#sessionEnv);
    this.#core.sessions.set(clientId, session);
    this.#core.counters.sessionsCreated++;
    return { session, present: false };
  }

  /** Ends a session for good: its pending will goes out, its subscriptions and state are removed (and, in a cluster, its ownership released unless `release` is false). */
  endSession(session: Session, release = true): void {
    this.#core.deadlines.cancel(session);
    // Shared-subscription QoS 1 messages it held go to another member (MQTT 5.0 §4.8.2).
    if (this.#core.shared.size > 0) this.#redistribute(session, false);
    const will = session.pendingWill;
    session.pendingWill = undefined;
    if (will !== undefined) this.#core.publishWill(will, session.clientId);
    for (const filter of [...session.subscriptions.keys()]) this.#core.unsubscribe(session, filter);
    if (this.#core.sessions.get(session.clientId) === session) this.#core.sessions.delete(session.clientId);
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
    if (release && session.claimToken !== undefined) this.#core.cluster?.sessionEnded?.(session.clientId, session.claimToken);
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
    if (this.#core.shared.size > 0) this.#redistribute(session, true);
    this.afterConnectionEnd(session, will, now, now);
  }

  /** Will, expiry and store write after a connection ended at `endedAt` (now, or for a restored session when its node stopped). */
  afterConnectionEnd(session: Session, will: Will | undefined, endedAt: number, now: number): void {
    session.will = undefined;
    const expiry = session.expiryInterval;
    if (expiry === 0) {
      if (will !== undefined) session.pendingWill = will;
      this.endSession(session);
      return;
    }
    if (will !== undefined) {
      // Sent at the earlier of the will delay and the end of the session [MQTT-3.1.3-9].
      if (endedAt + will.delaySeconds * 1000 <= now) this.#core.publishWill(will, session.clientId);
      else session.pendingWill = will;
    }
    this.schedule(session);
    this.persist(session);
  }

  /**
   * Puts a session on the deadline heap at the earliest of: the expiry of a queued message
   * [MQTT-3.3.2-5] and, while offline, its will delay and its session expiry, both counted from
   * the absolute time its connection ended (`disconnectedAt`, which the store keeps, so a
   * restart resumes the same deadlines) [MQTT-3.1.2-23], [MQTT-3.1.3-9]. A Session Expiry
   * Interval of 0xFFFFFFFF never ends the session (5.0 §3.1.2.11.2, no statement id).
   */
  schedule(session: Session): void {
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
    if (at === Infinity) this.#core.deadlines.cancel(session);
    else this.#core.deadlines.schedule(session, at);
  }

  /** A session's deadline came: expired messages leave its queue, its will goes out, its session ends. */
  sessionDue(session: Session, now: number): void {
    if (this.#core.sessions.get(session.clientId) !== session) return;
    if (session.queueExpiresAt !== 0 && session.queueExpiresAt <= now) session.dropExpired(now);
    const ended = session.disconnectedAt;
    if (ended === undefined || session.outlet !== undefined) {
      this.schedule(session);
      return;
    }
    const will = session.pendingWill;
    if (will !== undefined && ended + will.delaySeconds * 1000 <= now) {
      session.pendingWill = undefined;
      this.#core.publishWill(will, session.clientId);
      this.persist(session);
    }
    if (session.expiryInterval !== NEVER_EXPIRES && ended + session.expiryInterval * 1000 <= now) {
      this.#core.counters.sessionsExpired++;
      this.#log.debug({ clientId: session.clientId }, 'session expired');
      // A will still pending goes out with the session's end (endSession) [MQTT-3.1.3-9].
      this.endSession(session);
      this.#observer.sessionExpired(session.clientId);
      return;
    }
    this.schedule(session);
  }

  /** Writes the session record through to the store (sessions that outlive their connection, or carry a will). */
  persist(session: Session): void {
    if (this.#core.sessions.get(session.clientId) !== session) return;
    if (session.journal === undefined && session.will === undefined && !session.stored) return;
    session.stored = true;
    this.#store.putSession(toStoredSession(session));
  }
}
