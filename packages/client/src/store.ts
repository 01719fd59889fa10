/**
 * Session state that outlives the process (optional): the QoS 1/2 publishes not yet completed,
 * with their packet identifiers and state, the inbound QoS 2 identifiers awaiting PUBREL, and the
 * subscriptions. A client opened on the same store (same client id, `clean: false`) sends the
 * publishes again on its first connection, so a process killed mid-stream loses no QoS 1/2
 * message, and knows its subscriptions (made again when the server kept no session).
 *
 * Records are written before the packet they describe leaves; `close()` keeps what is still
 * pending (the next client on the store completes it); a publish aborted before it was sent is
 * forgotten.
 */

export interface StoredPublish {
  /** Monotonic per store: the send order. */
  key: number;
  topic: string;
  payload: Uint8Array;
  qos: 1 | 2;
  retain: boolean;
  /** 5.0 properties as JSON-safe values (correlation data as hex). */
  properties?: {
    contentType?: string;
    responseTopic?: string;
    correlationData?: string;
    messageExpiryInterval?: number;
    userProperties?: Array<[string, string]>;
  };
  /** Set once sent. */
  packetId?: number;
  state: 'queued' | 'publish' | 'pubrel';
}

/** A subscription as subscribe() was given it (no handler: functions do not persist). */
export interface StoredSubscription {
  /** The filter as given, named wildcards included. */
  filter: string;
  /** The filter as sent in SUBSCRIBE: the record's key. */
  topicFilter: string;
  qos: 0 | 1 | 2;
  noLocal?: boolean;
  retainAsPublished?: boolean;
  retainHandling?: 0 | 1 | 2;
  buffer?: number;
  /** Its 5.0 Subscription Identifier: messages for it carry that number. */
  identifier?: number;
}

export interface StoredSession {
  publishes: StoredPublish[];
  inboundQos2: number[];
  /** Absent in stores written before subscriptions were kept. */
  subscriptions?: StoredSubscription[];
}

export interface SessionStore {
  load(): Promise<StoredSession>;
  added(p: StoredPublish): void;
  sent(key: number, packetId: number): void;
  released(key: number): void;
  removed(key: number): void;
  inbound(packetId: number, awaitingRelease: boolean): void;
  /** The server kept no session: inbound identifiers are void. */
  clearInbound(): void;
  /** A subscription was granted (replaces one with the same `topicFilter`). Optional: stores without it keep no subscriptions. */
  subscribed?(s: StoredSubscription): void;
  /** The subscription with this filter (as sent) is gone. */
  unsubscribed?(topicFilter: string): void;
  close(): Promise<void>;
}
