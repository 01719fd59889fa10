/**
 * Encoders for CONNECT, SUBSCRIBE and UNSUBSCRIBE: the packets with lists or many
 * optional parts. Same discipline as encoder.ts: measure (validating), allocate once, write.
 */
import { PacketType, type ProtocolVersion } from './constants.js';
import { InvalidPacketError } from './errors.js';
import type { ConnectPacket, SubscribePacket, UnsubscribePacket } from './packets.js';
import { binaryLength, utf8Length, vbiLength, writeBinary, writeUtf8 } from './primitives.js';
import { propertiesLength, writeProperties, WILL } from './properties.js';
import { allocPacket, checkPacketId, headerEnd } from './encode-common.js';

const PROTOCOL_NAMES: Record<number, string> = { 3: 'MQIsdp', 4: 'MQTT', 5: 'MQTT' };

/** CONNECT is encoded in the version it names (`protocolVersion`). */
export function encodeConnect(p: ConnectPacket): Buffer {
  const version = p.protocolVersion;
  const name = PROTOCOL_NAMES[version];
  if (name === undefined) throw new InvalidPacketError(`CONNECT protocolVersion must be 3, 4 or 5, got ${String(version)}`);
  if (p.protocolName !== undefined && p.protocolName !== name) {
    throw new InvalidPacketError(`CONNECT protocol name ${JSON.stringify(p.protocolName)} does not match level ${version}`);
  }
  if (!Number.isInteger(p.keepAlive) || p.keepAlive < 0 || p.keepAlive > 0xffff)
    throw new InvalidPacketError(`CONNECT keepAlive must be in 0..65535, got ${p.keepAlive}`);
  const v5 = version === 5;
  const nameLen = name.length;
  const clientIdLen = utf8Length(p.clientId, 'the client identifier');
  let rem = 2 + nameLen + 1 + 1 + 2 + 2 + clientIdLen;
  const propLen = v5 ? propertiesLength(p.properties, PacketType.CONNECT) : 0;
  if (v5) rem += vbiLength(propLen) + propLen;
  const will = p.will;
  let willTopicLen = 0;
  let willPropLen = 0;
  let flags = p.clean ? 0x02 : 0;
  if (will !== undefined) {
    if (will.qos !== 0 && will.qos !== 1 && will.qos !== 2) throw new InvalidPacketError(`Will QoS must be 0, 1 or 2, got ${String(will.qos)}`);
    willTopicLen = utf8Length(will.topic, 'the will topic');
    rem += 2 + willTopicLen + 2 + binaryLength(will.payload, 'the will payload');
    if (v5) {
      willPropLen = propertiesLength(will.properties, WILL);
      rem += vbiLength(willPropLen) + willPropLen;
    }
    flags |= 0x04 | (will.qos << 3) | (will.retain ? 0x20 : 0);
  }
  let usernameLen = 0;
  if (p.username !== undefined) {
    usernameLen = utf8Length(p.username, 'the user name');
    rem += 2 + usernameLen;
    flags |= 0x80;
  }
  if (p.password !== undefined) {
    if (!v5 && p.username === undefined) throw new InvalidPacketError('a 3.1.1 CONNECT with a password needs a user name', '[MQTT-3.1.2-22]');
    rem += 2 + binaryLength(p.password, 'the password');
    flags |= 0x40;
  }
  const buf = allocPacket(0x10, rem);
  let pos = writeUtf8(buf, headerEnd(rem), name, nameLen);
  buf[pos++] = version;
  buf[pos++] = flags;
  buf[pos++] = p.keepAlive >>> 8;
  buf[pos++] = p.keepAlive & 0xff;
  if (v5) pos = writeProperties(buf, pos, p.properties, propLen);
  pos = writeUtf8(buf, pos, p.clientId, clientIdLen);
  if (will !== undefined) {
    if (v5) pos = writeProperties(buf, pos, will.properties, willPropLen);
    pos = writeUtf8(buf, pos, will.topic, willTopicLen);
    pos = writeBinary(buf, pos, will.payload);
  }
  if (p.username !== undefined) pos = writeUtf8(buf, pos, p.username, usernameLen);
  if (p.password !== undefined) writeBinary(buf, pos, p.password);
  return buf;
}

export function encodeSubscribe(p: SubscribePacket, version: ProtocolVersion): Buffer {
  const id = checkPacketId(p.packetId, 'SUBSCRIBE');
  const subs = p.subscriptions;
  if (subs.length === 0) throw new InvalidPacketError('SUBSCRIBE needs at least one Topic Filter', version === 5 ? '[MQTT-3.8.3-2]' : '[MQTT-3.8.3-3]');
  const v5 = version === 5;
  const propLen = v5 ? propertiesLength(p.properties, PacketType.SUBSCRIBE) : 0;
  let rem = 2 + (v5 ? vbiLength(propLen) + propLen : 0);
  const lens: number[] = [];
  for (const s of subs) {
    const len = utf8Length(s.topicFilter, 'a topic filter');
    lens.push(len);
    rem += 3 + len;
    if (s.qos !== 0 && s.qos !== 1 && s.qos !== 2) throw new InvalidPacketError(`subscription QoS must be 0, 1 or 2, got ${String(s.qos)}`);
    if (v5 && s.retainHandling !== 0 && s.retainHandling !== 1 && s.retainHandling !== 2) {
      throw new InvalidPacketError(`Retain Handling must be 0, 1 or 2, got ${String(s.retainHandling)}`);
    }
  }
  const buf = allocPacket(0x82, rem);
  let pos = headerEnd(rem);
  buf[pos++] = id >>> 8;
  buf[pos++] = id & 0xff;
  if (v5) pos = writeProperties(buf, pos, p.properties, propLen);
  for (let i = 0; i < subs.length; i++) {
    const s = subs[i]!;
    pos = writeUtf8(buf, pos, s.topicFilter, lens[i]!);
    buf[pos++] = v5 ? s.qos | (s.noLocal ? 0x04 : 0) | (s.retainAsPublished ? 0x08 : 0) | (s.retainHandling << 4) : s.qos;
  }
  return buf;
}

export function encodeUnsubscribe(p: UnsubscribePacket, version: ProtocolVersion): Buffer {
  const id = checkPacketId(p.packetId, 'UNSUBSCRIBE');
  const filters = p.topicFilters;
  if (filters.length === 0) throw new InvalidPacketError('UNSUBSCRIBE needs at least one Topic Filter', '[MQTT-3.10.3-2]');
  const v5 = version === 5;
  const propLen = v5 ? propertiesLength(p.properties, PacketType.UNSUBSCRIBE) : 0;
  let rem = 2 + (v5 ? vbiLength(propLen) + propLen : 0);
  const lens: number[] = [];
  for (const f of filters) {
    const len = utf8Length(f, 'a topic filter');
    lens.push(len);
    rem += 2 + len;
  }
  const buf = allocPacket(0xa2, rem);
  let pos = headerEnd(rem);
  buf[pos++] = id >>> 8;
  buf[pos++] = id & 0xff;
  if (v5) pos = writeProperties(buf, pos, p.properties, propLen);
  for (let i = 0; i < filters.length; i++) pos = writeUtf8(buf, pos, filters[i]!, lens[i]!);
  return buf;
}
