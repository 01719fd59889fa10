/**
 * Session state that outlives the process (optional): the QoS 1/2 publishes not yet completed,
 * with their packet identifiers and state, and the inbound QoS 2 identifiers awaiting PUBREL. A
 * client opened on the same store (same client id, `clean: false`) sends them again on its first
 * connection, so a process killed mid-stream loses no QoS 1/2 message.
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

export interface StoredSession {
  publishes: StoredPublish[];
  inboundQos2: number[];
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
  close(): Promise<void>;
}
