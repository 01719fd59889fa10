/**
 * Binary encoding of outbound entries (`StoredOutbound`) for the LMDB store: the hottest
 * record (one put and one delete per QoS 1/2 message to a persistent session), so it skips
 * the generic msgpack encoder, which costs about twice as much per put here.
 *
 * Layout (little endian):
 *   u8  flags: bits 0-1 QoS, bit 2 retain, bit 3 released, bit 4 message inline, bit 5 message retain,
 *       bit 6 queue position present
 *   u16 packet id (0 = not sent yet)
 *   u32 message id (0 when inline)
 *   u8  subscription identifier count, then u32 each
 *   queue position only: f64 order
 *   inline message only:
 *     f64 expiresAt, u8 message QoS
 *     u16 + UTF-8 origin, u16 + UTF-8 topic
 *     u32 + JSON of the v5 properties (0 = none; correlation data as base64)
 *     payload (the rest)
 */
import type { MessageProperties } from '../core/message.js';
import type { QoS } from '../protocol/constants.js';
import type { StoredMessage, StoredOutbound } from './types.js';

interface PropertiesJson extends Omit<MessageProperties, 'correlationData'> {
  correlationData?: string;
}

export function encodeOutbound(e: StoredOutbound): Buffer {
  const ids = e.subscriptionIds ?? [];
  const m = e.message;
  let size = 1 + 2 + 4 + 1 + 4 * ids.length + (e.order !== undefined ? 8 : 0);
  let origin = 0;
  let topic = 0;
  let props: Buffer | undefined;
  if (m !== undefined) {
    origin = Buffer.byteLength(m.origin);
    topic = Buffer.byteLength(m.topic);
    if (m.properties !== undefined) {
      const p: PropertiesJson = { ...m.properties, correlationData: m.properties.correlationData?.toString('base64') };
      if (p.correlationData === undefined) delete p.correlationData;
      props = Buffer.from(JSON.stringify(p));
    }
    size += 8 + 1 + 2 + origin + 2 + topic + 4 + (props?.length ?? 0) + m.payload.length;
  }
  const b = Buffer.allocUnsafe(size);
  let flags = e.qos | (e.retain ? 4 : 0) | (e.released === true ? 8 : 0);
  if (m !== undefined) flags |= 16 | (m.retain ? 32 : 0);
  if (e.order !== undefined) flags |= 64;
  b[0] = flags;
  b.writeUInt16LE(e.packetId ?? 0, 1);
  b.writeUInt32LE(m === undefined ? e.messageId : 0, 3);
  b[7] = ids.length;
  let pos = 8;
  for (const id of ids) pos = b.writeUInt32LE(id, pos);
  if (e.order !== undefined) pos = b.writeDoubleLE(e.order, pos);
  if (m !== undefined) {
    pos = b.writeDoubleLE(m.expiresAt, pos);
    b[pos++] = m.qos;
    pos = b.writeUInt16LE(origin, pos);
    pos += b.write(m.origin, pos, 'utf8');
    pos = b.writeUInt16LE(topic, pos);
    pos += b.write(m.topic, pos, 'utf8');
    pos = b.writeUInt32LE(props?.length ?? 0, pos);
    if (props !== undefined) pos += props.copy(b, pos);
    m.payload.copy(b, pos);
  }
  return b;
}

export function decodeOutbound(b: Buffer): StoredOutbound {
  const flags = b[0]!;
  const packetId = b.readUInt16LE(1);
  const messageId = b.readUInt32LE(3);
  const count = b[7]!;
  let pos = 8;
  const e: StoredOutbound = { messageId, qos: (flags & 3) as QoS, retain: (flags & 4) !== 0 };
  if (packetId !== 0) e.packetId = packetId;
  if ((flags & 8) !== 0) e.released = true;
  if (count > 0) {
    const ids: number[] = [];
    for (let i = 0; i < count; i++, pos += 4) ids.push(b.readUInt32LE(pos));
    e.subscriptionIds = ids;
  }
  if ((flags & 64) !== 0) {
    e.order = b.readDoubleLE(pos);
    pos += 8;
  }
  if ((flags & 16) !== 0) {
    const expiresAt = b.readDoubleLE(pos);
    pos += 8;
    const qos = b[pos++]! as QoS;
    const ol = b.readUInt16LE(pos);
    const origin = b.toString('utf8', pos + 2, pos + 2 + ol);
    pos += 2 + ol;
    const tl = b.readUInt16LE(pos);
    const topic = b.toString('utf8', pos + 2, pos + 2 + tl);
    pos += 2 + tl;
    const pl = b.readUInt32LE(pos);
    pos += 4;
    const message: StoredMessage = { topic, payload: Buffer.from(b.subarray(pos + pl)), qos, retain: (flags & 32) !== 0, expiresAt, origin };
    if (pl > 0) {
      const p = JSON.parse(b.toString('utf8', pos, pos + pl)) as PropertiesJson;
      const props: MessageProperties = { ...p, correlationData: p.correlationData === undefined ? undefined : Buffer.from(p.correlationData, 'base64') };
      if (props.correlationData === undefined) delete props.correlationData;
      message.properties = props;
    }
    e.message = message;
  }
  return e;
}
