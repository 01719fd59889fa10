/**
 * The codec's byte operations, in one seam so the same codec runs in Node and in browsers.
 *
 * This file is the Node implementation: Buffers, and Node's undocumented string fast paths
 * (`latin1Slice`, `utf8Slice`, `utf8Write`, `latin1Write`; `toString`/`write` are
 * argument-checking wrappers around them, and on the hot path — topic names — the wrapper is a
 * measurable share of the work). `bytes-web.ts` has the same exports on `Uint8Array`,
 * `TextEncoder` and `TextDecoder`; the client package's browser build substitutes it for this
 * file. Keep the two in step (test/unit/protocol/bytes.test.ts runs both on the same inputs).
 *
 * The codec's types name `Buffer` (the broker relies on getting Buffers back), but it calls no
 * Buffer method except through this file: in the browser build its values are plain Uint8Arrays.
 */

interface RawBuffer {
  latin1Slice(start: number, end: number): string;
  utf8Slice(start: number, end: number): string;
  utf8Write(s: string, offset: number, length: number): number;
  latin1Write(s: string, offset: number, length: number): number;
}

export const EMPTY: Buffer = Buffer.alloc(0);

/** Uninitialised bytes: every byte is written by the caller. */
export function alloc(n: number): Buffer {
  return Buffer.allocUnsafe(n);
}

/** New bytes holding `bytes`. */
export function of(...bytes: number[]): Buffer {
  return Buffer.from(bytes);
}

/** A copy of `b` that owns its memory. */
export function copy(b: Uint8Array): Buffer {
  return Buffer.from(b);
}

/** `b` as the codec's byte type, without copying. */
export function view(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

/** The `total` bytes of `parts`, joined into one new array. */
export function concat(parts: readonly Uint8Array[], total: number): Buffer {
  return Buffer.concat(parts, total);
}

/** Length of `s` in UTF-8 (a lone surrogate counts as the 3 bytes of U+FFFD, as TextEncoder has it). */
export function utf8ByteLength(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

/** `buf[start, end)` as Latin-1 (callers pass only ASCII). */
export function latin1Slice(buf: Buffer, start: number, end: number): string {
  return (buf as unknown as RawBuffer).latin1Slice(start, end);
}

/** `buf[start, end)` decoded as UTF-8 (callers have validated it). */
export function utf8Slice(buf: Buffer, start: number, end: number): string {
  return (buf as unknown as RawBuffer).utf8Slice(start, end);
}

/** Writes the `len` UTF-8 bytes of `s` at `pos`. */
export function utf8Write(buf: Buffer, s: string, pos: number, len: number): void {
  (buf as unknown as RawBuffer).utf8Write(s, pos, len);
}

/** Writes the `len` characters of the all-ASCII `s` at `pos`. */
export function latin1Write(buf: Buffer, s: string, pos: number, len: number): void {
  (buf as unknown as RawBuffer).latin1Write(s, pos, len);
}
