/**
 * The bytes of one forward batch: every message one node sends another in one event-loop turn,
 * in one Redis stream entry. Pure (no I/O), so it is unit-tested on its own.
 *
 * A batch is a sequence of frames; a frame is one message plus what the receiving node does
 * with it: re-match its plain (non-shared) subscriptions, and/or deliver to named shared groups
 * (`group/filter`) whose member this node was chosen to serve.
 *
 *   frame   = flags:u8  groups:u8  origin:str  topic:str  payload:bin  expiresAt:f64
 *             [pfi:u8] [contentType:str] [responseTopic:str] [correlationData:bin]
 *             [userProps: count:u16 (key:str value:str)*]  group:str*
 *   str/bin = length:u32 bytes
 *
 * flags: bits 0-1 QoS, 2 retain, 3 plain, 4 pfi, 5 contentType, 6 responseTopic,
 * 7 correlationData; the user-properties count is always present (0 = none).
 */
import type { QoS } from '../protocol/constants.js';
import type { Message, MessageProperties } from '../core/message.js';

/** One message of a batch as the receiving node sees it. */
export interface Forwarded {
  message: Message;
  /** Re-match this node's plain subscriptions. */
  plain: boolean;
  /** Shared groups (`group/filter`) this node delivers the message to. */
  groups: string[] | undefined;
}

const F_RETAIN = 1 << 2;
const F_PLAIN = 1 << 3;
const F_PFI = 1 << 4;
const F_CT = 1 << 5;
const F_RT = 1 << 6;
const F_CD = 1 << 7;

/** Appends frames to growing buffers; `finish()` returns one Buffer for the batch. */
export class BatchWriter {
  #buf: Buffer;
  #pos = 0;
  count = 0;

  constructor(initial = 4096) {
    this.#buf = Buffer.allocUnsafe(initial);
  }

  get size(): number {
    return this.#pos;
  }

  #room(n: number): void {
    if (this.#pos + n <= this.#buf.length) return;
    let len = this.#buf.length * 2;
    while (len < this.#pos + n) len *= 2;
    const next = Buffer.allocUnsafe(len);
    this.#buf.copy(next, 0, 0, this.#pos);
    this.#buf = next;
  }

  #str(s: string): void {
    const n = Buffer.byteLength(s);
    this.#room(4 + n);
    this.#buf.writeUInt32BE(n, this.#pos);
    this.#buf.write(s, this.#pos + 4, n, 'utf8');
    this.#pos += 4 + n;
  }

  #bin(b: Buffer): void {
    this.#room(4 + b.length);
    this.#buf.writeUInt32BE(b.length, this.#pos);
    b.copy(this.#buf, this.#pos + 4);
    this.#pos += 4 + b.length;
  }

  add(m: Message, plain: boolean, groups: readonly string[] | undefined): void {
    const p = m.properties;
    let flags = m.qos | (m.retain ? F_RETAIN : 0) | (plain ? F_PLAIN : 0);
    if (p !== undefined) {
      if (p.payloadFormatIndicator !== undefined) flags |= F_PFI;
      if (p.contentType !== undefined) flags |= F_CT;
      if (p.responseTopic !== undefined) flags |= F_RT;
      if (p.correlationData !== undefined) flags |= F_CD;
    }
    const ng = groups?.length ?? 0;
    if (ng > 255) throw new RangeError('at most 255 shared groups per forwarded message');
    this.#room(2);
    this.#buf[this.#pos++] = flags;
    this.#buf[this.#pos++] = ng;
    this.#str(m.origin);
    this.#str(m.topic);
    this.#bin(m.payload);
    this.#room(8);
    this.#buf.writeDoubleBE(m.expiresAt, this.#pos);
    this.#pos += 8;
    if (p !== undefined) {
      if (p.payloadFormatIndicator !== undefined) {
        this.#room(1);
        this.#buf[this.#pos++] = p.payloadFormatIndicator;
      }
      if (p.contentType !== undefined) this.#str(p.contentType);
      if (p.responseTopic !== undefined) this.#str(p.responseTopic);
      if (p.correlationData !== undefined) this.#bin(p.correlationData);
    }
    const ups = p?.userProperties;
    this.#room(2);
    this.#buf.writeUInt16BE(ups?.length ?? 0, this.#pos);
    this.#pos += 2;
    if (ups !== undefined) {
      for (const [k, v] of ups) {
        this.#str(k);
        this.#str(v);
      }
    }
    for (let i = 0; i < ng; i++) this.#str(groups![i]!);
    this.count++;
  }

  /** The batch so far (a copy: the writer can be reused after `reset()`). */
  finish(): Buffer {
    return Buffer.from(this.#buf.subarray(0, this.#pos));
  }

  reset(): void {
    this.#pos = 0;
    this.count = 0;
  }
}

/** Thrown for a batch that cannot be decoded (a bug or a foreign writer: the batch is skipped). */
export class BatchError extends Error {}

/** Decodes a batch written by BatchWriter; calls `fn` for every frame in order. */
export function readBatch(buf: Buffer, fn: (f: Forwarded) => void): number {
  let pos = 0;
  const need = (n: number): void => {
    if (pos + n > buf.length) throw new BatchError(`forward batch truncated at byte ${pos}`);
  };
  const u32 = (): number => {
    need(4);
    const n = buf.readUInt32BE(pos);
    pos += 4;
    return n;
  };
  const str = (): string => {
    const n = u32();
    need(n);
    const s = buf.toString('utf8', pos, pos + n);
    pos += n;
    return s;
  };
  const bin = (): Buffer => {
    const n = u32();
    need(n);
    // A copy: the batch buffer is not kept alive by one small message.
    const b = Buffer.from(buf.subarray(pos, pos + n));
    pos += n;
    return b;
  };
  let count = 0;
  while (pos < buf.length) {
    need(2);
    const flags = buf[pos++]!;
    const ng = buf[pos++]!;
    const origin = str();
    const topic = str();
    const payload = bin();
    need(8);
    const expiresAt = buf.readDoubleBE(pos);
    pos += 8;
    let properties: MessageProperties | undefined;
    if ((flags & (F_PFI | F_CT | F_RT | F_CD)) !== 0) {
      properties = {};
      if ((flags & F_PFI) !== 0) {
        need(1);
        properties.payloadFormatIndicator = buf[pos++]!;
      }
      if ((flags & F_CT) !== 0) properties.contentType = str();
      if ((flags & F_RT) !== 0) properties.responseTopic = str();
      if ((flags & F_CD) !== 0) properties.correlationData = bin();
    }
    need(2);
    const nup = buf.readUInt16BE(pos);
    pos += 2;
    if (nup > 0) {
      const ups: Array<[string, string]> = [];
      for (let i = 0; i < nup; i++) ups.push([str(), str()]);
      (properties ??= {}).userProperties = ups;
    }
    let groups: string[] | undefined;
    if (ng > 0) {
      groups = [];
      for (let i = 0; i < ng; i++) groups.push(str());
    }
    const message: Message = {
      topic,
      payload,
      qos: (flags & 3) as QoS,
      retain: (flags & F_RETAIN) !== 0,
      properties,
      expiresAt,
      origin,
      encoded: undefined,
      encodedKey: -1,
      moreEncoded: undefined,
      storeId: 0,
      refs: 0,
    };
    fn({ message, plain: (flags & F_PLAIN) !== 0, groups });
    count++;
  }
  return count;
}

/** One retained change (set, or delete when the payload is empty) as written to the retained log. */
export function encodeRetained(m: Message): Buffer {
  const w = new BatchWriter(64 + m.payload.length + m.topic.length);
  w.add(m, false, undefined);
  return w.finish();
}

export function decodeRetained(buf: Buffer): Message {
  let out: Message | undefined;
  readBatch(buf, (f) => {
    out = f.message;
  });
  if (out === undefined) throw new BatchError('empty retained record');
  return out;
}
