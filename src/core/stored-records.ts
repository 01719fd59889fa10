/**
 * Conversions between the core's in-memory records (messages, sessions, outbound entries) and
 * the records the `Store` keeps (see src/store/types.ts).
 */
import type { StoredMessage, StoredOutbound, StoredSession, StoredSubscription } from '../store/types.js';
import type { Message } from './message.js';
import type { Outbound, Session } from './session.js';

export function toStored(m: Message): StoredMessage {
  const s: StoredMessage = { topic: m.topic, payload: m.payload, qos: m.qos, retain: m.retain, expiresAt: m.expiresAt, origin: m.origin };
  if (m.properties !== undefined) s.properties = m.properties;
  return s;
}

export function fromStored(s: StoredMessage): Message {
  return {
    topic: s.topic,
    payload: s.payload,
    qos: s.qos,
    retain: s.retain,
    properties: s.properties,
    expiresAt: s.expiresAt,
    origin: s.origin,
    encoded: undefined,
    encodedKey: -1,
    moreEncoded: undefined,
    storeId: 0,
    refs: 0,
  };
}

export function toStoredSession(s: Session): StoredSession {
  const rec: StoredSession = {
    clientId: s.clientId,
    expiryInterval: s.expiryInterval,
    subscriptions: [...s.subscriptions.values()].map((sub) => {
      const out: StoredSubscription = {
        filter: sub.filter,
        qos: sub.qos,
        noLocal: sub.noLocal,
        retainAsPublished: sub.retainAsPublished,
        retainHandling: sub.retainHandling,
      };
      if (sub.subscriptionId !== undefined) out.subscriptionId = sub.subscriptionId;
      return out;
    }),
  };
  if (s.disconnectedAt !== undefined) rec.disconnectedAt = s.disconnectedAt;
  const will = s.will ?? s.pendingWill;
  if (will !== undefined) {
    rec.will = { message: toStored(will.message), delaySeconds: will.delaySeconds };
    if (s.will === undefined) rec.willPending = true;
  }
  if (s.owner !== undefined) rec.owner = s.owner;
  return rec;
}

export function toStoredOutbound(e: Outbound): StoredOutbound {
  const o: StoredOutbound = { messageId: e.message.storeId, qos: e.qos, retain: e.retain };
  if (e.subscriptionIds !== undefined) o.subscriptionIds = e.subscriptionIds;
  if (e.packetId !== 0) o.packetId = e.packetId;
  if (e.released) o.released = true;
  if (e.order !== undefined) o.order = e.order;
  return o;
}
