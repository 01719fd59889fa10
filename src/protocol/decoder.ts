/**
 * Incremental MQTT decoder: bytes in any chunking → packets, synchronously and in order.
 *
 * Framing is a three-state machine (idle → fixed header → body). The first byte is checked the
 * moment it arrives (type, reserved flags, CONNECT-first); the packet size the moment the
 * Remaining Length is known, before a single body byte is buffered. A packet that lies wholly
 * inside the chunk being pushed is decoded straight from that chunk (its PUBLISH payload is a
 * zero-copy `subarray`); only a packet whose body spans chunks is assembled, once, into a buffer
 * of exactly its size.
 */
import { MAX_PACKET_SIZE, type ProtocolVersion } from './constants.js';
import { PacketTooLargeError } from './errors.js';
import type { Packet } from './packets.js';
import { checkFirstByte, parsePacket } from './parse.js';
import { malformed, Reader } from './primitives.js';
import { concat, EMPTY } from './bytes.js';

export interface DecoderOptions {
  /** Largest whole packet (fixed header included) accepted; checked as soon as the remaining length is known. Default 268435460. */
  maxPacketSize?: number;
  /** Version of the packets to expect. Left undefined on the server side: set from the first CONNECT decoded. */
  protocolVersion?: ProtocolVersion;
}

const IDLE = 0;
const HEADER = 1;
const BODY = 2;
const MULTIPLIER = [1, 0x80, 0x4000, 0x200000];

/**
 * Incremental decoder. `push()` accepts chunks of any size (one byte at a time works) and calls
 * `onPacket` synchronously for each complete packet, in order. Malformed input throws an
 * `MqttError`; after a throw (including one from `onPacket`) the decoder is dead: every further
 * `push` throws the same error.
 *
 * Server side, leave `protocolVersion` undefined: the first packet must then be a CONNECT
 * [MQTT-3.1.0-1], and its protocol level becomes the version for the rest of the stream.
 */
/**
 * One Reader for every decoder: a body is parsed synchronously and the reader reset before
 * `onPacket` runs, so no two decodes ever use it at once (and an idle connection holds none).
 */
const READER = new Reader();

export class Decoder<T = undefined> {
  protocolVersion: ProtocolVersion | undefined;
  maxPacketSize: number;
  readonly #onPacket: (this: T, packet: Packet) => void;
  readonly #target: T;
  #failed = false;
  #error: unknown = undefined;
  #state = IDLE;
  /** First byte of the packet being framed. */
  #first = 0;
  /** Remaining Length so far and how many of its bytes were read. */
  #rem = 0;
  #lenBytes = 0;
  /** Body being assembled across chunks: pieces kept as they arrived, and how many bytes they hold. */
  #parts: Buffer[] | undefined = undefined;
  #filled = 0;
  /** Where the packet being delivered lies, while packetBytes() may be asked for it. */
  #rawBuf: Buffer | undefined = undefined;
  #rawStart = 0;
  #rawEnd = 0;

  /** `onPacket` is called with `target` as `this` (a shared method instead of a closure per decoder). */
  constructor(onPacket: (this: T, packet: Packet) => void, options: DecoderOptions = {}, target?: T) {
    this.#onPacket = onPacket;
    this.#target = target as T;
    this.protocolVersion = options.protocolVersion;
    this.maxPacketSize = options.maxPacketSize ?? MAX_PACKET_SIZE;
  }

  /** True while part of a packet is buffered (a stream ending now would end mid-packet). */
  get pending(): boolean {
    return this.#state !== IDLE;
  }

  push(chunk: Buffer): void {
    if (this.#failed) throw this.#error;
    try {
      this.#push(chunk);
    } catch (err) {
      this.#failed = true;
      this.#error = err;
      this.#parts = undefined;
      READER.reset(EMPTY, 0, 0);
      throw err;
    }
  }

  #push(chunk: Buffer): void {
    const len = chunk.length;
    let pos = 0;
    if (this.#state !== IDLE) {
      pos = this.#resume(chunk);
      if (this.#state !== IDLE) return;
    }
    while (pos < len) {
      const first = chunk[pos]!;
      checkFirstByte(first, this.protocolVersion);
      this.#first = first;
      this.#rem = 0;
      this.#lenBytes = 0;
      let i = pos + 1;
      let complete = false;
      while (i < len) {
        if (this.#lengthByte(chunk[i++]!)) {
          complete = true;
          break;
        }
      }
      if (!complete) {
        this.#state = HEADER;
        return;
      }
      const rem = this.#rem;
      this.#checkSize(i - pos + rem);
      const end = i + rem;
      if (end <= len) {
        // The whole packet is in this chunk: its exact bytes can be reused (packetBytes()).
        this.#decode(chunk, i, end, pos);
        pos = end;
        continue;
      }
      // The body spans chunks: keep the pieces (no up-front allocation of what the header claims).
      this.#parts = i < len ? [chunk.subarray(i, len)] : [];
      this.#filled = len - i;
      this.#state = BODY;
      return;
    }
  }

  /** Continues a packet begun in an earlier chunk; returns how many bytes of `chunk` it used. */
  #resume(chunk: Buffer): number {
    const len = chunk.length;
    let pos = 0;
    if (this.#state === HEADER) {
      for (;;) {
        if (pos >= len) return len;
        if (this.#lengthByte(chunk[pos++]!)) break;
      }
      const rem = this.#rem;
      this.#checkSize(1 + this.#lenBytes + rem);
      if (pos + rem <= len) {
        // The whole body is in this chunk: decode it in place.
        this.#state = IDLE;
        this.#decode(chunk, pos, pos + rem);
        return pos + rem;
      }
      this.#parts = [];
      this.#filled = 0;
      this.#state = BODY;
    }
    const parts = this.#parts!;
    const rem = this.#rem;
    const n = Math.min(rem - this.#filled, len - pos);
    if (n > 0) parts.push(n === len ? chunk : chunk.subarray(pos, pos + n));
    this.#filled += n;
    pos += n;
    if (this.#filled === rem) {
      // Exactly this packet's bytes, gathered once.
      const body = parts.length === 1 ? parts[0]! : concat(parts, rem);
      this.#parts = undefined;
      this.#state = IDLE;
      this.#decode(body, 0, rem);
    }
    return pos;
  }

  /** Adds one Remaining Length byte (§2.1.4); true when the length is complete. */
  #lengthByte(b: number): boolean {
    const n = this.#lenBytes;
    this.#rem += (b & 0x7f) * MULTIPLIER[n]!;
    this.#lenBytes = n + 1;
    if (b < 0x80) {
      // 5.0 requires the minimal encoding [MQTT-1.5.5-1]; 3.1.1 states no such rule for receivers.
      if (b === 0 && n > 0 && this.protocolVersion === 5) malformed('the Remaining Length is not minimally encoded', '[MQTT-1.5.5-1]');
      return true;
    }
    // "The maximum number of bytes in the Remaining Length field is four" (3.1.1 §2.2.3, 5.0 §1.5.5) carries no statement number.
    if (n === 3) malformed('the Remaining Length is longer than 4 bytes');
    return false;
  }

  #checkSize(total: number): void {
    if (total > this.maxPacketSize) throw new PacketTooLargeError(total, this.maxPacketSize);
  }

  /**
   * The bytes of the packet being delivered to `onPacket` (valid only during that call), when
   * they arrived in one chunk with a minimally encoded Remaining Length; else undefined. A
   * zero-copy view: the broker forwards such a PUBLISH as it came when nothing in it changes.
   */
  packetBytes(): Buffer | undefined {
    const buf = this.#rawBuf;
    if (buf === undefined) return undefined;
    const rem = this.#rem;
    const minimal = rem < 0x80 ? 1 : rem < 0x4000 ? 2 : rem < 0x200000 ? 3 : 4;
    if (this.#lenBytes !== minimal) return undefined;
    return buf.subarray(this.#rawStart, this.#rawEnd);
  }

  #decode(buf: Buffer, start: number, end: number, packetStart = -1): void {
    const r = READER;
    r.reset(buf, start, end);
    r.v311 = this.protocolVersion === 3 || this.protocolVersion === 4;
    const packet = parsePacket(r, this.#first, this.protocolVersion);
    r.reset(EMPTY, 0, 0);
    if (this.protocolVersion === undefined && packet.type === 'connect') this.protocolVersion = packet.protocolVersion;
    if (packetStart >= 0) {
      this.#rawBuf = buf;
      this.#rawStart = packetStart;
      this.#rawEnd = end;
    }
    try {
      this.#onPacket.call(this.#target, packet);
    } finally {
      this.#rawBuf = undefined;
    }
  }
}

/** Decodes every packet in `bytes`, which must end on a packet boundary. Convenience for tests and tools. */
export function decodeAll(bytes: Buffer, options: DecoderOptions = {}): Packet[] {
  const out: Packet[] = [];
  const d = new Decoder((p) => out.push(p), options);
  d.push(bytes);
  if (d.pending) malformed('the input ends in the middle of a packet');
  return out;
}
