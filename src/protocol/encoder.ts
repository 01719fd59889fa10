// STUB: the codec helper replaces this file with the real encoder.
import type { ProtocolVersion } from './constants.js';
import type { Packet } from './packets.js';

/** Encodes one packet into one exact-size Buffer. Throws MqttError for packets that cannot be represented. */
export function encode(_packet: Packet, _version: ProtocolVersion): Buffer {
  throw new Error('not implemented');
}
