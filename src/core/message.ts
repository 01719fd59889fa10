/**
 * An application message inside the broker: what a PUBLISH (or a will) carries once its topic
 * alias is resolved. One Message object is shared by every subscriber it is routed to; per
 * subscriber only the QoS, the retain flag, the packet id and the subscription identifiers differ.
 */
import type { ProtocolVersion, QoS } from '../protocol/constants.js';
import { encode, withPacketId } from '../protocol/encoder.js';
import type { Properties, PublishPacket } from '../protocol/packets.js';

/** The v5 properties forwarded unaltered to subscribers [MQTT-3.3.2-15..20], [MQTT-3.3.2-3]. */
export interface MessageProperties {
  payloadFormatIndicator?: number;
  contentType?: string;
  responseTopic?: string;
  correlationData?: Buffer;
  userProperties?: Array<[string, string]>;
}

export interface Message {
  readonly topic: string;
  readonly payload: Buffer;
  readonly qos: QoS;
  readonly retain: boolean;
  readonly properties: MessageProperties | undefined;
  /** Epoch ms after which the message is not delivered any more; 0 = never [MQTT-3.3.2-5]. */
  readonly expiresAt: number;
  /** Client id of the publisher ('' for the broker itself); No Local compares against it. */
  readonly origin: string;
  /**
   * Encoded forms reused across subscribers, by key (version - 3) * 6 + qos * 2 + retain: the
   * first one made in `encoded` under `encodedKey` (-1: none), any other in `moreEncoded`. Most
   * messages need one encoding, and a field costs nothing where an array per message cost about
   * 250 bytes of garbage (its backing store grows to hold the key as an index).
   */
  encoded: Buffer | undefined;
  encodedKey: number;
  moreEncoded: Array<Buffer | undefined> | undefined;
  /** Store id while persisted for outbound entries (0 = not stored), and how many entries reference it. */
  storeId: number;
  refs: number;
}

export function createMessage(topic: string, payload: Buffer, qos: QoS, retain: boolean, props: Properties | undefined, origin: string, now: number): Message {
  let properties: MessageProperties | undefined;
  let expiresAt = 0;
  if (props !== undefined) {
    const p: MessageProperties = {};
    let any = false;
    if (props.payloadFormatIndicator !== undefined) {
      p.payloadFormatIndicator = props.payloadFormatIndicator;
      any = true;
    }
    if (props.contentType !== undefined) {
      p.contentType = props.contentType;
      any = true;
    }
    if (props.responseTopic !== undefined) {
      p.responseTopic = props.responseTopic;
      any = true;
    }
    if (props.correlationData !== undefined) {
      p.correlationData = props.correlationData;
      any = true;
    }
    if (props.userProperties !== undefined) {
      p.userProperties = props.userProperties;
      any = true;
    }
    if (any) properties = p;
    if (props.messageExpiryInterval !== undefined) expiresAt = now + props.messageExpiryInterval * 1000;
  }
  return { topic, payload, qos, retain, properties, expiresAt, origin, encoded: undefined, encodedKey: -1, moreEncoded: undefined, storeId: 0, refs: 0 };
}

function encodingOf(m: Message, key: number): Buffer | undefined {
  return m.encodedKey === key ? m.encoded : m.moreEncoded?.[key];
}

function keepEncoding(m: Message, key: number, buf: Buffer): void {
  if (m.encodedKey === -1 || m.encodedKey === key) {
    m.encodedKey = key;
    m.encoded = buf;
  } else (m.moreEncoded ??= new Array<Buffer | undefined>(18).fill(undefined))[key] = buf;
}

export function isExpired(m: Message, now: number): boolean {
  return m.expiresAt !== 0 && m.expiresAt <= now;
}

/** Remaining lifetime in whole seconds, rounded up (so a live message never shows 0). */
function remainingSeconds(m: Message, now: number): number {
  return Math.max(1, Math.ceil((m.expiresAt - now) / 1000));
}

/** A buffer holding on to at least this much more memory than itself is copied by detach(). */
const DETACH_SLACK = 4096;

/** True when `b` is a view that keeps much more memory alive than its own bytes. */
function oversized(b: Buffer): boolean {
  return b.buffer.byteLength >= 2 * b.length + DETACH_SLACK;
}

function compact(b: Buffer): Buffer {
  if (!oversized(b)) return b;
  const own = Buffer.allocUnsafeSlow(b.length);
  b.copy(own);
  return own;
}

/**
 * Makes a message that will be kept (retained, a will, queued for a session that cannot take it
 * now, or left in flight when its session goes offline) hold only its own bytes. A decoded
 * PUBLISH's payload is a view into the bytes it arrived in: a read of up to 64 KiB, or a slab
 * that many small reads share (transport/shared-reads.ts). A view kept for hours would keep all of
 * that memory alive, so a buffer much larger than its view is copied once (the message is shared
 * by every subscriber, so once per message), and encodings that are such views are dropped (they
 * are made again when needed). Content does not change, so every holder sees the same message.
 */
export function detach(m: Message): void {
  const mm = m as { payload: Buffer };
  mm.payload = compact(m.payload);
  const cd = m.properties?.correlationData;
  if (cd !== undefined) m.properties!.correlationData = compact(cd);
  const first = m.encoded;
  if (first !== undefined && oversized(first)) {
    m.encoded = undefined;
    m.encodedKey = -1;
  }
  const more = m.moreEncoded;
  if (more === undefined) return;
  for (let i = 0; i < more.length; i++) {
    const b = more[i];
    if (b !== undefined && oversized(b)) more[i] = undefined;
  }
}

/** Payload size plus topic, for queue byte accounting. */
export function messageBytes(m: Message): number {
  return m.payload.length + m.topic.length;
}

/**
 * Offers the bytes a QoS 0 PUBLISH arrived in as its encoding for subscribers of the same
 * version (QoS 0, retain 0), when they are exactly what the encoder would write: first byte
 * 0x30 (no DUP, no RETAIN [MQTT-3.3.1-2]), no properties, and no longer than the minimal
 * encoding (a Remaining Length or Property Length padded with continuation bytes is not reused).
 */
export function seedEncoding(m: Message, version: ProtocolVersion, raw: Buffer): void {
  if (m.qos !== 0 || m.retain || m.properties !== undefined || m.expiresAt !== 0 || raw[0] !== 0x30) return;
  const body = 2 + Buffer.byteLength(m.topic) + (version === 5 ? 1 : 0) + m.payload.length;
  const header = 1 + (body < 0x80 ? 1 : body < 0x4000 ? 2 : body < 0x200000 ? 3 : 4);
  if (raw.length !== header + body) return;
  keepEncoding(m, (version - 3) * 6, raw);
}

/**
 * The PUBLISH bytes for one subscriber. Without subscription identifiers or an expiry (which
 * vary per subscriber or per moment) the encoding is cached on the message, so a fan-out
 * encodes once per (version, QoS, retain) and only patches the packet id.
 */
export function encodeDelivery(
  m: Message,
  version: ProtocolVersion,
  qos: QoS,
  retain: boolean,
  packetId: number,
  dup: boolean,
  subscriptionIds: number[] | undefined,
  topicOverride: { topic: string; alias: number } | undefined,
  now: number,
): Buffer {
  const v5 = version === 5;
  const cacheable = !v5 || (m.expiresAt === 0 && subscriptionIds === undefined && topicOverride === undefined);
  if (cacheable) {
    const key = (version - 3) * 6 + qos * 2 + (retain ? 1 : 0);
    let buf = encodingOf(m, key);
    if (buf === undefined) {
      buf = encode(publishPacket(m, v5, qos, retain, qos === 0 ? undefined : 1, false, undefined, undefined, now), version);
      keepEncoding(m, key, buf);
    }
    return qos === 0 ? buf : withPacketId(buf, packetId, dup);
  }
  return encode(publishPacket(m, v5, qos, retain, qos === 0 ? undefined : packetId, dup, subscriptionIds, topicOverride, now), version);
}

function publishPacket(
  m: Message,
  v5: boolean,
  qos: QoS,
  retain: boolean,
  packetId: number | undefined,
  dup: boolean,
  subscriptionIds: number[] | undefined,
  topicOverride: { topic: string; alias: number } | undefined,
  now: number,
): PublishPacket {
  const p: PublishPacket = { type: 'publish', topic: topicOverride?.topic ?? m.topic, payload: m.payload, qos, retain, dup };
  if (packetId !== undefined) p.packetId = packetId;
  if (v5) {
    const props: Properties = m.properties === undefined ? {} : { ...m.properties };
    // [MQTT-3.3.2-6] the forwarded expiry is the received value minus the time spent waiting.
    if (m.expiresAt !== 0) props.messageExpiryInterval = remainingSeconds(m, now);
    if (subscriptionIds !== undefined) props.subscriptionIdentifiers = subscriptionIds;
    if (topicOverride !== undefined) props.topicAlias = topicOverride.alias;
    if (Object.keys(props).length > 0) p.properties = props;
  }
  return p;
}
