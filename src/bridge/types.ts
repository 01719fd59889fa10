/**
 * Bridges (docs/bridges.md): the options a bridge is configured with, what it reports, and the
 * part of the client library (@courier/client) it uses, as a structural type so the broker's
 * build needs nothing of the client package but this shape (test/bridge/contract.test.ts checks
 * that the real client fits it).
 */

export type BridgeDirection = 'in' | 'out' | 'both';

/** One topic rule, Mosquitto's `topic pattern [in|out|both [qos [local-prefix [remote-prefix]]]]`. */
export interface BridgeTopic {
  /** Topic filter, without the prefixes; '' with both prefixes set maps one topic to another. */
  filter: string;
  direction: BridgeDirection;
  /** Subscription QoS on the side the messages come from (the remote for `in`, the local broker for `out`). Default 0. */
  qos?: 0 | 1 | 2;
  /** Put before the filter on this broker: a local topic is `localPrefix + rest`. */
  localPrefix?: string;
  /** Put before the filter on the remote: the same message there is `remotePrefix + rest`. */
  remotePrefix?: string;
}

export interface BridgeTls {
  /** PEM file of the CA(s) to trust (default: Node's bundled roots). */
  ca?: string;
  /** Client certificate (PEM file), for brokers that authenticate by certificate. */
  cert?: string;
  /** Its private key (PEM file). */
  key?: string;
  /** Default true: refuse a server certificate that does not verify. */
  rejectUnauthorized?: boolean;
  /** Server name for SNI and the certificate check (default: the URL's host name). */
  servername?: string;
}

export interface BridgeOptions {
  /** Names the bridge in logs, stats, metrics and `$SYS/broker/connection/<name>/state`; letters, digits, `.`, `_`, `-`. */
  name: string;
  /** `mqtt://`, `mqtts://`, `ws://` or `wss://` URLs of the remote broker, tried as `addressOrder` says. */
  remotes: string[];
  /** 4 (MQTT 3.1.1) or 5 (default). */
  protocolVersion?: 4 | 5;
  topics: BridgeTopic[];
  /** Client id on the remote (default `<hostname>.<name>`, as Mosquitto). */
  clientId?: string;
  username?: string;
  password?: string;
  tls?: BridgeTls;
  /** Start a new session on the remote at every connection (default false: the remote keeps the subscriptions and queues for the bridge). */
  cleanStart?: boolean;
  /** MQTT 5.0 Session Expiry Interval asked of the remote, seconds (default 86400; ignored with cleanStart). */
  sessionExpiry?: number;
  /** Keep alive, seconds (default 60). */
  keepAlive?: number;
  /** 'failover' (default): the first remote that answers, starting again from the first after a loss; 'round-robin': the next one each time. */
  addressOrder?: 'failover' | 'round-robin';
  /** Retained flags cross the bridge as published (default true); false clears them. */
  retainAsPublished?: boolean;
  /** Retained messages that exist when the bridge subscribes are sent across (default true, both directions). */
  sendRetained?: boolean;
  /** QoS 1/2 messages in flight to the remote at once (default 64 in 5.0, capped by the remote's Receive Maximum; 20 in 3.1.1). */
  maxInflight?: number;
  /** Bytes waiting on the remote's connection past which QoS 0 messages to it are dropped and counted (default sessions.maxOutboundBufferBytes). */
  maxOutboundBufferBytes?: number;
  /** Reconnect delays, ms: exponential from `initialDelay` (default 1000) to `maxDelay` (default 60000), with jitter. */
  reconnect?: { initialDelay?: number; maxDelay?: number };
}

export type BridgeState = 'connecting' | 'connected' | 'reconnecting' | 'stopped';

/** One bridge's counters and state (`broker.stats().bridges`, metrics, $SYS). */
export interface BridgeStats {
  name: string;
  state: BridgeState;
  /** URL of the remote it is connected to (or last tried). */
  remote: string;
  connected: boolean;
  /** Last error (refusal, connection failure), '' when none yet. */
  lastError: string;
  /** Successful connections so far. */
  connects: number;
  /** QoS 1/2 messages held for the remote (queued in the local session plus in flight). */
  queued: number;
  /** Messages sent to the remote (QoS 1/2: acknowledged). */
  forwardedOut: number;
  /** Messages received from the remote and published here. */
  forwardedIn: number;
  dropped: {
    /** QoS 0 messages for the remote while it was unreachable or its connection backed up. */
    qos0: number;
    /** QoS 1/2 messages for the remote not queued: its queue was full (sessions.maxQueuedMessages / maxQueuedBytes) or the store's budget reached. */
    queueFull: number;
    /** Refused by the remote (PUBACK/PUBREC reason code >= 0x80) or too large for it. */
    refused: number;
    /** Came back from the remote and were recognised as our own (3.1.1 remotes, which have no No Local). */
    loop: number;
  };
}

// ---------------------------------------------------------------------------------------------
// The part of @courier/client the bridge uses.

export interface RemoteMessage {
  readonly topic: string;
  readonly payload: Uint8Array;
  readonly qos: 0 | 1 | 2;
  readonly retain: boolean;
  readonly properties: RemotePublishProperties;
}

export interface RemotePublishProperties {
  payloadFormatIndicator?: number;
  messageExpiryInterval?: number;
  contentType?: string;
  responseTopic?: string;
  correlationData?: Uint8Array;
  userProperties?: Array<[string, string]>;
}

export interface RemoteEvents {
  connect: (info: { sessionPresent: boolean; reconnect: boolean }) => void;
  disconnect: (info: { error: Error | undefined; reasonCode: number | undefined }) => void;
  reconnecting: (info: { attempt: number; delay: number }) => void;
  error: (error: Error) => void;
  close: (info: { error: Error | undefined }) => void;
}

export interface RemoteClient {
  readonly state: 'connecting' | 'connected' | 'reconnecting' | 'closed';
  readonly server: { readonly receiveMaximum: number; readonly maximumQoS: 0 | 1 | 2; readonly retainAvailable: boolean };
  on<E extends keyof RemoteEvents>(event: E, fn: RemoteEvents[E]): () => void;
  publish(
    topic: string,
    payload: Uint8Array,
    options: { qos: 0 | 1 | 2; retain: boolean; properties?: RemotePublishProperties },
  ): Promise<{ reasonCode: number }>;
  subscribe(
    filter: string,
    options: { qos: 0 | 1 | 2; noLocal: boolean; retainAsPublished: boolean; retainHandling: 0 | 1 | 2; handler: (m: RemoteMessage) => void },
  ): Promise<unknown>;
  close(): Promise<void>;
  /** One connection attempt (the client's own reconnect takes over once one succeeded). */
  connectOnce(): Promise<void>;
}

export interface RemoteTransport {
  write(chunks: readonly Uint8Array[]): void;
  end(): void;
  destroy(): void;
  bufferedAmount?(): number;
}

export type RemoteOpen = (
  url: URL,
  options: RemoteClientOptions,
  handlers: { data(chunk: Uint8Array): void; close(error?: Error): void },
  signal: AbortSignal,
) => Promise<RemoteTransport>;

/** The client options the bridge sets. */
export interface RemoteClientOptions {
  protocolVersion?: 3 | 4 | 5;
  clientId?: string;
  username?: string;
  password?: string | Uint8Array;
  keepAlive?: number;
  clean?: boolean;
  sessionExpiry?: number;
  maximumPacketSize?: number;
  maxInflight?: number;
  reconnect?: false | { initialDelay?: number; maxDelay?: number; jitter?: 'full' | 'equal' | 'none'; stableAfter?: number };
  offline?: { maxMessages?: number; maxBytes?: number };
  connectTimeout?: number;
  tls?: {
    ca?: string | Uint8Array | ReadonlyArray<string | Uint8Array>;
    cert?: string | Uint8Array;
    key?: string | Uint8Array;
    rejectUnauthorized?: boolean;
    servername?: string;
  };
}

/**
 * What the bridge loads of @courier/client: the Client class itself (not `connect()`), so that
 * its subscriptions exist before the first CONNACK — a remote that kept the session sends queued
 * messages right after it, and they must find their handler.
 */
export interface ClientLibrary {
  Client: new (url: URL, options: RemoteClientOptions, open: RemoteOpen) => RemoteClient;
  openNodeTransport: RemoteOpen;
}
