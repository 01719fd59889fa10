/** Pending publishes ↔ their session-store records. */
import { view } from '../../../src/protocol/bytes.js';
import type { Properties, PublishPacket } from '../../../src/protocol/packets.js';
import type { PendingPublish } from './outgoing.js';
import type { StoredPublish } from './store.js';

const hex = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
const unhex = (s: string): Uint8Array => Uint8Array.from(s.match(/../g) ?? [], (h) => parseInt(h, 16));

export function toStored(p: PendingPublish): StoredPublish {
  const k = p.packet;
  const out: StoredPublish = { key: p.key, topic: k.topic, payload: k.payload, qos: k.qos as 1 | 2, retain: k.retain, state: p.state };
  if (k.packetId !== undefined && p.state !== 'queued') out.packetId = k.packetId;
  const pr = k.properties;
  if (pr !== undefined) {
    const props: NonNullable<StoredPublish['properties']> = {};
    if (pr.contentType !== undefined) props.contentType = pr.contentType;
    if (pr.responseTopic !== undefined) props.responseTopic = pr.responseTopic;
    if (pr.messageExpiryInterval !== undefined) props.messageExpiryInterval = pr.messageExpiryInterval;
    if (pr.userProperties !== undefined) props.userProperties = pr.userProperties;
    if (pr.correlationData !== undefined) props.correlationData = hex(pr.correlationData);
    out.properties = props;
  }
  return out;
}

export function restoredPacket(s: StoredPublish): PublishPacket {
  const packet: PublishPacket = { type: 'publish', topic: s.topic, payload: view(s.payload), qos: s.qos, retain: s.retain, dup: false };
  if (s.properties !== undefined) {
    const { correlationData, ...rest } = s.properties;
    const props: Properties = { ...rest };
    if (correlationData !== undefined) props.correlationData = view(unhex(correlationData));
    packet.properties = props;
  }
  return packet;
}
