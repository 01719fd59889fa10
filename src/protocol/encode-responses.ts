/**
 * The packets only a server sends, so only a server encodes: CONNACK, SUBACK, UNSUBACK
 * (encoder.ts dispatches to them). A module of their own so that a client-only build can leave
 * them out: the browser build of @courier/client substitutes encode-responses-web.ts.
 */
import { PacketType, type ProtocolVersion } from './constants.js';
import { InvalidPacketError } from './errors.js';
import type { ConnackPacket, SubackPacket, UnsubackPacket } from './packets.js';
import { vbiLength } from './primitives.js';
import { propertiesLength, writeProperties } from './properties.js';
import { allocPacket, checkByte, checkPacketId, headerEnd } from './encode-common.js';

export function encodeConnack(p: ConnackPacket, version: ProtocolVersion): Buffer {
  const code = checkByte(p.reasonCode, 'the CONNACK reason code');
  const propLen = version === 5 ? propertiesLength(p.properties, PacketType.CONNACK) : 0;
  const rem = version === 5 ? 2 + vbiLength(propLen) + propLen : 2;
  const buf = allocPacket(0x20, rem);
  let pos = headerEnd(rem);
  // Session Present exists from 3.1.1 on [MQTT-3.2.2-1..3]; in 3.1 this byte is reserved and 0.
  buf[pos++] = p.sessionPresent && version !== 3 ? 1 : 0;
  buf[pos++] = code;
  if (version === 5) writeProperties(buf, pos, p.properties, propLen);
  return buf;
}

export function encodeSuback(p: SubackPacket, version: ProtocolVersion): Buffer {
  const id = checkPacketId(p.packetId, 'SUBACK');
  const codes = p.reasonCodes;
  if (codes.length === 0) throw new InvalidPacketError('SUBACK needs at least one reason code', '[MQTT-3.8.4-6]');
  const propLen = version === 5 ? propertiesLength(p.properties, PacketType.SUBACK) : 0;
  const rem = 2 + (version === 5 ? vbiLength(propLen) + propLen : 0) + codes.length;
  const buf = allocPacket(0x90, rem);
  let pos = headerEnd(rem);
  buf[pos++] = id >>> 8;
  buf[pos++] = id & 0xff;
  if (version === 5) pos = writeProperties(buf, pos, p.properties, propLen);
  for (const c of codes) buf[pos++] = checkByte(c, 'a SUBACK reason code');
  return buf;
}

/** 3.1.1 UNSUBACK is the Packet Identifier alone; 5.0 adds properties and one reason code per filter. */
export function encodeUnsuback(p: UnsubackPacket, version: ProtocolVersion): Buffer {
  const id = checkPacketId(p.packetId, 'UNSUBACK');
  if (version !== 5) {
    const buf = allocPacket(0xb0, 2);
    buf[2] = id >>> 8;
    buf[3] = id & 0xff;
    return buf;
  }
  const codes = p.reasonCodes;
  if (codes.length === 0) throw new InvalidPacketError('a 5.0 UNSUBACK needs one reason code per Topic Filter', '[MQTT-3.11.3-1]');
  const propLen = propertiesLength(p.properties, PacketType.UNSUBACK);
  const rem = 2 + vbiLength(propLen) + propLen + codes.length;
  const buf = allocPacket(0xb0, rem);
  let pos = headerEnd(rem);
  buf[pos++] = id >>> 8;
  buf[pos++] = id & 0xff;
  pos = writeProperties(buf, pos, p.properties, propLen);
  for (const c of codes) buf[pos++] = checkByte(c, 'an UNSUBACK reason code');
  return buf;
}
