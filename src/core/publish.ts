/**
 * PUBLISH from the client and the QoS acknowledgements in both directions (PUBACK, PUBREC,
 * PUBREL, PUBCOMP): inbound topic aliases, checks, publish rate limits, routing into the core.
 * Functions of the connection (connection-internals.ts); this is the hot path: no closures and
 * no allocation beyond the message itself unless an asynchronous authorizer is asked.
 */
import { isUtf8 } from 'node:buffer';
import { ReasonCode, type QoS } from '../protocol/constants.js';
import { encode } from '../protocol/encoder.js';
import { MqttError, ProtocolError } from '../protocol/errors.js';
import type { AckPacket, PublishPacket } from '../protocol/packets.js';
import { checkTopicName } from '../topics/index.js';
import type { Decision } from '../security/index.js';
import { createMessage, encodeDelivery, seedEncoding, type Message } from './message.js';
import type { ConnectionInternals } from './connection-internals.js';

export const ALLOWED: Decision = { allow: true, reasonCode: 0 };
/** `$SYS/...` is the broker's own tree: clients may read it (as the ACL allows), never publish to it. */
const SYS_DENIED: Decision = { allow: false, reasonCode: ReasonCode.NotAuthorized };

export function ack(c: ConnectionInternals, type: 'puback' | 'pubrec' | 'pubrel' | 'pubcomp', packetId: number, reasonCode: number, reason?: string): void {
  const p: AckPacket<typeof type> = { type, packetId };
  if (c.version === 5 && reasonCode !== 0) {
    p.reasonCode = reasonCode;
    if (reason !== undefined) p.properties = { reasonString: reason };
  }
  let buf = encode(p, c.version);
  if (buf.length > c.clientMaxPacket && p.properties !== undefined) {
    // [MQTT-3.4.2-2] [MQTT-3.5.2-2] [MQTT-3.6.2-2] [MQTT-3.7.2-2] no Reason String that would not fit.
    delete p.properties;
    buf = encode(p, c.version);
  }
  c.write(buf);
}

export function onPublish(c: ConnectionInternals, p: PublishPacket): void {
  const mqtt = c.core.mqtt;
  const ctx = c.ctx;
  let topic = p.topic;
  const props = p.properties;
  // [MQTT-3.3.4-6] a Subscription Identifier is for the server to send, never the client.
  if (props?.subscriptionIdentifiers !== undefined) throw new ProtocolError('a PUBLISH from a client carries a Subscription Identifier', '[MQTT-3.3.4-6]');
  if (props?.topicAlias !== undefined) {
    const alias = props.topicAlias;
    // [MQTT-3.3.2-8] / [MQTT-3.3.2-9]: 0 or above our Topic Alias Maximum is an error.
    if (alias === 0 || alias > mqtt.topicAliasMaximum) {
      throw new MqttError(
        'COURIER_TOPIC_ALIAS_INVALID',
        ReasonCode.TopicAliasInvalid,
        `topic alias ${alias} outside 1..${mqtt.topicAliasMaximum}`,
        alias === 0 ? '[MQTT-3.3.2-8]' : '[MQTT-3.3.2-9]',
      );
    }
    const aliases = (c.aliases ??= new Map());
    if (topic.length === 0) {
      const known = aliases.get(alias);
      if (known === undefined) throw new ProtocolError(`topic alias ${alias} used before it was set on this connection`, '[MQTT-3.3.2-7]');
      topic = known;
    } else {
      aliases.set(alias, topic);
    }
  }
  const bad = checkTopicName(topic, ctx.topicLimits);
  if (bad !== null) {
    if (checkTopicName(topic) === null) ctx.counters.topicLimitExceeded++;
    throw new MqttError('COURIER_TOPIC_NAME_INVALID', ReasonCode.TopicNameInvalid, bad, '[MQTT-3.3.2-2]');
  }
  const rt = props?.responseTopic;
  if (rt !== undefined && checkTopicName(rt) !== null)
    throw new ProtocolError(`Response Topic ${JSON.stringify(rt)} is not a valid topic name`, '[MQTT-3.3.2-14]');
  if (p.qos > mqtt.maximumQoS) {
    throw new MqttError(
      'COURIER_QOS_NOT_SUPPORTED',
      ReasonCode.QoSNotSupported,
      `PUBLISH QoS ${p.qos} exceeds the maximum QoS ${mqtt.maximumQoS}`,
      '[MQTT-3.2.2-11]',
    );
  }
  if (p.retain && !mqtt.retainAvailable) {
    throw new MqttError('COURIER_RETAIN_NOT_SUPPORTED', ReasonCode.RetainNotSupported, 'retained PUBLISH while Retain Available is 0', '[MQTT-3.2.2-14]');
  }
  checkRate(c, p.payload.length);
  const session = c.session!;
  const id = p.packetId ?? 0;
  // [MQTT-4.3.3-9] a re-sent QoS 2 PUBLISH whose PUBREL has not arrived is acknowledged, not delivered again.
  if (p.qos === 2 && session.inboundQos2.has(id)) {
    ack(c, 'pubrec', id, 0);
    return;
  }
  // [MQTT-3.3.4-7] / [MQTT-4.9.0-2] (5.0): a QoS 1/2 PUBLISH beyond our Receive Maximum. QoS 1
  // is acknowledged at once, so what counts as unacknowledged are the QoS 2 ids awaiting PUBREL.
  if (p.qos > 0 && session.inboundQos2.size >= mqtt.receiveMaximum) {
    throw new MqttError(
      'COURIER_RECEIVE_MAXIMUM_EXCEEDED',
      ReasonCode.ReceiveMaximumExceeded,
      `more than ${mqtt.receiveMaximum} QoS 1/2 publishes unacknowledged`,
      '[MQTT-3.3.4-7]',
    );
  }
  // [MQTT-3.3.2-4] (optional validation): a UTF-8 payload format must hold UTF-8.
  if (props?.payloadFormatIndicator === 1 && !isUtf8(p.payload)) {
    if (p.qos > 0) ack(c, p.qos === 1 ? 'puback' : 'pubrec', id, ReasonCode.PayloadFormatInvalid, 'payload is not valid UTF-8');
    return;
  }
  if (topic.startsWith('$SYS') && (topic.length === 4 || topic.charCodeAt(4) === 47)) {
    route(c, p, topic, SYS_DENIED);
    return;
  }
  const security = ctx.security;
  if (!security.authorizes) {
    route(c, p, topic, ALLOWED);
    return;
  }
  const decision = security.authorize({ action: 'publish', clientId: session.clientId, username: c.username, topic, qos: p.qos, retain: p.retain });
  c.after(decision, (d) => route(c, p, topic, d));
}

function route(c: ConnectionInternals, p: PublishPacket, topic: string, decision: Decision): void {
  const core = c.core;
  const session = c.session!;
  const id = p.packetId ?? 0;
  if (!decision.allow) {
    // 5.0: PUBACK/PUBREC 0x87; 3.1.1 has no way to say no: acknowledged as usual, not delivered [MQTT-3.3.5-2].
    c.ctx.counters.publishesDenied++;
    c.log.info({ clientId: session.clientId, topic }, 'publish not authorized');
    if (p.qos === 0) return;
    if (p.qos === 2 && c.version !== 5) core.inboundReceived(session, id);
    ack(c, p.qos === 1 ? 'puback' : 'pubrec', id, decision.reasonCode, 'not authorized');
    return;
  }
  const m: Message = createMessage(topic, p.payload, p.qos, p.retain, p.properties, session.clientId, Date.now());
  if (p.qos === 0 && !p.retain && p.properties === undefined) {
    // Forwarded as it came to subscribers of the same protocol version: no encoding at all.
    const raw = c.decoder.packetBytes();
    if (raw !== undefined) seedEncoding(m, c.version, raw);
  }
  // QoS 2 from a persisted session: its packet id, the entries it queues and its forwards that
  // go through the store are committed together. A resend after a crash is recognised by that id
  // and not routed again [MQTT-4.3.3-9], so the id must never be stored without the rest (and a
  // cluster node that takes a session over relies on the old node's copy having what that node
  // forwarded through the store, see ClusterSessions.excluded).
  const atomic = p.qos === 2 && session.journal !== undefined;
  if (atomic) core.atomic(true, session.clientId);
  let routed: number;
  try {
    routed = core.publish(m, session.clientId);
    if (p.qos === 2) core.inboundReceived(session, id);
  } finally {
    if (atomic) core.atomic(false);
  }
  if (p.qos === 0) return;
  // In a cluster the acknowledgement waits until the forwards (and retained change) are accepted.
  if (core.cluster !== undefined) c.clusterMark = core.cluster.writes;
  ack(c, p.qos === 1 ? 'puback' : 'pubrec', id, routed === 0 ? ReasonCode.NoMatchingSubscribers : 0);
}

/** Publish rate and bytes per client per second (fixed one-second windows); v5 DISCONNECT 0x96 beyond. */
function checkRate(c: ConnectionInternals, bytes: number): void {
  const limits = c.ctx.limits;
  if (limits.publishRatePerClient === 0 && limits.publishBytesPerClient === 0) return;
  const now = Date.now();
  let rate = c.rate;
  if (rate === undefined) c.rate = rate = { window: now, count: 0, bytes: 0 };
  else if (now - rate.window >= 1000) {
    rate.window = now;
    rate.count = 0;
    rate.bytes = 0;
  }
  rate.count++;
  rate.bytes += bytes;
  if (
    (limits.publishRatePerClient > 0 && rate.count > limits.publishRatePerClient) ||
    (limits.publishBytesPerClient > 0 && rate.bytes > limits.publishBytesPerClient)
  ) {
    c.ctx.counters.rateLimited++;
    throw new MqttError(
      'COURIER_RATE_LIMITED',
      ReasonCode.MessageRateTooHigh,
      `more than ${limits.publishRatePerClient || '∞'} publishes or ${limits.publishBytesPerClient || '∞'} bytes per second`,
    );
  }
}

export function onPubrec(c: ConnectionInternals, packetId: number, reasonCode: number): void {
  // A failure code (5.0) ends the QoS 2 flow: the message is done, and no PUBREL follows, since
  // one is sent only for a code below 0x80 [MQTT-4.3.3-4]; that holds for an unknown id too.
  const failed = reasonCode >= 0x80;
  const ok = c.session!.received(packetId, failed, Date.now());
  // 5.0 §3.6.2.1: a PUBREC for an unknown id is answered with PUBREL 0x92 (Packet Identifier not found).
  if (!ok && !failed && c.version === 5) ack(c, 'pubrel', packetId, ReasonCode.PacketIdentifierNotFound);
}

export function onPubrel(c: ConnectionInternals, packetId: number): void {
  const known = c.core.inboundReleased(c.session!, packetId);
  // [MQTT-4.3.3-11] PUBCOMP with the same id; 5.0 says 0x92 when the id was not pending.
  ack(c, 'pubcomp', packetId, known ? 0 : ReasonCode.PacketIdentifierNotFound);
}

/** Writes a PUBLISH to the client (Outlet.sendPublish); false when larger than its Maximum Packet Size. */
export function writePublish(
  c: ConnectionInternals,
  m: Message,
  qos: QoS,
  retain: boolean,
  packetId: number,
  dup: boolean,
  subscriptionIds: number[] | undefined,
): boolean {
  const v5 = c.version === 5;
  const now = m.expiresAt === 0 ? 0 : Date.now();
  // Sampled delivery latency: one pointer comparison for every other message.
  if (m === c.core.latency.message) c.core.latency.delivered();
  const out = c.outAliases;
  if (out === undefined) {
    const buf = encodeDelivery(m, c.version, qos, retain, packetId, dup, v5 ? subscriptionIds : undefined, undefined, now);
    // [MQTT-3.1.2-24] never more than the client's Maximum Packet Size.
    if (buf.length > c.clientMaxPacket) return false;
    c.write(buf);
    return true;
  }
  // Outbound topic aliases (5.0 §3.3.2.3.4): a topic sent before goes as its alias alone.
  const topic = m.topic;
  const aliases = out.byTopic;
  const known = aliases.get(topic);
  if (known !== undefined) {
    const buf = encodeDelivery(m, 5, qos, retain, packetId, dup, subscriptionIds, { topic: '', alias: known }, now);
    if (buf.length > c.clientMaxPacket) return false;
    c.write(buf);
    return true;
  }
  // A new alias, or the next slot in turn when all are taken, never above the client's maximum
  // [MQTT-3.3.2-11]: the mapping counts only once the packet that sets it has gone out.
  const byAlias = out.topics;
  const alias = aliases.size < out.max ? aliases.size + 1 : (out.next++ % out.max) + 1;
  const buf = encodeDelivery(m, 5, qos, retain, packetId, dup, subscriptionIds, { topic, alias }, now);
  if (buf.length > c.clientMaxPacket) return false;
  const old = byAlias[alias];
  if (old !== undefined) aliases.delete(old);
  aliases.set(topic, alias);
  byAlias[alias] = topic;
  c.write(buf);
  return true;
}
