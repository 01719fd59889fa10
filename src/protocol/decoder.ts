// STUB: the codec helper replaces this file with the real incremental decoder.
import type { ProtocolVersion } from './constants.js';
import type { Packet } from './packets.js';

export interface DecoderOptions {
  /** Largest whole packet (fixed header included) accepted; checked as soon as the remaining length is known. Default 268435460. */
  maxPacketSize?: number;
  /** Version of the packets to expect. Left undefined on the server side: set from the first CONNECT decoded. */
  protocolVersion?: ProtocolVersion;
}

/**
 * Incremental decoder. `push()` accepts chunks of any size (one byte at a time works) and calls
 * `onPacket` synchronously for each complete packet, in order. Malformed input throws an
 * `MqttError`; after a throw the decoder must not be used again.
 */
export class Decoder {
  protocolVersion: ProtocolVersion | undefined;
  maxPacketSize: number;
  readonly #onPacket: (packet: Packet) => void;

  constructor(onPacket: (packet: Packet) => void, options: DecoderOptions = {}) {
    this.#onPacket = onPacket;
    this.protocolVersion = options.protocolVersion;
    this.maxPacketSize = options.maxPacketSize ?? 268_435_460;
  }

  push(_chunk: Buffer): void {
    void this.#onPacket;
    throw new Error('not implemented');
  }
}
