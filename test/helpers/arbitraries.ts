/**
 * fast-check generators of VALID MQTT packets (our `Packet` shape) for protocol levels 4 (3.1.1)
 * and 5 (5.0). "Valid" means every constraint the specs put on a single packet holds, so a
 * conforming decoder must accept the encoded bytes:
 * - UTF-8 strings carry no U+0000 [MQTT-1.5.4-2], no surrogates [MQTT-1.5.4-1], and (so that a
 *   receiver's optional strictness cannot bite) no other control characters or non-characters
 *   [MQTT-1.5.4-3]; they stay far below 65,535 bytes.
 * - Topic names have no wildcards [MQTT-3.3.2-2] and are non-empty, except a v5 PUBLISH that
 *   carries a Topic Alias; topic filters follow [MQTT-4.7.1-1]/[MQTT-4.7.1-2]; v5 shared
 *   subscriptions have a valid share name and no No Local [MQTT-3.8.3-4].
 * - Packet identifiers are non-zero [MQTT-2.2.1-3]; QoS 0 PUBLISH has DUP 0 [MQTT-3.3.1-2].
 * - CONNECT: will flags only with a will [MQTT-3.1.2-11]; v3.1.1 password only with a user name
 *   [MQTT-3.1.2-22] and an empty client id only with Clean Session [MQTT-3.1.3-7].
 * - v5 properties: only those the packet type allows, each at most once (User Property and a
 *   PUBLISH Subscription Identifier may repeat), with in-range values (Receive Maximum and
 *   Maximum Packet Size non-zero, Topic Alias non-zero, Subscription Identifier 1..268435455,
 *   Maximum QoS 0/1, byte flags 0/1), Authentication Data only next to a Method, and a payload
 *   that is UTF-8 when Payload Format Indicator is 1.
 * - Reason codes: only those the spec lists for each packet type; CONNACK with a failure code has
 *   Session Present 0 [MQTT-3.2.2-4]/[MQTT-3.2.2-6].
 */
import fc from 'fast-check';

import type {
  AuthPacket,
  ConnackPacket,
  ConnectPacket,
  DisconnectPacket,
  Packet,
  Properties,
  PublishPacket,
  SubackPacket,
  SubscribePacket,
  Subscription,
  UnsubackPacket,
  UnsubscribePacket,
  Will,
  AckPacket,
  PingreqPacket,
  PingrespPacket,
} from '../../src/protocol/index.js';

export type Version = 4 | 5;

/** fc.record with plain objects: by default fast-check may build null-prototype records. */
function record<T>(model: { [K in keyof T]: fc.Arbitrary<T[K]> }): fc.Arbitrary<T> {
  return fc.record(model, { noNullPrototype: true });
}
export type PacketType = Packet['type'];

export const ALL_TYPES: readonly PacketType[] = [
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
  'auth',
];
/** AUTH does not exist before MQTT 5.0. */
export function typesFor(version: Version): PacketType[] {
  return ALL_TYPES.filter((t) => version === 5 || t !== 'auth');
}

// ---------------------------------------------------------------------------------------------
// Reason codes the spec allows per packet type (MQTT 5.0 §3.x tables).

export const REASON_CODES = {
  connackV4: [0x00, 0x01, 0x02, 0x03, 0x04, 0x05],
  connackV5: [0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x8c, 0x90, 0x95, 0x97, 0x99, 0x9a, 0x9b, 0x9c, 0x9d, 0x9f],
  pubackPubrec: [0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99],
  pubrelPubcomp: [0x00, 0x92],
  subackV4: [0x00, 0x01, 0x02, 0x80],
  subackV5: [0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8f, 0x91, 0x97, 0x9e, 0xa1, 0xa2],
  unsuback: [0x00, 0x11, 0x80, 0x83, 0x87, 0x8f, 0x91],
  disconnect: [
    0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8b, 0x8d, 0x8e, 0x8f, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0x9b, 0x9c, 0x9d, 0x9e, 0x9f,
    0xa0, 0xa1, 0xa2,
  ],
  auth: [0x00, 0x18, 0x19],
} as const;

// ---------------------------------------------------------------------------------------------
// Scalars

const u8Flag = fc.constantFrom(0, 1);
const u16 = fc.oneof(fc.constantFrom(0, 1, 127, 128, 255, 256, 65535), fc.integer({ min: 0, max: 0xffff }));
const u16NonZero = fc.oneof(fc.constantFrom(1, 127, 128, 65535), fc.integer({ min: 1, max: 0xffff }));
const u32 = fc.oneof(fc.constantFrom(0, 1, 127, 128, 16383, 16384, 0x7fffffff, 0xffffffff), fc.integer({ min: 0, max: 0xffffffff }));
const u32NonZero = fc.oneof(fc.constantFrom(1, 128, 0xffffffff), fc.integer({ min: 1, max: 0xffffffff }));
/** Variable byte integer 1..268435455, biased to the 1/2/3/4-byte boundaries. */
const subscriptionIdentifier = fc.oneof(fc.constantFrom(1, 127, 128, 16383, 16384, 2097151, 2097152, 268435455), fc.integer({ min: 1, max: 268435455 }));
export const packetId = fc.oneof(fc.constantFrom(1, 255, 256, 65535), fc.integer({ min: 1, max: 0xffff }));
export const qos = fc.constantFrom<0 | 1 | 2>(0, 1, 2);

// ---------------------------------------------------------------------------------------------
// Strings and binary

function isAllowedCodePoint(c: number): boolean {
  if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) return false; // controls incl. U+0000
  if (c >= 0xd800 && c <= 0xdfff) return false; // surrogates
  if (c >= 0xfdd0 && c <= 0xfdef) return false; // non-characters
  if ((c & 0xfffe) === 0xfffe) return false; // U+xFFFE, U+xFFFF non-characters
  return true;
}

/** One Unicode scalar value that MQTT allows in a UTF-8 string; mostly ASCII, all planes. */
export const mqttChar: fc.Arbitrary<string> = fc
  .oneof(
    { weight: 8, arbitrary: fc.integer({ min: 0x20, max: 0x7e }) },
    { weight: 1, arbitrary: fc.integer({ min: 0xa0, max: 0x7ff }) },
    { weight: 1, arbitrary: fc.integer({ min: 0x800, max: 0xfffd }) },
    { weight: 1, arbitrary: fc.integer({ min: 0x10000, max: 0x10fffd }) },
  )
  .filter(isAllowedCodePoint)
  .map((c) => String.fromCodePoint(c));

export function mqttString(maxLength = 12, minLength = 0): fc.Arbitrary<string> {
  return fc.string({ unit: mqttChar, minLength, maxLength });
}

const levelChar = mqttChar.filter((c) => c !== '/' && c !== '+' && c !== '#');
const level = fc.string({ unit: levelChar, maxLength: 6 });

/** A topic name: one or more levels, no wildcards, at least one character. */
export const topicName: fc.Arbitrary<string> = fc
  .array(level, { minLength: 1, maxLength: 5 })
  .map((levels) => levels.join('/'))
  .filter((t) => t.length > 0 && !t.startsWith('$share/'));

/** A topic filter: levels or '+', optionally ending in '#'; or '#' alone. */
export const plainTopicFilter: fc.Arbitrary<string> = fc
  .tuple(fc.array(fc.oneof({ weight: 4, arbitrary: level }, { weight: 1, arbitrary: fc.constant('+') }), { minLength: 0, maxLength: 5 }), fc.boolean())
  .map(([levels, hash]) => (hash ? [...levels, '#'] : levels).join('/'))
  .filter((f) => f.length > 0 && !f.startsWith('$share/'));

const shareName = fc.string({ unit: levelChar, minLength: 1, maxLength: 6 });
export const sharedTopicFilter: fc.Arbitrary<string> = fc.tuple(shareName, plainTopicFilter).map(([group, filter]) => `$share/${group}/${filter}`);

export function bytes(maxLength: number, minLength = 0): fc.Arbitrary<Buffer> {
  return fc.uint8Array({ minLength, maxLength }).map((u) => Buffer.from(u.buffer, u.byteOffset, u.byteLength));
}

/** Payloads: often empty or tiny, sometimes a few KiB. */
export const payload: fc.Arbitrary<Buffer> = fc.oneof(
  { weight: 2, arbitrary: fc.constant(Buffer.alloc(0)) },
  { weight: 6, arbitrary: bytes(64) },
  { weight: 1, arbitrary: bytes(4096) },
);

// ---------------------------------------------------------------------------------------------
// Properties

/** A small name pool makes repeated names (allowed for User Property) likely. */
const userPropertyName = fc.oneof(fc.constantFrom('a', 'b', 'k', '', 'ключ', '1', '__proto__'), mqttString(8));
export const userProperties: fc.Arbitrary<Array<[string, string]>> = fc.array(fc.tuple(userPropertyName, mqttString(10)), { minLength: 1, maxLength: 5 });

const PROPERTY_ARBS: { [K in keyof Required<Properties>]: fc.Arbitrary<Required<Properties>[K]> } = {
  payloadFormatIndicator: u8Flag,
  messageExpiryInterval: u32,
  contentType: mqttString(),
  responseTopic: topicName,
  correlationData: bytes(16),
  subscriptionIdentifiers: fc.array(subscriptionIdentifier, { minLength: 1, maxLength: 3 }),
  sessionExpiryInterval: u32,
  assignedClientIdentifier: mqttString(),
  serverKeepAlive: u16,
  authenticationMethod: mqttString(),
  authenticationData: bytes(16),
  requestProblemInformation: u8Flag,
  willDelayInterval: u32,
  requestResponseInformation: u8Flag,
  responseInformation: mqttString(),
  serverReference: mqttString(),
  reasonString: mqttString(),
  receiveMaximum: u16NonZero,
  topicAliasMaximum: u16,
  topicAlias: u16NonZero,
  maximumQoS: u8Flag,
  retainAvailable: u8Flag,
  userProperties,
  maximumPacketSize: u32NonZero,
  wildcardSubscriptionAvailable: u8Flag,
  subscriptionIdentifiersAvailable: u8Flag,
  sharedSubscriptionAvailable: u8Flag,
};

/** Properties each packet type may carry (MQTT 5.0 §2.2.2.2, Table 2-4). */
export const ALLOWED_PROPERTIES = {
  connect: [
    'sessionExpiryInterval',
    'receiveMaximum',
    'maximumPacketSize',
    'topicAliasMaximum',
    'requestResponseInformation',
    'requestProblemInformation',
    'userProperties',
    'authenticationMethod',
    'authenticationData',
  ],
  will: ['willDelayInterval', 'payloadFormatIndicator', 'messageExpiryInterval', 'contentType', 'responseTopic', 'correlationData', 'userProperties'],
  connack: [
    'sessionExpiryInterval',
    'receiveMaximum',
    'maximumQoS',
    'retainAvailable',
    'maximumPacketSize',
    'assignedClientIdentifier',
    'topicAliasMaximum',
    'reasonString',
    'userProperties',
    'wildcardSubscriptionAvailable',
    'subscriptionIdentifiersAvailable',
    'sharedSubscriptionAvailable',
    'serverKeepAlive',
    'responseInformation',
    'serverReference',
    'authenticationMethod',
    'authenticationData',
  ],
  publish: [
    'payloadFormatIndicator',
    'messageExpiryInterval',
    'topicAlias',
    'responseTopic',
    'correlationData',
    'userProperties',
    'subscriptionIdentifiers',
    'contentType',
  ],
  ack: ['reasonString', 'userProperties'],
  subscribe: ['subscriptionIdentifiers', 'userProperties'],
  unsubscribe: ['userProperties'],
  disconnect: ['sessionExpiryInterval', 'reasonString', 'userProperties', 'serverReference'],
  auth: ['authenticationMethod', 'authenticationData', 'reasonString', 'userProperties'],
} as const satisfies Record<string, ReadonlyArray<keyof Properties>>;

/**
 * A v5 property set made of any subset of `keys`; undefined when the subset is empty (so
 * "no properties" is represented one way). Authentication Data only next to a Method.
 */
export function propertiesArb(keys: ReadonlyArray<keyof Properties>, opts: { requireAuthMethod?: boolean } = {}): fc.Arbitrary<Properties | undefined> {
  const model: Record<string, fc.Arbitrary<unknown>> = {};
  for (const k of keys) model[k] = PROPERTY_ARBS[k];
  const requiredKeys = opts.requireAuthMethod ? ['authenticationMethod'] : [];
  return fc.record(model, { requiredKeys, noNullPrototype: true }).map((rec) => {
    const props = rec as Properties;
    if (props.authenticationData !== undefined && props.authenticationMethod === undefined) delete props.authenticationData;
    return Object.keys(props).length === 0 ? undefined : props;
  });
}

// ---------------------------------------------------------------------------------------------
// Packets

function withProps<T extends object>(version: Version, base: fc.Arbitrary<T>, props: fc.Arbitrary<Properties | undefined>): fc.Arbitrary<T> {
  if (version === 4) return base;
  return fc.tuple(base, props).map(([p, properties]) => (properties === undefined ? p : { ...p, properties }));
}

function willArb(version: Version): fc.Arbitrary<Will> {
  const base = record({ topic: topicName, payload: fc.oneof(payload, bytes(300)), qos, retain: fc.boolean() });
  if (version === 4) return base;
  return fc.tuple(base, propertiesArb(ALLOWED_PROPERTIES.will), mqttString(40)).map(([w, properties, text]) => {
    if (properties === undefined) return w;
    // Payload Format Indicator 1 announces a UTF-8 will payload (MQTT 5.0 §3.1.3.2.3): keep it honest.
    const will: Will = { ...w, properties };
    if (properties.payloadFormatIndicator === 1) will.payload = Buffer.from(text, 'utf8');
    return will;
  });
}

export function connectArb(version: Version): fc.Arbitrary<ConnectPacket> {
  return record({
    clean: fc.boolean(),
    keepAlive: u16,
    clientId: fc.oneof(fc.constant(''), mqttString(23, 1)),
    username: fc.option(mqttString(16), { nil: undefined }),
    password: fc.option(bytes(32), { nil: undefined }),
    will: fc.option(willArb(version), { nil: undefined }),
    properties: version === 5 ? propertiesArb(ALLOWED_PROPERTIES.connect) : fc.constant(undefined),
  }).map((r) => {
    const p: ConnectPacket = { type: 'connect', protocolName: 'MQTT', protocolVersion: version, clean: r.clean, keepAlive: r.keepAlive, clientId: r.clientId };
    if (version === 4 && r.clientId === '') p.clean = true; // [MQTT-3.1.3-7]
    if (r.username !== undefined) p.username = r.username;
    // [MQTT-3.1.2-22]: in 3.1.1 a password needs a user name; 5.0 dropped that rule.
    if (r.password !== undefined && (version === 5 || r.username !== undefined)) p.password = r.password;
    if (r.will !== undefined) p.will = r.will;
    if (r.properties !== undefined) p.properties = r.properties;
    return p;
  });
}

export function connackArb(version: Version): fc.Arbitrary<ConnackPacket> {
  const codes = version === 4 ? REASON_CODES.connackV4 : REASON_CODES.connackV5;
  return withProps(
    version,
    record({ sessionPresent: fc.boolean(), reasonCode: fc.constantFrom(...codes) }).map(
      (r): ConnackPacket => ({ type: 'connack', sessionPresent: r.reasonCode === 0 ? r.sessionPresent : false, reasonCode: r.reasonCode }),
    ),
    propertiesArb(ALLOWED_PROPERTIES.connack),
  );
}

export function publishArb(version: Version, payloadArb: fc.Arbitrary<Buffer> = payload): fc.Arbitrary<PublishPacket> {
  return record({
    topic: topicName,
    payload: payloadArb,
    qos,
    retain: fc.boolean(),
    dup: fc.boolean(),
    packetId,
    properties: version === 5 ? propertiesArb(ALLOWED_PROPERTIES.publish) : fc.constant(undefined),
    emptyTopic: fc.boolean(),
    utf8Payload: mqttString(40),
  }).map((r) => {
    const p: PublishPacket = { type: 'publish', topic: r.topic, payload: r.payload, qos: r.qos, retain: r.retain, dup: r.qos === 0 ? false : r.dup };
    if (r.qos > 0) p.packetId = r.packetId;
    if (r.properties !== undefined) {
      p.properties = r.properties;
      // A zero-length topic is allowed only together with a Topic Alias (MQTT 5.0 §3.3.2.1).
      if (r.properties.topicAlias !== undefined && r.emptyTopic) p.topic = '';
      if (r.properties.payloadFormatIndicator === 1 && p.payload.length > 0) p.payload = Buffer.from(r.utf8Payload, 'utf8');
    }
    return p;
  });
}

export function ackArb<T extends 'puback' | 'pubrec' | 'pubrel' | 'pubcomp'>(version: Version, type: T): fc.Arbitrary<AckPacket<T>> {
  const codes = type === 'puback' || type === 'pubrec' ? REASON_CODES.pubackPubrec : REASON_CODES.pubrelPubcomp;
  if (version === 4) return packetId.map((id) => ({ type, packetId: id }));
  return record({ packetId, reasonCode: fc.option(fc.constantFrom(...codes), { nil: undefined }), properties: propertiesArb(ALLOWED_PROPERTIES.ack) }).map(
    (r) => {
      const p: AckPacket<T> = { type, packetId: r.packetId };
      if (r.reasonCode !== undefined) p.reasonCode = r.reasonCode;
      if (r.properties !== undefined) p.properties = r.properties;
      return p;
    },
  );
}

function subscriptionArb(version: Version): fc.Arbitrary<Subscription> {
  if (version === 4) {
    return record({ topicFilter: plainTopicFilter, qos }).map((r) => ({ ...r, noLocal: false, retainAsPublished: false, retainHandling: 0 as const }));
  }
  return (
    record({
      topicFilter: fc.oneof({ weight: 5, arbitrary: plainTopicFilter }, { weight: 1, arbitrary: sharedTopicFilter }),
      qos,
      noLocal: fc.boolean(),
      retainAsPublished: fc.boolean(),
      retainHandling: fc.constantFrom<0 | 1 | 2>(0, 1, 2),
    })
      // [MQTT-3.8.3-4]: No Local on a shared subscription is a Protocol Error.
      .map((s) => (s.topicFilter.startsWith('$share/') ? { ...s, noLocal: false } : s))
  );
}

export function subscribeArb(version: Version): fc.Arbitrary<SubscribePacket> {
  const props = propertiesArb(ALLOWED_PROPERTIES.subscribe).map((p) => {
    // At most one Subscription Identifier in SUBSCRIBE (MQTT 5.0 §3.8.2.1.2).
    if (p?.subscriptionIdentifiers !== undefined) p.subscriptionIdentifiers = p.subscriptionIdentifiers.slice(0, 1);
    return p;
  });
  return withProps(
    version,
    record({ packetId, subscriptions: fc.array(subscriptionArb(version), { minLength: 1, maxLength: 5 }) }).map(
      (r): SubscribePacket => ({ type: 'subscribe', ...r }),
    ),
    props,
  );
}

export function subackArb(version: Version): fc.Arbitrary<SubackPacket> {
  const codes = version === 4 ? REASON_CODES.subackV4 : REASON_CODES.subackV5;
  return withProps(
    version,
    record({ packetId, reasonCodes: fc.array(fc.constantFrom<number>(...codes), { minLength: 1, maxLength: 8 }) }).map(
      (r): SubackPacket => ({ type: 'suback', ...r }),
    ),
    propertiesArb(ALLOWED_PROPERTIES.ack),
  );
}

export function unsubscribeArb(version: Version): fc.Arbitrary<UnsubscribePacket> {
  const filter = version === 5 ? fc.oneof({ weight: 5, arbitrary: plainTopicFilter }, { weight: 1, arbitrary: sharedTopicFilter }) : plainTopicFilter;
  return withProps(
    version,
    record({ packetId, topicFilters: fc.array(filter, { minLength: 1, maxLength: 5 }) }).map((r): UnsubscribePacket => ({ type: 'unsubscribe', ...r })),
    propertiesArb(ALLOWED_PROPERTIES.unsubscribe),
  );
}

export function unsubackArb(version: Version): fc.Arbitrary<UnsubackPacket> {
  if (version === 4) return packetId.map((id): UnsubackPacket => ({ type: 'unsuback', packetId: id, reasonCodes: [] }));
  return withProps(
    version,
    record({ packetId, reasonCodes: fc.array(fc.constantFrom<number>(...REASON_CODES.unsuback), { minLength: 1, maxLength: 8 }) }).map(
      (r): UnsubackPacket => ({ type: 'unsuback', ...r }),
    ),
    propertiesArb(ALLOWED_PROPERTIES.ack),
  );
}

export function disconnectArb(version: Version): fc.Arbitrary<DisconnectPacket> {
  if (version === 4) return fc.constant<DisconnectPacket>({ type: 'disconnect' });
  return record({
    reasonCode: fc.option(fc.constantFrom<number>(...REASON_CODES.disconnect), { nil: undefined }),
    properties: propertiesArb(ALLOWED_PROPERTIES.disconnect),
  }).map((r) => {
    const p: DisconnectPacket = { type: 'disconnect' };
    if (r.reasonCode !== undefined) p.reasonCode = r.reasonCode;
    if (r.properties !== undefined) p.properties = r.properties;
    return p;
  });
}

/**
 * AUTH (5.0 only). Always carries an Authentication Method: MQTT 5.0 §3.15.2.2.2 makes omitting
 * it a Protocol Error. (The zero-length AUTH the spec also allows is covered by an example test.)
 */
export function authArb(): fc.Arbitrary<AuthPacket> {
  return record({
    reasonCode: fc.constantFrom<number>(...REASON_CODES.auth),
    properties: propertiesArb(ALLOWED_PROPERTIES.auth, { requireAuthMethod: true }),
  }).map((r): AuthPacket => ({ type: 'auth', reasonCode: r.reasonCode, properties: r.properties! }));
}

export function packetArbOfType(version: Version, type: PacketType): fc.Arbitrary<Packet> {
  switch (type) {
    case 'connect':
      return connectArb(version);
    case 'connack':
      return connackArb(version);
    case 'publish':
      return publishArb(version);
    case 'puback':
    case 'pubrec':
    case 'pubrel':
    case 'pubcomp':
      return ackArb(version, type);
    case 'subscribe':
      return subscribeArb(version);
    case 'suback':
      return subackArb(version);
    case 'unsubscribe':
      return unsubscribeArb(version);
    case 'unsuback':
      return unsubackArb(version);
    case 'pingreq':
      return fc.constant<PingreqPacket>({ type: 'pingreq' });
    case 'pingresp':
      return fc.constant<PingrespPacket>({ type: 'pingresp' });
    case 'disconnect':
      return disconnectArb(version);
    case 'auth':
      if (version === 4) throw new Error('AUTH does not exist in MQTT 3.1.1');
      return authArb();
  }
}

/** Any valid packet of the given version, every type equally likely. */
export function packetArb(version: Version): fc.Arbitrary<Packet> {
  return fc.oneof(...typesFor(version).map((t) => packetArbOfType(version, t)));
}

/** A version together with a valid packet of that version. */
export const versionedPacketArb: fc.Arbitrary<{ version: Version; packet: Packet }> = fc.oneof(
  packetArb(4).map((packet) => ({ version: 4 as const, packet })),
  packetArb(5).map((packet) => ({ version: 5 as const, packet })),
);

// ---------------------------------------------------------------------------------------------
// Comparison

/**
 * One canonical form for a packet, so that packets with equal meaning compare equal:
 * - a reason code of 0x00 and an absent one mean the same in PUBACK/PUBREC/PUBREL/PUBCOMP,
 *   DISCONNECT and AUTH (MQTT 5.0 §3.4.2.1, §3.14.2.1, §3.15.2.1); so do no properties and an
 *   empty property set;
 * - Buffers become plain Buffers (decoded ones may be slices of a larger buffer);
 * - with `groupUserProperties`, User Properties compare as name → values (values in order),
 *   names sorted: for comparing against codecs that keep them in an object (mqtt-packet).
 */
export function canonicalPacket(p: Packet, opts: { groupUserProperties?: boolean } = {}): unknown {
  const props = (pr: Properties | undefined): Record<string, unknown> | undefined => {
    if (pr === undefined) return undefined;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(pr)) {
      if (v === undefined) continue;
      if (k === 'userProperties' && opts.groupUserProperties) {
        const groups = new Map<string, string[]>();
        for (const [name, value] of v as Array<[string, string]>) {
          const list = groups.get(name) ?? [];
          list.push(value);
          groups.set(name, list);
        }
        out[k] = [...groups.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      } else out[k] = Buffer.isBuffer(v) ? Buffer.from(v) : v;
    }
    return Object.keys(out).length === 0 ? undefined : out;
  };
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(p)) {
    if (v === undefined) continue;
    if (k === 'properties') {
      const pr = props(v as Properties);
      if (pr !== undefined) out[k] = pr;
    } else if (k === 'will') {
      const w = v as Will;
      const wp = props(w.properties);
      out[k] = { topic: w.topic, payload: Buffer.from(w.payload), qos: w.qos, retain: w.retain, ...(wp === undefined ? {} : { properties: wp }) };
    } else if (Buffer.isBuffer(v)) out[k] = Buffer.from(v);
    else out[k] = v;
  }
  const optionalCode =
    p.type === 'puback' || p.type === 'pubrec' || p.type === 'pubrel' || p.type === 'pubcomp' || p.type === 'disconnect' || p.type === 'auth';
  if (optionalCode && out.reasonCode === 0) delete out.reasonCode;
  return out;
}
