/**
 * The Broker: wires listeners (transports) to connections, connections to the core, the core to
 * the store, and exposes the library API with typed events.
 */
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import type { QoS } from './protocol/constants.js';
import { createMessage, type MessageProperties } from './core/message.js';
import { BrokerCore, type CoreCounters } from './core/broker-core.js';
import type { DeliveryCounters } from './core/session.js';
import { Sweeper } from './core/sweeper.js';
import { Connection, type ClientInfo, type ConnectionContext, type ConnectionObserver, type LimitCounters, type ListenerPolicy } from './core/connection.js';
import { ConnackReturnCode, ReasonCode } from './protocol/constants.js';
import { isLoopbackHost, isPromise, Security } from './security/index.js';
import type { EnhancedAuthenticator } from './security/types.js';
import type { TopicLimits } from './topics/index.js';
import {
  defaultLimits,
  defaultMqttOptions,
  defaultPersistence,
  defaultSessionLimits,
  noopLogger,
  type Limits,
  type BrokerOptions,
  type ListenerOptions,
  type Logger,
  type MqttOptions,
  type PersistenceOptions,
  type SessionLimits,
} from './options.js';
import { RedisStore } from './cluster/redis-store.js';
import { LmdbStore } from './store/lmdb.js';
import { MemoryStore } from './store/memory.js';
import type { Store } from './store/types.js';
import { createTcpListener } from './transport/tcp.js';
import type { BoundAddress, ConnectionInfo, Listener } from './transport/types.js';
import { createWsListener } from './transport/ws.js';
import { createTlsListener, type TlsListener } from './transport/tls.js';
import { createWssListener } from './transport/wss.js';
import type { TlsCertificateSummary } from './transport/tls-context.js';
import { ClusterNode } from './cluster/node.js';
import { defaultClusterOptions, type ClusterStats } from './cluster/options.js';
import { hostname } from 'node:os';
import { createTrafficCounters, addTraffic, type TrafficCounters } from './core/traffic.js';
import { classifyDisconnect, DISCONNECT_REASONS, type DisconnectReason, type Snapshot } from './observability/snapshot.js';
import { Inspector } from './observability/inspector.js';
import { SysTree } from './observability/sys.js';
import { LoopDelay, Sampler } from './observability/sampler.js';
import { Metrics } from './observability/metrics.js';
import { channels } from './observability/channels.js';
import { courierVersion } from './observability/version.js';
import { AdminServer } from './admin/server.js';
import type { AdminBackend } from './admin/types.js';
import { Bridges, type BridgeStats } from './bridge/index.js';

/** A message as seen by `publish` listeners and accepted by `broker.publish()`. */
export interface PublishedMessage {
  topic: string;
  payload: Buffer;
  qos: QoS;
  retain: boolean;
  properties?: MessageProperties;
}

export interface SubscriptionReport {
  filter: string;
  qos: QoS;
  reasonCode: number;
}

/** Typed events of a Broker. */
export interface BrokerEvents {
  clientConnect: [client: ClientInfo, sessionPresent: boolean];
  clientDisconnect: [client: ClientInfo, reason: string];
  /** Every message routed (client publishes, wills and `broker.publish`); clientId '' for the broker itself. */
  publish: [message: PublishedMessage, clientId: string];
  subscribe: [client: ClientInfo, subscriptions: SubscriptionReport[]];
  unsubscribe: [client: ClientInfo, filters: string[]];
  sessionExpired: [clientId: string];
  error: [err: Error];
}

export interface BrokerStats extends CoreCounters, DeliveryCounters, LimitCounters {
  /** Bytes of queued QoS 1/2 messages across all sessions (limited by limits.maxQueuedBytesTotal). */
  queuedBytesTotal: number;
  /** QoS 1/2 messages dropped because that budget was reached. */
  queueBudgetDrops: number;
  connections: number;
  sessions: number;
  subscriptions: number;
  retained: number;
  /** Present when the broker is a cluster node: this node's cluster counters and the cluster's totals. */
  cluster?: ClusterStats;
  /** Present when bridges are configured: one entry per bridge (docs/bridges.md). */
  bridges?: BridgeStats[];
}

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
  /**
   * Connections whose stream is still open (a closed connection's socket may still be flushing);
   * those not yet ended are the broker's connections (`#connectionCount` of them). One set, not
   * two: every entry of a Set costs each idle connection ~40 bytes.
   */
  readonly #open = new Set<Connection>();
  #connectionCount = 0;
  #allReleased: (() => void) | undefined = undefined;
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
  readonly #tlsListeners: TlsListener[] = [];
  readonly #policies = new Map<string, ListenerPolicy & { maxConnections: number }>();
  readonly #perListener = new Map<string, number>();
  readonly #connectRate = new Map<string, { window: number; count: number }>();
  readonly #observer: ConnectionObserver;
  /** Listeners of clientConnect, clientDisconnect, subscribe and unsubscribe. */
  #clientWatchers = 0;
  readonly #cluster: ClusterNode | undefined;
  readonly #bridges: Bridges | undefined;
  // Observability (src/observability/, src/admin/): counters read by $SYS, /metrics and the dashboard.
  readonly #traffic = new Map<string, TrafficCounters>();
  #connectionsMax = 0;
  readonly #disconnects = Object.fromEntries(DISCONNECT_REASONS.map((r) => [r, 0])) as Record<DisconnectReason, number>;
  readonly #startedAt = Date.now();
  #loopDelay: LoopDelay | undefined = undefined;
  #sys: SysTree | undefined = undefined;
  #sampler: Sampler | undefined = undefined;
  #metrics: Metrics | undefined = undefined;
  #inspector: Inspector | undefined = undefined;
  #admin: AdminServer | undefined = undefined;
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
    const persistence = { ...defaultPersistence, ...options.persistence };
    // In a cluster, persistent sessions live in Redis, where any node can take them over.
    const c = options.cluster === undefined ? undefined : { ...defaultClusterOptions, nodeName: hostname(), ...options.cluster };
    // A bridge's local session is one client id on one node; in a cluster every node would run it
    // and they would contend for that session. Refused until bridges are placed on one node.
    if (c !== undefined && options.bridges !== undefined && options.bridges.length > 0) {
      throw new TypeError(
        'bridges cannot run on a cluster node yet (each node would run every bridge); run them on a single broker that connects to the cluster',
      );
    }
    const sessionStore =
      c === undefined || options.store !== undefined ? undefined : new RedisStore({ redis: c.redis, prefix: c.prefix, cluster: true, waitForReconnect: true });
    this.#store = options.store ?? sessionStore ?? createStore(persistence, options);
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
      this.#cluster = new ClusterNode(c, this.#core, this.#log, () => this.#nodeStats(), sessionStore);
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
        if (this.#sysEvents) this.#sysEvent('connected', client, undefined);
        this.emit('clientConnect', client, present);
      },
      disconnected: (client, reason) => {
        this.#disconnects[classifyDisconnect(reason)]++;
        if (channels.disconnect.hasSubscribers) channels.disconnect.publish({ client, reason });
        if (this.#sysEvents) this.#sysEvent('disconnected', client, reason);
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
      closed: (c) => {
        // Once per connection (Connection.end runs once).
        this.#connectionCount--;
        this.#perListener.set(c.info.listener, (this.#perListener.get(c.info.listener) ?? 1) - 1);
      },
      released: (c) => {
        if (this.#open.delete(c) && this.#open.size === 0) this.#allReleased?.();
      },
      wantsAddress: () =>
        this.#clientWatchers > 0 ||
        this.#sysEvents ||
        channels.connect.hasSubscribers ||
        channels.disconnect.hasSubscribers ||
        channels.subscribe.hasSubscribers ||
        channels.unsubscribe.hasSubscribers,
    };
    this.#listeners = listenerSpecs(options).map((spec) => {
      const onConnection = (stream: Duplex, info: ConnectionInfo): void => this.#accept(stream, info);
      const host = spec.host ?? '127.0.0.1';
      let listener: Listener;
      // Unique names (two port-0 listeners of one type and host would otherwise share one).
      let name = `${spec.type}:${host}:${spec.port}${spec.type === 'ws' || spec.type === 'wss' ? (spec.path ?? '/mqtt') : ''}`;
      if (this.#policies.has(name)) name = `${name}#${this.#policies.size}`;
      if (spec.type === 'ws') {
        listener = createWsListener({ host, port: spec.port, path: spec.path ?? '/mqtt', name, maxPayload: this.mqtt.maxPacketSize + 8 }, onConnection);
      } else if (spec.type === 'tls' || spec.type === 'wss') {
        const files = spec.tls ?? options.tls;
        if (files === undefined) throw new Error(`a ${spec.type} listener on port ${spec.port} needs tls.cert and tls.key`);
        const serving = {
          tls: files,
          onTlsError: (err: Error, remote: string | undefined) => this.#log.debug({ err: err.message, remote }, 'TLS handshake failed'),
          onReload: (cert: TlsCertificateSummary) => this.#log.info({ certificate: cert }, 'TLS certificate reloaded'),
          onReloadError: (err: Error) => this.#log.error({ err }, 'TLS certificate not reloaded; keeping the previous one'),
        };
        const l =
          spec.type === 'tls'
            ? createTlsListener({ host, port: spec.port, name, ...serving }, onConnection)
            : createWssListener({ host, port: spec.port, path: spec.path ?? '/mqtt', name, maxPayload: this.mqtt.maxPacketSize + 8, ...serving }, onConnection);
        this.#tlsListeners.push(l);
        listener = l;
      } else {
        listener = createTcpListener({ host, port: spec.port, name }, onConnection);
      }
      this.#policies.set(listener.name, { name: listener.name, loopback: isLoopbackHost(host), maxConnections: spec.maxConnections ?? 0 });
      return listener;
    });
  }

  /** The connections not yet ended (a copy: callers may end them while iterating). */
  #connected(): Connection[] {
    const out: Connection[] = [];
    for (const c of this.#open) if (!c.ended) out.push(c);
    return out;
  }

  /** Admission at CONNECT: global and per-listener connection limits, connect rate per IP. */
  #admit(conn: { readonly info: ConnectionInfo }): { v5: number; v3: number; reason: string } | null {
    const limits = this.#limits;
    if (this.#cluster !== undefined && !this.#cluster.available) {
      return { v5: ReasonCode.ServerUnavailable, v3: ConnackReturnCode.ServerUnavailable, reason: 'the cluster (Redis) is unreachable' };
    }
    const policy = this.#policies.get(conn.info.listener);
    if (limits.maxConnections > 0 && this.#connectionCount > limits.maxConnections) {
      return { v5: ReasonCode.QuotaExceeded, v3: ConnackReturnCode.ServerUnavailable, reason: `more than ${limits.maxConnections} connections` };
    }
    if (policy !== undefined && policy.maxConnections > 0 && (this.#perListener.get(policy.name) ?? 0) > policy.maxConnections) {
      return {
        v5: ReasonCode.QuotaExceeded,
        v3: ConnackReturnCode.ServerUnavailable,
        reason: `more than ${policy.maxConnections} connections on ${policy.name}`,
      };
    }
    // The address only when a per-address limit is set (reading it is a system call, transport/socket-info.ts).
    const ip = limits.connectRatePerIp > 0 ? conn.info.remoteAddress : undefined;
    if (ip !== undefined) {
      const now = Date.now();
      let r = this.#connectRate.get(ip);
      if (r === undefined || now - r.window >= 1000) {
        if (this.#connectRate.size > 100_000) this.#connectRate.clear();
        r = { window: now, count: 0 };
        this.#connectRate.set(ip, r);
      }
      if (++r.count > limits.connectRatePerIp) {
        return {
          v5: ReasonCode.ConnectionRateExceeded,
          v3: ConnackReturnCode.ServerUnavailable,
          reason: `more than ${limits.connectRatePerIp} connections per second from ${ip}`,
        };
      }
    }
    return null;
  }

  /** Opens the store and loads its state (called by `listen()` when not done yet). */
  async open(): Promise<void> {
    if (this.#state !== 'new') return;
    const o = this.options;
    this.#security = await Security.create(o.security ?? {}, { authenticate: o.authenticate, authorize: o.authorize }, this.#log);
    this.#enhancedAuth = { ...this.#security.enhancedAuth, ...o.enhancedAuth };
    const sec = o.security ?? {};
    const canAuthenticate =
      o.authenticate !== undefined || sec.passwordFile !== undefined || sec.jwt !== undefined || sec.certificateAuth === true || o.enhancedAuth !== undefined;
    for (const p of this.#policies.values()) {
      if (p.loopback) continue;
      if (sec.allowAnonymous === true) {
        this.#log.warn({ listener: p.name }, 'anonymous clients are allowed on a listener reachable from other machines (security.allowAnonymous: true)');
      } else if (!canAuthenticate) {
        this.#log.warn(
          { listener: p.name },
          'this listener is reachable from other machines and refuses anonymous clients, but no authentication is configured: set security.passwordFile (or jwt, certificateAuth), or security.allowAnonymous',
        );
      }
    }
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
      await this.#startObservability();
    } catch (err) {
      await Promise.all(this.#listeners.map((l) => l.close()));
      await this.#stopObservability();
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
    this.#open.add(conn);
    if (++this.#connectionCount > this.#connectionsMax) this.#connectionsMax = this.#connectionCount;
    this.#perListener.set(info.listener, (this.#perListener.get(info.listener) ?? 0) + 1);
  }

  #context(listener: ListenerPolicy): ConnectionContext {
    const data: Omit<ConnectionContext, 'security' | 'enhancedAuth'> = {
      core: this.#core,
      log: this.#log,
      observer: this.#observer,
      limits: this.#limits,
      topicLimits: this.#topicLimits,
      listener,
      admit: (c) => this.#admit(c),
      redirect: () => this.#redirect,
      counters: this.#counters,
      traffic: this.#trafficOf(listener.name),
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
    if (target?.disconnectConnected === true) for (const c of this.#connected()) c.redirectTo(target.serverReference, target.permanent === true);
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

  #trafficOf(listener: string): TrafficCounters {
    let t = this.#traffic.get(listener);
    if (t === undefined) {
      t = createTrafficCounters();
      this.#traffic.set(listener, t);
    }
    return t;
  }

  get #sysEvents(): boolean {
    return this.#sys !== undefined && this.options.sys?.events === true;
  }

  /** `$SYS/broker/events/client/{connected,disconnected}` (sys.events): fixed topics, JSON, not retained. */
  #sysEvent(what: 'connected' | 'disconnected', client: ClientInfo, reason: string | undefined): void {
    const body: Record<string, unknown> = {
      clientId: client.clientId,
      username: client.username ?? null,
      ip: client.remoteAddress ?? null,
      transport: client.transport,
      protocolVersion: client.protocolVersion,
      ts: new Date().toISOString(),
    };
    if (reason !== undefined) body.reason = reason;
    this.#core.publishLocal(createMessage(`$SYS/broker/events/client/${what}`, Buffer.from(JSON.stringify(body)), 0, false, undefined, '', Date.now()));
  }

  async #startObservability(): Promise<void> {
    const interval = this.options.sys?.interval ?? 10;
    // The event-loop delay histogram (a libuv timer) runs only for the admin listener's charts and metrics.
    if (this.options.admin != null) this.#loopDelay ??= new LoopDelay();
    if (interval > 0) {
      this.#sys = new SysTree(
        interval,
        () => this.snapshot(),
        (topic, payload, retain) => this.#core.publishLocal(createMessage(topic, Buffer.from(payload), 0, retain, undefined, '', Date.now())),
      );
      this.#sys.start();
    }
    const admin = this.options.admin;
    if (admin == null) return;
    const backend: AdminBackend = {
      log: this.#log,
      info: () => this.#info(),
      snapshot: () => this.snapshot(),
      inspector: this.inspector,
      metrics: this.metrics,
      sampler: this.#samplerOf(),
      sys: () => this.#sys?.values() ?? new Map(),
      publish: (m) => this.publish(m),
      ready: () => this.#state === 'listening',
    };
    this.#sampler!.start();
    this.#admin = new AdminServer(backend, admin);
    const a = await this.#admin.listen();
    const token = this.#admin.auth.token;
    this.#log.info(
      { admin: { host: a.address, port: a.port, url: this.#admin.url } },
      token === undefined
        ? `dashboard: ${this.#admin.url}`
        : `dashboard: ${this.#admin.url}  one-time token: ${token}  (no admin users yet: create one with "courier passwd --admin FILE USER" and set admin.usersFile)`,
    );
  }

  async #stopObservability(): Promise<void> {
    this.#sys?.stop();
    this.#sys = undefined;
    this.#sampler?.stop();
    const admin = this.#admin;
    this.#admin = undefined;
    if (admin !== undefined) await admin.close();
    this.#loopDelay?.stop();
    this.#loopDelay = undefined;
  }

  #samplerOf(): Sampler {
    return (this.#sampler ??= new Sampler(() => this.snapshot(), this.#limits.maxConnections));
  }

  #info(): ReturnType<AdminBackend['info']> {
    return {
      version: courierVersion(),
      node: this.#cluster?.stats().node ?? null,
      startedAt: new Date(this.#startedAt).toISOString(),
      cluster: this.#cluster !== undefined,
      listeners: this.#listeners.map((l, i) => ({
        name: l.name,
        transport: l.transport,
        host: this.#addresses[i]?.host ?? '',
        port: this.#addresses[i]?.port ?? 0,
        connections: this.#perListener.get(l.name) ?? 0,
      })),
    };
  }

  /** The admin listener's address and the one-time token while unused (undefined when the listener is off). */
  get admin(): { url: string; port: number; token: string | undefined } | undefined {
    const a = this.#admin;
    if (a === undefined) return undefined;
    return { url: a.url, port: a.address?.port ?? 0, token: a.auth.token };
  }

  /** Operator queries over clients, sessions, subscriptions and retained messages (the admin API uses it). */
  get inspector(): Inspector {
    return (this.#inspector ??= new Inspector({
      core: this.#core,
      connection: (id) => this.#core.live.get(id) as Connection | undefined,
      connectedAt: (id) => (this.#core.live.get(id) as Connection | undefined)?.connectedAt,
    }));
  }

  /** The Prometheus registry of this broker (created on first use). */
  get metrics(): Metrics {
    return (this.#metrics ??= new Metrics(() => this.snapshot(), { cluster: this.#cluster !== undefined }));
  }

  /**
   * One reading of every counter and gauge (src/observability/snapshot.ts). Gauges are computed
   * here, walking sessions and connections: meant for exporters (once a second or less), not
   * for the message path.
   */
  snapshot(): Snapshot {
    const core = this.#core;
    const now = Date.now();
    let online = 0;
    let offline = 0;
    let queued = 0;
    let inflight = 0;
    for (const s of core.sessions.values()) {
      if (s.outlet !== undefined) online++;
      else offline++;
      queued += s.queued;
      inflight += s.inflight.size;
    }
    let outbound = 0;
    for (const c of this.#open) if (!c.ended) outbound += c.outputBytes();
    const total = createTrafficCounters();
    for (const t of this.#traffic.values()) addTraffic(total, t);
    const listeners = this.#listeners.map((l, i) => ({
      name: l.name,
      transport: l.transport,
      host: this.#addresses[i]?.host ?? '',
      port: this.#addresses[i]?.port ?? 0,
      connections: this.#perListener.get(l.name) ?? 0,
      traffic: this.#trafficOf(l.name),
    }));
    const mem = process.memoryUsage();
    const d = core.delivery;
    const k = this.#counters;
    const cluster = this.#cluster?.stats();
    return {
      time: now,
      version: courierVersion(),
      startedAt: this.#startedAt,
      uptimeSeconds: Math.floor((now - this.#startedAt) / 1000),
      connections: this.#connectionCount,
      connectionsMax: this.#connectionsMax,
      sessionsOnline: online,
      sessionsOffline: offline,
      subscriptions: core.subscriptions.size,
      sharedSubscriptions: core.shared.size,
      retained: core.retained.size,
      queuedMessages: queued,
      queuedBytes: core.queueBudget.used,
      queuedBytesLimit: core.queueBudget.max,
      inflight,
      outboundBufferBytes: outbound,
      listeners,
      traffic: total,
      messagesIn: core.counters.messagesIn,
      messagesOut: core.counters.messagesOut,
      messagesUnrouted: core.counters.messagesUnrouted,
      willsPublished: core.counters.willsPublished,
      sessionsCreated: core.counters.sessionsCreated,
      sessionsResumed: core.counters.sessionsResumed,
      sessionsTakenOver: core.counters.sessionsTakenOver,
      sessionsExpired: core.counters.sessionsExpired,
      dropped: {
        qos0_backpressure: d.droppedQos0,
        queue_full: d.droppedQueueFull,
        expired: d.droppedExpired,
        too_large: d.droppedTooLarge,
        queue_budget: core.queueBudget.dropped,
      },
      refused: {
        limit: k.connectionsRefused,
        authentication: k.authenticationFailures,
        connect_timeout: k.connectTimeouts,
        rate_limited: k.rateLimited,
        publish_denied: k.publishesDenied,
        subscribe_denied: k.subscriptionsDenied,
        subscription_quota: k.subscriptionQuotaExceeded,
        topic_limit: k.topicLimitExceeded,
      },
      disconnects: { ...this.#disconnects },
      eventLoopDelay: this.#loopDelay?.read(now) ?? { p50: 0, p99: 0, max: 0 },
      deliveryLatency: { counts: [...core.latency.counts], sum: core.latency.sum, count: core.latency.count },
      memory: { rss: mem.rss, heapUsed: mem.heapUsed, heapTotal: mem.heapTotal, external: mem.external },
      ...(cluster === undefined ? {} : { cluster }),
      ...(this.#bridges === undefined ? {} : { bridges: this.#bridges.stats() }),
    };
  }

  /** This node's counters as published to the cluster for its totals. */
  #nodeStats(): Record<string, number> {
    const core = this.#core;
    return {
      connections: this.#connectionCount,
      sessions: core.sessions.size,
      subscriptions: core.subscriptions.size,
      messagesIn: core.counters.messagesIn,
      messagesOut: core.counters.messagesOut,
    };
  }

  stats(): BrokerStats {
    const core = this.#core;
    const cluster = this.#cluster?.stats();
    const bridges = this.#bridges?.stats();
    return {
      ...(cluster === undefined ? {} : { cluster }),
      ...(bridges === undefined ? {} : { bridges }),
      ...core.counters,
      ...core.delivery,
      ...this.#counters,
      queuedBytesTotal: core.queueBudget.used,
      queueBudgetDrops: core.queueBudget.dropped,
      connections: this.#connectionCount,
      sessions: core.sessions.size,
      subscriptions: core.subscriptions.size,
      retained: core.retained.size,
    };
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
    for (const c of this.#connected()) c.shutdown();
    if (this.#open.size > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, SHUTDOWN_GRACE_MS);
        timer.unref();
        this.#allReleased = () => {
          clearTimeout(timer);
          setImmediate(resolve);
        };
      });
      this.#allReleased = undefined;
    }
    for (const c of [...this.#open]) c.destroyStream();
    await bridges;
    this.#sweeper.stop();
    await this.#stopObservability();
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

function listenerSpecs(o: BrokerOptions): ListenerOptions[] {
  if (o.listeners !== undefined) return o.listeners;
  const host = o.host ?? '127.0.0.1';
  const out: ListenerOptions[] = [];
  const port = o.port === undefined ? 1883 : o.port;
  const wsPort = o.wsPort === undefined ? 8083 : o.wsPort;
  if (port !== null) out.push({ type: 'tcp', host, port });
  if (wsPort !== null) out.push({ type: 'ws', host, port: wsPort, path: o.wsPath ?? '/mqtt' });
  if (o.tls !== undefined) {
    const tlsPort = o.tlsPort === undefined ? 8883 : o.tlsPort;
    const wssPort = o.wssPort === undefined ? 8084 : o.wssPort;
    if (tlsPort !== null) out.push({ type: 'tls', host, port: tlsPort });
    if (wssPort !== null) out.push({ type: 'wss', host, port: wssPort, path: o.wsPath ?? '/mqtt' });
  }
  return out;
}

/** Creates a broker and opens its store; call `listen()` to accept clients. */
export async function createBroker(options: BrokerOptions = {}): Promise<Broker> {
  const broker = new Broker(options);
  await broker.open();
  return broker;
}

function createStore(persistence: PersistenceOptions, options: BrokerOptions): Store {
  switch (persistence.engine) {
    case 'memory':
      return new MemoryStore();
    case 'redis':
      if (persistence.redis === undefined) throw new Error('persistence.redis (a Redis URL) is required with engine "redis"');
      return new RedisStore({ redis: persistence.redis });
    default:
      return new LmdbStore({ dataDir: options.dataDir ?? './data', durability: persistence.durability });
  }
}
