/** The types a connection shares with the Broker: what it is given and what it reports. */
import type { ProtocolVersion, QoS } from '../protocol/constants.js';
import type { Limits, Logger } from '../options.js';
import type { Security } from '../security/index.js';
import type { EnhancedAuthenticator } from '../security/types.js';
import type { TopicLimits } from '../topics/index.js';
import type { ConnectionInfo } from '../transport/types.js';
import type { BrokerCore } from './broker-core.js';
import type { Connection } from './connection.js';
import type { Sweeper } from './sweeper.js';
import type { TrafficCounters } from './traffic.js';

/**
 * A connected client, as events, `$SYS` events and diagnostics channels report it. The broker's
 * own are `ConnectedClient` objects: `transport`, `remoteAddress` and `remotePort` are getters
 * (the address is read from the socket when first asked), so copy fields by name rather than
 * with `{ ...client }`; `JSON.stringify` gives all six. The address of a client whose connection
 * was reset is known if anything listened to these events when it connected.
 */
export interface ClientInfo {
  clientId: string;
  protocolVersion: ProtocolVersion;
  username: string | undefined;
  transport: ConnectionInfo['transport'];
  remoteAddress: string | undefined;
  remotePort: number | undefined;
}

/** Per-listener policy the Broker hands each connection. */
export interface ListenerPolicy {
  readonly name: string;
  /** Bound to a loopback address only (anonymous clients are accepted by default). */
  readonly loopback: boolean;
}

/** Everything a connection needs from the broker around it (one per listener, shared by its connections). */
export interface ConnectionContext {
  readonly core: BrokerCore;
  readonly log: Logger;
  readonly observer: ConnectionObserver;
  readonly security: Security;
  readonly limits: Limits;
  readonly topicLimits: TopicLimits;
  readonly listener: ListenerPolicy;
  /** Admission checks at CONNECT time (connection counts, connect rate); null = admitted. */
  admit(conn: { readonly info: ConnectionInfo }): { v5: number; v3: number; reason: string } | null;
  /** Server redirection in force (operator draining this broker), if any. */
  redirect(): { serverReference: string; permanent: boolean } | undefined;
  /** Enhanced authentication methods (5.0 §4.12) by name. */
  readonly enhancedAuth: Readonly<Record<string, EnhancedAuthenticator>>;
  readonly counters: LimitCounters;
  /** This listener's packet and byte counters. */
  readonly traffic: TrafficCounters;
  /** Checks CONNECT deadlines and keep alive for every connection (one timer for all). */
  readonly sweeper: Sweeper;
}

export interface LimitCounters {
  connectionsRefused: number;
  authenticationFailures: number;
  publishesDenied: number;
  subscriptionsDenied: number;
  rateLimited: number;
  subscriptionQuotaExceeded: number;
  /** Topic names or filters refused for limits.maxTopicLength / maxTopicLevels. */
  topicLimitExceeded: number;
  /** Connections closed because no CONNECT arrived within limits.connectTimeoutMs. */
  connectTimeouts: number;
}

/** What a connection reports upwards (the Broker turns these into events). */
export interface ConnectionObserver {
  connected(client: ClientInfo, sessionPresent: boolean): void;
  disconnected(client: ClientInfo, reason: string): void;
  subscribed(client: ClientInfo, subscriptions: Array<{ filter: string; qos: QoS; reasonCode: number }>): void;
  unsubscribed(client: ClientInfo, filters: string[]): void;
  /** The connection ended (protocol-wise); its stream may still be closing. */
  closed(connection: Connection): void;
  /** The connection's stream has closed. */
  released(connection: Connection): void;
  /** Something watches connections (events, `$SYS` events, diagnostics channels): CONNECT reads the peer's address while it can. */
  wantsAddress(): boolean;
}
