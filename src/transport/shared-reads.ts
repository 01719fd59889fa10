/**
 * Reads of accepted TCP sockets through one buffer shared by every socket of the process.
 *
 * By default Node reads each socket into a fresh 64 KiB allocation, shrinks it to what was read,
 * wraps it in an ArrayBuffer and pushes it through the socket's Readable stream (`addChunk`, a
 * `maybeReadMore` tick per read, then 'data'). At one message per read that is about 350 bytes
 * of young-generation garbage per message (sampled at 5k msg/s; Courier's whole path makes about
 * 1.4 KB) and one ArrayBuffer per read, and freeing ArrayBuffers is most of a scavenge
 * (`sweep_array_buffers`: 0.44 ms of 0.78).
 *
 * Node has a documented way around it for sockets it creates (`net.Socket`'s `onread`: a buffer
 * the reads land in and a callback called with each read's length), but `net.Server` offers no
 * such option for the sockets it accepts. The server below accepts paused (`pauseOnConnect`), and
 * each socket is given the same `onread` state the `net.Socket` constructor would give it before
 * it starts reading: the internal symbols are found once on a socket built with `onread`, so
 * nothing depends on their names staying the same, and the shared path is only used when all of
 * them and the handle's `useUserBuffer` are there (else sockets read as before).
 *
 * All sockets read into the same buffer: a read's callback runs synchronously before the event
 * loop reads anything else, and copies the bytes out into a slab (a bigger ArrayBuffer that many
 * reads fill one after another; a read larger than a quarter of a slab gets a buffer of its own).
 * The chunk handed on is a view that nothing writes to again, so the decoder's zero-copy views
 * into it (payloads, a PUBLISH forwarded as it came) stay valid for as long as they are held. The
 * chunk is emitted as the socket's 'data', so the reader of the stream does not change.
 */
import { Socket, type SocketConstructorOpts } from 'node:net';

/** One read takes at most this many bytes (Node's own default read size). */
const READ_SIZE = 64 * 1024;
/** Reads are copied into slabs of this size; a read above a quarter of it gets its own buffer. */
const SLAB_SIZE = 64 * 1024;
const OWN_BUFFER_ABOVE = SLAB_SIZE / 4;

interface OnreadSymbols {
  buffer: symbol;
  callback: symbol;
  generator: symbol;
}

interface UserBufferHandle {
  useUserBuffer(buf: Uint8Array): void;
}

/** The symbols under which `net.Socket` keeps its `onread` state, or undefined on a Node without them. */
function findSymbols(): OnreadSymbols | undefined {
  const marker = new Uint8Array(1);
  const callback = (): void => {};
  const generator = (): Uint8Array => marker;
  let buffer: symbol | undefined;
  let cb: symbol | undefined;
  let gen: symbol | undefined;
  // One socket with a buffer (its state: the buffer and the callback), one with a generator (the generator).
  // `onread` is documented for net.connect(); @types/node lists it there only, not on the constructor.
  const withBuffer = new Socket({ onread: { buffer: marker, callback } } as SocketConstructorOpts);
  const withGenerator = new Socket({ onread: { buffer: generator, callback } } as SocketConstructorOpts);
  const a = withBuffer as unknown as Record<symbol, unknown>;
  const b = withGenerator as unknown as Record<symbol, unknown>;
  for (const s of Object.getOwnPropertySymbols(withBuffer)) {
    if (a[s] === marker) buffer = s;
    else if (a[s] === callback) cb = s;
  }
  for (const s of Object.getOwnPropertySymbols(withGenerator)) if (b[s] === generator) gen = s;
  withBuffer.destroy();
  withGenerator.destroy();
  if (buffer === undefined || cb === undefined || gen === undefined) return undefined;
  // A socket given a buffer, not a generator, must read as "no generator" (null): readThroughSharedBuffer sets that.
  if (a[gen] !== null) return undefined;
  return { buffer, callback: cb, generator: gen };
}

const SYMBOLS = findSymbols();
const READ_BUFFER = Buffer.allocUnsafeSlow(READ_SIZE);
/**
 * Views of the read buffer's first n bytes for small n, made once: copying a read out takes a view
 * of exactly its length (`set` copies all of its source), and a new one per read would be garbage.
 */
const SMALL_READ = 512;
const smallViews: Array<Uint8Array | undefined> = new Array<Uint8Array | undefined>(SMALL_READ + 1).fill(undefined);
let slab = new ArrayBuffer(SLAB_SIZE);
let slabBytes = new Uint8Array(slab);
let slabUsed = 0;

function readBytes(n: number): Uint8Array {
  if (n > SMALL_READ) return new Uint8Array(READ_BUFFER.buffer, READ_BUFFER.byteOffset, n);
  return (smallViews[n] ??= new Uint8Array(READ_BUFFER.buffer, READ_BUFFER.byteOffset, n));
}

/** The read's bytes, copied where nothing will overwrite them. */
function keep(nread: number): Buffer {
  if (nread > OWN_BUFFER_ABOVE) {
    const own = Buffer.allocUnsafeSlow(nread);
    own.set(readBytes(nread));
    return own;
  }
  if (nread > SLAB_SIZE - slabUsed) {
    slab = new ArrayBuffer(SLAB_SIZE);
    slabBytes = new Uint8Array(slab);
    slabUsed = 0;
  }
  slabBytes.set(readBytes(nread), slabUsed);
  const chunk = Buffer.from(slab, slabUsed, nread);
  slabUsed += nread;
  return chunk;
}

/** `this` is the socket (Node calls the callback as a method of it). */
function onRead(this: Socket, nread: number): void {
  this.emit('data', keep(nread));
}

/** True when accepted sockets can read through the shared buffer on this Node. */
export const sharedReadsAvailable = SYMBOLS !== undefined;

/**
 * Makes a socket accepted paused (`pauseOnConnect`) read through the shared buffer once it is
 * resumed. Returns false, changing nothing, when that is not possible (the socket then reads as
 * usual once resumed).
 */
export function readThroughSharedBuffer(socket: Socket): boolean {
  const s = SYMBOLS;
  const handle = (socket as unknown as { _handle: Partial<UserBufferHandle> | null })._handle;
  if (s === undefined || handle === null || typeof handle.useUserBuffer !== 'function') return false;
  const state = socket as unknown as Record<symbol, unknown>;
  state[s.buffer] = READ_BUFFER;
  state[s.callback] = onRead;
  state[s.generator] = null;
  handle.useUserBuffer(READ_BUFFER);
  return true;
}
