/**
 * The codec's byte operations without Node: `Uint8Array`, `TextEncoder`, `TextDecoder`. Same
 * exports as `bytes.ts` (the Node implementation), which the client package's browser build
 * replaces with this file. The casts to `Buffer` only satisfy the codec's types: nothing here
 * creates or needs a Buffer, and the codec calls no Buffer method but through these functions.
 */
const encoder = new TextEncoder();
const decoder = new TextDecoder();

type Bytes = Buffer;
const bytes = (u: Uint8Array): Bytes => u as Bytes;

export const EMPTY: Bytes = bytes(new Uint8Array(0));

export function alloc(n: number): Bytes {
  return bytes(new Uint8Array(n));
}

export function of(...values: number[]): Bytes {
  return bytes(Uint8Array.from(values));
}

export function copy(b: Uint8Array): Bytes {
  return bytes(b.slice());
}

export function view(b: Uint8Array): Bytes {
  return bytes(b);
}

export function concat(parts: readonly Uint8Array[], total: number): Bytes {
  const out = new Uint8Array(total);
  let pos = 0;
  for (const p of parts) {
    const n = Math.min(p.length, total - pos);
    out.set(n === p.length ? p : p.subarray(0, n), pos);
    pos += n;
    if (pos === total) break;
  }
  return bytes(out);
}

export function utf8ByteLength(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

export function latin1Slice(buf: Uint8Array, start: number, end: number): string {
  let out = '';
  for (let i = start; i < end; i += 4096) out += String.fromCharCode(...buf.subarray(i, Math.min(end, i + 4096)));
  return out;
}

export function utf8Slice(buf: Uint8Array, start: number, end: number): string {
  return decoder.decode(buf.subarray(start, end));
}

export function utf8Write(buf: Uint8Array, s: string, pos: number, len: number): void {
  encoder.encodeInto(s, buf.subarray(pos, pos + len));
}

export function latin1Write(buf: Uint8Array, s: string, pos: number, len: number): void {
  for (let i = 0; i < len; i++) buf[pos + i] = s.charCodeAt(i);
}
