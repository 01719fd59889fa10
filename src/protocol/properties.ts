/**
 * MQTT 5.0 properties (§2.2.2), driven by one table: for each Property Identifier its field in
 * `Properties`, its data type, the packets it may appear in (CONNECT's will properties count as
 * the pseudo-packet WILL) and where it may repeat. Decoding and encoding both read this table.
 */
import { PACKET_NAMES, PacketType, PropertyId } from './constants.js';
import { InvalidPacketError, ProtocolError } from './errors.js';
import type { Properties } from './packets.js';
import { binaryLength, malformed, utf8Length, vbiLength, writeBinary, writeUtf8, writeVbi, type Reader } from './primitives.js';
import { utf8ByteLength } from './bytes.js';

/** Pseudo packet type for CONNECT's Will Properties (§3.1.3.2). Packet type codes are 1..15. */
export const WILL = 16;

/** Data types of §1.5 / §2.2.2.2. */
const BYTE = 0;
const U16 = 1;
const U32 = 2;
const VBI = 3;
const UTF8 = 4;
const BINARY = 5;
const PAIR = 6;

export interface PropertyDef {
  readonly id: number;
  readonly name: keyof Properties;
  readonly type: number;
  /** Bit (1 << packet type code, or 1 << WILL) for each place the property may appear. */
  readonly allowed: number;
  /** Same bits, for the places where it may appear more than once. */
  readonly repeats: number;
  /** Value must be 0 or 1 (a Protocol Error otherwise). */
  readonly boolean: boolean;
  /** Value 0 is a Protocol Error. */
  readonly nonZero: boolean;
}

const P = PacketType;
const bits = (...kinds: number[]): number => kinds.reduce((m, k) => m | (1 << k), 0);
const ACKS = [P.PUBACK, P.PUBREC, P.PUBREL, P.PUBCOMP];

function def(
  id: number,
  name: keyof Properties,
  type: number,
  allowed: number[],
  opts: { repeats?: number[]; boolean?: boolean; nonZero?: boolean } = {},
): PropertyDef {
  return { id, name, type, allowed: bits(...allowed), repeats: bits(...(opts.repeats ?? [])), boolean: opts.boolean ?? false, nonZero: opts.nonZero ?? false };
}

const I = PropertyId;
/** MQTT 5.0 §2.2.2.2, Table 2-4. */
export const PROPERTY_TABLE: readonly PropertyDef[] = [
  def(I.PayloadFormatIndicator, 'payloadFormatIndicator', BYTE, [P.PUBLISH, WILL], { boolean: true }),
  def(I.MessageExpiryInterval, 'messageExpiryInterval', U32, [P.PUBLISH, WILL]),
  def(I.ContentType, 'contentType', UTF8, [P.PUBLISH, WILL]),
  def(I.ResponseTopic, 'responseTopic', UTF8, [P.PUBLISH, WILL]),
  def(I.CorrelationData, 'correlationData', BINARY, [P.PUBLISH, WILL]),
  // §3.3.2.3.8: may repeat in PUBLISH; §3.8.2.1.2: at most once in SUBSCRIBE; 0 is a Protocol Error.
  def(I.SubscriptionIdentifier, 'subscriptionIdentifiers', VBI, [P.PUBLISH, P.SUBSCRIBE], { repeats: [P.PUBLISH], nonZero: true }),
  def(I.SessionExpiryInterval, 'sessionExpiryInterval', U32, [P.CONNECT, P.CONNACK, P.DISCONNECT]),
  def(I.AssignedClientIdentifier, 'assignedClientIdentifier', UTF8, [P.CONNACK]),
  def(I.ServerKeepAlive, 'serverKeepAlive', U16, [P.CONNACK]),
  def(I.AuthenticationMethod, 'authenticationMethod', UTF8, [P.CONNECT, P.CONNACK, P.AUTH]),
  def(I.AuthenticationData, 'authenticationData', BINARY, [P.CONNECT, P.CONNACK, P.AUTH]),
  def(I.RequestProblemInformation, 'requestProblemInformation', BYTE, [P.CONNECT], { boolean: true }),
  def(I.WillDelayInterval, 'willDelayInterval', U32, [WILL]),
  def(I.RequestResponseInformation, 'requestResponseInformation', BYTE, [P.CONNECT], { boolean: true }),
  def(I.ResponseInformation, 'responseInformation', UTF8, [P.CONNACK]),
  def(I.ServerReference, 'serverReference', UTF8, [P.CONNACK, P.DISCONNECT]),
  def(I.ReasonString, 'reasonString', UTF8, [P.CONNACK, ...ACKS, P.SUBACK, P.UNSUBACK, P.DISCONNECT, P.AUTH]),
  def(I.ReceiveMaximum, 'receiveMaximum', U16, [P.CONNECT, P.CONNACK], { nonZero: true }),
  def(I.TopicAliasMaximum, 'topicAliasMaximum', U16, [P.CONNECT, P.CONNACK]),
  // Topic Alias 0 is decoded: rejecting it (0x94 Topic Alias invalid) is the receiver's job.
  def(I.TopicAlias, 'topicAlias', U16, [P.PUBLISH]),
  def(I.MaximumQoS, 'maximumQoS', BYTE, [P.CONNACK], { boolean: true }),
  def(I.RetainAvailable, 'retainAvailable', BYTE, [P.CONNACK], { boolean: true }),
  def(
    I.UserProperty,
    'userProperties',
    PAIR,
    [P.CONNECT, P.CONNACK, P.PUBLISH, WILL, ...ACKS, P.SUBSCRIBE, P.SUBACK, P.UNSUBSCRIBE, P.UNSUBACK, P.DISCONNECT, P.AUTH],
    {
      repeats: [P.CONNECT, P.CONNACK, P.PUBLISH, WILL, ...ACKS, P.SUBSCRIBE, P.SUBACK, P.UNSUBSCRIBE, P.UNSUBACK, P.DISCONNECT, P.AUTH],
    },
  ),
  def(I.MaximumPacketSize, 'maximumPacketSize', U32, [P.CONNECT, P.CONNACK], { nonZero: true }),
  def(I.WildcardSubscriptionAvailable, 'wildcardSubscriptionAvailable', BYTE, [P.CONNACK], { boolean: true }),
  def(I.SubscriptionIdentifierAvailable, 'subscriptionIdentifiersAvailable', BYTE, [P.CONNACK], { boolean: true }),
  def(I.SharedSubscriptionAvailable, 'sharedSubscriptionAvailable', BYTE, [P.CONNACK], { boolean: true }),
];

const BY_ID: Array<PropertyDef | undefined> = new Array<PropertyDef | undefined>(256).fill(undefined);
const BY_NAME = new Map<string, PropertyDef>();
for (const d of PROPERTY_TABLE) {
  BY_ID[d.id] = d;
  BY_NAME.set(d.name, d);
}

/** Packet names by kind, plus the will properties (kind 16). */
const KIND_NAMES = [...PACKET_NAMES, 'Will Properties'];
const hex = (n: number): string => `0x${n.toString(16).padStart(2, '0')}`;

// ---------------------------------------------------------------------------------------------
// Decoding

/**
 * Reads a Property Length and the properties after it. Returns undefined for an empty set
 * (Property Length 0), so packets without properties carry no `properties` field.
 * - unknown identifier, or one not valid for this packet type: Malformed Packet (§2.2.2.2);
 * - a non-repeatable property twice, a value outside its range: Protocol Error (the
 *   "It is a Protocol Error to include ... more than once / to have a value other than ..."
 *   sentences of §3.1.2.11, §3.2.2.3, §3.3.2.3, ...);
 * - Authentication Data without Authentication Method: Protocol Error (§3.1.2.11.10, §3.2.2.3.18).
 */
export function readProperties(r: Reader, kind: number): Properties | undefined {
  const len = r.vbi();
  if (len === 0) return undefined;
  const end = r.pos + len;
  if (end > r.end) malformed(`the Property Length (${len}) exceeds the rest of the ${KIND_NAMES[kind]}`);
  const outerEnd = r.end;
  r.end = end;
  const props: Properties = {};
  const bag = props as Record<string, unknown>;
  const kindBit = 1 << kind;
  while (r.pos < end) {
    const id = r.u8();
    const d = BY_ID[id];
    if (d === undefined) malformed(`unknown property identifier ${hex(id)} in ${KIND_NAMES[kind]}`);
    if ((d.allowed & kindBit) === 0) malformed(`property ${d.name} (${hex(id)}) is not valid in ${KIND_NAMES[kind]}`);
    let value: number | string | Buffer | [string, string];
    switch (d.type) {
      case BYTE:
        value = r.u8();
        break;
      case U16:
        value = r.u16();
        break;
      case U32:
        value = r.u32();
        break;
      case VBI:
        value = r.vbi();
        break;
      case UTF8:
        value = r.utf8();
        break;
      case BINARY:
        value = r.binary();
        break;
      default:
        value = [r.utf8(), r.utf8()];
        break;
    }
    if (d.boolean && value !== 0 && value !== 1) throw new ProtocolError(`${d.name} must be 0 or 1, got ${String(value)}`);
    if (d.nonZero && value === 0) throw new ProtocolError(`${d.name} must not be 0`);
    const prev = bag[d.name];
    if (d.type === PAIR || d.type === VBI) {
      // Stored as arrays: userProperties (always repeatable), subscriptionIdentifiers.
      if (prev === undefined) bag[d.name] = [value];
      else if ((d.repeats & kindBit) !== 0) (prev as unknown[]).push(value);
      else throw new ProtocolError(`${d.name} must not appear more than once in ${KIND_NAMES[kind]}`);
    } else {
      if (prev !== undefined) throw new ProtocolError(`${d.name} must not appear more than once in ${KIND_NAMES[kind]}`);
      bag[d.name] = value;
    }
  }
  r.end = outerEnd;
  if (props.authenticationData !== undefined && props.authenticationMethod === undefined) {
    throw new ProtocolError(`authenticationData without authenticationMethod in ${KIND_NAMES[kind]}`);
  }
  return props;
}

// ---------------------------------------------------------------------------------------------
// Encoding

function lookup(name: string, kind: number): PropertyDef {
  const d = BY_NAME.get(name);
  if (d === undefined) throw new InvalidPacketError(`unknown property ${JSON.stringify(name)}`);
  if ((d.allowed & (1 << kind)) === 0) throw new InvalidPacketError(`property ${name} is not valid in ${KIND_NAMES[kind]}`);
  return d;
}

function checkInt(d: PropertyDef, v: unknown, max: number, min = 0): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new InvalidPacketError(`property ${d.name} must be an integer in ${min}..${max}, got ${String(v)}`);
  }
  return v;
}

/** Encoded size of one value of `d`'s type (identifier byte included), validating it. */
function valueLength(d: PropertyDef, v: unknown): number {
  switch (d.type) {
    case BYTE:
      checkInt(d, v, 0xff);
      return 2;
    case U16:
      checkInt(d, v, 0xffff);
      return 3;
    case U32:
      checkInt(d, v, 0xffffffff);
      return 5;
    case VBI:
      return 1 + vbiLength(checkInt(d, v, 268_435_455, d.nonZero ? 1 : 0));
    case UTF8:
      return 3 + utf8Length(v as string, d.name);
    case BINARY:
      return 3 + binaryLength(v as Buffer, d.name);
    default: {
      const [k, val] = v as [string, string];
      return 5 + utf8Length(k, 'a user property name') + utf8Length(val, 'a user property value');
    }
  }
}

/**
 * Byte length of the property list (without its Property Length prefix), validating names,
 * placement, repetition and value ranges. Empty or undefined → 0.
 */
export function propertiesLength(props: Properties | undefined, kind: number): number {
  if (props === undefined) return 0;
  let len = 0;
  const bag = props as Record<string, unknown>;
  for (const name in bag) {
    const v = bag[name];
    if (v === undefined) continue;
    const d = lookup(name, kind);
    if (d.type === PAIR || d.type === VBI) {
      const list = v as unknown[];
      if (list.length > 1 && (d.repeats & (1 << kind)) === 0) throw new InvalidPacketError(`property ${name} may appear at most once in ${KIND_NAMES[kind]}`);
      for (const item of list) len += valueLength(d, item);
    } else {
      len += valueLength(d, v);
    }
  }
  return len;
}

function writeValue(buf: Buffer, pos: number, d: PropertyDef, v: unknown): number {
  buf[pos++] = d.id;
  switch (d.type) {
    case BYTE:
      buf[pos] = v as number;
      return pos + 1;
    case U16:
      buf[pos] = (v as number) >>> 8;
      buf[pos + 1] = (v as number) & 0xff;
      return pos + 2;
    case U32:
      buf[pos] = (v as number) >>> 24;
      buf[pos + 1] = ((v as number) >>> 16) & 0xff;
      buf[pos + 2] = ((v as number) >>> 8) & 0xff;
      buf[pos + 3] = (v as number) & 0xff;
      return pos + 4;
    case VBI:
      return writeVbi(buf, pos, v as number);
    case UTF8:
      return writeUtf8(buf, pos, v as string, utf8ByteLength(v as string));
    case BINARY:
      return writeBinary(buf, pos, v as Buffer);
    default: {
      const [k, val] = v as [string, string];
      pos = writeUtf8(buf, pos, k, utf8ByteLength(k));
      return writeUtf8(buf, pos, val, utf8ByteLength(val));
    }
  }
}

/**
 * Writes Property Length `len` (from `propertiesLength`) then the properties; returns the next
 * position. Properties go out in the object's key order; list values in list order, so User
 * Properties keep their order [MQTT-3.3.2-18].
 */
export function writeProperties(buf: Buffer, pos: number, props: Properties | undefined, len: number): number {
  pos = writeVbi(buf, pos, len);
  if (len === 0 || props === undefined) return pos;
  const bag = props as Record<string, unknown>;
  for (const name in bag) {
    const v = bag[name];
    if (v === undefined) continue;
    const d = BY_NAME.get(name)!;
    if (d.type === PAIR || d.type === VBI) {
      for (const item of v as unknown[]) pos = writeValue(buf, pos, d, item);
    } else {
      pos = writeValue(buf, pos, d, v);
    }
  }
  return pos;
}
