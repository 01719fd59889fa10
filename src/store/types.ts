/**
 * The store interface: what the broker core persists and reloads. The core keeps the live state
 * in memory and writes through to the store; on start it loads what the store holds. The memory
 * implementation (memory.ts) is the reference; durable engines implement the same contract and
 * run the same conformance suite (test/unit/store/).
 */
import type { QoS } from '../protocol/constants.js';
import type { MessageProperties } from '../core/message.js';

/** A message as persisted (retained, queued or in flight). */
export interface StoredMessage {
  topic: string;
  payload: Buffer;
  qos: QoS;
  retain: boolean;
  properties?: MessageProperties;
  /** Epoch ms; 0 = never expires. */
  expiresAt: number;
  origin: string;
}

export interface StoredSubscription {
  filter: string;
  qos: QoS;
  noLocal: boolean;
  retainAsPublished: boolean;
  retainHandling: 0 | 1 | 2;
  subscriptionId?: number;
}

export interface StoredWill {
  message: StoredMessage;
  delaySeconds: number;
}

export interface StoredSession {
  clientId: string;
  /** Seconds; 0xFFFFFFFF = never. */
  expiryInterval: number;
  /** Epoch ms at which the session's connection ended; undefined while connected. */
  disconnectedAt?: number;
  subscriptions: StoredSubscription[];
  /** Outbound QoS 1/2 messages not yet completed, in order. `packetId` set once sent; `released` after PUBREC. */
  outbound: Array<{ message: StoredMessage; qos: QoS; retain: boolean; subscriptionIds?: number[]; packetId?: number; released?: boolean }>;
  /** Inbound QoS 2 packet ids received and not yet released [MQTT-4.3.3-?]. */
  inboundQos2: number[];
  /** Will of a connection that ended without DISCONNECT and whose delay has not elapsed. */
  pendingWill?: StoredWill;
  /** Owner (authenticated user name) for session-ownership checks. */
  owner?: string;
}

export interface Store {
  /** Opens the engine; fails with a clear error when the data cannot be read. */
  open(): Promise<void>;
  close(): Promise<void>;
  loadRetained(): Promise<Array<[string, StoredMessage]>>;
  loadSessions(): Promise<StoredSession[]>;
  putRetained(topic: string, message: StoredMessage): void;
  deleteRetained(topic: string): void;
  putSession(session: StoredSession): void;
  deleteSession(clientId: string): void;
  /** Resolves once every write issued before the call is durable (to the store's setting). */
  flush(): Promise<void>;
}
