/**
 * In-memory store: the reference implementation of the Store contract. A broker restarted on
 * the same instance (tests, embedding) resumes sessions and retained messages; nothing survives
 * the process. Every write is "committed" at once, so `commitPoint()` is always null.
 */
import type { Store, StoredMessage, StoredOutbound, StoredSession, StoreSnapshot } from './types.js';

export class MemoryStore implements Store {
  readonly #retained = new Map<string, StoredMessage>();
  readonly #sessions = new Map<string, StoredSession>();
  readonly #messages = new Map<number, StoredMessage>();
  readonly #outbound = new Map<string, Map<number, StoredOutbound>>();
  readonly #inbound = new Map<string, Set<number>>();

  async open(): Promise<void> {}
  async close(): Promise<void> {}

  async load(): Promise<StoreSnapshot> {
    const outbound = new Map<string, Array<[number, StoredOutbound]>>();
    for (const [clientId, entries] of this.#outbound) {
      if (entries.size > 0)
        outbound.set(
          clientId,
          [...entries].sort((a, b) => a[0] - b[0]).map(([seq, e]) => [seq, { ...e }]),
        );
    }
    const inbound = new Map<string, number[]>();
    for (const [clientId, ids] of this.#inbound) if (ids.size > 0) inbound.set(clientId, [...ids]);
    return {
      retained: [...this.#retained],
      sessions: [...this.#sessions.values()].map((s) => ({ ...s, subscriptions: s.subscriptions.map((x) => ({ ...x })) })),
      messages: new Map(this.#messages),
      outbound,
      inbound,
    };
  }

  putRetained(topic: string, message: StoredMessage): void {
    this.#retained.set(topic, message);
  }

  deleteRetained(topic: string): void {
    this.#retained.delete(topic);
  }

  putSession(session: StoredSession): void {
    this.#sessions.set(session.clientId, { ...session, subscriptions: session.subscriptions.map((x) => ({ ...x })) });
  }

  deleteSession(clientId: string): void {
    this.#sessions.delete(clientId);
    this.#outbound.delete(clientId);
    this.#inbound.delete(clientId);
  }

  putMessage(id: number, message: StoredMessage): void {
    this.#messages.set(id, message);
  }

  deleteMessage(id: number): void {
    this.#messages.delete(id);
  }

  putOutbound(clientId: string, seq: number, entry: StoredOutbound): void {
    let m = this.#outbound.get(clientId);
    if (m === undefined) this.#outbound.set(clientId, (m = new Map()));
    m.set(seq, { ...entry });
  }

  deleteOutbound(clientId: string, seq: number): void {
    this.#outbound.get(clientId)?.delete(seq);
  }

  putInbound(clientId: string, packetId: number): void {
    let s = this.#inbound.get(clientId);
    if (s === undefined) this.#inbound.set(clientId, (s = new Set()));
    s.add(packetId);
  }

  deleteInbound(clientId: string, packetId: number): void {
    this.#inbound.get(clientId)?.delete(packetId);
  }

  commitPoint(): Promise<void> | null {
    return null;
  }

  async flush(): Promise<void> {}
}
