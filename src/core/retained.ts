/**
 * Retained messages of this node: the in-memory index, written through to the store (or, in a
 * cluster, to the cluster, which keeps them), and the expiry of those with a Message Expiry.
 */
import type { MqttOptions } from '../options.js';
import type { Store } from '../store/types.js';
import { RetainedIndex } from '../topics/index.js';
import type { ClusterLink } from './cluster-link.js';
import type { Deadlines, Scheduled } from './deadlines.js';
import { detach, isExpired, type Message } from './message.js';
import { toStored } from './stored-records.js';

/** A retained message with a Message Expiry, on the deadline heap (only these get an entry). */
export interface RetainedExpiry extends Scheduled {
  readonly topic: string;
  readonly message: Message;
}

export class RetainedMessages {
  readonly index = new RetainedIndex<Message>();
  readonly #expiry = new Map<string, RetainedExpiry>();
  readonly #mqtt: MqttOptions;
  readonly #store: Store;
  readonly #deadlines: Pick<Deadlines<RetainedExpiry>, 'schedule' | 'cancel'>;
  /** The core, for its cluster link (set after construction, before `load`). */
  readonly #node: { readonly cluster: ClusterLink | undefined };

  constructor(
    mqtt: MqttOptions,
    store: Store,
    deadlines: Pick<Deadlines<RetainedExpiry>, 'schedule' | 'cancel'>,
    node: { readonly cluster: ClusterLink | undefined },
  ) {
    this.#mqtt = mqtt;
    this.#store = store;
    this.#deadlines = deadlines;
    this.#node = node;
  }

  /** Stores or (empty payload) deletes the retained message of a topic [MQTT-3.3.1-6], [MQTT-3.3.1-7]. */
  set(m: Message): void {
    if (!this.#mqtt.retainAvailable) return;
    const link = this.#node.cluster;
    if (link !== undefined) {
      // The cluster keeps retained messages; this node's index is updated at once (so this
      // node reads its own write) and again, in cluster order, from the retained log.
      this.apply(m);
      link.retain(m);
      return;
    }
    if (m.payload.length === 0) {
      if (this.#unretain(m.topic)) this.#store.deleteRetained(m.topic);
      return;
    }
    this.retain(m.topic, m);
    this.#store.putRetained(m.topic, toStored(m));
  }

  /** Removes a topic's retained message from the in-memory index only (cluster). */
  drop(topic: string): void {
    this.#unretain(topic);
  }

  /** Applies a retained change to the in-memory index only (cluster: the store is the cluster's). */
  apply(m: Message): void {
    if (m.payload.length === 0) this.#unretain(m.topic);
    else this.retain(m.topic, m);
  }

  /** Sets a topic's retained message; one with a Message Expiry goes on the deadline heap. */
  retain(topic: string, m: Message): void {
    // Kept until replaced: only its own bytes (message.ts detach).
    detach(m);
    this.#cancelExpiry(topic);
    this.index.set(topic, m);
    if (m.expiresAt === 0) return;
    const r: RetainedExpiry = { deadlineIndex: -1, deadlineAt: 0, topic, message: m };
    this.#expiry.set(topic, r);
    this.#deadlines.schedule(r, m.expiresAt);
  }

  #unretain(topic: string): boolean {
    this.#cancelExpiry(topic);
    return this.index.delete(topic);
  }

  #cancelExpiry(topic: string): void {
    if (this.#expiry.size === 0) return;
    const r = this.#expiry.get(topic);
    if (r === undefined) return;
    this.#deadlines.cancel(r);
    this.#expiry.delete(topic);
  }

  /** A retained message's expiry came: it is no longer kept, in memory or in the store [MQTT-3.3.2-5]. */
  due(r: RetainedExpiry): void {
    if (this.#expiry.get(r.topic) !== r) return;
    this.#unretain(r.topic);
    if (this.#node.cluster === undefined) this.#store.deleteRetained(r.topic);
  }

  /** Retained messages matching a filter, expired ones removed on the way. */
  matching(filter: string, now: number): Message[] {
    const out: Message[] = [];
    const expired: string[] = [];
    this.index.match(filter, (topic, m) => {
      if (isExpired(m, now)) expired.push(topic);
      else out.push(m);
    });
    for (const topic of expired) {
      this.#unretain(topic);
      if (this.#node.cluster === undefined) this.#store.deleteRetained(topic);
    }
    return out;
  }
}
