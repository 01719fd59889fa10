/**
 * Packet grammar: turns one complete packet (first byte + the `Remaining Length` bytes under a
 * Reader) into a `Packet`, enforcing every rule a single packet can break. The incremental
 * framing lives in decoder.ts; the fixed-header flag rules are checked there as soon as the
 * first byte arrives (`checkFirstByte`), before any of the body is buffered.
 */
import { PACKET_NAMES, PacketType, type ProtocolVersion, type QoS } from './constants.js';
import { ProtocolError } from './errors.js';
import type { AuthPacket, ConnackPacket, DisconnectPacket, Packet, PublishPacket, SubackPacket, UnsubackPacket, AckPacket } from './packets.js';
import { malformed, type Reader } from './primitives.js';
import { readProperties } from './properties.js';
import { parseConnect, parseSubscribe, parseUnsubscribe } from './parse-requests.js';
import { isValidReasonCode, REASON_CODE_STATEMENT } from './reason-codes.js';

/** Picks the statement id of the spec version being spoken (3.1 follows 3.1.1's numbering). */
export function sid(version: number | undefined, v5: string, v311: string): string {
  return version === 3 || version === 4 ? v311 : v5;
}

const ACK_TYPES = ['puback', 'pubrec', 'pubrel', 'pubcomp'] as const;
const NAMES = PACKET_NAMES;

/**
 * Fixed-header checks on the first byte alone (§2.1.2, §2.1.3 / 3.1.1 §2.2): packet type,
 * reserved flags, PUBLISH QoS/DUP, AUTH only in 5.0, CONNECT first. `version` is undefined on
 * the server side until the CONNECT has been decoded.
 */
export function checkFirstByte(first: number, version: number | undefined): void {
  const type = first >> 4;
  const flags = first & 0x0f;
  if (version === undefined && type !== PacketType.CONNECT) {
    throw new ProtocolError(`the first packet must be CONNECT, got ${NAMES[type]}`, '[MQTT-3.1.0-1]');
  }
  switch (type) {
    case 0:
      malformed('packet type 0 is reserved');
      break;
    case PacketType.PUBLISH: {
      const qos = (flags >> 1) & 3;
      if (qos === 3) malformed('PUBLISH with QoS 3', '[MQTT-3.3.1-4]');
      if (qos === 0 && (flags & 0x08) !== 0) malformed('PUBLISH with QoS 0 and DUP 1', '[MQTT-3.3.1-2]');
      break;
    }
    case PacketType.PUBREL:
      if (flags !== 2) malformed(`PUBREL fixed header flags must be 0010, got ${flags.toString(2).padStart(4, '0')}`, '[MQTT-3.6.1-1]');
      break;
    case PacketType.SUBSCRIBE:
      if (flags !== 2) malformed(`SUBSCRIBE fixed header flags must be 0010, got ${flags.toString(2).padStart(4, '0')}`, '[MQTT-3.8.1-1]');
      break;
    case PacketType.UNSUBSCRIBE:
      if (flags !== 2) malformed(`UNSUBSCRIBE fixed header flags must be 0010, got ${flags.toString(2).padStart(4, '0')}`, '[MQTT-3.10.1-1]');
      break;
    case PacketType.AUTH:
      // 3.1.1 Table 2.1 marks type 15 "Reserved / Forbidden" without a statement number ([MQTT-2.2.2-1] is about flag bits).
      if (version !== 5) malformed('packet type 15 (AUTH) is reserved before MQTT 5.0');
      if (flags !== 0) malformed('AUTH fixed header flags must be 0000', '[MQTT-3.15.1-1]');
      break;
    default:
      if (flags !== 0) {
        const st = type === PacketType.DISCONNECT && version === 5 ? '[MQTT-3.14.1-1]' : sid(version, '[MQTT-2.1.3-1]', '[MQTT-2.2.2-1]');
        malformed(`${NAMES[type]} fixed header flags must be 0000, got ${flags.toString(2).padStart(4, '0')}`, st);
      }
  }
}

/** Decodes the packet under `r` (positioned after the fixed header). `first` passed checkFirstByte. */
export function parsePacket(r: Reader, first: number, version: ProtocolVersion | undefined): Packet {
  const type = first >> 4;
  if (type === PacketType.PUBLISH) return parsePublish(r, first, version!);
  if (type === PacketType.CONNECT) return parseConnect(r);
  const v = version!;
  switch (type) {
    case PacketType.CONNACK:
      return parseConnack(r, v);
    case PacketType.PUBACK:
    case PacketType.PUBREC:
    case PacketType.PUBREL:
    case PacketType.PUBCOMP:
      return parseAck(r, type, v);
    case PacketType.SUBSCRIBE:
      return parseSubscribe(r, v);
    case PacketType.SUBACK:
      return parseSuback(r, v);
    case PacketType.UNSUBSCRIBE:
      return parseUnsubscribe(r, v);
    case PacketType.UNSUBACK:
      return parseUnsuback(r, v);
    case PacketType.PINGREQ:
      r.expectEnd('PINGREQ');
      return { type: 'pingreq' };
    case PacketType.PINGRESP:
      r.expectEnd('PINGRESP');
      return { type: 'pingresp' };
    case PacketType.DISCONNECT:
      return parseDisconnect(r, v);
    default:
      return parseAuth(r);
  }
}

export function packetId(r: Reader, type: number, version: number): number {
  const id = r.u16();
  if (id === 0) {
    const st =
      type === PacketType.PUBLISH || type === PacketType.SUBSCRIBE || type === PacketType.UNSUBSCRIBE
        ? sid(version, '[MQTT-2.2.1-3]', '[MQTT-2.3.1-1]')
        : undefined;
    throw new ProtocolError(`${NAMES[type]} with Packet Identifier 0`, st);
  }
  return id;
}

function reasonCode(r: Reader, type: number, version: number): number {
  const code = r.u8();
  if (!isValidReasonCode(type, code, version)) {
    throw new ProtocolError(
      `${NAMES[type]} with undefined reason code 0x${code.toString(16).padStart(2, '0')}`,
      version === 5 ? REASON_CODE_STATEMENT[type] : undefined,
    );
  }
  return code;
}

// ---------------------------------------------------------------------------------------------

function parseConnack(r: Reader, version: number): ConnackPacket {
  const flags = r.u8();
  if ((flags & 0xfe) !== 0) malformed('CONNACK reserved flag bits are not 0', version === 5 ? '[MQTT-3.2.2-1]' : undefined);
  const code = reasonCode(r, PacketType.CONNACK, version);
  const packet: ConnackPacket = { type: 'connack', sessionPresent: flags === 1, reasonCode: code };
  if (version === 5) {
    const properties = readProperties(r, PacketType.CONNACK);
    if (properties !== undefined) packet.properties = properties;
  }
  r.expectEnd('CONNACK');
  return packet;
}

function parsePublish(r: Reader, first: number, version: number): PublishPacket {
  const qos = ((first >> 1) & 3) as QoS;
  // Topic names with wildcards, or empty without a Topic Alias, are the broker's to reject.
  const topic = r.utf8();
  let packet: PublishPacket;
  if (qos === 0) {
    packet = { type: 'publish', topic, payload: r.buf, qos, retain: (first & 1) !== 0, dup: false };
  } else {
    const id = packetId(r, PacketType.PUBLISH, version);
    packet = { type: 'publish', topic, payload: r.buf, qos, retain: (first & 1) !== 0, dup: (first & 8) !== 0, packetId: id };
  }
  if (version === 5) {
    const properties = readProperties(r, PacketType.PUBLISH);
    if (properties !== undefined) packet.properties = properties;
  }
  packet.payload = r.rest();
  return packet;
}

function parseAck(r: Reader, type: number, version: number): AckPacket<'puback' | 'pubrec' | 'pubrel' | 'pubcomp'> {
  const packet: AckPacket<'puback' | 'pubrec' | 'pubrel' | 'pubcomp'> = { type: ACK_TYPES[type - PacketType.PUBACK]!, packetId: packetId(r, type, version) };
  if (version === 5) {
    // §3.4.2.1: Remaining Length 2 means Success and no properties; 3 means no properties.
    if (r.remaining() === 0) {
      packet.reasonCode = 0;
      return packet;
    }
    packet.reasonCode = reasonCode(r, type, version);
    if (r.remaining() > 0) {
      const properties = readProperties(r, type);
      if (properties !== undefined) packet.properties = properties;
    }
  }
  r.expectEnd(NAMES[type]!);
  return packet;
}

function parseSuback(r: Reader, version: number): SubackPacket {
  const id = packetId(r, PacketType.SUBACK, version);
  const properties = version === 5 ? readProperties(r, PacketType.SUBACK) : undefined;
  if (r.remaining() === 0) throw new ProtocolError('SUBACK without any reason code', sid(version, '[MQTT-3.8.4-6]', '[MQTT-3.8.4-5]'));
  const reasonCodes: number[] = [];
  while (r.remaining() > 0) reasonCodes.push(reasonCode(r, PacketType.SUBACK, version));
  const packet: SubackPacket = { type: 'suback', packetId: id, reasonCodes };
  if (properties !== undefined) packet.properties = properties;
  return packet;
}

function parseUnsuback(r: Reader, version: number): UnsubackPacket {
  const id = packetId(r, PacketType.UNSUBACK, version);
  const packet: UnsubackPacket = { type: 'unsuback', packetId: id, reasonCodes: [] };
  if (version === 5) {
    const properties = readProperties(r, PacketType.UNSUBACK);
    if (r.remaining() === 0) throw new ProtocolError('UNSUBACK without any reason code', '[MQTT-3.11.3-1]');
    while (r.remaining() > 0) packet.reasonCodes.push(reasonCode(r, PacketType.UNSUBACK, version));
    if (properties !== undefined) packet.properties = properties;
  }
  r.expectEnd('UNSUBACK');
  return packet;
}

function parseDisconnect(r: Reader, version: number): DisconnectPacket {
  const packet: DisconnectPacket = { type: 'disconnect' };
  if (version === 5) {
    // §3.14.2.1: Remaining Length 0 means Normal disconnection; < 2 means no properties.
    packet.reasonCode = r.remaining() === 0 ? 0 : reasonCode(r, PacketType.DISCONNECT, version);
    if (r.remaining() > 0) {
      const properties = readProperties(r, PacketType.DISCONNECT);
      if (properties !== undefined) packet.properties = properties;
    }
  }
  r.expectEnd('DISCONNECT');
  return packet;
}

function parseAuth(r: Reader): AuthPacket {
  const packet: AuthPacket = { type: 'auth', reasonCode: 0 };
  // §3.15.2.1: only Remaining Length 0 may omit the reason code and Property Length; with
  // Remaining Length 1 the Property Length is missing and readProperties reports it.
  if (r.remaining() > 0) {
    packet.reasonCode = reasonCode(r, PacketType.AUTH, 5);
    const properties = readProperties(r, PacketType.AUTH);
    if (properties !== undefined) packet.properties = properties;
  }
  r.expectEnd('AUTH');
  return packet;
}
