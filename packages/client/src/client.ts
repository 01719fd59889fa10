/**
 * The client: one object per logical session, across any number of connections. It is the API
 * (publish, subscribe, request/respond, close, events) and the inbound dispatch: what each packet
 * from the server means. The jobs behind it: the connection lifecycle (lifecycle.ts: attempts,
 * keep alive, reconnect, bytes out), outgoing publishes (publisher.ts), subscriptions on the
 * server (subscriber.ts) and locally (router.ts, subscription.ts). Every pending promise settles:
 * acknowledged, refused with a reason code, aborted by its signal, or rejected at close.
 */
import type { ConnackPacket, ConnectPacket, Packet, PublishPacket } from '../../../src/protocol/packets.js';
import { MqttError, ProtocolError } from '../../../src/protocol/errors.js';
import { Authenticator } from './auth.js';
import { ClientError, ClosedError, ConnectionError, PERMANENT_REFUSALS, RefusedError } from './errors.js';
import { Emitter } from './emitter.js';
import { IdTable } from './id-table.js';
import { Lifecycle, type LifecycleHost } from './lifecycle.js';
import { buildConnect, limitsOf, DEFAULT_LIMITS } from './packets.js';
import { Outgoing } from './outgoing.js';
import { Publisher } from './publisher.js';
import { Subscriber } from './subscriber.js';
import type { Subscription, SubscriptionImpl } from './subscription.js';
import type { OpenTransport } from './transport.js';
import type {
  ClientEvents,
  ClientOptions,
  ClientState,
  CloseOptions,
  Message,
  Payload,
  PublishOptions,
  PublishResult,
  ServerLimits,
  SubscribeOptions,
} from './types.js';
import { Requester, type RequestOptions } from './request.js';
import type { SessionStore, StoredSession } from './store.js';

export class Client implements AsyncDisposable {
  readonly url: URL;
  readonly options: Readonly<ClientOptions>;
  readonly version: 3 | 4 | 5;
  clientId: string;
  server: ServerLimits = DEFAULT_LIMITS;
  readonly #events = new Emitter<ClientEvents>();
  readonly #out: Outgoing;
  readonly #inboundQos2 = new IdTable<true>();
  /** Inbound topic aliases of this connection (5.0, when `topicAliasMaximum` allows the server some). */
  readonly #inAliases = new Map<number, string>();
  readonly #life: Lifecycle;
  readonly #subs: Subscriber;
  readonly #pub: Publisher;
  readonly #store: SessionStore | undefined;
  readonly #auth: Authenticator;
  #restoredSubscriptions: Subscription[] = [];
  #requester: Requester | undefined;
  #closed: Promise<void> | undefined;

  /** Use connect(). @internal */
  constructor(url: URL, options: ClientOptions, open: OpenTransport) {
    this.url = url;
    this.options = options;
    this.version = options.protocolVersion ?? 5;
    this.clientId = options.clientId ?? '';
    this.#out = new Outgoing(options.offline?.maxMessages, options.offline?.maxBytes);
    this.#store = options.store;
    this.#life = new Lifecycle(url, options, this.version, open, this.#lifecycleHost());
    this.#auth = new Authenticator(options.auth, this.#life);
    const connected = () => this.#life.state === 'connected';
    const write = (packet: Packet) => this.#life.write(packet);
    const writeAck = (first: 0x62, id: number) => this.#life.writeAck(first, id);
    this.#pub = new Publisher(this.#out, this.#store, { write, writeAck, connected, server: () => this.server, version: this.version });
    this.#subs = new Subscriber(this.#out, this.#store, {
      version: this.version,
      connected,
      closed: () => this.#life.state === 'closed',
      write,
      whenConnected: (signal) => this.#life.whenConnected(signal),
      server: () => this.server,
      unsubscribeLocal: (sub) => this.#subs.unsubscribe(sub),
      reportError: (e) => this.reportError(e),
    });
  }

  #lifecycleHost(): LifecycleHost {
    return {
      connectPacket: (reconnect: boolean): ConnectPacket => buildConnect(this, reconnect),
      connected: (ack, reconnect) => this.#connected(ack, reconnect),
      packet: (p) => this.#handle(p),
      disconnected: (error) => {
        this.#auth.failed(error ?? new ConnectionError('connection lost'));
        this.#events.emit('disconnect', { error, reasonCode: undefined });
      },
      reconnecting: (attempt, delay) => this.#events.emit('reconnecting', { attempt, delay }),
      stopped: (err, cause) => {
        this.#auth.failed(err);
        this.#pub.closeAll(err);
        this.#subs.closeAll(err);
        this.#requester?.close(err);
        this.#events.emit('close', { error: cause });
      },
      error: (e) => this.reportError(e),
    };
  }

  get state(): ClientState {
    return this.#life.state;
  }

  /** The server of the current (or last) connection: the URL given, or where a redirect led. */
  get target(): URL {
    return this.#life.target;
  }

  /** 5.0 re-authentication (AUTH 0x19) with the `auth` option's method: resolves at the server's AUTH 0x00; a refusal ends the connection. */
  reauthenticate(): Promise<void> {
    if (this.version !== 5) return Promise.reject(new ClientError('UNSUPPORTED', 're-authentication needs MQTT 5.0'));
    return this.#auth.reauthenticate();
  }

  /** Takes over what a store kept from an earlier process: its publishes complete on the first connection. @internal */
  restore(session: StoredSession): void {
    this.#pub.restore(session.publishes);
    for (const id of session.inboundQos2) this.#inboundQos2.set(id, true);
    this.#restoredSubscriptions = this.#subs.restore(session.subscriptions ?? []);
  }

  /**
   * The subscriptions a session store brought back from an earlier process. They have no handler:
   * iterate them, or subscribe() again with the same filter (the new subscription takes over what
   * they buffered). The server still has them when it kept the session; else they were made again.
   */
  get restoredSubscriptions(): readonly Subscription[] {
    return this.#restoredSubscriptions.filter((s) => (s as SubscriptionImpl).active);
  }

  on<E extends keyof ClientEvents>(event: E, fn: ClientEvents[E]): () => void {
    return this.#events.on(event, fn);
  }

  /** Publishes waiting to be sent plus those in flight: what a clean close would lose. */
  get pendingPublishes(): number {
    return this.#out.inflight.size + this.#out.queue.length;
  }

  /** What is alive inside, for leak checks in tests. @internal */
  get resources(): Record<string, number | boolean> {
    return {
      ...this.#life.resources,
      exchanges: this.#subs.pending,
      packetIds: this.#out.inUse,
      subscriptions: this.#subs.router.all().length,
      inboundQos2: this.#inboundQos2.size,
    };
  }

  // ------------------------------------------------------------------------------------------
  // Connecting (lifecycle.ts)

  /** Makes one connection attempt; resolves at CONNACK 0, rejects on anything else. @internal */
  connectOnce(): Promise<void> {
    return this.#life.connectOnce();
  }

  #connected(ack: ConnackPacket, reconnect: boolean): void {
    this.options.auth?.done?.(ack.properties?.authenticationData);
    this.server = limitsOf(ack.properties, this.version);
    this.#inAliases.clear(); // a new connection starts with no alias [MQTT-3.3.2-7]
    if (this.server.assignedClientId !== undefined) this.clientId = this.server.assignedClientId;
    // Resume: unacknowledged PUBLISH again with DUP, PUBREL again, in the original order [MQTT-4.4.0-1] [MQTT-4.6.0-1];
    // with no session kept, they go again as new messages and the subscriptions are made again.
    this.#pub.resume(ack.sessionPresent, this.#sendWindow(), this.#aliasLimit());
    if (!ack.sessionPresent) {
      this.#inboundQos2.clear();
      this.#store?.clearInbound();
    }
    this.#subs.connected(ack.sessionPresent);
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

  /** Outbound topic aliases on this connection: none unless enabled, at most the server's Topic Alias Maximum. */
  #aliasLimit(): number {
    const o = this.options.topicAliases;
    if (this.version !== 5 || o === undefined || o === false) return 0;
    return Math.min(this.server.topicAliasMaximum, o === true ? 65535 : Math.max(0, Math.floor(o)));
  }

  /** Ends the session's connection (DISCONNECT with `reasonCode`) and rejects everything still pending. */
  close(options: CloseOptions = {}): Promise<void> {
    const store = this.#store;
    this.#closed ??= this.#life.close(options).then(() => store?.close());
    return this.#closed;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // ------------------------------------------------------------------------------------------
  // Inbound dispatch

  /** One packet from the server, CONNACK and PINGRESP aside (the lifecycle takes those). */
  #handle(p: Packet): void {
    switch (p.type) {
      case 'publish':
        return this.#inbound(p);
      case 'pubrel':
        if (this.#inboundQos2.delete(p.packetId)) this.#store?.inbound(p.packetId, false);
        return this.#life.writeAck(0x70, p.packetId);
      case 'puback':
      case 'pubcomp':
        return this.#pub.acked(p.packetId, p.type, p.reasonCode ?? 0, p.properties?.reasonString);
      case 'pubrec':
        return this.#pub.pubrec(p.packetId, p.reasonCode ?? 0, p.properties?.reasonString);
      case 'suback':
      case 'unsuback':
        return this.#subs.acked(p);
      case 'auth':
        return this.#auth.received(p);
      case 'disconnect': {
        const code = p.reasonCode ?? 0;
        const err = new RefusedError('the connection (DISCONNECT from the server)', code, p.properties?.reasonString, p.properties?.serverReference);
        this.#life.redirected(err);
        this.#auth.failed(err);
        this.#events.emit('disconnect', { error: err, reasonCode: code });
        // Session taken over (0x8E) and other refusals that a retry cannot fix end the client.
        if (PERMANENT_REFUSALS.has(code)) this.#life.shutdown(err);
        this.#life.drop();
        return;
      }
      case 'connect':
      case 'subscribe':
      case 'unsubscribe':
      case 'pingreq':
        // Packets only a client sends (the browser build's codec refuses them already).
        throw new ProtocolError(`${p.type.toUpperCase()} from the server`);
      default:
        return;
    }
  }

  #inbound(p: PublishPacket): void {
    const alias = p.properties?.topicAlias;
    if (alias !== undefined) this.#unalias(p, alias);
    const id = p.packetId;
    if (p.qos === 2) {
      this.#life.writeAck(0x50, id!);
      if (this.#inboundQos2.has(id!)) return; // a resend: delivered once already [MQTT-4.3.3-10]
      this.#inboundQos2.set(id!, true);
      this.#store?.inbound(id!, true);
    } else if (p.qos === 1) this.#life.writeAck(0x40, id!);
    this.#subs.router.route(p);
  }

  /**
   * An inbound Topic Alias: a PUBLISH with a topic (re)maps it, one with an empty topic uses it.
   * Thrown errors end the connection with a DISCONNECT carrying their reason code: an alias of 0
   * or above our Topic Alias Maximum is 0x94 [MQTT-3.3.2-8] [MQTT-3.3.2-10], an unknown one 0x82.
   */
  #unalias(p: PublishPacket, alias: number): void {
    if (alias === 0 || alias > (this.version === 5 ? (this.options.topicAliasMaximum ?? 0) : 0)) {
      throw new MqttError('TOPIC_ALIAS_INVALID', 0x94, `topic alias ${alias} outside 1..${this.options.topicAliasMaximum ?? 0}`);
    }
    if (p.topic !== '') this.#inAliases.set(alias, p.topic);
    else {
      const topic = this.#inAliases.get(alias);
      if (topic === undefined) throw new ProtocolError(`topic alias ${alias} used before it was set`);
      p.topic = topic;
    }
  }

  /** Reports an error no promise carries. @internal */
  reportError(err: Error): void {
    this.#events.emit('error', err);
  }

  // ------------------------------------------------------------------------------------------
  // Publishing (publisher.ts) and subscribing (subscriber.ts)

  /** Resolves when acknowledged (QoS 0: written) with the reason code; rejects on a refusal, a limit, its signal or close. */
  publish(topic: string, payload: Payload, options: PublishOptions = {}): Promise<PublishResult> {
    if (this.#life.state === 'closed') return Promise.reject(new ClosedError());
    return this.#pub.publish(topic, payload, options);
  }

  /** Subscribes; resolves once the server granted it (rejects on a refusal, with its reason code). Offline, it waits for the connection. */
  subscribe<F extends string>(filter: F, options: SubscribeOptions<F> = {}): Promise<Subscription<F>> {
    return this.#subs.subscribe(filter, options);
  }

  /**
   * UNSUBSCRIBE from `filters` as given, with 5.0 user properties: also for filters this client
   * never subscribed to in this process (a session the server kept). Local subscriptions with one
   * of them end. Resolves with the UNSUBACK's reason codes (5.0; 3.1.1 has none). Offline, it
   * waits for the connection.
   */
  unsubscribe(filters: string | string[], options: { userProperties?: Array<[string, string]> } = {}): Promise<number[]> {
    return this.#subs.unsubscribeFilters(typeof filters === 'string' ? [filters] : filters, options.userProperties);
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
