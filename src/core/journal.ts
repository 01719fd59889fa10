/**
 * Journal of outbound entries for persisted sessions. New entries are collected during the
 * turn and written at the next commit point (before any packet can leave): a message that only
 * one new entry carries is stored inline in it (one write, one delete), one that several carry
 * is stored once and referenced by id (refcounted).
 */
import type { Store, StoredOutbound } from '../store/types.js';
import type { Message } from './message.js';
import type { Journal, Outbound, Session } from './session.js';
import { toStored, toStoredOutbound } from './stored-records.js';

export class OutboundJournal implements Journal {
  /**
   * Every journaled entry carries its message inline (no shared message records): set in a
   * cluster, where a session moves between nodes and a shared record would need cluster-wide
   * reference counts.
   */
  inlineMessages = false;
  /** Highest stored message id and outbound entry key so far (raised by what is loaded from the store). */
  nextMessageId = 0;
  nextSeq = 0;
  readonly #store: Store;
  readonly #pending: Array<{ session: Session; entry: Outbound }> = [];

  constructor(store: Store) {
    this.#store = store;
  }

  added(session: Session, entry: Outbound): void {
    entry.seq = ++this.nextSeq;
    entry.journaled = 1;
    // Written at the next commit point, or at the end of this turn when no packet asks for one
    // (e.g. a will or a QoS 0 publisher's message queued for an offline session).
    if (this.#pending.length === 0) process.nextTick(() => this.flush());
    this.#pending.push({ session, entry });
  }

  updated(session: Session, entry: Outbound): void {
    // An entry sent at once is first journaled here, packet id included (one write, not two).
    if (entry.seq === 0) this.added(session, entry);
    else if (entry.journaled !== 1) this.#store.putOutbound(session.clientId, entry.seq, this.#stored(entry));
  }

  reserve(count: number): number {
    const first = this.nextSeq + 1;
    this.nextSeq += count;
    return first;
  }

  removed(session: Session, entry: Outbound): void {
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
  }

  #stored(entry: Outbound): StoredOutbound {
    const o = toStoredOutbound(entry);
    if (entry.journaled === 3) {
      o.messageId = 0;
      o.message = toStored(entry.message);
    }
    return o;
  }

  /** Writes the entries journaled this turn. */
  flush(): void {
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
          m.storeId = ++this.nextMessageId;
          this.#store.putMessage(m.storeId, toStored(m));
        }
        m.refs++;
        entry.journaled = 2;
      }
      this.#store.putOutbound(session.clientId, entry.seq, this.#stored(entry));
    }
    pending.length = 0;
  }
}
