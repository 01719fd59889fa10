/**
 * Encoder: `Packet` → one Buffer of exactly the packet's size. Every packet is measured first
 * (validating whatever would make it unrepresentable), then allocated once and written in one
 * pass; a PUBLISH payload is copied exactly once, into that buffer.
 *
 * Fields that do not exist in the target version are not written: properties and v5 reason
 * codes are ignored for 3.1/3.1.1, as are the v5 subscription options. AUTH has no 3.1.1 form
 * and throws.
 */
import { PacketType, type ProtocolVersion } from './constants.js';
import { InvalidPacketError } from './errors.js';
import type { AckPacket, AuthPacket, DisconnectPacket, Packet, Properties, PublishPacket } from './packets.js';
import { propertiesLength, writeProperties } from './properties.js';
import { utf8Length, vbiLength, writeUtf8 } from './primitives.js';
import { encodeConnect, encodeSubscribe, encodeUnsubscribe } from './encode-requests.js';
import { encodeConnack, encodeSuback, encodeUnsuback } from './encode-responses.js';
import { allocPacket, checkByte, checkPacketId, headerEnd } from './encode-common.js';
import { alloc, of } from './bytes.js';

type Ack = AckPacket<'puback' | 'pubrec' | 'pubrel' | 'pubcomp'>;

/** Encodes one packet into one exact-size Buffer. Throws MqttError for packets that cannot be represented. */
export function encode(packet: Packet, version: ProtocolVersion): Buffer {
  switch (packet.type) {
    case 'publish':
      return encodePublish(packet, version);
    case 'puback':
      return encodeAck(packet, PacketType.PUBACK, version);
    case 'pubrec':
      return encodeAck(packet, PacketType.PUBREC, version);
    case 'pubrel':
      return encodeAck(packet, PacketType.PUBREL, version);
    case 'pubcomp':
      return encodeAck(packet, PacketType.PUBCOMP, version);
    case 'connect':
      return encodeConnect(packet);
    case 'connack':
      return encodeConnack(packet, version);
    case 'subscribe':
      return encodeSubscribe(packet, version);
    case 'suback':
      return encodeSuback(packet, version);
    case 'unsubscribe':
      return encodeUnsubscribe(packet, version);
    case 'unsuback':
      return encodeUnsuback(packet, version);
    case 'pingreq':
      return of(0xc0, 0);
    case 'pingresp':
      return of(0xd0, 0);
    case 'disconnect':
      return encodeDisconnect(packet, version);
    case 'auth':
      return encodeAuth(packet, version);
    default:
      throw new InvalidPacketError(`unknown packet type ${JSON.stringify((packet as { type: unknown }).type)}`);
  }
}

/** Exact size in bytes of `encode(packet, version)`. Measures without writing (CONNECT and SUBSCRIBE-like packets are encoded). */
export function encodedLength(packet: Packet, version: ProtocolVersion): number {
  if (packet.type === 'publish') {
    const rem = publishRemainingLength(packet, version);
    return 1 + vbiLength(rem) + rem;
  }
  return encode(packet, version).length;
}

// ---------------------------------------------------------------------------------------------
// PUBLISH (the hot path)

function publishRemainingLength(p: PublishPacket, version: ProtocolVersion): number {
  let rem = 2 + utf8Length(p.topic, 'the topic name') + p.payload.length;
  if (p.qos !== 0) rem += 2;
  if (version === 5) {
    const propLen = p.properties === undefined ? 0 : propertiesLength(p.properties, PacketType.PUBLISH);
    rem += vbiLength(propLen) + propLen;
  }
  return rem;
}

function encodePublish(p: PublishPacket, version: ProtocolVersion): Buffer {
  const { topic, payload, qos } = p;
  if (qos !== 0 && qos !== 1 && qos !== 2) throw new InvalidPacketError(`PUBLISH QoS must be 0, 1 or 2, got ${String(qos)}`, '[MQTT-3.3.1-4]');
  if (qos === 0 && p.dup) throw new InvalidPacketError('PUBLISH with QoS 0 must have DUP 0', '[MQTT-3.3.1-2]');
  const topicLen = utf8Length(topic, 'the topic name');
  let rem = 2 + topicLen + payload.length;
  if (qos !== 0) {
    checkPacketId(p.packetId, 'a QoS > 0 PUBLISH');
    rem += 2;
  }
  let propLen = 0;
  if (version === 5) {
    if (p.properties !== undefined) propLen = propertiesLength(p.properties, PacketType.PUBLISH);
    rem += propLen < 0x80 ? 1 + propLen : vbiLength(propLen) + propLen;
  }
  const buf = allocPacket(0x30 | (p.dup ? 0x08 : 0) | (qos << 1) | (p.retain ? 1 : 0), rem);
  let pos = writeUtf8(buf, headerEnd(rem), topic, topicLen);
  if (qos !== 0) {
    const id = p.packetId!;
    buf[pos] = id >>> 8;
    buf[pos + 1] = id & 0xff;
    pos += 2;
  }
  if (version === 5) {
    if (propLen === 0) buf[pos++] = 0;
    else pos = writeProperties(buf, pos, p.properties, propLen);
  }
  if (payload.length !== 0) buf.set(payload, pos);
  return buf;
}

/**
 * Offset of the Packet Identifier inside an encoded QoS 1/2 PUBLISH (for patching it per
 * subscriber without re-encoding). Throws InvalidPacketError for anything else.
 */
export function publishPacketIdOffset(encoded: Buffer): number {
  const first = encoded[0];
  if (first === undefined || first >> 4 !== PacketType.PUBLISH || (first & 0x06) === 0) {
    throw new InvalidPacketError('not an encoded QoS 1 or 2 PUBLISH');
  }
  let pos = 1;
  while (pos < 5 && (encoded[pos]! & 0x80) !== 0) pos++;
  pos++;
  if (pos + 2 > encoded.length) throw new InvalidPacketError('truncated encoded PUBLISH');
  const off = pos + 2 + ((encoded[pos]! << 8) | encoded[pos + 1]!);
  if (off + 2 > encoded.length) throw new InvalidPacketError('truncated encoded PUBLISH');
  return off;
}

/**
 * A copy of an encoded QoS 1/2 PUBLISH with another Packet Identifier and DUP flag (and,
 * optionally, RETAIN flag): the fan-out path encodes a message once per version and patches
 * the copy for each subscriber.
 */
export function withPacketId(encoded: Buffer, packetId: number, dup: boolean, retain?: boolean): Buffer {
  const off = publishPacketIdOffset(encoded);
  checkPacketId(packetId, 'a QoS > 0 PUBLISH');
  const out = alloc(encoded.length);
  out.set(encoded, 0);
  let first = dup ? out[0]! | 0x08 : out[0]! & ~0x08;
  if (retain !== undefined) first = retain ? first | 0x01 : first & ~0x01;
  out[0] = first;
  out[off] = packetId >>> 8;
  out[off + 1] = packetId & 0xff;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Acknowledgements and other server → client packets

function encodeAck(p: Ack, type: number, version: ProtocolVersion): Buffer {
  const id = checkPacketId(p.packetId, p.type.toUpperCase());
  const first = type === PacketType.PUBREL ? 0x62 : type << 4;
  const code = p.reasonCode ?? 0;
  if (version !== 5 || (code === 0 && p.properties === undefined)) {
    // 3.1.1, or the 5.0 short form (§3.4.2.1: Remaining Length 2 means Success, no properties).
    const buf = alloc(4);
    buf[0] = first;
    buf[1] = 2;
    buf[2] = id >>> 8;
    buf[3] = id & 0xff;
    return buf;
  }
  checkByte(code, 'the reason code');
  const propLen = propertiesLength(p.properties, type);
  const rem = propLen === 0 ? 3 : 3 + vbiLength(propLen) + propLen;
  const buf = allocPacket(first, rem);
  let pos = headerEnd(rem);
  buf[pos] = id >>> 8;
  buf[pos + 1] = id & 0xff;
  buf[pos + 2] = code;
  pos += 3;
  if (propLen !== 0) writeProperties(buf, pos, p.properties, propLen);
  return buf;
}

function encodeDisconnect(p: DisconnectPacket, version: ProtocolVersion): Buffer {
  const code = p.reasonCode ?? 0;
  if (version !== 5 || (code === 0 && p.properties === undefined)) return of(0xe0, 0);
  return reasonAndProperties(0xe0, PacketType.DISCONNECT, code, p.properties);
}

function encodeAuth(p: AuthPacket, version: ProtocolVersion): Buffer {
  if (version !== 5) throw new InvalidPacketError('AUTH exists only in MQTT 5.0');
  const code = p.reasonCode ?? 0;
  // §3.15.2.1: Remaining Length 0 stands for Success with no properties.
  if (code === 0 && p.properties === undefined) return of(0xf0, 0);
  return reasonAndProperties(0xf0, PacketType.AUTH, code, p.properties);
}

/** DISCONNECT / AUTH long form: reason code + Property Length + properties. */
function reasonAndProperties(first: number, type: number, code: number, props: Properties | undefined): Buffer {
  checkByte(code, 'the reason code');
  const propLen = propertiesLength(props, type);
  const rem = 1 + vbiLength(propLen) + propLen;
  const buf = allocPacket(first, rem);
  const pos = headerEnd(rem);
  buf[pos] = code;
  writeProperties(buf, pos + 1, props, propLen);
  return buf;
}
