/**
 * What a session is given and what it keeps (session.ts): its connection (`Outlet`), its
 * subscriptions and shared groups, outbound entries, the will, the journal that persists its
 * entries, and what all sessions of one broker share (`SessionEnv`: limits, the queue budget,
 * delivery counters, their owner). Re-exported by session.ts.
 */
import type { ProtocolVersion, QoS } from '../protocol/constants.js';
import type { SessionLimits } from '../options.js';
import type { Message } from './message.js';
import type { Session } from './session.js';

/** The connection side, as the session sees it. */
export interface Outlet {
  readonly version: ProtocolVersion;
  /** How many QoS 1/2 PUBLISHes may be unacknowledged at once (the client's Receive Maximum, capped). */
  readonly sendQuota: number;
  /** True when the socket is backed up beyond its limit; QoS 0 messages are dropped then. */
  congested(): boolean;
  /** Writes a PUBLISH; false when it was discarded (larger than the client's Maximum Packet Size). */
  sendPublish(m: Message, qos: QoS, retain: boolean, packetId: number, dup: boolean, subscriptionIds: number[] | undefined): boolean;
  sendPubrel(packetId: number): void;
  /**
   * A QoS 1/2 message for this session was not queued (queue full, or the store's budget): for
   * outlets that count their own drops (a bridge). Called on the drop paths only.
   */
  dropped?(why: 'queue-full' | 'budget'): void;
}

export interface Subscription {
  readonly filter: string;
  readonly qos: QoS;
  readonly noLocal: boolean;
  readonly retainAsPublished: boolean;
  readonly retainHandling: 0 | 1 | 2;
  readonly subscriptionId: number | undefined;
}

/** A shared subscription group (`$share/{group}/{filter}`) and its members by client id. */
export interface SharedGroup {
  readonly group: string;
  readonly filter: string;
  readonly members: Map<string, Subscription>;
  /** Members in subscription order (round-robin walks it). */
  readonly order: string[];
  cursor: number;
  sticky: string | undefined;
}

export interface Outbound {
  readonly message: Message;
  /** Set when delivered through a shared subscription (redistributed if this member drops). */
  readonly group?: SharedGroup | undefined;
  /** Store key (order of the session's queue); 0 while not journaled. */
  seq: number;
  /** The key it was written under. */
  seqWritten?: number;
  /** 0 not journaled, 1 journaled but not yet written, 2 written referencing a stored message, 3 written with the message inline. */
  journaled?: 0 | 1 | 2 | 3;
  /**
   * Where it stands in the stored queue when that is not its key: handed back while the session
   * held later messages (see Session.hold). Keys only grow in the order of writing (the cluster's
   * store tells a fenced node's new entries by their key), so the order is kept beside the key.
   */
  order?: number;
  readonly qos: QoS;
  readonly retain: boolean;
  readonly subscriptionIds: number[] | undefined;
  /** 0 until sent. */
  packetId: number;
  /** PUBREC received, PUBREL sent; waiting for PUBCOMP. */
  released: boolean;
}

export interface Will {
  readonly message: Message;
  readonly delaySeconds: number;
}

/** Persistence of a session's outbound entries (set by the core for sessions that outlive their connection). */
export interface Journal {
  added(session: Session, entry: Outbound): void;
  updated(session: Session, entry: Outbound): void;
  removed(session: Session, entry: Outbound): void;
  /**
   * Sets aside `count` numbers below every key `added` gives from now on and returns the first:
   * queue positions (`Outbound.order`) for what is handed back while a session holds.
   */
  reserve?(count: number): number;
}

/** The session's owner (one object for all sessions): told when the session's next deadline may have moved earlier. */
export interface SessionHost {
  reschedule(session: Session): void;
}

/** What all sessions of one broker share: limits, the queue budget, delivery counters, their owner. */
export interface SessionEnv {
  readonly limits: SessionLimits;
  readonly budget: QueueBudget;
  readonly counters: DeliveryCounters;
  readonly host: SessionHost;
}

/** Queued bytes across all sessions, shared; `max` 0 = unlimited. */
export interface QueueBudget {
  used: number;
  max: number;
  /** Messages dropped because the budget was reached. */
  dropped: number;
}

/** Delivery outcomes across all sessions (shared by every session of a broker; in `broker.stats()`). */
export interface DeliveryCounters {
  /** QoS 0 messages dropped because the client's socket was backed up. */
  droppedQos0: number;
  /** QoS 1/2 messages dropped because the session queue was full. */
  droppedQueueFull: number;
  /** Messages that expired before delivery [MQTT-3.3.2-5]. */
  droppedExpired: number;
  /** Messages discarded because they exceeded the client's Maximum Packet Size [MQTT-3.1.2-25]. */
  droppedTooLarge: number;
}
