/**
 * Broker options: the typed library surface. The config file (see src/config/) is validated
 * into this shape; defaults live here, in one place.
 */
import type { Store } from './store/types.js';
import type { QoS } from './protocol/constants.js';
import type { SecurityOptions } from './security/index.js';
import type { TlsFiles } from './transport/tls-context.js';
import type { Authenticator, Authorizer, EnhancedAuthenticator } from './security/types.js';
import type { ClusterOptions } from './cluster/options.js';
import type { AdminOptions } from './admin/types.js';
import type { BridgeOptions } from './bridge/types.js';

export type { AdminOptions };

/** The `$SYS/broker/...` tree (docs/observability.md). */
export interface SysOptions {
  /** Seconds between updates (only changed values are published); 0 = no $SYS tree. Default 10. */
  interval?: number;
  /** Publish `$SYS/broker/events/client/{connected,disconnected}` (JSON; reveals client ids). Default false. */
  events?: boolean;
}

/** A pino-compatible logger subset; the default is a no-op for the library and pino for the CLI. */
export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
  child?(bindings: object): Logger;
}

/** PEM files and policy of a TLS listener (src/transport/tls-context.ts). */
export type TlsOptions = TlsFiles;

export interface ListenerOptions {
  type: 'tcp' | 'ws' | 'tls' | 'wss';
  /** PEM files for a `tls` or `wss` listener (default: the top-level `tls`). */
  tls?: TlsOptions;
  host?: string;
  port: number;
  /** WebSocket path, default '/mqtt'. */
  path?: string;
  /** Most simultaneous connections on this listener; 0 = only the global limit. */
  maxConnections?: number;
}

/** Abuse limits; every breach is answered with its reason code and counted. 0 = unlimited. */
export interface Limits {
  /** Simultaneous connections, all listeners together. */
  maxConnections: number;
  /** CONNECTs per second from one IP address (v5 CONNACK 0x9F when exceeded). */
  connectRatePerIp: number;
  /** PUBLISH packets per second from one client (v5 DISCONNECT 0x96 when exceeded). */
  publishRatePerClient: number;
  /** PUBLISH payload bytes per second from one client (v5 DISCONNECT 0x96 when exceeded). */
  publishBytesPerClient: number;
  /** Longest topic name or filter, in bytes. */
  maxTopicLength: number;
  /** Most levels in a topic name or filter. */
  maxTopicLevels: number;
  /** Most subscriptions one session may hold (v5 SUBACK 0x97 beyond). */
  maxSubscriptionsPerClient: number;
  /** Bytes of queued QoS 1/2 messages across all sessions; beyond it new queued messages are dropped and counted. */
  maxQueuedBytesTotal: number;
  /** Time a new connection has to complete its CONNECT, in milliseconds. */
  connectTimeoutMs: number;
}

/** What the broker supports and announces in CONNACK (v5) and enforces (both versions). */
export interface MqttOptions {
  /** Largest packet accepted from clients, in bytes (v5: announced as Maximum Packet Size). */
  maxPacketSize: number;
  /** Inbound QoS 1/2 publishes in flight per client (v5 Receive Maximum). */
  receiveMaximum: number;
  /** Highest QoS granted (v5 Maximum QoS). */
  maximumQoS: QoS;
  retainAvailable: boolean;
  /** Inbound topic aliases per client (v5 Topic Alias Maximum); 0 disables them. */
  topicAliasMaximum: number;
  /** Keep alive above this (or 0, when this is set) is lowered to it (v5: Server Keep Alive). 0 = no maximum. */
  maxKeepAlive: number;
  wildcardSubscriptionAvailable: boolean;
  subscriptionIdentifiersAvailable: boolean;
  sharedSubscriptionAvailable: boolean;
  /** Assign topic aliases on messages to v5 clients that accept them (their Topic Alias Maximum). */
  outboundTopicAliases: boolean;
  /** Response Information for v5 clients that request it ('' = none); `%c` becomes the client id. */
  responseInformation: string;
  /** Which member of a shared subscription group gets a message. */
  sharedSubscriptionStrategy: 'round-robin' | 'random' | 'sticky' | 'hash';
  /** Session expiry interval cap in seconds; 0xFFFFFFFF = never expire. */
  maxSessionExpiryInterval: number;
  /** Longest client identifier accepted. */
  maxClientIdLength: number;
  /** Accept a zero-length client id from v3.1.1 clean-session / v5 clients and assign one. */
  allowEmptyClientId: boolean;
}

export interface SessionLimits {
  /** Queued (offline or beyond the inflight window) QoS 1/2 messages per session. */
  maxQueuedMessages: number;
  /** Queued payload bytes per session. */
  maxQueuedBytes: number;
  /** What happens when a session queue is full: drop the new message or the oldest queued one. */
  queueFullPolicy: 'drop-new' | 'drop-oldest';
  /** Outbound QoS 1/2 in flight per client when the client announces no smaller Receive Maximum. */
  maxInflight: number;
  /** Bytes buffered for a slow client's socket before QoS 0 messages to it are dropped. */
  maxOutboundBufferBytes: number;
}

export interface PersistenceOptions {
  /** 'lmdb' (default): durable, in `dataDir`. 'memory': nothing survives the process. 'redis': in the Redis at `redis` (single node). */
  engine: 'lmdb' | 'memory' | 'redis';
  /** When acknowledgements leave: at once ('none'), after the commit ('commit', default), after commit + fsync ('fsync'). */
  durability: 'none' | 'commit' | 'fsync';
  /** Redis URL for engine 'redis' (acknowledgements wait for Redis's reply; `durability` does not apply). */
  redis?: string;
}

export interface BrokerOptions {
  /** Interface to bind; default '127.0.0.1' (local only, as Mosquitto 2 does without config). */
  host?: string;
  /** MQTT over TCP port; default 1883. null disables the listener. */
  port?: number | null;
  /** MQTT over WebSocket port; default 8083. null disables the listener. */
  wsPort?: number | null;
  /** WebSocket path; default '/mqtt'. */
  wsPath?: string;
  /** TLS files: with them, MQTT over TLS listens on `tlsPort` and WebSocket over TLS on `wssPort`. */
  tls?: TlsOptions;
  /** MQTT over TLS port; default 8883 (when `tls` is set). null disables it. */
  tlsPort?: number | null;
  /** MQTT over secure WebSocket port; default 8084 (when `tls` is set). null disables it. */
  wssPort?: number | null;
  /** Explicit listeners; when given, replaces host/port/wsPort/tlsPort/wssPort. */
  listeners?: ListenerOptions[];
  /** State directory; default './data'. */
  dataDir?: string;
  mqtt?: Partial<MqttOptions>;
  sessions?: Partial<SessionLimits>;
  persistence?: Partial<PersistenceOptions>;
  limits?: Partial<Limits>;
  security?: SecurityOptions;
  /** Custom authentication, asked before the built-in password file and JWT. */
  authenticate?: Authenticator;
  /** Custom authorization for publish and subscribe, asked before the ACL file. */
  authorize?: Authorizer;
  /** MQTT 5.0 enhanced authentication (AUTH exchange, re-authentication) by Authentication Method. */
  enhancedAuth?: Record<string, EnhancedAuthenticator>;
  /**
   * Run as one node of a cluster on Redis (docs/clustering.md): `redis` is the Redis URL, the
   * rest have defaults (`nodeName`: the host name).
   */
  cluster?: Partial<ClusterOptions> & { redis: string };
  /** `$SYS` tree: `interval` seconds (default 10; 0 = off), `events` (default false). */
  sys?: SysOptions;
  /**
   * The admin HTTP listener (Prometheus `/metrics`, JSON API, dashboard; docs/dashboard.md).
   * Off in the library unless given (an embedding application gets no port it did not ask for);
   * the `courier` command turns it on at 127.0.0.1:18083 unless `admin.port` is null.
   */
  admin?: AdminOptions | null;
  /** Bridges to other MQTT brokers (docs/bridges.md). */
  bridges?: BridgeOptions[];
  /** A Store instance; overrides `persistence`. */
  store?: Store;
  logger?: Logger;
}

export const defaultMqttOptions: MqttOptions = {
  maxPacketSize: 1024 * 1024,
  receiveMaximum: 65535,
  maximumQoS: 2,
  retainAvailable: true,
  topicAliasMaximum: 65535,
  maxKeepAlive: 0,
  wildcardSubscriptionAvailable: true,
  subscriptionIdentifiersAvailable: true,
  sharedSubscriptionAvailable: true,
  sharedSubscriptionStrategy: 'round-robin',
  outboundTopicAliases: true,
  responseInformation: '',
  maxSessionExpiryInterval: 0xffffffff,
  maxClientIdLength: 65535,
  allowEmptyClientId: true,
};

export const defaultSessionLimits: SessionLimits = {
  maxQueuedMessages: 1000,
  maxQueuedBytes: 64 * 1024 * 1024,
  queueFullPolicy: 'drop-new',
  maxInflight: 64,
  maxOutboundBufferBytes: 4 * 1024 * 1024,
};

export const defaultLimits: Limits = {
  maxConnections: 100_000,
  connectRatePerIp: 0,
  publishRatePerClient: 0,
  publishBytesPerClient: 0,
  maxTopicLength: 65_535,
  maxTopicLevels: 128,
  maxSubscriptionsPerClient: 10_000,
  maxQueuedBytesTotal: 1024 * 1024 * 1024,
  connectTimeoutMs: 10_000,
};

export const defaultPersistence: PersistenceOptions = { engine: 'lmdb', durability: 'commit' };

export const noopLogger: Logger = {
  info() {},
  warn() {},
  error() {},
  debug() {},
};
