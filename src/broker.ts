/**
 * The Broker: wires listeners (transports) to connections, connections to the core, the core to
 * the store, and exposes the library API with typed events.
 */
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import type { QoS } from './protocol/constants.js';
import { createMessage, type MessageProperties } from './core/message.js';
import { BrokerCore, type CoreCounters } from './core/broker-core.js';
import { Connection, type ClientInfo } from './core/connection.js';
import {
  defaultMqttOptions, defaultPersistence, defaultSessionLimits, noopLogger, type BrokerOptions, type ListenerOptions, type Logger, type MqttOptions, type SessionLimits,
} from './options.js';
import { LmdbStore } from './store/lmdb.js';
import { MemoryStore } from './store/memory.js';
import type { Store } from './store/types.js';
import { createTcpListener } from './transport/tcp.js';
import type { BoundAddress, ConnectionInfo, Listener } from './transport/types.js';
import { createWsListener } from './transport/ws.js';

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

export interface BrokerStats extends CoreCounters {
  connections: number;
  sessions: number;
  subscriptions: number;
  retained: number;
}

/** Time a closing broker gives clients to read their DISCONNECT before the sockets are destroyed. */
const SHUTDOWN_GRACE_MS = 1_000;

export class Broker extends EventEmitter<BrokerEvents> {
  readonly options: Readonly<BrokerOptions>;
  readonly mqtt: MqttOptions;
  readonly limits: SessionLimits;
  readonly #log: Logger;
  readonly #store: Store;
  readonly #core: BrokerCore;
  readonly #listeners: Listener[];
  readonly #connections = new Set<Connection>();
  readonly #streams = new Set<Duplex>();
  #addresses: BoundAddress[] = [];
  #state: 'new' | 'open' | 'listening' | 'closing' | 'closed' = 'new';

  constructor(options: BrokerOptions = {}) {
    super();
    this.options = options;
    this.mqtt = { ...defaultMqttOptions, ...options.mqtt };
    this.limits = { ...defaultSessionLimits, ...options.sessions };
    this.#log = options.logger ?? noopLogger;
    const persistence = { ...defaultPersistence, ...options.persistence };
    this.#store =
      options.store ??
      (persistence.engine === 'memory'
        ? new MemoryStore()
        : new LmdbStore({ dataDir: options.dataDir ?? './data', durability: persistence.durability }));
    this.#core = new BrokerCore(this.mqtt, this.limits, this.#store, this.#log, {
      publish: (m, clientId) => {
        if (this.listenerCount('publish') === 0) return;
        const pm: PublishedMessage = { topic: m.topic, payload: m.payload, qos: m.qos, retain: m.retain };
        if (m.properties !== undefined) pm.properties = m.properties;
        this.emit('publish', pm, clientId);
      },
      sessionExpired: (clientId) => this.emit('sessionExpired', clientId),
    });
    this.#listeners = listenerSpecs(options).map((spec) => {
      const onConnection = (stream: Duplex, info: ConnectionInfo): void => this.#accept(stream, info);
      if (spec.type === 'ws') {
        return createWsListener({ host: spec.host ?? '127.0.0.1', port: spec.port, path: spec.path ?? '/mqtt', maxPayload: this.mqtt.maxPacketSize + 8 }, onConnection);
      }
      return createTcpListener({ host: spec.host ?? '127.0.0.1', port: spec.port }, onConnection);
    });
  }

  /** Opens the store and loads its state (called by `listen()` when not done yet). */
  async open(): Promise<void> {
    if (this.#state !== 'new') return;
    await this.#store.open();
    await this.#core.load(Date.now());
    this.#state = 'open';
  }

  /** Binds every listener; resolves with the bound addresses (port 0 = a free port). */
  async listen(): Promise<BoundAddress[]> {
    await this.open();
    if (this.#state !== 'open') throw new Error(`cannot listen: broker is ${this.#state}`);
    this.#state = 'listening';
    try {
      this.#addresses = await Promise.all(this.#listeners.map((l) => l.listen()));
    } catch (err) {
      await Promise.all(this.#listeners.map((l) => l.close()));
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
    this.#streams.add(stream);
    stream.once('close', () => this.#streams.delete(stream));
    const conn = new Connection(stream, info, this.#core, this.#log, {
      connected: (client, present) => this.emit('clientConnect', client, present),
      disconnected: (client, reason) => this.emit('clientDisconnect', client, reason),
      subscribed: (client, subs) => this.emit('subscribe', client, subs),
      unsubscribed: (client, filters) => this.emit('unsubscribe', client, filters),
      closed: (c) => this.#connections.delete(c),
    });
    this.#connections.add(conn);
  }

  /** Publishes a message as the broker itself (no client id). */
  publish(message: { topic: string; payload: Buffer | string; qos?: QoS; retain?: boolean; properties?: MessageProperties & { messageExpiryInterval?: number } }): void {
    const payload = typeof message.payload === 'string' ? Buffer.from(message.payload) : message.payload;
    const now = Date.now();
    this.#core.publish(createMessage(message.topic, payload, message.qos ?? 0, message.retain ?? false, message.properties, '', now), '');
  }

  stats(): BrokerStats {
    const core = this.#core;
    return {
      ...core.counters,
      connections: this.#connections.size,
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
    await Promise.all(this.#listeners.map((l) => l.close()));
    for (const c of [...this.#connections]) c.shutdown();
    if (this.#streams.size > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, SHUTDOWN_GRACE_MS);
        timer.unref();
        const check = (): void => {
          if (this.#streams.size === 0) {
            clearTimeout(timer);
            resolve();
          }
        };
        for (const s of this.#streams) s.once('close', () => setImmediate(check));
      });
    }
    for (const s of this.#streams) s.destroy();
    for (const s of this.#core.sessions.values()) s.clearTimers();
    await this.#store.flush();
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
  return out;
}

/** Creates a broker and opens its store; call `listen()` to accept clients. */
export async function createBroker(options: BrokerOptions = {}): Promise<Broker> {
  const broker = new Broker(options);
  await broker.open();
  return broker;
}
