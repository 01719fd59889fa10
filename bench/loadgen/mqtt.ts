/**
 * Minimal raw MQTT for the load generator: just the packets the benchmark sends, pre-encoded
 * templates for the hot path, and an incremental reader that only frames packets.
 * Deliberately independent of src/protocol (we benchmark the broker, not our codec) and of
 * MQTT.js (far too slow to drive a broker to saturation from one core).
 */

export type Version = 4 | 5;

export const PT_CONNACK = 2;
export const PT_PUBLISH = 3;
export const PT_PUBACK = 4;
export const PT_SUBACK = 9;
export const PT_PINGRESP = 13;
export const PT_DISCONNECT = 14;

export const PINGREQ = Buffer.from([0xc0, 0x00]);
export const DISCONNECT = Buffer.from([0xe0, 0x00]);

function varIntLength(n: number): number {
  return n < 128 ? 1 : n < 16384 ? 2 : n < 2097152 ? 3 : 4;
}

function writeVarInt(buf: Buffer, pos: number, n: number): number {
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    buf[pos++] = b;
  } while (n > 0);
  return pos;
}

function packet(first: number, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(1 + varIntLength(body.length) + body.length);
  out[0] = first;
  const pos = writeVarInt(out, 1, body.length);
  body.copy(out, pos);
  return out;
}

function str(s: string): Buffer {
  const b = Buffer.from(s, 'utf8');
  const out = Buffer.allocUnsafe(2 + b.length);
  out.writeUInt16BE(b.length, 0);
  b.copy(out, 2);
  return out;
}

export function encodeConnect(clientId: string, version: Version, keepAlive = 600, clean = true): Buffer {
  const parts: Buffer[] = [str('MQTT'), Buffer.from([version, clean ? 0x02 : 0x00, keepAlive >> 8, keepAlive & 0xff])];
  if (version === 5) parts.push(Buffer.from([0])); // no CONNECT properties
  parts.push(str(clientId));
  return packet(0x10, Buffer.concat(parts));
}

export function encodeSubscribe(packetId: number, filters: readonly { topic: string; qos: 0 | 1 }[], version: Version): Buffer {
  const parts: Buffer[] = [Buffer.from([packetId >> 8, packetId & 0xff])];
  if (version === 5) parts.push(Buffer.from([0]));
  for (const f of filters) parts.push(str(f.topic), Buffer.from([f.qos]));
  return packet(0x82, Buffer.concat(parts));
}

/** A PUBLISH with a fixed topic and payload length; the packet id and payload are patched in place. */
export interface PublishTemplate {
  buf: Buffer;
  /** Offset of the 2-byte packet id, or -1 for QoS 0. */
  idOffset: number;
  payloadOffset: number;
  length: number;
}

export function publishTemplate(topic: string, payloadSize: number, qos: 0 | 1, version: Version, retain = false): PublishTemplate {
  const t = str(topic);
  const body = t.length + (qos > 0 ? 2 : 0) + (version === 5 ? 1 : 0) + payloadSize;
  const buf = Buffer.alloc(1 + varIntLength(body) + body);
  buf[0] = 0x30 | (qos << 1) | (retain ? 1 : 0);
  let pos = writeVarInt(buf, 1, body);
  t.copy(buf, pos);
  pos += t.length;
  let idOffset = -1;
  if (qos > 0) {
    idOffset = pos;
    pos += 2;
  }
  if (version === 5) buf[pos++] = 0; // no PUBLISH properties
  for (let i = pos; i < buf.length; i++) buf[i] = 0x61 + (i % 26);
  return { buf, idOffset, payloadOffset: pos, length: buf.length };
}

/** n copies of a QoS 0 template back to back: one write() sends a whole batch. */
export function publishBatch(tpl: PublishTemplate, n: number): Buffer {
  const out = Buffer.allocUnsafe(tpl.length * n);
  for (let i = 0; i < n; i++) tpl.buf.copy(out, i * tpl.length);
  return out;
}

/** PUBACK for v3.1.1 and v5 (v5 allows omitting the reason code when it is Success). */
export function writePuback(buf: Buffer, pos: number, packetId: number): number {
  buf[pos] = 0x40;
  buf[pos + 1] = 2;
  buf[pos + 2] = packetId >> 8;
  buf[pos + 3] = packetId & 0xff;
  return pos + 4;
}

/**
 * Called once per complete packet: `buf[start..end)` is the variable header + payload.
 * The buffer is only valid during the call.
 */
export type PacketHandler = (type: number, flags: number, buf: Buffer, start: number, end: number) => void;

/**
 * Incremental framer. Only the unconsumed tail of a chunk is ever copied, so a stream of
 * small packets costs one pass over the bytes and no allocation per packet.
 */
export class PacketReader {
  private tail: Buffer | null = null;

  constructor(private readonly onPacket: PacketHandler) {}

  push(chunk: Buffer): void {
    let buf = chunk;
    if (this.tail !== null) {
      buf = Buffer.concat([this.tail, chunk]);
      this.tail = null;
    }
    const len = buf.length;
    let pos = 0;
    while (pos + 2 <= len) {
      const first = buf[pos]!;
      let remaining = 0;
      let mul = 1;
      let p = pos + 1;
      let complete = false;
      for (let i = 0; i < 4 && p < len; i++) {
        const b = buf[p++]!;
        remaining += (b & 0x7f) * mul;
        mul *= 128;
        if ((b & 0x80) === 0) {
          complete = true;
          break;
        }
      }
      if (!complete) {
        if (p - pos > 4) throw new Error('malformed remaining length from broker');
        break;
      }
      const end = p + remaining;
      if (end > len) break;
      this.onPacket(first >> 4, first & 0x0f, buf, p, end);
      pos = end;
    }
    if (pos < len) this.tail = Buffer.from(buf.subarray(pos));
  }
}

/** Offset of the payload of a PUBLISH whose variable header starts at `start`. */
export function publishPayloadOffset(buf: Buffer, start: number, flags: number, version: Version): number {
  let pos = start + 2 + buf.readUInt16BE(start);
  if ((flags & 0x06) !== 0) pos += 2;
  if (version === 5) {
    let n = 0;
    let mul = 1;
    for (;;) {
      const b = buf[pos++]!;
      n += (b & 0x7f) * mul;
      mul *= 128;
      if ((b & 0x80) === 0) break;
    }
    pos += n;
  }
  return pos;
}

/** Packet id of a QoS > 0 PUBLISH whose variable header starts at `start`. */
export function publishPacketId(buf: Buffer, start: number): number {
  return buf.readUInt16BE(start + 2 + buf.readUInt16BE(start));
}
