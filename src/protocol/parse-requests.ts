/**
 * The packets only a client sends, so only a server decodes: CONNECT, SUBSCRIBE, UNSUBSCRIBE
 * (parse.ts dispatches to them). A module of their own so that a client-only build can leave
 * them out: the browser build of @courier/client substitutes parse-requests-web.ts.
 */
import { PACKET_NAMES as NAMES, PacketType, type ProtocolVersion, type QoS } from './constants.js';
import { ProtocolError, UnsupportedProtocolVersionError } from './errors.js';
import type { ConnectPacket, SubscribePacket, Subscription, UnsubscribePacket, Will } from './packets.js';
import { packetId, sid } from './parse.js';
import { malformed, type Reader } from './primitives.js';
import { readProperties, WILL } from './properties.js';

export function parseConnect(r: Reader): ConnectPacket {
  // §3.1.2.1 / §3.1.2.2: only names and levels we speak; anything else is for the broker to
  // answer with 0x84 (5.0) or 0x01 (3.1.1) and close.
  const protocolName = r.utf8();
  const level = r.u8();
  if (protocolName === 'MQTT') {
    if (level !== 4 && level !== 5) throw new UnsupportedProtocolVersionError(protocolName, level, '[MQTT-3.1.2-2]');
  } else if (protocolName === 'MQIsdp') {
    if (level !== 3) throw new UnsupportedProtocolVersionError(protocolName, level, '[MQTT-3.1.2-2]');
  } else {
    throw new UnsupportedProtocolVersionError(protocolName, level, '[MQTT-3.1.2-1]');
  }
  const version = level as ProtocolVersion;
  r.v311 = version !== 5;
  const flags = r.u8();
  if ((flags & 0x01) !== 0) malformed('CONNECT reserved flag is 1', '[MQTT-3.1.2-3]');
  const willFlag = (flags & 0x04) !== 0;
  const willQos = (flags >> 3) & 3;
  const willRetain = (flags & 0x20) !== 0;
  const passwordFlag = (flags & 0x40) !== 0;
  const usernameFlag = (flags & 0x80) !== 0;
  if (!willFlag) {
    if (willQos !== 0) malformed('CONNECT Will QoS is not 0 while the Will Flag is 0', sid(version, '[MQTT-3.1.2-11]', '[MQTT-3.1.2-13]'));
    if (willRetain) malformed('CONNECT Will Retain is 1 while the Will Flag is 0', sid(version, '[MQTT-3.1.2-13]', '[MQTT-3.1.2-15]'));
  } else if (willQos === 3) {
    malformed('CONNECT Will QoS 3', sid(version, '[MQTT-3.1.2-12]', '[MQTT-3.1.2-14]'));
  }
  // 5.0 allows a password without a user name (§3.1.2.9); 3.1.1 does not.
  if (version !== 5 && passwordFlag && !usernameFlag) malformed('CONNECT Password Flag is 1 while the User Name Flag is 0', '[MQTT-3.1.2-22]');
  const keepAlive = r.u16();
  const properties = version === 5 ? readProperties(r, PacketType.CONNECT) : undefined;
  const clientId = r.utf8();
  const packet: ConnectPacket = { type: 'connect', protocolName, protocolVersion: version, clean: (flags & 0x02) !== 0, keepAlive, clientId };
  if (willFlag) {
    const willProps = version === 5 ? readProperties(r, WILL) : undefined;
    const will: Will = { topic: r.utf8(), payload: r.binary(), qos: willQos as QoS, retain: willRetain };
    if (willProps !== undefined) will.properties = willProps;
    packet.will = will;
  }
  if (usernameFlag) packet.username = r.utf8();
  if (passwordFlag) packet.password = r.binary();
  if (properties !== undefined) packet.properties = properties;
  r.expectEnd('CONNECT');
  return packet;
}

/**
 * [MQTT-4.7.3-1] a Topic Filter is at least one character long, and so is the filter part of a
 * shared subscription `$share/{ShareName}/{filter}` ([MQTT-4.8.2-2]: the "/" after the ShareName
 * is followed by a Topic Filter). A SUBSCRIBE or UNSUBSCRIBE carrying an empty one is malformed,
 * so the connection is closed (3.1.1 [MQTT-4.8.0-1]; 5.0 §4.13, DISCONNECT 0x81).
 */
function checkFilterNotEmpty(filter: string, type: number): void {
  if (filter.length === 0) malformed(`${NAMES[type]} with an empty Topic Filter`, '[MQTT-4.7.3-1]');
  if (filter.charCodeAt(filter.length - 1) === 0x2f && filter.startsWith('$share/') && filter.indexOf('/', 7) === filter.length - 1) {
    malformed(`${NAMES[type]} with an empty Topic Filter in the shared subscription ${JSON.stringify(filter)}`, '[MQTT-4.7.3-1]');
  }
}

export function parseSubscribe(r: Reader, version: number): SubscribePacket {
  const id = packetId(r, PacketType.SUBSCRIBE, version);
  const properties = version === 5 ? readProperties(r, PacketType.SUBSCRIBE) : undefined;
  if (r.remaining() === 0) throw new ProtocolError('SUBSCRIBE without any Topic Filter', sid(version, '[MQTT-3.8.3-2]', '[MQTT-3.8.3-3]'));
  const subscriptions: Subscription[] = [];
  while (r.remaining() > 0) {
    const topicFilter = r.utf8();
    checkFilterNotEmpty(topicFilter, PacketType.SUBSCRIBE);
    const o = r.u8();
    const qos = o & 3;
    if (version === 5) {
      if ((o & 0xc0) !== 0) malformed('SUBSCRIBE subscription options reserved bits are not 0', '[MQTT-3.8.3-5]');
      if (qos === 3) throw new ProtocolError('SUBSCRIBE with Maximum QoS 3');
      const retainHandling = (o >> 4) & 3;
      if (retainHandling === 3) throw new ProtocolError('SUBSCRIBE with Retain Handling 3');
      subscriptions.push({
        topicFilter,
        qos: qos as QoS,
        noLocal: (o & 4) !== 0,
        retainAsPublished: (o & 8) !== 0,
        retainHandling: retainHandling as 0 | 1 | 2,
      });
    } else {
      if ((o & 0xfc) !== 0) malformed('SUBSCRIBE Requested QoS reserved bits are not 0', '[MQTT-3-8.3-4]');
      if (qos === 3) malformed('SUBSCRIBE with Requested QoS 3', '[MQTT-3-8.3-4]');
      subscriptions.push({ topicFilter, qos: qos as QoS, noLocal: false, retainAsPublished: false, retainHandling: 0 });
    }
  }
  const packet: SubscribePacket = { type: 'subscribe', packetId: id, subscriptions };
  if (properties !== undefined) packet.properties = properties;
  return packet;
}

export function parseUnsubscribe(r: Reader, version: number): UnsubscribePacket {
  const id = packetId(r, PacketType.UNSUBSCRIBE, version);
  const properties = version === 5 ? readProperties(r, PacketType.UNSUBSCRIBE) : undefined;
  if (r.remaining() === 0) throw new ProtocolError('UNSUBSCRIBE without any Topic Filter', '[MQTT-3.10.3-2]');
  const topicFilters: string[] = [];
  while (r.remaining() > 0) {
    const topicFilter = r.utf8();
    checkFilterNotEmpty(topicFilter, PacketType.UNSUBSCRIBE);
    topicFilters.push(topicFilter);
  }
  const packet: UnsubscribePacket = { type: 'unsubscribe', packetId: id, topicFilters };
  if (properties !== undefined) packet.properties = properties;
  return packet;
}
