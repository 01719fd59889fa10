/**
 * In-memory store: keeps deep-enough copies so a broker restarted on the same instance (tests,
 * embedding) resumes sessions and retained messages; nothing survives the process.
 */
import type { Store, StoredMessage, StoredSession } from './types.js';

export class MemoryStore implements Store {
  readonly #retained = new Map<string, StoredMessage>();
  readonly #sessions = new Map<string, StoredSession>();

  async open(): Promise<void> {}
  async close(): Promise<void> {}

  async loadRetained(): Promise<Array<[string, StoredMessage]>> {
    return [...this.#retained];
  }

  async loadSessions(): Promise<StoredSession[]> {
    return [...this.#sessions.values()].map(copySession);
  }

  putRetained(topic: string, message: StoredMessage): void {
    this.#retained.set(topic, message);
  }

  deleteRetained(topic: string): void {
    this.#retained.delete(topic);
  }

  putSession(session: StoredSession): void {
    this.#sessions.set(session.clientId, copySession(session));
  }

  deleteSession(clientId: string): void {
    this.#sessions.delete(clientId);
  }

  async flush(): Promise<void> {}
}

/** Messages are immutable once created, so records share them; the containers are copied. */
function copySession(s: StoredSession): StoredSession {
  return {
    ...s,
    subscriptions: s.subscriptions.map((x) => ({ ...x })),
    outbound: s.outbound.map((o) => ({ ...o })),
    inboundQos2: [...s.inboundQos2],
  };
}
