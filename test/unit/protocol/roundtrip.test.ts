/**
 * Round trips of hand-written packets: for every packet type in MQTT 3.1.1 (level 4) and 5.0
 * (level 5), plus CONNECT for MQTT 3.1 (level 3, "MQIsdp"):
 *   encode(packet) → bytes → Decoder → exactly `packet` again,
 * with the bytes pushed whole, one byte at a time, and as one stream of every packet of that
 * version; the decoded packet re-encodes to the same bytes. Some packets also carry the exact
 * bytes expected on the wire, written by hand from the byte layouts in the specs (§2 / §3 of
 * MQTT 3.1.1 and 5.0), so the encoder is checked against the spec and not only against itself.
 *
 * The packets are written in the decoder's canonical form: a v5 acknowledgement, DISCONNECT or
 * AUTH always carries its `reasonCode` (0x00 when the wire omitted it), packets without
 * properties carry no `properties` field, and a QoS 0 PUBLISH has no `packetId`.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Decoder, InvalidPacketError, encode } from '../../../src/protocol/index.js';
import type { Packet, Properties, ProtocolVersion } from '../../../src/protocol/index.js';
import { PROPERTY_TABLE, WILL } from '../../../src/protocol/properties.js';

// =============================================================================================
// Helpers
// =============================================================================================

/** Hex with any whitespace ("c0 00") → bytes. */
function hex(s: string): Buffer {
  const clean = s.replace(/\s+/g, '');
  if (!/^([0-9a-f]{2})*$/i.test(clean)) throw new Error(`bad hex: ${s}`);
  return Buffer.from(clean, 'hex');
}

const toHex = (b: Buffer): string => b.toString('hex').replace(/(..)(?!$)/g, '$1 ');

/** CONNECT is decoded server side (version learnt from the CONNECT itself); everything else with the version preset. */
function decoderOptions(p: Packet, version: ProtocolVersion): { protocolVersion?: ProtocolVersion } {
  return p.type === 'connect' ? {} : { protocolVersion: version };
}

/** Decodes `bytes` pushed in chunks of `chunk` bytes (Infinity = whole); asserts the stream ends on a packet boundary. */
function decodeChunked(bytes: Buffer, options: { protocolVersion?: ProtocolVersion }, chunk: number): Packet[] {
  const out: Packet[] = [];
  const d = new Decoder((p) => out.push(p), options);
  if (chunk === Infinity) d.push(bytes);
  // A fresh Buffer per byte: the decoder must not depend on chunks sharing one ArrayBuffer.
  else for (let i = 0; i < bytes.length; i += chunk) d.push(Buffer.from(bytes.subarray(i, i + chunk)));
  assert.equal(d.pending, false, 'the decoder ends between packets');
  return out;
}

/** Full check of one packet: optional exact bytes, decode whole and byte by byte, re-encode. */
function roundTrip(packet: Packet, version: ProtocolVersion, expectedHex?: string): Buffer {
  const bytes = encode(packet, version);
  if (expectedHex !== undefined) assert.equal(toHex(bytes), toHex(hex(expectedHex)), 'encoded bytes match the spec layout');
  const opts = decoderOptions(packet, version);
  for (const chunk of [Infinity, 1, 7]) {
    const got = decodeChunked(bytes, opts, chunk);
    assert.equal(got.length, 1, `exactly one packet (chunk ${chunk})`);
    assert.deepStrictEqual(got[0], packet, `decoded packet equals the input (chunk ${chunk})`);
    assert.ok(encode(got[0]!, version).equals(bytes), 're-encoding the decoded packet gives the same bytes');
  }
  return bytes;
}

interface Case {
  title: string;
  version: ProtocolVersion;
  packet: Packet;
  /** Exact wire bytes, from the spec's byte layout. */
  hex?: string;
}

// =============================================================================================
// Values
// =============================================================================================

const NON_ASCII = 'ünï/温度/☃/𝄞'; // 2-, 3- and 4-byte UTF-8 sequences
const ALL_BYTES = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
const KIB64 = Buffer.alloc(65536, 0x5a);
KIB64[0] = 0x00;
KIB64[65535] = 0xff;
/** User properties with a repeated name, interleaved with another name: wire order must survive [MQTT-3.3.2-18]. */
const USER_PROPS: Array<[string, string]> = [
  ['k', 'v1'],
  ['other', ''],
  ['k', 'v2'],
  ['', 'empty name'],
  ['k', 'v1'],
];

const CONNECT_PROPS: Properties = {
  sessionExpiryInterval: 0xffffffff,
  receiveMaximum: 1,
  maximumPacketSize: 268435460,
  topicAliasMaximum: 0xffff,
  requestResponseInformation: 1,
  requestProblemInformation: 0,
  userProperties: USER_PROPS,
  authenticationMethod: 'SCRAM-SHA-256',
  authenticationData: Buffer.from([0x00, 0x01, 0xfe, 0xff]),
};

const WILL_PROPS: Properties = {
  willDelayInterval: 30,
  payloadFormatIndicator: 1,
  messageExpiryInterval: 3600,
  contentType: 'text/plain; charset=utf-8',
  responseTopic: 'replies/☃',
  correlationData: Buffer.from('corr-\u0000-id', 'utf8'),
  userProperties: [
    ['will', '1'],
    ['will', '2'],
  ],
};

const CONNACK_PROPS: Properties = {
  sessionExpiryInterval: 120,
  receiveMaximum: 65535,
  maximumQoS: 1,
  retainAvailable: 0,
  maximumPacketSize: 1024,
  assignedClientIdentifier: 'auto-3f9c',
  topicAliasMaximum: 10,
  reasonString: 'welcome',
  userProperties: USER_PROPS,
  wildcardSubscriptionAvailable: 0,
  subscriptionIdentifiersAvailable: 1,
  sharedSubscriptionAvailable: 0,
  serverKeepAlive: 0,
  responseInformation: 'resp/',
  serverReference: 'other.example:1883',
  authenticationMethod: 'SCRAM-SHA-256',
  authenticationData: Buffer.from('server-final'),
};

const PUBLISH_PROPS: Properties = {
  payloadFormatIndicator: 0,
  messageExpiryInterval: 0,
  topicAlias: 1,
  responseTopic: 'reply/to/me',
  correlationData: Buffer.alloc(0),
  userProperties: USER_PROPS,
  subscriptionIdentifiers: [1, 127, 128, 16383, 16384, 268435455],
  contentType: '',
};

const ACK_PROPS: Properties = { reasonString: 'the reason ✓', userProperties: USER_PROPS };

// =============================================================================================
// Cases
// =============================================================================================

const CASES: Case[] = [
  // ---- CONNECT (§3.1) -------------------------------------------------------------------------
  {
    title: '§3.1 CONNECT v3.1.1, minimal: protocol name "MQTT", level 4, Clean Session [MQTT-3.1.2-1] [MQTT-3.1.2-2]',
    version: 4,
    packet: { type: 'connect', protocolName: 'MQTT', protocolVersion: 4, clean: true, keepAlive: 60, clientId: 'abc' },
    // 10 | RL 15 | 00 04 'MQTT' | 04 | flags 02 | keep alive 00 3c | 00 03 'abc'
    hex: '10 0f 00 04 4d 51 54 54 04 02 00 3c 00 03 61 62 63',
  },
  {
    title: '§3.1.2.3 CONNECT v3.1.1 flags: will QoS 1, user name, password [MQTT-3.1.2-9] [MQTT-3.1.2-19] [MQTT-3.1.2-21]',
    version: 4,
    packet: {
      type: 'connect',
      protocolName: 'MQTT',
      protocolVersion: 4,
      clean: true,
      keepAlive: 10,
      clientId: 'c',
      will: { topic: 'w', payload: Buffer.from('x'), qos: 1, retain: false },
      username: 'u',
      password: Buffer.from('p'),
    },
    // flags: user 80 | password 40 | will QoS 1 08 | will 04 | clean 02 = ce; payload in the order
    // client id, will topic, will message, user name, password [MQTT-3.1.3-1].
    hex: '10 19 00 04 4d 51 54 54 04 ce 00 0a  00 01 63  00 01 77  00 01 78  00 01 75  00 01 70',
  },
  {
    title: '§3.1 CONNECT v3.1.1: will QoS 2 + retain with binary payload, persistent session, max keep alive, non-ASCII ids [MQTT-1.5.3-1]',
    version: 4,
    packet: {
      type: 'connect',
      protocolName: 'MQTT',
      protocolVersion: 4,
      clean: false,
      keepAlive: 0xffff,
      clientId: 'clïent-☃',
      will: { topic: NON_ASCII, payload: ALL_BYTES, qos: 2, retain: true },
      username: 'üser',
      password: Buffer.alloc(0),
    },
  },
  {
    title: '§3.1 CONNECT v3.1.1: empty client id with Clean Session, keep alive 0, empty will payload [MQTT-3.1.3-6]',
    version: 4,
    packet: {
      type: 'connect',
      protocolName: 'MQTT',
      protocolVersion: 4,
      clean: true,
      keepAlive: 0,
      clientId: '',
      will: { topic: 'last/will', payload: Buffer.alloc(0), qos: 0, retain: false },
    },
  },
  {
    title: 'MQTT 3.1 CONNECT: protocol name "MQIsdp", level 3',
    version: 3,
    packet: { type: 'connect', protocolName: 'MQIsdp', protocolVersion: 3, clean: true, keepAlive: 60, clientId: 'abc' },
    // 10 | RL 17 | 00 06 'MQIsdp' | 03 | 02 | 00 3c | 00 03 'abc'
    hex: '10 11 00 06 4d 51 49 73 64 70 03 02 00 3c 00 03 61 62 63',
  },
  {
    title: 'MQTT 3.1 CONNECT "MQIsdp" with will, user name and password',
    version: 3,
    packet: {
      type: 'connect',
      protocolName: 'MQIsdp',
      protocolVersion: 3,
      clean: false,
      keepAlive: 30,
      clientId: 'legacy-client',
      will: { topic: 'legacy/status', payload: Buffer.from('gone'), qos: 2, retain: true },
      username: 'admin',
      password: Buffer.from('secret'),
    },
  },
  {
    title: '§3.1 CONNECT v5, minimal: level 5, empty property list [MQTT-3.1.2-2]',
    version: 5,
    packet: { type: 'connect', protocolName: 'MQTT', protocolVersion: 5, clean: true, keepAlive: 60, clientId: 'abc' },
    // 10 | RL 16 | 00 04 'MQTT' | 05 | 02 | 00 3c | property length 00 | 00 03 'abc'
    hex: '10 10 00 04 4d 51 54 54 05 02 00 3c 00 00 03 61 62 63',
  },
  {
    title: '§3.1.2.11 CONNECT v5: every CONNECT property, repeated User Properties; §3.1.3.2 will with every Will Property',
    version: 5,
    packet: {
      type: 'connect',
      protocolName: 'MQTT',
      protocolVersion: 5,
      clean: false,
      keepAlive: 300,
      clientId: 'device-ü',
      will: { topic: 'devices/ü/status', payload: Buffer.from('{"online":false}'), qos: 1, retain: true, properties: WILL_PROPS },
      username: 'user',
      password: Buffer.from([0, 0xff]),
      properties: CONNECT_PROPS,
    },
  },
  {
    title: '§3.1.2.9 CONNECT v5: password without user name is allowed in 5.0; empty client id without Clean Start',
    version: 5,
    packet: { type: 'connect', protocolName: 'MQTT', protocolVersion: 5, clean: false, keepAlive: 5, clientId: '', password: Buffer.from('token') },
  },
  {
    title: '§3.1.2.11 CONNECT v5: property list of 128+ bytes (2-byte Property Length) [MQTT-1.5.5-1]',
    version: 5,
    packet: {
      type: 'connect',
      protocolName: 'MQTT',
      protocolVersion: 5,
      clean: true,
      keepAlive: 60,
      clientId: 'x',
      properties: { userProperties: [['long', 'v'.repeat(200)]] },
    },
  },

  // ---- CONNACK (§3.2) -------------------------------------------------------------------------
  {
    title: '§3.2 CONNACK v3.1.1: Session Present 1, return code 0 [MQTT-3.2.2-2]',
    version: 4,
    packet: { type: 'connack', sessionPresent: true, reasonCode: 0 },
    hex: '20 02 01 00',
  },
  {
    title: '§3.2.2.3 CONNACK v3.1.1: return code 5 (not authorized), Session Present 0 [MQTT-3.2.2-4]',
    version: 4,
    packet: { type: 'connack', sessionPresent: false, reasonCode: 5 },
    hex: '20 02 00 05',
  },
  {
    title: '§3.2 CONNACK v5: Success, no properties',
    version: 5,
    packet: { type: 'connack', sessionPresent: false, reasonCode: 0 },
    hex: '20 03 00 00 00',
  },
  {
    title: '§3.2.2.3 CONNACK v5: every CONNACK property, repeated User Properties',
    version: 5,
    packet: { type: 'connack', sessionPresent: true, reasonCode: 0, properties: CONNACK_PROPS },
  },
  {
    title: '§3.2.2.2 CONNACK v5: 0x84 Unsupported Protocol Version with Reason String [MQTT-3.2.2-8]',
    version: 5,
    packet: { type: 'connack', sessionPresent: false, reasonCode: 0x84, properties: { reasonString: 'use MQTT 5' } },
  },

  // ---- PUBLISH (§3.3) -------------------------------------------------------------------------
  {
    title: '§3.3 PUBLISH v3.1.1 QoS 0, empty payload, no Packet Identifier [MQTT-2.3.1-5]',
    version: 4,
    packet: { type: 'publish', topic: 'a/b', payload: Buffer.alloc(0), qos: 0, retain: false, dup: false },
    hex: '30 05 00 03 61 2f 62',
  },
  {
    title: '§3.3.1 PUBLISH v3.1.1 QoS 1 with DUP and RETAIN: fixed header 3b [MQTT-3.3.1-1]',
    version: 4,
    packet: { type: 'publish', topic: 'a', payload: Buffer.from('hi'), qos: 1, retain: true, dup: true, packetId: 1 },
    // 3 | DUP 8 | QoS 1 → 2 | RETAIN 1 = 3b | RL 7 | 00 01 'a' | id 00 01 | 'hi'
    hex: '3b 07 00 01 61 00 01 68 69',
  },
  {
    title: '§3.3 PUBLISH v3.1.1 QoS 2, Packet Identifier 65535, every byte value in the payload, non-ASCII topic',
    version: 4,
    packet: { type: 'publish', topic: NON_ASCII, payload: ALL_BYTES, qos: 2, retain: false, dup: false, packetId: 0xffff },
  },
  {
    title: '§2.2.3 PUBLISH v3.1.1 with a 64 KiB payload (3-byte Remaining Length)',
    version: 4,
    packet: { type: 'publish', topic: 'big', payload: KIB64, qos: 1, retain: false, dup: false, packetId: 7 },
  },
  {
    title: '§3.3 PUBLISH v5 QoS 0, empty payload: Property Length 0',
    version: 5,
    packet: { type: 'publish', topic: 'a/b', payload: Buffer.alloc(0), qos: 0, retain: true, dup: false },
    hex: '31 06 00 03 61 2f 62 00',
  },
  {
    title: '§3.3.2.3 PUBLISH v5 QoS 1 with Payload Format Indicator and Message Expiry Interval: exact bytes',
    version: 5,
    packet: {
      type: 'publish',
      topic: 'a',
      payload: Buffer.from('x'),
      qos: 1,
      retain: false,
      dup: false,
      packetId: 2,
      properties: { payloadFormatIndicator: 1, messageExpiryInterval: 60 },
    },
    // 32 | RL 14 | 00 01 'a' | id 00 02 | property length 07 | 01 01 | 02 00 00 00 3c | 'x'
    hex: '32 0e 00 01 61 00 02 07 01 01 02 00 00 00 3c 78',
  },
  {
    title: '§3.3.2.3 PUBLISH v5 QoS 2 + DUP: every PUBLISH property, repeated Subscription Identifiers and User Properties [MQTT-3.3.2-18]',
    version: 5,
    packet: {
      type: 'publish',
      topic: 'sensors/+literal',
      payload: Buffer.from('{"t":21.5}'),
      qos: 2,
      retain: false,
      dup: true,
      packetId: 0x1234,
      properties: PUBLISH_PROPS,
    },
  },
  {
    title: '§3.3.2.3.4 PUBLISH v5 with a Topic Alias and a zero-length Topic Name',
    version: 5,
    packet: {
      type: 'publish',
      topic: '',
      payload: Buffer.from('aliased'),
      qos: 0,
      retain: false,
      dup: false,
      properties: { topicAlias: 0xffff, payloadFormatIndicator: 1, contentType: 'text/plain', correlationData: ALL_BYTES },
    },
  },
  {
    title: '§2.2.3 PUBLISH v5 with a 64 KiB payload and properties',
    version: 5,
    packet: {
      type: 'publish',
      topic: NON_ASCII,
      payload: KIB64,
      qos: 2,
      retain: true,
      dup: false,
      packetId: 1,
      properties: { messageExpiryInterval: 0xffffffff, userProperties: [['size', '65536']] },
    },
  },

  // ---- PUBACK, PUBREC, PUBREL, PUBCOMP (§3.4 - §3.7) -----------------------------------------
  {
    title: '§3.4 PUBACK v3.1.1',
    version: 4,
    packet: { type: 'puback', packetId: 1 },
    hex: '40 02 00 01',
  },
  {
    title: '§3.5 PUBREC v3.1.1',
    version: 4,
    packet: { type: 'pubrec', packetId: 0x1234 },
    hex: '50 02 12 34',
  },
  {
    title: '§3.6.1 PUBREL v3.1.1: fixed header flags 0010 [MQTT-3.6.1-1]',
    version: 4,
    packet: { type: 'pubrel', packetId: 0xffff },
    hex: '62 02 ff ff',
  },
  {
    title: '§3.7 PUBCOMP v3.1.1',
    version: 4,
    packet: { type: 'pubcomp', packetId: 2 },
    hex: '70 02 00 02',
  },
  {
    title: '§3.4.2.1 PUBACK v5 Success without properties: Remaining Length 2',
    version: 5,
    packet: { type: 'puback', packetId: 1, reasonCode: 0 },
    hex: '40 02 00 01',
  },
  {
    title: '§3.4.2.1 PUBACK v5 0x10 No matching subscribers, no properties: Remaining Length 3 [MQTT-3.4.2-1]',
    version: 5,
    packet: { type: 'puback', packetId: 1, reasonCode: 0x10 },
    hex: '40 03 00 01 10',
  },
  {
    title: '§3.4.2.2 PUBACK v5 0x97 Quota exceeded with Reason String and repeated User Properties',
    version: 5,
    packet: { type: 'puback', packetId: 9, reasonCode: 0x97, properties: ACK_PROPS },
  },
  {
    title: '§3.4.2.2 PUBACK v5 Success with properties (long form)',
    version: 5,
    packet: { type: 'puback', packetId: 9, reasonCode: 0, properties: { userProperties: [['a', 'b']] } },
  },
  {
    title: '§3.5.2 PUBREC v5 0x80 Unspecified error with properties [MQTT-3.5.2-1]',
    version: 5,
    packet: { type: 'pubrec', packetId: 0xffff, reasonCode: 0x80, properties: ACK_PROPS },
  },
  {
    title: '§3.5.2 PUBREC v5 Success short form',
    version: 5,
    packet: { type: 'pubrec', packetId: 3, reasonCode: 0 },
    hex: '50 02 00 03',
  },
  {
    title: '§3.6.2 PUBREL v5 0x92 Packet Identifier not found [MQTT-3.6.1-1] [MQTT-3.6.2-1]',
    version: 5,
    packet: { type: 'pubrel', packetId: 4, reasonCode: 0x92 },
    hex: '62 03 00 04 92',
  },
  {
    title: '§3.6.2 PUBREL v5 with properties',
    version: 5,
    packet: { type: 'pubrel', packetId: 4, reasonCode: 0, properties: ACK_PROPS },
  },
  {
    title: '§3.7.2 PUBCOMP v5 0x92 with properties [MQTT-3.7.2-1]',
    version: 5,
    packet: { type: 'pubcomp', packetId: 5, reasonCode: 0x92, properties: ACK_PROPS },
  },
  {
    title: '§3.7.2 PUBCOMP v5 Success short form',
    version: 5,
    packet: { type: 'pubcomp', packetId: 5, reasonCode: 0 },
    hex: '70 02 00 05',
  },

  // ---- SUBSCRIBE (§3.8) -----------------------------------------------------------------------
  {
    title: '§3.8 SUBSCRIBE v3.1.1: fixed header 82 [MQTT-3.8.1-1], one filter with Requested QoS 1',
    version: 4,
    packet: { type: 'subscribe', packetId: 10, subscriptions: [{ topicFilter: 'a/#', qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 }] },
    // 82 | RL 8 | id 00 0a | 00 03 'a/#' | 01
    hex: '82 08 00 0a 00 03 61 2f 23 01',
  },
  {
    title: '§3.8.3 SUBSCRIBE v3.1.1: several filters, QoS 0/1/2, wildcards, $SYS, non-ASCII',
    version: 4,
    packet: {
      type: 'subscribe',
      packetId: 0xffff,
      subscriptions: [
        { topicFilter: '+/+/#', qos: 0, noLocal: false, retainAsPublished: false, retainHandling: 0 },
        { topicFilter: '$SYS/#', qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 },
        { topicFilter: NON_ASCII, qos: 2, noLocal: false, retainAsPublished: false, retainHandling: 0 },
      ],
    },
  },
  {
    title: '§3.8.3.1 SUBSCRIBE v5 subscription options: QoS 2, No Local, Retain As Published, Retain Handling 2 = 2e',
    version: 5,
    packet: { type: 'subscribe', packetId: 1, subscriptions: [{ topicFilter: 't', qos: 2, noLocal: true, retainAsPublished: true, retainHandling: 2 }] },
    // 82 | RL 7 | id 00 01 | property length 00 | 00 01 't' | options 0010 1110
    hex: '82 07 00 01 00 00 01 74 2e',
  },
  {
    title: '§3.8.2.1 SUBSCRIBE v5: Subscription Identifier, User Properties, every combination of subscription options, shared subscription',
    version: 5,
    packet: {
      type: 'subscribe',
      packetId: 77,
      properties: { subscriptionIdentifiers: [268435455], userProperties: USER_PROPS },
      subscriptions: [
        { topicFilter: 'a/+', qos: 0, noLocal: false, retainAsPublished: false, retainHandling: 0 },
        { topicFilter: 'b/#', qos: 1, noLocal: true, retainAsPublished: false, retainHandling: 1 },
        { topicFilter: 'c', qos: 2, noLocal: false, retainAsPublished: true, retainHandling: 2 },
        { topicFilter: '$share/group/d/+', qos: 1, noLocal: false, retainAsPublished: true, retainHandling: 0 },
        { topicFilter: NON_ASCII, qos: 0, noLocal: true, retainAsPublished: true, retainHandling: 1 },
      ],
    },
  },

  // ---- SUBACK (§3.9) --------------------------------------------------------------------------
  {
    title: '§3.9.3 SUBACK v3.1.1: return codes 0, 1, 2 and 0x80 [MQTT-3.8.4-5]',
    version: 4,
    packet: { type: 'suback', packetId: 10, reasonCodes: [0, 1, 2, 0x80] },
    hex: '90 06 00 0a 00 01 02 80',
  },
  {
    title: '§3.9.3 SUBACK v5: every Subscribe Reason Code, Reason String, User Properties [MQTT-3.9.3-2]',
    version: 5,
    packet: {
      type: 'suback',
      packetId: 77,
      reasonCodes: [0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8f, 0x91, 0x97, 0x9e, 0xa1, 0xa2],
      properties: ACK_PROPS,
    },
  },
  {
    title: '§3.9 SUBACK v5: no properties',
    version: 5,
    packet: { type: 'suback', packetId: 1, reasonCodes: [2] },
    hex: '90 04 00 01 00 02',
  },

  // ---- UNSUBSCRIBE (§3.10) --------------------------------------------------------------------
  {
    title: '§3.10 UNSUBSCRIBE v3.1.1: fixed header a2 [MQTT-3.10.1-1], two filters',
    version: 4,
    packet: { type: 'unsubscribe', packetId: 11, topicFilters: ['a/b', '#'] },
    // a2 | RL 10 | id 00 0b | 00 03 'a/b' | 00 01 '#'
    hex: 'a2 0a 00 0b 00 03 61 2f 62 00 01 23',
  },
  {
    title: '§3.10.2.1 UNSUBSCRIBE v5 with User Properties and a shared subscription filter',
    version: 5,
    packet: { type: 'unsubscribe', packetId: 0xffff, topicFilters: ['$share/g/x', NON_ASCII, '+'], properties: { userProperties: USER_PROPS } },
  },
  {
    title: '§3.10 UNSUBSCRIBE v5 without properties',
    version: 5,
    packet: { type: 'unsubscribe', packetId: 1, topicFilters: ['t'] },
    hex: 'a2 06 00 01 00 00 01 74',
  },

  // ---- UNSUBACK (§3.11) -----------------------------------------------------------------------
  {
    title: '§3.11 UNSUBACK v3.1.1: Packet Identifier only',
    version: 4,
    packet: { type: 'unsuback', packetId: 11, reasonCodes: [] },
    hex: 'b0 02 00 0b',
  },
  {
    title: '§3.11.3 UNSUBACK v5: every Unsubscribe Reason Code with properties [MQTT-3.11.3-2]',
    version: 5,
    packet: { type: 'unsuback', packetId: 12, reasonCodes: [0x00, 0x11, 0x80, 0x83, 0x87, 0x8f, 0x91], properties: ACK_PROPS },
  },
  {
    title: '§3.11 UNSUBACK v5 without properties',
    version: 5,
    packet: { type: 'unsuback', packetId: 1, reasonCodes: [0x11] },
    hex: 'b0 04 00 01 00 11',
  },

  // ---- PINGREQ, PINGRESP (§3.12, §3.13) -------------------------------------------------------
  { title: '§3.12 PINGREQ v3.1.1', version: 4, packet: { type: 'pingreq' }, hex: 'c0 00' },
  { title: '§3.12 PINGREQ v5', version: 5, packet: { type: 'pingreq' }, hex: 'c0 00' },
  { title: '§3.13 PINGRESP v3.1.1', version: 4, packet: { type: 'pingresp' }, hex: 'd0 00' },
  { title: '§3.13 PINGRESP v5', version: 5, packet: { type: 'pingresp' }, hex: 'd0 00' },

  // ---- DISCONNECT (§3.14) ---------------------------------------------------------------------
  { title: '§3.14 DISCONNECT v3.1.1 [MQTT-3.14.1-1]', version: 4, packet: { type: 'disconnect' }, hex: 'e0 00' },
  {
    title: '§3.14.2.1 DISCONNECT v5 Normal disconnection without properties: Remaining Length 0',
    version: 5,
    packet: { type: 'disconnect', reasonCode: 0 },
    hex: 'e0 00',
  },
  {
    title: '§3.14.2.1 DISCONNECT v5 0x04 Disconnect with Will Message',
    version: 5,
    packet: { type: 'disconnect', reasonCode: 0x04 },
    hex: 'e0 02 04 00',
  },
  {
    title: '§3.14.2.2 DISCONNECT v5 0x9c Use another server: Session Expiry Interval, Reason String, Server Reference, User Properties [MQTT-3.14.2-1]',
    version: 5,
    packet: {
      type: 'disconnect',
      reasonCode: 0x9c,
      properties: { sessionExpiryInterval: 0, reasonString: 'moving', serverReference: 'b.example:8883', userProperties: USER_PROPS },
    },
  },

  // ---- AUTH (§3.15, 5.0 only) -----------------------------------------------------------------
  {
    title: '§3.15.2.1 AUTH v5 Success without properties: Remaining Length 0',
    version: 5,
    packet: { type: 'auth', reasonCode: 0 },
    hex: 'f0 00',
  },
  {
    title: '§3.15.2 AUTH v5 0x18 Continue authentication with Authentication Method and Data [MQTT-3.15.2-1]',
    version: 5,
    packet: {
      type: 'auth',
      reasonCode: 0x18,
      properties: { authenticationMethod: 'SCRAM-SHA-1', authenticationData: Buffer.from('c=biws,r=abc') },
    },
    // f0 | RL 31 | 18 | property length 29 | 15 00 0b 'SCRAM-SHA-1' | 16 00 0c 'c=biws,r=abc'
    hex: 'f0 1f 18 1d 15 00 0b 53 43 52 41 4d 2d 53 48 41 2d 31 16 00 0c 63 3d 62 69 77 73 2c 72 3d 61 62 63',
  },
  {
    title: '§3.15.2.2 AUTH v5 0x19 Re-authenticate with Reason String and User Properties',
    version: 5,
    packet: {
      type: 'auth',
      reasonCode: 0x19,
      properties: { authenticationMethod: 'OAUTH2', authenticationData: Buffer.alloc(300, 1), reasonString: 'token refresh', userProperties: USER_PROPS },
    },
  },
];

// =============================================================================================
// Tests
// =============================================================================================

const VERSION_NAMES: Record<ProtocolVersion, string> = { 3: 'MQTT 3.1 (level 3)', 4: 'MQTT 3.1.1 (level 4)', 5: 'MQTT 5.0 (level 5)' };

for (const version of [3, 4, 5] as const) {
  const cases = CASES.filter((c) => c.version === version);
  void describe(`codec round trip, ${VERSION_NAMES[version]}: encode → decode (whole, byte by byte, 7-byte chunks) equals the input`, () => {
    for (const c of cases) {
      void it(c.hex === undefined ? c.title : `${c.title} — bytes ${c.hex.replace(/\s+/g, ' ')}`, () => {
        roundTrip(c.packet, c.version, c.hex);
      });
    }

    if (version === 3) return;

    void it(`every packet type appears in the ${VERSION_NAMES[version]} cases`, () => {
      const types = new Set(cases.map((c) => c.packet.type));
      const expected = [
        'connect',
        'connack',
        'publish',
        'puback',
        'pubrec',
        'pubrel',
        'pubcomp',
        'subscribe',
        'suback',
        'unsubscribe',
        'unsuback',
        'pingreq',
        'pingresp',
        'disconnect',
      ];
      if (version === 5) expected.push('auth');
      assert.deepEqual([...types].sort(), expected.sort());
    });

    void it(`[MQTT-3.1.0-1] all ${VERSION_NAMES[version]} packets as one stream after a CONNECT, one byte at a time, decode in order`, () => {
      const connect = cases.find((c) => c.packet.type === 'connect')!.packet;
      const rest = cases.filter((c) => c.packet.type !== 'connect').map((c) => c.packet);
      const packets = [connect, ...rest];
      const stream = Buffer.concat(packets.map((p) => encode(p, version)));
      // Server side: the version is learnt from the CONNECT at the head of the stream.
      assert.deepStrictEqual(decodeChunked(stream, {}, 1), packets);
      assert.deepStrictEqual(decodeChunked(stream, {}, Infinity), packets);
    });
  });
}

void describe('codec round trip: every MQTT 5.0 property in every packet that may carry it (§2.2.2.2 Table 2-4)', () => {
  /** One legal value per data type, at an edge of its range. */
  const sample = (name: keyof Properties): Properties => {
    switch (name) {
      case 'payloadFormatIndicator':
      case 'requestProblemInformation':
      case 'requestResponseInformation':
      case 'maximumQoS':
      case 'retainAvailable':
      case 'wildcardSubscriptionAvailable':
      case 'subscriptionIdentifiersAvailable':
      case 'sharedSubscriptionAvailable':
        return { [name]: 1 };
      case 'messageExpiryInterval':
      case 'sessionExpiryInterval':
      case 'willDelayInterval':
      case 'maximumPacketSize':
        return { [name]: 0xffffffff };
      case 'serverKeepAlive':
      case 'receiveMaximum':
      case 'topicAliasMaximum':
      case 'topicAlias':
        return { [name]: 0xffff };
      case 'subscriptionIdentifiers':
        return { subscriptionIdentifiers: [268435455] };
      case 'correlationData':
        return { correlationData: Buffer.from([0, 0xff]) };
      case 'authenticationData':
        // Authentication Data without Authentication Method is a Protocol Error (§3.1.2.11.10).
        return { authenticationMethod: 'M', authenticationData: Buffer.from([0, 0xff]) };
      case 'userProperties':
        return {
          userProperties: [
            ['n', 'v'],
            ['n', 'w'],
          ],
        };
      default:
        return { [name]: NON_ASCII };
    }
  };

  /** A packet of `kind` (packet type code, or WILL) carrying `props`. */
  const carrier = (kind: number, props: Properties): Packet => {
    switch (kind) {
      case 1:
        return { type: 'connect', protocolName: 'MQTT', protocolVersion: 5, clean: true, keepAlive: 1, clientId: 'c', properties: props };
      case WILL:
        return {
          type: 'connect',
          protocolName: 'MQTT',
          protocolVersion: 5,
          clean: true,
          keepAlive: 1,
          clientId: 'c',
          will: { topic: 'w', payload: Buffer.from('p'), qos: 0, retain: false, properties: props },
        };
      case 2:
        return { type: 'connack', sessionPresent: false, reasonCode: 0, properties: props };
      case 3:
        return { type: 'publish', topic: 't', payload: Buffer.from('p'), qos: 1, retain: false, dup: false, packetId: 1, properties: props };
      case 4:
        return { type: 'puback', packetId: 1, reasonCode: 0, properties: props };
      case 5:
        return { type: 'pubrec', packetId: 1, reasonCode: 0, properties: props };
      case 6:
        return { type: 'pubrel', packetId: 1, reasonCode: 0, properties: props };
      case 7:
        return { type: 'pubcomp', packetId: 1, reasonCode: 0, properties: props };
      case 8:
        return {
          type: 'subscribe',
          packetId: 1,
          subscriptions: [{ topicFilter: 't', qos: 0, noLocal: false, retainAsPublished: false, retainHandling: 0 }],
          properties: props,
        };
      case 9:
        return { type: 'suback', packetId: 1, reasonCodes: [0], properties: props };
      case 10:
        return { type: 'unsubscribe', packetId: 1, topicFilters: ['t'], properties: props };
      case 11:
        return { type: 'unsuback', packetId: 1, reasonCodes: [0], properties: props };
      case 14:
        return { type: 'disconnect', reasonCode: 0, properties: props };
      case 15:
        return { type: 'auth', reasonCode: 0x18, properties: props };
      default:
        throw new Error(`no carrier for kind ${kind}`);
    }
  };

  for (const def of PROPERTY_TABLE) {
    const kinds: number[] = [];
    for (let k = 1; k <= WILL; k++) if ((def.allowed & (1 << k)) !== 0) kinds.push(k);
    void it(`0x${def.id.toString(16).padStart(2, '0')} ${def.name} in ${kinds.length} place(s)`, () => {
      assert.ok(kinds.length > 0);
      for (const kind of kinds) {
        const p = carrier(kind, sample(def.name));
        roundTrip(p, 5);
      }
    });
  }

  void it('the hand-written cases use every property of Table 2-4 somewhere, and the table has all 27', () => {
    assert.equal(PROPERTY_TABLE.length, 27);
    const used = new Set<string>();
    const collect = (props: Properties | undefined): void => {
      for (const [k, v] of Object.entries(props ?? {})) if (v !== undefined) used.add(k);
    };
    for (const c of CASES) {
      const p = c.packet as { properties?: Properties; will?: { properties?: Properties } };
      collect(p.properties);
      collect(p.will?.properties);
    }
    assert.deepEqual(
      PROPERTY_TABLE.map((d) => d.name).filter((n) => !used.has(n)),
      [],
    );
  });
});

void describe('codec round trip: forms only the decoder sees', () => {
  void it('§3.4.2.1 PUBACK v5 with Remaining Length 3 (reason code, no Property Length) decodes and re-encodes to the same bytes', () => {
    const got = decodeChunked(hex('40 03 00 01 10'), { protocolVersion: 5 }, 1);
    assert.deepStrictEqual(got, [{ type: 'puback', packetId: 1, reasonCode: 0x10 }]);
    assert.equal(toHex(encode(got[0]!, 5)), '40 03 00 01 10');
  });

  void it('§3.14.2.1 DISCONNECT v5 with Remaining Length 1 (reason code, no Property Length) decodes', () => {
    const got = decodeChunked(hex('e0 01 8e'), { protocolVersion: 5 }, 1);
    assert.deepStrictEqual(got, [{ type: 'disconnect', reasonCode: 0x8e }]);
  });

  void it('§3.4.2.1 PUBACK v5 Success in the long form (Remaining Length 4, Property Length 0) decodes to the short form', () => {
    const got = decodeChunked(hex('40 04 00 01 00 00'), { protocolVersion: 5 }, Infinity);
    assert.deepStrictEqual(got, [{ type: 'puback', packetId: 1, reasonCode: 0 }]);
    assert.equal(toHex(encode(got[0]!, 5)), '40 02 00 01');
  });

  void it('§2.2.3 3.1.1 has no minimal-encoding rule: a Remaining Length of 0 written as 80 00 is accepted in v3.1.1', () => {
    assert.deepStrictEqual(decodeChunked(hex('c0 80 00'), { protocolVersion: 4 }, 1), [{ type: 'pingreq' }]);
  });

  void it('[MQTT-1.5.4-3] a UTF-8 BOM (ef bb bf) in a topic is kept, not stripped', () => {
    const got = decodeChunked(hex('30 07 00 04 ef bb bf 61 00'), { protocolVersion: 5 }, 1);
    assert.equal((got[0] as { topic: string }).topic, '\ufeffa');
  });

  void it('AUTH has no MQTT 3.1.1 form: encoding it for level 4 throws InvalidPacketError', () => {
    assert.throws(() => encode({ type: 'auth', reasonCode: 0 }, 4), InvalidPacketError);
  });
});
