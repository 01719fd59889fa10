/**
 * The client: one object per logical session, across any number of connections. It owns the
 * connection lifecycle (connect, keep alive, reconnect with backoff, resume), the outgoing QoS
 * state (outgoing.ts), the local subscriptions (subscription.ts, routed with the broker's topic
 * trie) and every pending promise, each of which settles: acknowledged, refused with a reason
 * code, aborted by its signal, or rejected at close.
 */
import { Decoder } from '../../../src/protocol/decoder.js';
import { encode } from '../../../src/protocol/encoder.js';
import type { ConnackPacket, Packet, Properties, PublishPacket } from '../../../src/protocol/packets.js';
import { checkTopicFilter } from '../../../src/topics/validate.js';
import { Backoff } from './backoff.js';
import { ClientError, ClosedError, ConnectionError, LimitError, PERMANENT_REFUSALS, RefusedError, abortReason, connackReason } from './errors.js';
import { Emitter } from './emitter.js';
import { buildConnect, limitsOf, DEFAULT_LIMITS } from './packets.js';
import { Router } from './router.js';
import { Outgoing } from './outgoing.js';
import { Publisher } from './publisher.js';
import { compileFilter } from './params.js';
import { SubscriptionImpl, type Subscription } from './subscription.js';
import type { OpenTransport, Transport } from './transport.js';
import type { ClientEvents, ClientOptions, ClientState, Payload, PublishOptions, PublishResult, ServerLimits, SubscribeOptions } from './types.js';
import { Requester, type RequestOptions } from './request.js';
import type { SessionStore, StoredSession } from './store.js';
import type { Message } from './types.js';

interface AckWaiter {
  packet: Packet;
  resolve(codes: number[]): void;
  reject(e: Error): void;
}

interface Connection {
  transport: Transport;
  decoder: Decoder<Client>;
  connack: { resolve(p: ConnackPacket): void; reject(e: Error): void } | undefined;
  /** Called when the transport has closed. */
  onClosed: (() => void) | undefined;
}

export class Client implements AsyncDisposable {
  readonly url: URL;
  readonly options: Readonly<ClientOptions>;
  readonly version: 3 | 4 | 5;
  clientId: string;
  state: ClientState = 'connecting';
  server: ServerLimits = DEFAULT_LIMITS;
  readonly #open: OpenTransport;
  readonly #events = new Emitter<ClientEvents>();
  readonly #out = new Outgoing();
  readonly #acks = new Map<number, AckWaiter>();
  readonly #inboundQos2 = new Set<number>();
  readonly #router = new Router();
  readonly #backoff: Backoff | undefined;
  readonly #waiters = new Set<{ resolve(): void; reject(e: Error): void }>();
  #conn: Connection | undefined;
  #pending: Uint8Array[] = [];
  #flushQueued = false;
  #connectedAt = 0;
  #keepAlive: ReturnType<typeof setInterval> | undefined;
  #pingOutstanding = false;
  #retry: ReturnType<typeof setTimeout> | undefined;
  #attemptAbort: AbortController | undefined;
  #closed: Promise<void> | undefined;
  #requester: Requester | undefined;
  #everConnected = false;
  readonly #store: SessionStore | undefined;
  readonly #pub: Publisher;

  /** Use connect(). @internal */
  constructor(url: URL, options: ClientOptions, open: OpenTransport) {
    this.url = url;
    this.options = options;
    this.version = options.protocolVersion ?? 5;
    this.clientId = options.clientId ?? '';
    this.#open = open;
    this.#backoff = options.reconnect === false ? undefined : new Backoff(options.reconnect);
    this.#out = new Outgoing(options.offline?.maxMessages, options.offline?.maxBytes);
    this.#store = options.store;
    this.#pub = new Publisher(this.#out, this.#store, {
      write: (packet) => this.#write(packet),
      connected: () => this.state === 'connected',
      server: () => this.server,
      version: this.version,
    });
  }

  /** Takes over what a store kept from an earlier process: its publishes complete on the first connection. @internal */
  restore(session: StoredSession): void {
    this.#pub.restore(session.publishes);
    for (const id of session.inboundQos2) this.#inboundQos2.add(id);
  }

  on<E extends keyof ClientEvents>(event: E, fn: ClientEvents[E]): () => void {
    return this.#events.on(event, fn);
  }

  /** Publishes waiting to be sent plus those in flight: what a clean close would lose. */
  get pendingPublishes(): number {
    return this.#out.inflight.size + this.#out.queue.length;
  }

  // ------------------------------------------------------------------------------------------
  // Connecting

  /** Makes one connection attempt; resolves at CONNACK 0, rejects on anything else. @internal */
  async connectOnce(): Promise<void> {
    const ac = new AbortController();
    this.#attemptAbort = ac;
    const timeout = setTimeout(() => ac.abort(new ConnectionError('connect timeout')), this.options.connectTimeout ?? 30_000);
    const onOuterAbort = () => ac.abort(abortReason(this.options.signal!));
    this.options.signal?.addEventListener('abort', onOuterAbort, { once: true });
    try {
      if (this.options.signal?.aborted) throw abortReason(this.options.signal);
      const conn: Connection = {
        transport: undefined as unknown as Transport,
        decoder: new Decoder<Client>(onPacket, { protocolVersion: this.version, maxPacketSize: this.options.maximumPacketSize }, this as Client),
        connack: undefined,
        onClosed: undefined,
      };
      const connack = new Promise<ConnackPacket>((resolve, reject) => (conn.connack = { resolve, reject }));
      connack.catch(() => undefined);
      conn.transport = await this.#open(this.url, this.options, { data: (c) => this.#data(conn, c), close: (e) => this.#lost(conn, e) }, ac.signal);
      this.#conn = conn;
      this.#writeNow(buildConnect(this, this.#everConnected));
      const onAbort = () => conn.connack?.reject(abortReason(ac.signal));
      ac.signal.addEventListener('abort', onAbort, { once: true });
      const ack = await connack.finally(() => ac.signal.removeEventListener('abort', onAbort));
      const code = connackReason(ack.reasonCode, this.version);
      if (code !== 0) throw new RefusedError('CONNECT', code, ack.properties?.reasonString);
      this.#connected(ack);
    } catch (e) {
      const c = this.#conn;
      if (c !== undefined) {
        this.#conn = undefined;
        c.transport.destroy();
      }
      throw e instanceof Error ? e : new Error(String(e));
    } finally {
      clearTimeout(timeout);
      this.options.signal?.removeEventListener('abort', onOuterAbort);
      this.#attemptAbort = undefined;
    }
  }

  #connected(ack: ConnackPacket): void {
    const reconnect = this.#everConnected;
    this.#everConnected = true;
    this.server = limitsOf(ack.properties, this.version);
    if (this.server.assignedClientId !== undefined) this.clientId = this.server.assignedClientId;
    this.state = 'connected';
    this.#connectedAt = Date.now();
    this.#startKeepAlive();
    // Resume: unacknowledged PUBLISH again with DUP, PUBREL again, in the original order [MQTT-4.4.0-1] [MQTT-4.6.0-1];
    // with no session kept, they go again as new messages and the subscriptions are made again.
    this.#pub.resume(ack.sessionPresent, this.#sendWindow());
    if (!ack.sessionPresent) {
      this.#inboundQos2.clear();
      this.#store?.clearInbound();
      if (reconnect) this.#resubscribe();
    }
    for (const w of this.#acks.values()) this.#write(w.packet);
    for (const w of [...this.#waiters]) w.resolve();
    this.#events.emit('connect', { sessionPresent: ack.sessionPresent, reconnect });
  }

  /**
   * QoS 1/2 publishes in flight at most: the server's Receive Maximum (5.0), capped by
   * `maxInflight`. 3.1.1 has no Receive Maximum; its default of 20 is Mosquitto's
   * max_inflight_messages, past which Mosquitto drops incoming QoS 2 messages of 3.1.1 clients.
   */
  #sendWindow(): number {
    return Math.min(this.server.receiveMaximum, this.options.maxInflight ?? (this.version === 5 ? 65535 : 20));
  }

  #resubscribe(): void {
    for (const s of this.#router.distinct()) {
      this.#sendSubscribe(s).then(
        (code) => {
          if (code >= 0x80) this.#events.emit('error', new RefusedError(`resubscribe to ${s.compiled.filter}`, code));
        },
        () => undefined,
      );
    }
  }

  #startKeepAlive(): void {
    const k = this.server.serverKeepAlive ?? this.options.keepAlive ?? 60;
    this.#pingOutstanding = false;
    if (k <= 0) return;
    this.#keepAlive = setInterval(() => {
      const c = this.#conn;
      if (c === undefined) return;
      if (this.#pingOutstanding) {
        c.transport.destroy(); // no PINGRESP for a whole interval: the connection is dead
        return;
      }
      this.#pingOutstanding = true;
      this.#write({ type: 'pingreq' });
    }, k * 1000);
    (this.#keepAlive as { unref?: () => void }).unref?.();
  }

  #lost(conn: Connection, error: Error | undefined): void {
    conn.onClosed?.();
    if (this.#conn !== conn) {
      conn.connack?.reject(error ?? new ConnectionError('connection closed before CONNACK'));
      return;
    }
    this.#conn = undefined;
    this.#pending = [];
    clearInterval(this.#keepAlive);
    conn.connack?.reject(error ?? new ConnectionError('connection closed before CONNACK'));
    if (this.state !== 'connected') return; // an attempt in progress reports its own failure
    this.#events.emit('disconnect', { error, reasonCode: undefined });
    this.#backoff?.connectionEnded(Date.now() - this.#connectedAt);
    this.#scheduleReconnect(error ?? new ConnectionError('connection lost'));
  }

  #scheduleReconnect(cause: Error): void {
    const b = this.#backoff;
    if (b === undefined || b.exhausted) {
      this.#shutdown(new ConnectionError(`connection lost: ${cause.message}`, cause));
      return;
    }
    this.state = 'reconnecting';
    const delay = b.next();
    this.#events.emit('reconnecting', { attempt: b.attempt, delay });
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      this.connectOnce().then(
        () => undefined,
        (e: Error) => {
          if (this.state === 'closed') return;
          if (e instanceof RefusedError && PERMANENT_REFUSALS.has(e.reasonCode ?? 0)) this.#shutdown(e);
          else this.#scheduleReconnect(e);
        },
      );
    }, delay);
  }

  /** The client stops for good: everything pending is rejected. */
  #shutdown(cause: Error | undefined): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    clearTimeout(this.#retry);
    clearInterval(this.#keepAlive);
    this.#attemptAbort?.abort(new ClosedError(cause));
    const err = new ClosedError(cause);
    this.#pub.closeAll(err);
    for (const w of this.#acks.values()) w.reject(err);
    this.#acks.clear();
    for (const w of this.#waiters) w.reject(err);
    this.#waiters.clear();
    this.#router.endAll();
    this.#requester?.close(err);
    this.#events.emit('close', { error: cause });
  }

  /** Ends the session's connection (DISCONNECT with `reasonCode`) and rejects everything still pending. */
  close(options: { reasonCode?: number; reasonString?: string } = {}): Promise<void> {
    if (this.#closed !== undefined) return this.#closed;
    const conn = this.#conn;
    this.#shutdown(undefined);
    const store = this.#store;
    this.#closed = new Promise<void>((resolve) => {
      if (conn === undefined) return resolve();
      this.#conn = undefined;
      const done = () => {
        clearTimeout(guard);
        resolve();
      };
      const guard = setTimeout(() => {
        conn.transport.destroy();
        resolve();
      }, 2000);
      conn.decoder = new Decoder(() => undefined, { protocolVersion: this.version });
      conn.connack = { resolve: () => undefined, reject: () => undefined };
      const properties: Properties | undefined = options.reasonString === undefined ? undefined : { reasonString: options.reasonString };
      const packet = this.version === 5 ? { type: 'disconnect' as const, reasonCode: options.reasonCode ?? 0, properties } : { type: 'disconnect' as const };
      this.#pending.push(encode(packet, this.version));
      this.#flush(conn);
      conn.onClosed = done;
      conn.transport.end();
    }).then(() => store?.close());
    return this.#closed;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Resolves at the next CONNACK 0 (at once when connected). */
  #whenConnected(signal: AbortSignal | undefined): Promise<void> {
    if (this.state === 'connected') return Promise.resolve();
    if (this.state === 'closed') return Promise.reject(new ClosedError());
    return new Promise<void>((resolve, reject) => {
      const w = {
        resolve: () => {
          this.#waiters.delete(w);
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        reject: (e: Error) => {
          this.#waiters.delete(w);
          signal?.removeEventListener('abort', onAbort);
          reject(e);
        },
      };
      const onAbort = () => w.reject(abortReason(signal!));
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiters.add(w);
    });
  }

  // ------------------------------------------------------------------------------------------
  // Bytes in and out

  #data(conn: Connection, chunk: Uint8Array): void {
    if (this.#conn !== conn && conn.connack === undefined) return;
    try {
      conn.decoder.push(chunk as Buffer);
    } catch (e) {
      this.#events.emit('error', e instanceof Error ? e : new Error(String(e)));
      conn.transport.destroy();
    }
  }

  /** Encodes `packet` for the current connection, sent at the end of this turn. */
  #write(packet: Packet): void {
    this.#pending.push(encode(packet, this.version));
    if (!this.#flushQueued) {
      this.#flushQueued = true;
      queueMicrotask(() => {
        this.#flushQueued = false;
        if (this.#conn !== undefined) this.#flush(this.#conn);
      });
    }
  }

  #writeNow(packet: Packet): void {
    this.#pending.push(encode(packet, this.version));
    this.#flush(this.#conn!);
  }

  #flush(conn: Connection): void {
    const chunks = this.#pending;
    if (chunks.length === 0) return;
    this.#pending = [];
    conn.transport.write(chunks);
  }

  /** One decoded packet from the server (the decoder's callback; `this` is the client). @internal */
  handle(p: Packet): void {
    const conn = this.#conn;
    switch (p.type) {
      case 'connack':
        if (conn?.connack !== undefined) {
          const c = conn.connack;
          conn.connack = undefined;
          c.resolve(p);
        }
        return;
      case 'publish':
        return this.#inbound(p);
      case 'pubrel':
        if (this.#inboundQos2.delete(p.packetId)) this.#store?.inbound(p.packetId, false);
        return this.#write({ type: 'pubcomp', packetId: p.packetId });
      case 'puback':
      case 'pubcomp':
        return this.#pub.acked(p.packetId, p.type, p.reasonCode ?? 0, p.properties?.reasonString);
      case 'pubrec':
        return this.#pub.pubrec(p.packetId, p.reasonCode ?? 0, p.properties?.reasonString);
      case 'suback':
      case 'unsuback': {
        const w = this.#acks.get(p.packetId);
        if (w === undefined) return;
        this.#acks.delete(p.packetId);
        this.#out.release(p.packetId);
        return w.resolve(p.reasonCodes);
      }
      case 'pingresp':
        this.#pingOutstanding = false;
        return;
      case 'disconnect': {
        const code = p.reasonCode ?? 0;
        const err = new RefusedError('the connection (DISCONNECT from the server)', code, p.properties?.reasonString);
        this.#events.emit('disconnect', { error: err, reasonCode: code });
        // Session taken over (0x8E) and other refusals that a retry cannot fix end the client.
        if (PERMANENT_REFUSALS.has(code)) this.#shutdown(err);
        conn?.transport.destroy();
        return;
      }
      default:
        return;
    }
  }

  #inbound(p: PublishPacket): void {
    const id = p.packetId;
    if (p.qos === 2) {
      this.#write({ type: 'pubrec', packetId: id! });
      if (this.#inboundQos2.has(id!)) return; // a resend: delivered once already [MQTT-4.3.3-10]
      this.#inboundQos2.add(id!);
      this.#store?.inbound(id!, true);
    } else if (p.qos === 1) this.#write({ type: 'puback', packetId: id! });
    this.#router.route(p);
  }

  /** Reports an error no promise carries. @internal */
  reportError(err: Error): void {
    this.#events.emit('error', err);
  }

  // ------------------------------------------------------------------------------------------
  // Publishing

  // ------------------------------------------------------------------------------------------
  // Publishing (publisher.ts)

  /** Resolves when acknowledged (QoS 0: written) with the reason code; rejects on a refusal, a limit, its signal or close. */
  publish(topic: string, payload: Payload, options: PublishOptions = {}): Promise<PublishResult> {
    if (this.state === 'closed') return Promise.reject(new ClosedError());
    return this.#pub.publish(topic, payload, options);
  }

  // ------------------------------------------------------------------------------------------
  // Subscriptions

  /** Subscribes; resolves once the server granted it (rejects on a refusal, with its reason code). Offline, it waits for the connection. */
  async subscribe<F extends string>(filter: F, options: SubscribeOptions<F> = {}): Promise<Subscription<F>> {
    if (this.state === 'closed') throw new ClosedError();
    const compiled = compileFilter(filter);
    const bad = checkTopicFilter(compiled.filter);
    if (bad !== null) throw new ClientError('INVALID', bad);
    const sub = new SubscriptionImpl<F>(this, filter, compiled, options, this.#router.nextKey());
    // Registered before SUBSCRIBE leaves: retained messages follow the SUBACK at once.
    this.#router.add(sub as SubscriptionImpl);
    try {
      await this.#whenConnected(options.signal);
      const code = await this.#sendSubscribe(sub as SubscriptionImpl, options.signal);
      if (code >= 0x80) throw new RefusedError(`SUBSCRIBE to ${compiled.filter}`, code);
      sub.grantedQoS = code as 0 | 1 | 2;
    } catch (e) {
      this.#router.remove(sub as SubscriptionImpl);
      sub.end();
      throw e;
    }
    const signal = options.signal;
    if (signal !== undefined) signal.addEventListener('abort', () => void sub.unsubscribe().catch(() => undefined), { once: true });
    return sub;
  }

  #sendSubscribe(sub: SubscriptionImpl, signal?: AbortSignal): Promise<number> {
    const o = sub.options;
    const filter = sub.compiled.filter;
    let properties: Properties | undefined;
    if (this.version === 5 && this.server.subscriptionIdentifiersAvailable) {
      properties = { subscriptionIdentifiers: [this.#router.identifierFor(filter)] };
    }
    return this.#request(
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

  /** Called by a subscription's unsubscribe(). @internal */
  async unsubscribeLocal(sub: SubscriptionImpl): Promise<void> {
    if (!this.#router.remove(sub)) return; // another local subscription still wants the filter
    if (this.state !== 'connected') return;
    const codes = await this.#request((packetId) => ({ type: 'unsubscribe', packetId, topicFilters: [sub.compiled.filter] }));
    const code = codes[0] ?? 0;
    if (this.version === 5 && code >= 0x80 && code !== 0x11) throw new RefusedError(`UNSUBSCRIBE from ${sub.compiled.filter}`, code);
  }

  /** Sends a SUBSCRIBE/UNSUBSCRIBE and resolves with its acknowledgement's reason codes (resent after a reconnect). */
  #request(build: (packetId: number) => Packet, signal?: AbortSignal): Promise<number[]> {
    if (this.state === 'closed') return Promise.reject(new ClosedError());
    const id = this.#out.allocate();
    if (id === undefined) return Promise.reject(new LimitError('all packet identifiers are in use'));
    return new Promise<number[]>((resolve, reject) => {
      const onAbort = () => {
        this.#acks.delete(id);
        reject(abortReason(signal!));
      };
      const packet = build(id);
      this.#acks.set(id, {
        packet,
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
      if (this.state === 'connected') this.#write(packet);
    });
  }

  // ------------------------------------------------------------------------------------------
  // Request / response (MQTT 5.0 Response Topic + Correlation Data)

  /** Publishes a request and resolves with the first response to it. */
  request(topic: string, payload: Payload, options: RequestOptions = {}): Promise<Message> {
    if (this.version !== 5) return Promise.reject(new ClientError('UNSUPPORTED', 'request/response needs MQTT 5.0'));
    this.#requester ??= new Requester(this);
    return this.#requester.request(topic, payload, options);
  }

  /** Answers requests on `filter` with what `handler` returns (published to their Response Topic with their Correlation Data). */
  respond<F extends string>(
    filter: F,
    handler: (request: Message<F>) => Payload | Promise<Payload>,
    options: SubscribeOptions<F> = {},
  ): Promise<Subscription<F>> {
    return this.subscribe(filter, {
      ...options,
      handler: async (m) => {
        const to = m.properties.responseTopic;
        if (to === undefined) return;
        const reply = await handler(m);
        const cd = m.properties.correlationData;
        await this.publish(to, reply, { qos: m.qos, properties: cd === undefined ? {} : { correlationData: cd } });
      },
    });
  }
}

function onPacket(this: Client, packet: Packet): void {
  this.handle(packet);
}
