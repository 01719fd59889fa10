/** What the client needs of a byte stream to the server: open, write, close, and two callbacks. */
import type { ClientOptions } from './types.js';

export interface TransportHandlers {
  data(chunk: Uint8Array): void;
  /** Called once, when the stream ended for any reason (with the error, if one caused it). */
  close(error?: Error): void;
}

export interface Transport {
  /** Writes the packets of one turn, in order. */
  write(chunks: readonly Uint8Array[]): void;
  /** Ends the stream after what was written; `close` is called when it is gone. */
  end(): void;
  /** Tears the stream down at once. */
  destroy(): void;
  /** Bytes written but not yet handed to the operating system (a slow peer), when the transport can tell. */
  bufferedAmount?(): number;
}

/** Opens a stream to `url`; resolves once bytes can be written. */
export type OpenTransport = (url: URL, options: ClientOptions, handlers: TransportHandlers, signal: AbortSignal) => Promise<Transport>;

/** Default ports by scheme. */
export const DEFAULT_PORTS: Readonly<Record<string, number>> = {
  'mqtt:': 1883,
  'tcp:': 1883,
  'mqtts:': 8883,
  'ssl:': 8883,
  'tls:': 8883,
  'ws:': 80,
  'wss:': 443,
};

export function joinChunks(chunks: readonly Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  let n = 0;
  for (const c of chunks) n += c.length;
  const out = new Uint8Array(n);
  let pos = 0;
  for (const c of chunks) {
    out.set(c, pos);
    pos += c.length;
  }
  return out;
}
