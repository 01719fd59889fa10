/**
 * Subscriptions on the server: SUBSCRIBE / UNSUBSCRIBE exchanges (each a promise settled by its
 * SUBACK / UNSUBACK, resent after a reconnect until acknowledged), the resubscribe when the server
 * kept no session (Session Present 0) and never otherwise, and the session store's records of the
 * subscriptions, so that a restarted process knows what it had subscribed to.
 */
import type { Packet, Properties, SubackPacket, UnsubackPacket } from '../../../src/protocol/packets.js';
import { checkTopicFilter } from '../../../src/topics/validate.js';
import { ClientError, ClosedError, LimitError, RefusedError, abortReason } from './errors.js';
import type { Outgoing } from './outgoing.js';
import { compileFilter } from './params.js';
import { Router } from './router.js';
import type { SessionStore, StoredSubscription } from './store.js';
import { SubscriptionImpl, type SubscriptionOwner } from './subscription.js';
import type { ServerLimits, SubscribeOptions } from './types.js';

export interface SubscriberHost extends SubscriptionOwner {
  readonly version: 3 | 4 | 5;
  connected(): boolean;
  closed(): boolean;
  write(packet: Packet): void;
  whenConnected(signal: AbortSignal | undefined): Promise<void>;
  server(): ServerLimits;
}

interface AckWaiter {
  packet: Packet;
  /** The filter of a SUBSCRIBE (undefined for UNSUBSCRIBE). */
  filter: string | undefined;
  resolve(codes: number[]): void;
  reject(e: Error): void;
  /** Aborted after it was sent: its identifier stays taken until the acknowledgement comes. */
  aborted?: boolean;
}

export class Subscriber {
  readonly router = new Router();
  readonly #acks = new Map<number, AckWaiter>();
  readonly #out: Outgoing;
  readonly #store: SessionStore | undefined;
  readonly #host: SubscriberHost;

  constructor(out: Outgoing, store: SessionStore | undefined, host: SubscriberHost) {
    this.#out = out;
    this.#store = store;
    this.#host = host;
  }

  /** Exchanges not yet acknowledged (for leak checks). */
  get pending(): number {
    return this.#acks.size;
  }

  /**
   * Subscriptions a store kept from an earlier process: local subscriptions again (no handler:
   * their messages wait in the buffer until iterated, or until subscribe() with the same filter
   * takes them over). The server still has them when it kept the session; else connected() sends them.
   */
  restore(subs: readonly StoredSubscription[]): SubscriptionImpl[] {
    const out: SubscriptionImpl[] = [];
    for (const s of subs) {
      const { filter, topicFilter, identifier, ...options } = s;
      if (identifier !== undefined) this.router.restoreIdentifier(topicFilter, identifier);
      const sub = new SubscriptionImpl(this.#host, filter, compileFilter(filter), options, this.router.nextKey());
      sub.grantedQoS = s.qos;
      sub.granted = true;
      sub.restored = true;
      this.router.add(sub);
      out.push(sub);
    }
    return out;
  }

  /** A new connection: unacknowledged exchanges go again; with no session kept, every filter is subscribed again. */
  connected(sessionPresent: boolean): void {
    const inFlight = new Set<string>();
    for (const [id, w] of this.#acks) {
      // An aborted exchange's connection is gone, and its acknowledgement with it: the identifier is
      // free again. An UNSUBSCRIBE has nothing to do when the server kept no session.
      const moot = !sessionPresent && w.packet.type === 'unsubscribe';
      if (w.aborted || moot) {
        this.#acks.delete(id);
        this.#out.release(id);
        if (moot) w.resolve([0x11]);
        continue;
      }
      this.#host.write(w.packet);
      if (w.filter !== undefined) inFlight.add(w.filter);
    }
    if (!sessionPresent) this.#resubscribe(inFlight);
  }

  #resubscribe(skip: ReadonlySet<string>): void {
    for (const s of this.router.distinct()) {
      // A filter whose SUBSCRIBE is in flight or not sent yet (subscribe() waiting for this connection) goes once.
      if (skip.has(s.compiled.filter) || !s.granted) continue;
      this.#sendSubscribe(s).then(
        (code) => {
          if (code >= 0x80) this.#host.reportError(new RefusedError(`resubscribe to ${s.compiled.filter}`, code));
        },
        () => undefined,
      );
    }
  }

  /** Subscribes; resolves once the server granted it (rejects on a refusal, with its reason code). Offline, it waits for the connection. */
  async subscribe<F extends string>(filter: F, options: SubscribeOptions<F>): Promise<SubscriptionImpl<F>> {
    if (this.#host.closed()) throw new ClosedError();
    const compiled = compileFilter(filter);
    const bad = checkTopicFilter(compiled.filter);
    if (bad !== null) throw new ClientError('INVALID', bad);
    const sub = new SubscriptionImpl<F>(this.#host, filter, compiled, options, this.router.nextKey());
    // Registered before SUBSCRIBE leaves: retained messages follow the SUBACK at once.
    this.router.add(sub as SubscriptionImpl);
    try {
      await this.#host.whenConnected(options.signal);
      const code = await this.#sendSubscribe(sub as SubscriptionImpl, options.signal);
      if (code >= 0x80) throw new RefusedError(`SUBSCRIBE to ${compiled.filter}`, code);
      sub.grantedQoS = code as 0 | 1 | 2;
      sub.granted = true;
    } catch (e) {
      this.router.remove(sub as SubscriptionImpl);
      sub.end();
      throw e;
    }
    // A subscription restored from the store with this very filter hands over what it buffered and ends.
    for (const old of this.router.restoredWith(compiled.filter)) {
      this.router.remove(old);
      old.handOver(sub as SubscriptionImpl);
    }
    if (options.persist !== false) this.#store?.subscribed?.(toStoredSubscription(filter, compiled.filter, options, this.router.identifierOf(compiled.filter)));
    const signal = options.signal;
    if (signal !== undefined) {
      // Its signal unsubscribes; the listener goes when the subscription ends, whatever ends it.
      const onAbort = () => void sub.unsubscribe().catch(() => undefined);
      signal.addEventListener('abort', onAbort, { once: true });
      sub.onEnd = () => signal.removeEventListener('abort', onAbort);
    }
    return sub;
  }

  #sendSubscribe(sub: SubscriptionImpl, signal?: AbortSignal): Promise<number> {
    const o = sub.options;
    const filter = sub.compiled.filter;
    let properties: Properties | undefined;
    if (this.#host.version === 5) {
      if (this.#host.server().subscriptionIdentifiersAvailable) properties = { subscriptionIdentifiers: [this.router.identifierFor(filter)] };
      if (o.userProperties !== undefined) properties = { ...properties, userProperties: o.userProperties };
    }
    return this.#request(
      filter,
      (packetId) => ({
        type: 'subscribe',
        packetId,
        subscriptions: [
          {
            topicFilter: filter,
            qos: o.qos ?? 0,
            noLocal: o.noLocal ?? false,
            retainAsPublished: o.retainAsPublished ?? false,
            retainHandling: o.retainHandling ?? 0,
          },
        ],
        ...(properties === undefined ? {} : { properties }),
      }),
      signal,
    ).then((codes) => codes[0] ?? 0x80);
  }

  /**
   * A subscription's unsubscribe(): UNSUBSCRIBE when no other local subscription has its filter.
   * Offline it waits for the next connection: a session the server kept still has the
   * subscription (Session Present 1); with Session Present 0 there is nothing to undo.
   */
  async unsubscribe(sub: SubscriptionImpl): Promise<void> {
    if (!this.router.remove(sub)) return; // another local subscription still wants the filter
    if (sub.options.persist !== false) this.#store?.unsubscribed?.(sub.compiled.filter);
    if (this.#host.closed()) return;
    const code = (await this.unsubscribeFilters([sub.compiled.filter]))[0] ?? 0;
    if (this.#host.version === 5 && code >= 0x80 && code !== 0x11) throw new RefusedError(`UNSUBSCRIBE from ${sub.compiled.filter}`, code);
  }

  /**
   * UNSUBSCRIBE `filters` as given, whoever subscribed to them (a session the server kept, say);
   * local subscriptions with one of them end. Resolves with the UNSUBACK's reason codes (5.0).
   */
  unsubscribeFilters(filters: string[], userProperties?: Array<[string, string]>): Promise<number[]> {
    for (const f of filters) {
      const bad = checkTopicFilter(f);
      if (bad !== null) return Promise.reject(new ClientError('INVALID', bad));
    }
    for (const s of this.router.all()) {
      if (!filters.includes(s.compiled.filter)) continue;
      this.router.remove(s);
      s.end();
      if (s.options.persist !== false) this.#store?.unsubscribed?.(s.compiled.filter);
    }
    const properties = this.#host.version === 5 && userProperties !== undefined ? { userProperties } : undefined;
    return this.#request(undefined, (packetId) => ({ type: 'unsubscribe', packetId, topicFilters: filters, ...(properties && { properties }) }));
  }

  acked(p: SubackPacket | UnsubackPacket): void {
    const w = this.#acks.get(p.packetId);
    if (w === undefined) return;
    this.#acks.delete(p.packetId);
    // Free for reuse once its acknowledgement is processed [MQTT-2.2.1-3] (3.1.1: [MQTT-2.3.1-2]).
    this.#out.release(p.packetId);
    if (!w.aborted) return w.resolve(p.reasonCodes);
    // An aborted SUBSCRIBE the server granted anyway: nobody wants it, unless a local subscription has the filter.
    const f = w.filter;
    if (p.type === 'suback' && (p.reasonCodes[0] ?? 0x80) < 0x80 && f !== undefined && !this.router.has(f)) {
      this.#request(undefined, (packetId) => ({ type: 'unsubscribe', packetId, topicFilters: [f] })).catch(() => undefined);
    }
  }

  /** The client stopped: pending exchanges are rejected, iterations end. */
  closeAll(err: Error): void {
    for (const w of this.#acks.values()) w.reject(err);
    this.#acks.clear();
    this.router.endAll();
  }

  /** Sends a SUBSCRIBE/UNSUBSCRIBE and resolves with its acknowledgement's reason codes (resent after a reconnect). */
  #request(filter: string | undefined, build: (packetId: number) => Packet, signal?: AbortSignal): Promise<number[]> {
    if (this.#host.closed()) return Promise.reject(new ClosedError());
    const id = this.#out.allocate();
    if (id === undefined) return Promise.reject(new LimitError('all packet identifiers are in use'));
    return new Promise<number[]>((resolve, reject) => {
      const onAbort = () => {
        // Written on the live connection, the server may still answer it: its identifier is not
        // reused until then [MQTT-2.2.1-3]. Not sent (or sent on a lost connection), it is free now.
        const w = this.#acks.get(id);
        if (w !== undefined && this.#host.connected()) w.aborted = true;
        else {
          this.#acks.delete(id);
          this.#out.release(id);
        }
        reject(abortReason(signal!));
      };
      const packet = build(id);
      this.#acks.set(id, {
        packet,
        filter,
        resolve: (codes) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(codes);
        },
        reject: (e) => {
          signal?.removeEventListener('abort', onAbort);
          reject(e);
        },
      });
      signal?.addEventListener('abort', onAbort, { once: true });
      if (this.#host.connected()) this.#host.write(packet);
    });
  }
}

function toStoredSubscription(filter: string, topicFilter: string, o: SubscribeOptions, identifier: number | undefined): StoredSubscription {
  const s: StoredSubscription = { filter, topicFilter, qos: o.qos ?? 0 };
  if (o.noLocal !== undefined) s.noLocal = o.noLocal;
  if (o.retainAsPublished !== undefined) s.retainAsPublished = o.retainAsPublished;
  if (o.retainHandling !== undefined) s.retainHandling = o.retainHandling;
  if (o.buffer !== undefined) s.buffer = o.buffer;
  if (identifier !== undefined) s.identifier = identifier;
  return s;
}
