/**
 * Sessions and retained messages from the store: loaded at start, and a stored session put back
 * in memory (a restart, or in a cluster a session taken over from another node).
 */
import type { Logger } from '../options.js';
import type { Store, StoredOutbound, StoredSession } from '../store/types.js';
import type { BrokerCore } from './broker-core.js';
import type { OutboundJournal } from './journal.js';
import { isExpired, type Message } from './message.js';
import type { RetainedMessages } from './retained.js';
import { Session, type Outbound, type SessionEnv, type Subscription } from './session.js';
import { NEVER_EXPIRES, type SessionLifecycle } from './session-lifecycle.js';
import { fromStored } from './stored-records.js';
import { publishGatedWill } from './wills.js';

/** What restoring uses of the core (the facade it sits behind). */
export type RestoreCore = Pick<BrokerCore, 'sessions' | 'cluster' | 'subscribe' | 'willGate' | 'counters' | 'publish'>;

export interface RestoreParts {
  readonly store: Store;
  readonly log: Logger;
  readonly sessionEnv: SessionEnv;
  readonly journal: OutboundJournal;
  readonly retained: RetainedMessages;
  readonly lifecycle: SessionLifecycle;
}

export class SessionRestore {
  readonly #core: RestoreCore;
  readonly #store: Store;
  readonly #log: Logger;
  readonly #sessionEnv: SessionEnv;
  readonly #journal: OutboundJournal;
  readonly #retained: RetainedMessages;
  readonly #lifecycle: SessionLifecycle;

  constructor(core: RestoreCore, parts: RestoreParts) {
    this.#core = core;
    this.#store = parts.store;
    this.#log = parts.log;
    this.#sessionEnv = parts.sessionEnv;
    this.#journal = parts.journal;
    this.#retained = parts.retained;
    this.#lifecycle = parts.lifecycle;
  }

  /** Loads retained messages and sessions from the store; drops what expired while down. */
  async load(now: number): Promise<void> {
    const store = this.#store;
    const snap = await store.load();
    // In a cluster, retained messages live in the cluster (src/cluster/) and are loaded from there.
    if (this.#core.cluster === undefined)
      for (const [topic, sm] of snap.retained) {
        const m = fromStored(sm);
        if (isExpired(m, now)) store.deleteRetained(topic);
        else this.#retained.retain(topic, m);
      }
    const messages = new Map<number, Message>();
    for (const [id, sm] of snap.messages) {
      const m = fromStored(sm);
      m.storeId = id;
      messages.set(id, m);
      if (id > this.#journal.nextMessageId) this.#journal.nextMessageId = id;
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
    for (const [seq] of entries) if (seq > this.#journal.nextSeq) this.#journal.nextSeq = seq;
    const endedAt = rec.disconnectedAt ?? now;
    if (rec.expiryInterval !== NEVER_EXPIRES && endedAt + rec.expiryInterval * 1000 <= now && rec.disconnectedAt !== undefined) {
      // Expired while nobody held it; a will still pending goes out with the session's end.
      if (wills && rec.will !== undefined) publishGatedWill(this.#core, this.#log, fromStored(rec.will.message), rec.clientId, rec.owner);
      store.deleteSession(rec.clientId);
      this.#core.cluster?.sessionEnded?.(rec.clientId, claimToken);
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
      this.#core.subscribe(s, v);
    }
    for (const [seq, o] of queueOrder(entries)) {
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
      const entry: Outbound = {
        message: m,
        seq,
        seqWritten: seq,
        journaled: o.message !== undefined ? 3 : 2,
        qos: o.qos,
        retain: o.retain,
        subscriptionIds: o.subscriptionIds,
        packetId: o.packetId ?? 0,
        released: o.released ?? false,
      };
      if (o.order !== undefined) entry.order = o.order;
      s.restore(entry);
    }
    for (const id of inbound) s.addInbound(id);
    this.#core.sessions.set(s.clientId, s);
    s.detach(endedAt);
    const will = !wills || rec.will === undefined ? undefined : { message: fromStored(rec.will.message), delaySeconds: rec.will.delaySeconds };
    this.#lifecycle.afterConnectionEnd(s, will, endedAt, now);
    return this.#core.sessions.get(s.clientId) === s ? s : undefined;
  }
}

/**
 * A session's stored outbound entries (in key order) in the order of its queue: by `order` where
 * an entry has one (handed back while the session held later messages), else by key. Stable.
 */
export function queueOrder(entries: ReadonlyArray<[number, StoredOutbound]>): ReadonlyArray<[number, StoredOutbound]> {
  if (!entries.some(([, o]) => o.order !== undefined)) return entries;
  return [...entries].sort((a, b) => (a[1].order ?? a[0]) - (b[1].order ?? b[0]));
}
