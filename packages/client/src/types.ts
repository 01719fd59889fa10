import type { SessionStore } from './store.js';

/** The client's public types. Payloads are `Uint8Array` (a Node Buffer is one). */

export type QoS = 0 | 1 | 2;
export type ProtocolVersion = 3 | 4 | 5;
export type Payload = string | Uint8Array;

/** MQTT 5.0 properties of a PUBLISH, as the application sees them. */
export interface PublishProperties {
  payloadFormatIndicator?: number;
  messageExpiryInterval?: number;
  contentType?: string;
  responseTopic?: string;
  correlationData?: Uint8Array;
  subscriptionIdentifiers?: number[];
  userProperties?: Array<[string, string]>;
}

export interface Will {
  topic: string;
  payload?: Payload;
  qos?: QoS;
  retain?: boolean;
  properties?: PublishProperties & { willDelayInterval?: number };
}

export interface TlsOptions {
  /** Trusted CA certificates (PEM), one or several. */
  ca?: string | Uint8Array | ReadonlyArray<string | Uint8Array>;
  /** Only this TLS version (Node). */
  version?: 'TLSv1.2' | 'TLSv1.3';
  cert?: string | Uint8Array;
  key?: string | Uint8Array;
  /** Default true. */
  rejectUnauthorized?: boolean;
  servername?: string;
  /** OpenSSL cipher list for TLS 1.2 and below (Node's `ciphers`). */
  ciphers?: string;
  /**
   * TLS-PSK (Node): a pre-shared key and the identity sent with it, instead of certificates (no
   * server certificate is checked). TLS 1.3, or TLS 1.2 with a PSK cipher suite.
   */
  psk?: { identity: string; key: Uint8Array };
}

export interface ReconnectOptions {
  /** First delay, ms (default 1000). */
  initialDelay?: number;
  /** Cap of the delay, ms (default 30000). */
  maxDelay?: number;
  /** 'full' (default): uniformly random in [0, delay]; 'equal': [delay/2, delay]; 'none'. */
  jitter?: 'full' | 'equal' | 'none';
  /** A connection counts as stable (the delay starts again from `initialDelay`) after this many ms (default 10000). */
  stableAfter?: number;
  /** Give up after this many failed attempts in a row (default unlimited). */
  maxAttempts?: number;
}

/**
 * MQTT 5.0 enhanced authentication (§4.12): CONNECT carries the Authentication Method and the
 * first data; each AUTH 0x18 (Continue authentication) from the server is answered with what
 * `step` returns, until CONNACK. `client.reauthenticate()` runs the same exchange again on a
 * live connection (AUTH 0x19).
 */
export interface EnhancedAuth {
  method: string;
  /** The first Authentication Data (CONNECT, and AUTH 0x19 when re-authenticating). */
  initial?: () => Payload | undefined;
  /** The answer to the server's Authentication Data of an AUTH 0x18. */
  step(serverData: Uint8Array | undefined): Payload | Promise<Payload>;
  /** The server's Authentication Data at the end (CONNACK, or AUTH 0x00 after re-authentication). */
  done?(serverData: Uint8Array | undefined): void;
}

export interface OfflineQueueOptions {
  /** Most QoS 1/2 publishes waiting to be sent (default 1000). */
  maxMessages?: number;
  /** Most payload + topic bytes waiting to be sent (default 16 MiB). */
  maxBytes?: number;
}

export interface ClientOptions {
  /** Default 5. 4 = MQTT 3.1.1, 3 = MQTT 3.1. */
  protocolVersion?: ProtocolVersion;
  /** '' (default) lets the server assign one (5.0) or, in 3.1.1, requires a clean session. */
  clientId?: string;
  username?: string;
  password?: string | Uint8Array;
  /** Seconds, default 60; 0 disables. The server's Server Keep Alive wins. */
  keepAlive?: number;
  /** Default true: start a new session. false resumes the session the server kept. */
  clean?: boolean;
  /** 5.0 Session Expiry Interval, seconds (default 0; with clean false and 3.1.1 the server decides). */
  sessionExpiry?: number;
  /** Our Receive Maximum (5.0): QoS 1/2 messages the server may have in flight to us (default 65535). */
  receiveMaximum?: number;
  /** Our Maximum Packet Size (5.0). */
  maximumPacketSize?: number;
  /** QoS 1/2 publishes in flight at most (default: the server's Receive Maximum in 5.0, 20 in 3.1.1, which has none). */
  maxInflight?: number;
  will?: Will;
  /** Extra 5.0 CONNECT user properties. */
  userProperties?: Array<[string, string]>;
  /** Ask for Response Information (5.0), used as the reply prefix by request(). */
  requestResponseInformation?: boolean;
  /**
   * Outbound topic aliases (5.0): true uses up to the server's Topic Alias Maximum, a number at
   * most that many; least recently used topics give up their alias. Default false (none).
   */
  topicAliases?: boolean | number;
  /**
   * Inbound topic aliases (5.0): our Topic Alias Maximum, how many aliases the server may use in
   * the PUBLISH packets it sends us (default 0: none, full topics). The client resolves them.
   */
  topicAliasMaximum?: number;
  /**
   * Follow 5.0 redirects: a CONNACK or DISCONNECT 0x9C (use another server: the next attempt)
   * or 0x9D (server moved: every later attempt) with a Server Reference (`host[:port]` or a URL).
   * true follows up to 3 hops per attempt, a number that many. Default false: such a CONNACK
   * rejects with a RefusedError whose `serverReference` tells where.
   */
  followRedirects?: boolean | number;
  /** 5.0 enhanced authentication (AUTH exchange); see EnhancedAuth. */
  auth?: EnhancedAuth;
  /** false: no automatic reconnect. */
  reconnect?: false | ReconnectOptions;
  offline?: OfflineQueueOptions;
  /** Keeps unfinished QoS 1/2 state across processes (fileStore(path) in Node); use with a client id and clean: false. */
  store?: SessionStore;
  /** Give up a connection attempt after this many ms (default 30000). */
  connectTimeout?: number;
  tls?: TlsOptions;
  /** A SOCKS5 proxy to connect through: `socks5h://[user[:pass]@]host[:port]` (Node, TCP and TLS). */
  proxy?: string;
  /** The local address to connect from (Node; mosquitto's -A). */
  bindAddress?: string;
  /** WebSocket sub-protocols (default ['mqtt']). */
  wsProtocols?: string[];
  signal?: AbortSignal;
}

export interface PublishOptions {
  qos?: QoS;
  retain?: boolean;
  properties?: PublishProperties;
  signal?: AbortSignal;
}

/** QoS 0: the packet was written; QoS 1: PUBACK; QoS 2: PUBCOMP (reason code < 0x80). */
export interface PublishResult {
  reasonCode: number;
  reasonString?: string;
}

export interface SubscribeOptions<F extends string = string> {
  qos?: QoS;
  noLocal?: boolean;
  retainAsPublished?: boolean;
  retainHandling?: 0 | 1 | 2;
  /** Messages kept for a slow iterator; past it the oldest is dropped and counted (default 10000). */
  buffer?: number;
  /** Called for every message instead of buffering it for iteration. */
  handler?: (message: Message<F>) => void | Promise<void>;
  /** 5.0 user properties of the SUBSCRIBE. */
  userProperties?: Array<[string, string]>;
  /** Record it in the session store, when there is one (default true). */
  persist?: boolean;
  signal?: AbortSignal;
}

export interface Message<F extends string = string> {
  topic: string;
  payload: Uint8Array;
  qos: QoS;
  retain: boolean;
  dup: boolean;
  properties: PublishProperties;
  /** Named wildcards of the filter: 'a/+id/#rest' gives { id: string, rest: string[] }. */
  params: TopicParams<F>;
  text(): string;
  json<T = unknown>(): T;
}

type Level<S extends string> = S extends `+${infer N}`
  ? N extends ''
    ? never
    : [N, string]
  : S extends `#${infer N}`
    ? N extends ''
      ? never
      : [N, string[]]
    : never;
type Levels<F extends string> = F extends `${infer H}/${infer R}` ? Level<H> | Levels<R> : Level<F>;
/** 'sensors/+id/temp' → { id: string }; 'logs/#rest' → { rest: string[] }. */
export type TopicParams<F extends string> = { [K in Levels<F> as K[0]]: K[1] };

/** Limits the server announced in CONNACK (defaults when it did not). */
export interface ServerLimits {
  receiveMaximum: number;
  maximumPacketSize: number;
  maximumQoS: QoS;
  retainAvailable: boolean;
  topicAliasMaximum: number;
  wildcardSubscriptionAvailable: boolean;
  subscriptionIdentifiersAvailable: boolean;
  sharedSubscriptionAvailable: boolean;
  serverKeepAlive: number | undefined;
  assignedClientId: string | undefined;
  responseInformation: string | undefined;
}

/** close(): the DISCONNECT's reason code and 5.0 properties. */
export interface CloseOptions {
  reasonCode?: number;
  reasonString?: string;
  userProperties?: Array<[string, string]>;
  /** 5.0: a new Session Expiry Interval (not from 0 to more [MQTT-3.14.2-2]). */
  sessionExpiry?: number;
}

export type ClientState = 'connecting' | 'connected' | 'reconnecting' | 'closed';

export interface ClientEvents {
  connect: (info: { sessionPresent: boolean; reconnect: boolean }) => void;
  disconnect: (info: { error: Error | undefined; reasonCode: number | undefined }) => void;
  reconnecting: (info: { attempt: number; delay: number }) => void;
  /** Something went wrong that no promise reports (a handler threw, a malformed packet). */
  error: (error: Error) => void;
  close: (info: { error: Error | undefined }) => void;
}
