/**
 * The broker core's side towards the store: the outbound journal's inline mode, entries a
 * session's previous owner handed over (cluster), commit points (the store's, merged with the
 * cluster's), atomic units, flush, and the inbound QoS 2 packet ids. `BrokerCore` extends it, so
 * callers reach these on the core without a hop; routing stays in broker-core.ts.
 */
import type { Store, StoredOutbound } from '../store/types.js';
import type { ClusterLink } from './cluster-link.js';
import type { OutboundJournal } from './journal.js';
import { isExpired } from './message.js';
import type { Session } from './session.js';
import { fromStored } from './stored-records.js';

export abstract class CoreStorage {
  /** The core's sessions by client id (BrokerCore.sessions). */
  abstract readonly sessions: Map<string, Session>;
  /** The cluster link, when this node is part of a cluster (BrokerCore.cluster). */
  abstract cluster: ClusterLink | undefined;
  readonly #store: Store;
  readonly #journal: OutboundJournal;

  constructor(store: Store, journal: OutboundJournal) {
    this.#store = store;
    this.#journal = journal;
  }

  /**
   * Every journaled entry carries its message inline (no shared message records): set in a
   * cluster (see OutboundJournal.inlineMessages).
   */
  get inlineMessages(): boolean {
    return this.#journal.inlineMessages;
  }

  set inlineMessages(on: boolean) {
    this.#journal.inlineMessages = on;
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

  /**
   * Resolves when every store write so far is committed, and (in a cluster) the cluster writes
   * up to `clusterMark` are accepted; null when nothing is outstanding.
   */
  commitPoint(clusterMark = 0): Promise<void> | null {
    this.#journal.flush();
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
    this.#journal.flush();
    await this.#store.flush();
  }

  /**
   * Opens (true) or closes (false) a unit of writes that the store commits atomically: what was
   * journaled goes to the store before the unit closes.
   */
  atomic(on: boolean, scope?: string): void {
    if (!on) this.#journal.flush();
    this.#store.atomic?.(on, scope);
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
}
