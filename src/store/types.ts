/**
 * The store interface: what the broker core persists and reloads. The core keeps the live state
 * in memory and writes through to the store in small records; on start it loads a snapshot.
 *
 * Contract (checked for every implementation by test/unit/store/conformance.test.ts):
 * - Writes are applied in call order. Writes issued in one event-loop turn may be committed
 *   together (group commit); `commitPoint()` returns a promise that resolves once every write
 *   issued so far is committed, or null when nothing is outstanding. The core sends no packet
 *   that acknowledges state before that state's commit point has resolved.
 * - A message is stored once (`putMessage`) and referenced by id from every outbound entry that
 *   carries it; the core counts the references and deletes the message with the last one.
 * - `deleteSession` removes the session record and its outbound and inbound entries.
 */
import type { QoS } from '../protocol/constants.js';
import type { MessageProperties } from '../core/message.js';

/** A message as persisted (retained, queued or in flight, or a pending will). */
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

/** The session record: everything but its messages. */
export interface StoredSession {
  clientId: string;
  /** Seconds; 0xFFFFFFFF = never. */
  expiryInterval: number;
  /** Epoch ms at which the session's connection ended; absent while connected (a crash then counts as a network failure). */
  disconnectedAt?: number;
  subscriptions: StoredSubscription[];
  /** The will of the live connection (published on restart after a crash) or of an ended one whose delay runs. */
  will?: StoredWill;
  /** True when `will` belongs to an ended connection (its delay is running). */
  willPending?: boolean;
  /** Owner (authenticated user name) for session-ownership checks. */
  owner?: string;
}

/** One outbound QoS 1/2 delivery of a session, keyed by (clientId, seq); seq orders the queue. */
export interface StoredOutbound {
  /** The stored message it references; 0 when `message` is inline. */
  messageId: number;
  /** The message itself, when no other entry carries it (saves a record and a delete). */
  message?: StoredMessage;
  qos: QoS;
  retain: boolean;
  subscriptionIds?: number[];
  /** Set once sent. */
  packetId?: number;
  /** PUBREC received, PUBREL sent. */
  released?: boolean;
  /**
   * Its place in the session's queue when that is not its key (keys grow in the order of
   * writing; see Outbound.order): the queue is loaded in the order of `order ?? key`.
   */
  order?: number;
}

export interface StoreSnapshot {
  retained: Array<[string, StoredMessage]>;
  sessions: StoredSession[];
  messages: Map<number, StoredMessage>;
  /** Outbound entries grouped by client id, in seq order. */
  outbound: Map<string, Array<[number, StoredOutbound]>>;
  /** Inbound QoS 2 packet ids not yet released, by client id. */
  inbound: Map<string, number[]>;
}

export interface Store {
  /** Opens the engine; fails with a clear error when the data cannot be read or is locked. */
  open(): Promise<void>;
  close(): Promise<void>;
  load(): Promise<StoreSnapshot>;
  putRetained(topic: string, message: StoredMessage): void;
  deleteRetained(topic: string): void;
  putSession(session: StoredSession): void;
  deleteSession(clientId: string): void;
  putMessage(id: number, message: StoredMessage): void;
  deleteMessage(id: number): void;
  putOutbound(clientId: string, seq: number, entry: StoredOutbound): void;
  deleteOutbound(clientId: string, seq: number): void;
  putInbound(clientId: string, packetId: number): void;
  deleteInbound(clientId: string, packetId: number): void;
  /** Null when every write so far is committed; else resolves when they are. */
  commitPoint(): Promise<void> | null;
  /** Resolves once every write issued so far is committed. */
  flush(): Promise<void>;
  /**
   * While on (calls nest), the writes issued go to the engine in one atomic commit even where it
   * would otherwise split a large turn over several. Optional: an engine that commits each turn
   * whole needs nothing. `scope` (when opening): the client whose packet the unit carries (a
   * QoS 2 PUBLISH and what it queued): an engine that refuses that client's writes (a cluster's
   * fencing) must not hand the unit's entries for other clients on either.
   */
  atomic?(on: boolean, scope?: string): void;
}
