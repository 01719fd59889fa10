/**
 * MQTT data representation (MQTT 5.0 §1.5, MQTT 3.1.1 §1.5): Two/Four Byte Integers, Variable
 * Byte Integers, UTF-8 Encoded Strings and Binary Data — read through a bounds-checked `Reader`
 * and written straight into a pre-sized Buffer. Every read past the end of the packet is a
 * Malformed Packet: the Remaining Length was shorter than the grammar requires.
 */
import { copy, EMPTY, latin1Slice, latin1Write, utf8ByteLength, utf8Slice, utf8Write } from './bytes.js';
import { InvalidPacketError, MalformedPacketError } from './errors.js';

export function malformed(message: string, statement?: string): never {
  throw new MalformedPacketError(message, statement);
}

function truncated(): never {
  malformed('the Remaining Length is shorter than the packet contents require');
}

// ---------------------------------------------------------------------------------------------
// Variable Byte Integer (§1.5.5)

/** Bytes needed to encode `n` (0..268,435,455) as a Variable Byte Integer. */
export function vbiLength(n: number): number {
  return n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : 4;
}

/** Writes `n` as a Variable Byte Integer at `pos`, using the fewest bytes; returns the next position. */
export function writeVbi(buf: Buffer, pos: number, n: number): number {
  while (n >= 0x80) {
    buf[pos++] = (n & 0x7f) | 0x80;
    n >>>= 7;
  }
  buf[pos++] = n;
  return pos;
}

// ---------------------------------------------------------------------------------------------
// UTF-8 Encoded String (5.0 §1.5.4, 3.1.1 §1.5.3)

/**
 * Decodes `buf[start, end)` as an MQTT UTF-8 Encoded String. ASCII (the common case: topics,
 * client ids) is decoded without the UTF-8 decoder; anything else is validated by the strict
 * state machine below (Unicode Table 3-7) before Node's decoder runs, so no replacement
 * character can ever slip through. `v311` picks the statement numbering of the errors: 3.1.1
 * numbers the same rules [MQTT-1.5.3-1] and [MQTT-1.5.3-2].
 */
export function decodeUtf8(buf: Buffer, start: number, end: number, v311 = false): string {
  let i = start;
  for (; i < end; i++) {
    const b = buf[i]!;
    if (b === 0) nulCharacter(v311);
    if (b >= 0x80) break;
  }
  if (i === end) return start === end ? '' : latin1Slice(buf, start, end);
  validateUtf8(buf, i, end, v311);
  return utf8Slice(buf, start, end);
}

function nulCharacter(v311: boolean): never {
  malformed('a UTF-8 string contains U+0000', v311 ? '[MQTT-1.5.3-2]' : '[MQTT-1.5.4-2]');
}

function illFormed(detail: string, v311: boolean): never {
  malformed(`a UTF-8 string is not well-formed UTF-8 (${detail})`, v311 ? '[MQTT-1.5.3-1]' : '[MQTT-1.5.4-1]');
}

/**
 * Strict UTF-8 validation of `buf[i, end)`: rejects overlong forms, code points above U+10FFFF,
 * truncated sequences, stray continuation bytes and encoded UTF-16 surrogates
 * (U+D800..U+DFFF) [MQTT-1.5.4-1]; rejects U+0000 [MQTT-1.5.4-2] (3.1.1: [MQTT-1.5.3-1],
 * [MQTT-1.5.3-2] when `v311`).
 */
export function validateUtf8(buf: Buffer, i: number, end: number, v311 = false): void {
  while (i < end) {
    const b = buf[i]!;
    if (b < 0x80) {
      if (b === 0) nulCharacter(v311);
      i++;
      continue;
    }
    if (b < 0xc2) illFormed(b < 0xc0 ? 'stray continuation byte' : 'overlong encoding', v311);
    if (b < 0xe0) {
      if (i + 1 >= end || (buf[i + 1]! & 0xc0) !== 0x80) illFormed('truncated sequence', v311);
      i += 2;
      continue;
    }
    if (b < 0xf0) {
      if (i + 2 >= end) illFormed('truncated sequence', v311);
      const b1 = buf[i + 1]!;
      if ((b1 & 0xc0) !== 0x80 || (buf[i + 2]! & 0xc0) !== 0x80) illFormed('truncated sequence', v311);
      if (b === 0xe0 && b1 < 0xa0) illFormed('overlong encoding', v311);
      if (b === 0xed && b1 >= 0xa0) illFormed('encoded UTF-16 surrogate', v311);
      i += 3;
      continue;
    }
    if (b < 0xf5) {
      if (i + 3 >= end) illFormed('truncated sequence', v311);
      const b1 = buf[i + 1]!;
      if ((b1 & 0xc0) !== 0x80 || (buf[i + 2]! & 0xc0) !== 0x80 || (buf[i + 3]! & 0xc0) !== 0x80) illFormed('truncated sequence', v311);
      if (b === 0xf0 && b1 < 0x90) illFormed('overlong encoding', v311);
      if (b === 0xf4 && b1 >= 0x90) illFormed('code point above U+10FFFF', v311);
      i += 4;
      continue;
    }
    illFormed('invalid lead byte', v311);
  }
}

type WellFormed = (this: string) => boolean;
const nativeIsWellFormed = (String.prototype as unknown as { isWellFormed?: WellFormed }).isWellFormed;

/** True when `s` has no lone UTF-16 surrogate (so it has an exact UTF-8 encoding). */
function isWellFormed(s: string): boolean {
  if (nativeIsWellFormed !== undefined) return nativeIsWellFormed.call(s);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdfff) {
      if (c > 0xdbff || i + 1 >= s.length) return false;
      const d = s.charCodeAt(i + 1);
      if (d < 0xdc00 || d > 0xdfff) return false;
      i++;
    }
  }
  return true;
}

/**
 * Byte length of `s` as an MQTT UTF-8 Encoded String body, after checking that it can be one:
 * no U+0000 [MQTT-1.5.4-2], no lone surrogate [MQTT-1.5.4-1], at most 65,535 bytes (§1.5.4).
 */
export function utf8Length(s: string, what: string): number {
  const n = s.length;
  if (n === 0) return 0;
  const len = utf8ByteLength(s);
  if (len > 0xffff) throw new InvalidPacketError(`${what} is ${len} bytes of UTF-8; the maximum is 65535`);
  if (s.indexOf('\u0000') !== -1) throw new InvalidPacketError(`${what} contains U+0000`, '[MQTT-1.5.4-2]');
  if (len !== n && !isWellFormed(s)) throw new InvalidPacketError(`${what} contains a lone UTF-16 surrogate`, '[MQTT-1.5.4-1]');
  return len;
}

/** Writes the 2-byte length and the UTF-8 bytes of `s` (whose byte length is `len`); returns the next position. */
export function writeUtf8(buf: Buffer, pos: number, s: string, len: number): number {
  buf[pos] = len >>> 8;
  buf[pos + 1] = len & 0xff;
  pos += 2;
  if (len === s.length) {
    // Byte length = UTF-16 length only for all-ASCII strings, whose Latin-1 bytes are their UTF-8 bytes.
    if (len <= 16) {
      for (let i = 0; i < len; i++) buf[pos + i] = s.charCodeAt(i);
    } else {
      latin1Write(buf, s, pos, len);
    }
    return pos + len;
  }
  utf8Write(buf, s, pos, len);
  return pos + len;
}

/** Checks that a Binary Data field fits its 2-byte length prefix (§1.5.6); returns its length. */
export function binaryLength(b: Buffer, what: string): number {
  const len = b.length;
  if (len > 0xffff) throw new InvalidPacketError(`${what} is ${len} bytes; Binary Data holds at most 65535`);
  return len;
}

/** Writes the 2-byte length and the bytes of `b`; returns the next position. */
export function writeBinary(buf: Buffer, pos: number, b: Buffer): number {
  const len = b.length;
  buf[pos] = len >>> 8;
  buf[pos + 1] = len & 0xff;
  buf.set(b, pos + 2);
  return pos + 2 + len;
}

// ---------------------------------------------------------------------------------------------
// Reader

/**
 * Cursor over one packet's bytes `buf[pos, end)`. One instance per Decoder, re-pointed at each
 * packet; every method checks bounds and throws MalformedPacketError on a short packet.
 */
export class Reader {
  buf: Buffer = EMPTY;
  pos = 0;
  end = 0;
  /** The packet is MQTT 3.1 or 3.1.1: UTF-8 errors cite 3.1.1's statement numbers. */
  v311 = false;

  reset(buf: Buffer, pos: number, end: number): void {
    this.buf = buf;
    this.pos = pos;
    this.end = end;
  }

  remaining(): number {
    return this.end - this.pos;
  }

  u8(): number {
    if (this.pos >= this.end) truncated();
    return this.buf[this.pos++]!;
  }

  u16(): number {
    const p = this.pos;
    if (p + 2 > this.end) truncated();
    this.pos = p + 2;
    return (this.buf[p]! << 8) | this.buf[p + 1]!;
  }

  u32(): number {
    const p = this.pos;
    if (p + 4 > this.end) truncated();
    this.pos = p + 4;
    const b = this.buf;
    return b[p]! * 0x1000000 + ((b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!);
  }

  /** Variable Byte Integer: at most 4 bytes (§1.5.5, no statement number), minimal encoding [MQTT-1.5.5-1]. */
  vbi(): number {
    let value = 0;
    let shift = 0;
    for (let n = 0; n < 4; n++) {
      const b = this.u8();
      value += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) {
        if (b === 0 && n > 0) malformed('a Variable Byte Integer is not minimally encoded', '[MQTT-1.5.5-1]');
        return value;
      }
      shift += 7;
    }
    return malformed('a Variable Byte Integer is longer than 4 bytes');
  }

  utf8(): string {
    const len = this.u16();
    const start = this.pos;
    const end = start + len;
    if (end > this.end) truncated();
    this.pos = end;
    return decodeUtf8(this.buf, start, end, this.v311);
  }

  /** Binary Data, copied: it outlives the packet (will payload, password, correlation data). */
  binary(): Buffer {
    const len = this.u16();
    const start = this.pos;
    if (start + len > this.end) truncated();
    this.pos = start + len;
    return copy(this.buf.subarray(start, start + len));
  }

  /** The rest of the packet, zero-copy. */
  rest(): Buffer {
    const b = this.buf.subarray(this.pos, this.end);
    this.pos = this.end;
    return b;
  }

  /** Throws when the grammar ended before the Remaining Length did. */
  expectEnd(what: string): void {
    if (this.pos !== this.end) malformed(`${this.end - this.pos} unexpected trailing byte(s) in ${what}`);
  }
}
