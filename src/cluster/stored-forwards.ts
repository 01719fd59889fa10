/**
 * QoS 2 forwards of a client's PUBLISHes (Cluster II), written inside the session store's commit
 * of this turn: the same atomic call that records the client's inbound packet id (and its local
 * deliveries), so a node that dies has done all of them or none, and the client's resend elsewhere
 * is then either recognised by its packet id or routed for the first time — never routed twice.
 * Dropped with the client's writes when its session was claimed elsewhere. One inbox entry per
 * client and destination node per commit; the outbox (outbox.ts) decides which forwards go here.
 */
import type { Message } from '../core/message.js';
import type { ClusterCounters } from './options.js';
import type { Keys } from './scripts.js';
import { BatchWriter } from './wire.js';

/**
 * The session store as the outbox writes through it (redis-store.ts): entries appended to a
 * stream in its next commit, after the writes of the same turn.
 */
export interface StoreAppender {
  append(key: string, fields: () => Array<string | Buffer | number>, gone?: () => void): void;
  appendForward(clientId: string, nid: number, key: string, fields: () => Array<string | Buffer | number>): boolean;
}

export class StoredForwards {
  /** This node (its id is read at each write: a new incarnation has a new one). */
  readonly #node: { readonly nid: number; readonly counters: ClusterCounters };
  readonly #keys: Keys;
  /** By client id: the nodes its forwards of this commit go to, and one batch per node. */
  readonly #byClient = new Map<string, { dests: Set<number>; writers: Map<number, BatchWriter> }>();

  constructor(node: { readonly nid: number; readonly counters: ClusterCounters }, keys: Keys) {
    this.#node = node;
    this.#keys = keys;
  }

  /**
   * Queues `m`, from the client `m.origin`, for node `nid` in `store`'s next commit. False when
   * the client holds no fencing token: the caller forwards it the usual way.
   */
  add(store: StoreAppender, m: Message, nid: number, plain: boolean, groups: readonly string[] | undefined): boolean {
    const origin = m.origin;
    let rec = this.#byClient.get(origin);
    let w = rec?.writers.get(nid);
    if (w === undefined) {
      const r = rec ?? { dests: new Set<number>(), writers: new Map<number, BatchWriter>() };
      const writer = new BatchWriter();
      const ok = store.appendForward(origin, nid, this.#keys.inbox(nid), () => {
        if (this.#byClient.get(origin) === r) this.#byClient.delete(origin);
        // 's': sent through the store's commits (ordered with this node's answers, not its pipeline).
        return ['f', String(this.#node.nid), 'd', [...r.dests].join(','), 's', '1', 'b', writer.finish()];
      });
      if (!ok) return false;
      if (rec === undefined) this.#byClient.set(origin, (rec = r));
      rec.writers.set(nid, (w = writer));
    }
    rec!.dests.add(nid);
    w.add(m, plain, groups);
    this.#node.counters.forwardedOut++;
    return true;
  }
}
