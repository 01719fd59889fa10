/**
 * What the packet handlers (connect.ts, publish.ts, subscribe.ts) use of their connection.
 *
 * Internal to src/core. The handlers are plain functions taking the connection as their first
 * argument, not objects held per connection: an idle connection stays one `Connection` object,
 * and handling a packet allocates nothing extra. JS `#private` fields cannot be reached from
 * another module, so `Connection` implements this interface with plain fields; the Broker uses
 * only Connection's documented methods, never these.
 */
import type { ProtocolVersion } from '../protocol/constants.js';
import type { Decoder } from '../protocol/decoder.js';
import type { Logger } from '../options.js';
import type { EnhancedAuthConversation } from '../security/types.js';
import type { ConnectionInfo } from '../transport/types.js';
import type { BrokerCore, LiveConnection } from './broker-core.js';
import type { ConnectPlan } from './connect.js';
import type { ClientInfo, ConnectionContext, ConnectionObserver } from './connection-types.js';
import type { Output } from './output.js';
import type { Outlet, Session } from './session.js';
import type { Sweepable } from './sweeper.js';

/** Where a connection is in its life. */
export const enum Phase {
  Connecting,
  Connected,
  Closed,
}

/** An enhanced authentication exchange in progress (5.0 §4.12); `plan` is undefined for re-authentication. */
export interface AuthExchange {
  readonly method: string;
  readonly conversation: EnhancedAuthConversation;
  readonly plan: ConnectPlan | undefined;
}

/** Outbound topic aliases (5.0 §3.3.2.3.4): the client's Topic Alias Maximum, topic → alias, alias → topic, next slot to replace. */
export interface OutboundAliases {
  readonly max: number;
  readonly byTopic: Map<string, number>;
  readonly topics: Array<string | undefined>;
  next: number;
}

/** Start of a one-second window (epoch ms), the publishes and bytes in it. */
export interface PublishRate {
  window: number;
  count: number;
  bytes: number;
}

export interface ConnectionInternals extends Outlet, LiveConnection, Sweepable {
  version: ProtocolVersion;
  sendQuota: number;
  readonly info: ConnectionInfo;
  readonly ctx: ConnectionContext;
  readonly core: BrokerCore;
  readonly log: Logger;
  readonly observer: ConnectionObserver;
  /** The decoder (a PUBLISH forwarded as it came reads `packetBytes()`). */
  readonly decoder: Pick<Decoder<unknown>, 'packetBytes'>;
  phase: Phase;
  session: Session | undefined;
  client: ClientInfo | undefined;
  /** Authenticated identity (ACLs, session ownership). */
  username: string | undefined;
  /** The client's Maximum Packet Size [MQTT-3.1.2-24]. */
  clientMaxPacket: number;
  /** Cluster writes (ClusterLink.writes) this connection's next acknowledgements depend on; 0 = none. */
  clusterMark: number;
  keepAliveMs: number;
  auth: AuthExchange | undefined;
  /** The Authentication Method of the accepted CONNECT (re-authentication must use it). */
  authMethod: string | undefined;
  /** Inbound topic aliases: alias → topic. */
  aliases: Map<number, string> | undefined;
  /** Outbound topic aliases, when the client accepts them (one field: most connections have none). */
  outAliases: OutboundAliases | undefined;
  /** Publish rate limit: the current one-second window (created on first use, only with a rate limit set). */
  rate: PublishRate | undefined;
  closeReason: string;
  /**
   * The connection's output. Written to directly (without write()'s checks) only by
   * connection-end.ts, for what goes out as the connection ends: checked there.
   */
  readonly output: Output;

  /** The client is accepted now (`now`: epoch ms): records the connection time. */
  accepted(now: number): void;
  /** `address:port` of the peer, for logs. */
  remote(): string;
  /** Queues an encoded packet for this turn's flush (nothing once the connection has ended). */
  write(buf: Buffer): void;
  /** Continues with `then` once `value` is there; a promise pauses the input until it settles. */
  after<T>(value: T | Promise<T>, then: (v: T) => void): void;
  /** Ends the connection protocol-wise (once); the will still set, if any, goes out. */
  end(): void;
  /** Ends the stream once everything queued has left; destroys it after a grace period. */
  closeGracefully(): void;
  /** Server-initiated close of a connected client (5.0: DISCONNECT with a reason code first). */
  serverDisconnect(code: number, reason: string, abnormal: boolean): void;
  /** Ends the connection after a client's DISCONNECT: flushes, then ends the stream. */
  endByClient(): void;
  /** Sends everything written in this event-loop turn. */
  flush(): void;
  /** Destroys the stream at once. */
  destroyStream(): void;
}
