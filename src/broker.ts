/**
 * The Broker: wires listeners (transports) to connections, connections to the core, the core to
 * the store, and exposes the library API with typed events.
 */
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import type { QoS } from './protocol/constants.js';
import { createMessage, type MessageProperties } from './core/message.js';
import { BrokerCore } from './core/broker-core.js';
import { Sweeper } from './core/sweeper.js';
import { Connection, type ConnectionContext, type ConnectionObserver, type LimitCounters, type ListenerPolicy } from './core/connection.js';
import { isLoopbackHost, isPromise, Security } from './security/index.js';
import type { EnhancedAuthenticator } from './security/types.js';
import type { TopicLimits } from './topics/index.js';
import {
  defaultLimits,
  defaultMqttOptions,
  defaultSessionLimits,
  noopLogger,
  type Limits,
  type BrokerOptions,
  type Logger,
  type MqttOptions,
  type SessionLimits,
} from './options.js';
import type { Store } from './store/types.js';
import type { BoundAddress, ConnectionInfo, Listener } from './transport/types.js';
import type { TlsListener } from './transport/tls.js';
import { ClusterNode } from './cluster/node.js';
import { defaultClusterOptions } from './cluster/options.js';
import { hostname } from 'node:os';
import { classifyDisconnect, type Snapshot } from './observability/snapshot.js';
import type { Inspector } from './observability/inspector.js';
import type { Metrics } from './observability/metrics.js';
import { channels } from './observability/channels.js';
import { Bridges } from './bridge/index.js';
import type { BrokerEvents, BrokerStats, PublishedMessage } from './broker/types.js';
import { createListeners, warnExposedListeners, type ListenerAdmission } from './broker/listeners.js';
import { Admission } from './broker/admission.js';
import { BrokerObservability } from './broker/observability.js';
import { brokerStore } from './broker/store.js';
import { Connections } from './broker/connections.js';

export type { BrokerEvents, BrokerStats, PublishedMessage, SubscriptionReport } from './broker/types.js';

/** Time a closing broker gives clients to read their DISCONNECT before the sockets are destroyed. */
const SHUTDOWN_GRACE_MS = 1_000;
/** The events whose listeners are handed a ClientInfo (see wantsAddress). */
const CLIENT_EVENTS: ReadonlySet<string | symbol> = new Set(['clientConnect', 'clientDisconnect', 'subscribe', 'unsubscribe']);

export class Broker extends EventEmitter<BrokerEvents> {
  readonly options: Readonly<BrokerOptions>;
  readonly mqtt: MqttOptions;
  readonly limits: SessionLimits;
  readonly #log: Logger;
  readonly #store: Store;
  readonly #core: BrokerCore;
  readonly #listeners: Listener[];
  readonly #connections = new Connections();
  /** Connection contexts by listener, shared by that listener's connections. */
  readonly #contexts = new Map<string, ConnectionContext>();
  readonly #sweeper: Sweeper;
  readonly #limits: Limits;
  readonly #topicLimits: TopicLimits;
  readonly #counters: LimitCounters = {
    connectionsRefused: 0,
    authenticationFailures: 0,
    publishesDenied: 0,
    subscriptionsDenied: 0,
    rateLimited: 0,
    subscriptionQuotaExceeded: 0,
    topicLimitExceeded: 0,
    connectTimeouts: 0,
  };
  #security: Security;
  #redirect: { serverReference: string; permanent: boolean } | undefined = undefined;
  #enhancedAuth: Record<string, EnhancedAuthenticator> = {};
  readonly #tlsListeners: TlsListener[];
  readonly #policies: Map<string, ListenerAdmission>;
  readonly #admission: Admission;
  readonly #observer: ConnectionObserver;
  /** Listeners of clientConnect, clientDisconnect, subscribe and unsubscribe. */
  #clientWatchers = 0;
  readonly #cluster: ClusterNode | undefined;
  readonly #bridges: Bridges | undefined;
  /** Counters read by $SYS, /metrics and the dashboard; the admin listener (broker/observability.ts). */
  readonly #obs: BrokerObservability;
  #addresses: BoundAddress[] = [];
  #state: 'new' | 'open' | 'listening' | 'closing' | 'closed' = 'new';

  constructor(options: BrokerOptions = {}) {
    super();
    // Listeners of the events that carry a ClientInfo, counted as they come and go (read at every CONNECT).
    const untyped = this as EventEmitter; // the typed map has no newListener / removeListener
    untyped.on('newListener', (event: string | symbol) => {
      if (CLIENT_EVENTS.has(event)) this.#clientWatchers++;
    });
    untyped.on('removeListener', (event: string | symbol) => {
      if (CLIENT_EVENTS.has(event)) this.#clientWatchers--;
    });
    this.options = options;
    this.mqtt = { ...defaultMqttOptions, ...options.mqtt };
    this.limits = { ...defaultSessionLimits, ...options.sessions };
    this.#log = options.logger ?? noopLogger;
    // In a cluster, persistent sessions live in Redis, where any node can take them over.
    const c = options.cluster === undefined ? undefined : { ...defaultClusterOptions, nodeName: hostname(), ...options.cluster };
    // A bridge's local session is one client id on one node; in a cluster every node would run it
    // and they would contend for that session. Refused until bridges are placed on one node.
    if (c !== undefined && options.bridges !== undefined && options.bridges.length > 0) {
      throw new TypeError(
        'bridges cannot run on a cluster node yet (each node would run every bridge); run them on a single broker that connects to the cluster',
      );
    }
    const { store, sessionStore } = brokerStore(options, c);
    this.#store = store;
    this.#core = new BrokerCore(this.mqtt, this.limits, this.#store, this.#log, {
      publish: (m, clientId) => {
        if (channels.publish.hasSubscribers) channels.publish.publish({ topic: m.topic, payload: m.payload, qos: m.qos, retain: m.retain, clientId });
        if (this.listenerCount('publish') === 0) return;
        const pm: PublishedMessage = { topic: m.topic, payload: m.payload, qos: m.qos, retain: m.retain };
        if (m.properties !== undefined) pm.properties = m.properties;
        this.emit('publish', pm, clientId);
      },
      sessionExpired: (clientId) => this.emit('sessionExpired', clientId),
    });
    if (c !== undefined) {
      this.#cluster = new ClusterNode(c, this.#core, this.#log, () => this.#obs.nodeStats(), sessionStore);
      this.#core.cluster = this.#cluster;
      this.#core.inlineMessages = true;
    }
    this.#bridges =
      options.bridges === undefined || options.bridges.length === 0
        ? undefined
        : new Bridges(options.bridges, this.#core, this.#log, {
            maxPacketSize: this.mqtt.maxPacketSize,
            maxOutboundBufferBytes: this.limits.maxOutboundBufferBytes,
          });
    this.#limits = { ...defaultLimits, ...options.limits };
    this.#topicLimits = { maxLength: this.#limits.maxTopicLength, maxLevels: this.#limits.maxTopicLevels };
    this.#core.queueBudget.max = this.#limits.maxQueuedBytesTotal;
    // CONNECT deadlines and keep alive: fire at most a quarter second late (or a quarter of a short connect timeout).
    this.#sweeper = new Sweeper(Math.min(250, Math.max(10, this.#limits.connectTimeoutMs / 4)));
    // Hooks only until open() has loaded the password and ACL files.
    this.#security = new Security(options.security ?? {}, options.authenticate ? [options.authenticate] : [], options.authorize ? [options.authorize] : []);
    this.#core.willGate = (m, clientId, owner) => {
      if (!this.#security.authorizes) return true;
      const d = this.#security.authorize({ action: 'publish', clientId, username: owner, topic: m.topic, qos: m.qos, retain: m.retain });
      return isPromise(d) ? d.then((x) => x.allow) : d.allow;
    };
    this.#observer = {
      connected: (client, present) => {
        if (channels.connect.hasSubscribers) channels.connect.publish({ client, sessionPresent: present });
        if (this.#obs.sysEvents) this.#obs.sysEvent('connected', client, undefined);
        this.emit('clientConnect', client, present);
      },
      disconnected: (client, reason) => {
        this.#obs.disconnects[classifyDisconnect(reason)]++;
        if (channels.disconnect.hasSubscribers) channels.disconnect.publish({ client, reason });
        if (this.#obs.sysEvents) this.#obs.sysEvent('disconnected', client, reason);
        this.emit('clientDisconnect', client, reason);
      },
      subscribed: (client, subs) => {
        if (channels.subscribe.hasSubscribers) channels.subscribe.publish({ client, subscriptions: subs });
        this.emit('subscribe', client, subs);
      },
      unsubscribed: (client, filters) => {
        if (channels.unsubscribe.hasSubscribers) channels.unsubscribe.publish({ client, filters });
        this.emit('unsubscribe', client, filters);
      },
      closed: (c) => this.#connections.closed(c),
      released: (c) => this.#connections.released(c),
      wantsAddress: () =>
        this.#clientWatchers > 0 ||
        this.#obs.sysEvents ||
        channels.connect.hasSubscribers ||
        channels.disconnect.hasSubscribers ||
        channels.subscribe.hasSubscribers ||
        channels.unsubscribe.hasSubscribers,
    };
    const l = createListeners(options, this.mqtt.maxPacketSize, this.#log, (stream, info) => this.#accept(stream, info));
    this.#listeners = l.listeners;
    this.#tlsListeners = l.tlsListeners;
    this.#policies = l.policies;
    this.#admission = new Admission(this.#limits, this.#cluster, this.#policies, this.#connections.perListener);
    this.#obs = new BrokerObservability({
      options,
      core: this.#core,
      log: this.#log,
      limits: this.#limits,
      counters: this.#counters,
      cluster: this.#cluster,
      bridges: this.#bridges,
      listeners: this.#listeners,
      connections: this.#connections,
      addresses: () => this.#addresses,
      publish: (m) => this.publish(m),
      ready: () => this.#state === 'listening',
    });
  }

  /** Opens the store and loads its state (called by `listen()` when not done yet). */
  async open(): Promise<void> {
    if (this.#state !== 'new') return;
    const o = this.options;
    this.#security = await Security.create(o.security ?? {}, { authenticate: o.authenticate, authorize: o.authorize }, this.#log);
    this.#enhancedAuth = { ...this.#security.enhancedAuth, ...o.enhancedAuth };
    warnExposedListeners(this.#policies.values(), o, this.#log);
    await this.#store.open();
    // A cluster node loads no sessions: it claims each at CONNECT, or adopts those of dead nodes.
    if (this.#cluster === undefined || this.#cluster.sessions === undefined) await this.#core.load(Date.now());
    if (this.#cluster !== undefined) {
      try {
        await this.#cluster.start();
      } catch (err) {
        await this.#cluster.stop().catch(() => {});
        await this.#store.close();
        throw err;
      }
    }
    this.#state = 'open';
    // Bridges once the store is loaded: their local sessions resume with what they had queued.
    this.#bridges?.start();
  }

  /** Binds every listener; resolves with the bound addresses (port 0 = a free port). */
  async listen(): Promise<BoundAddress[]> {
    await this.open();
    if (this.#state !== 'open') throw new Error(`cannot listen: broker is ${this.#state}`);
    this.#state = 'listening';
    try {
      this.#addresses = await Promise.all(this.#listeners.map((l) => l.listen()));
      await this.#obs.start();
    } catch (err) {
      await Promise.all(this.#listeners.map((l) => l.close()));
      await this.#obs.stop();
      this.#state = 'open';
      throw err;
    }
    return this.#addresses;
  }

  get addresses(): readonly BoundAddress[] {
    return this.#addresses;
  }

  /** Accepts a connection from any transport (also usable to attach custom streams). */
  handle(stream: Duplex, info: ConnectionInfo): void {
    this.#accept(stream, info);
  }

  #accept(stream: Duplex, info: ConnectionInfo): void {
    if (this.#state === 'closing' || this.#state === 'closed') {
      stream.destroy();
      return;
    }
    let key = info.listener;
    let policy = this.#policies.get(key);
    if (policy === undefined) {
      // A stream handed in through handle() for a listener the broker does not run.
      const loopback = isLoopbackHost(info.remoteAddress ?? '');
      policy = { name: info.listener, loopback, maxConnections: 0 };
      key = `${info.listener}\0${loopback ? 'loopback' : ''}`;
    }
    let ctx = this.#contexts.get(key);
    if (ctx === undefined) {
      ctx = this.#context(policy);
      this.#contexts.set(key, ctx);
    }
    const conn = new Connection(stream, info, ctx);
    ctx.traffic.socketsAccepted++;
    this.#connections.added(conn);
  }

  #context(listener: ListenerPolicy): ConnectionContext {
    const data: Omit<ConnectionContext, 'security' | 'enhancedAuth'> = {
      core: this.#core,
      log: this.#log,
      observer: this.#observer,
      limits: this.#limits,
      topicLimits: this.#topicLimits,
      listener,
      admit: (c) => this.#admission.admit(c, this.#connections.count),
      redirect: () => this.#redirect,
      counters: this.#counters,
      traffic: this.#obs.trafficOf(listener.name),
      sweeper: this.#sweeper,
    };
    // Read at use: open() replaces the security chain once the password and ACL files are loaded.
    // Added with defineProperties, not as getters in the literal: V8 keeps an object literal with
    // getters in dictionary mode, and connections read this context for every PUBLISH.
    return Object.defineProperties(data, {
      security: { get: () => this.#security, enumerable: true },
      enhancedAuth: { get: () => this.#enhancedAuth, enumerable: true },
    }) as ConnectionContext;
  }

  /**
   * Server redirection (MQTT 5.0 §4.11), e.g. to drain this node: new connections are refused
   * with CONNACK 0x9C (or 0x9D when `permanent`) and the Server Reference; with
   * `disconnectConnected`, connected clients get DISCONNECT with the same. `redirect(undefined)` ends it.
   */
  redirect(target: { serverReference: string; permanent?: boolean; disconnectConnected?: boolean } | undefined): void {
    this.#redirect = target === undefined ? undefined : { serverReference: target.serverReference, permanent: target.permanent === true };
    if (target?.disconnectConnected === true) for (const c of this.#connections.connected()) c.redirectTo(target.serverReference, target.permanent === true);
  }

  /** Rereads the TLS certificate files of every TLS/WSS listener now (the CLI calls it on SIGHUP). */
  reloadTls(): boolean {
    let ok = true;
    for (const l of this.#tlsListeners) ok = l.reload() && ok;
    return ok;
  }

  /** Publishes a message as the broker itself (no client id). */
  publish(message: {
    topic: string;
    payload: Buffer | string;
    qos?: QoS;
    retain?: boolean;
    properties?: MessageProperties & { messageExpiryInterval?: number };
  }): void {
    const payload = typeof message.payload === 'string' ? Buffer.from(message.payload) : message.payload;
    const now = Date.now();
    this.#core.publish(createMessage(message.topic, payload, message.qos ?? 0, message.retain ?? false, message.properties, '', now), '');
  }

  /** The admin listener's address and the one-time token while unused (undefined when the listener is off). */
  get admin(): { url: string; port: number; token: string | undefined } | undefined {
    return this.#obs.admin;
  }

  /** Operator queries over clients, sessions, subscriptions and retained messages (the admin API uses it). */
  get inspector(): Inspector {
    return this.#obs.inspector;
  }

  /** The Prometheus registry of this broker (created on first use). */
  get metrics(): Metrics {
    return this.#obs.metrics;
  }

  /**
   * One reading of every counter and gauge (src/observability/snapshot.ts). Gauges are computed
   * here, walking sessions and connections: meant for exporters (once a second or less), not
   * for the message path.
   */
  snapshot(): Snapshot {
    return this.#obs.snapshot();
  }

  stats(): BrokerStats {
    return this.#obs.stats();
  }

  /**
   * Graceful shutdown: stop accepting, tell every client (5.0: DISCONNECT 0x8B), publish the
   * wills of connections that end this way, write sessions to the store, close the store.
   */
  async close(): Promise<void> {
    if (this.#state === 'closed' || this.#state === 'closing') return;
    this.#state = 'closing';
    const bridges = this.#bridges?.stop();
    // Clients first (a listener's close() waits for its connections, and the WebSocket listener
    // cuts its clients off): every connected client hears why, then the sockets go.
    for (const c of this.#connections.connected()) c.shutdown();
    const connections = this.#connections;
    if (connections.open.size > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, SHUTDOWN_GRACE_MS);
        timer.unref();
        connections.onAllReleased = () => {
          clearTimeout(timer);
          setImmediate(resolve);
        };
      });
      connections.onAllReleased = undefined;
    }
    for (const c of [...connections.open]) c.destroyStream();
    await bridges;
    this.#sweeper.stop();
    await this.#obs.stop();
    await Promise.all(this.#listeners.map((l) => l.close()));
    this.#core.stop();
    this.#security.close();
    await this.#core.flush();
    // Leaving the cluster after the last writes (wills of this shutdown included) are out.
    if (this.#cluster !== undefined) await this.#cluster.stop().catch((err: unknown) => this.#log.warn({ err: String(err) }, 'cluster: leaving failed'));
    await this.#store.close();
    this.#state = 'closed';
  }
}

/** Creates a broker and opens its store; call `listen()` to accept clients. */
export async function createBroker(options: BrokerOptions = {}): Promise<Broker> {
  const broker = new Broker(options);
  await broker.open();
  return broker;
}
