/** Helpers shared by the encoders: fixed header allocation and field checks. */
import { MAX_PACKET_SIZE, MAX_VARIABLE_BYTE_INTEGER } from './constants.js';
import { InvalidPacketError, PacketTooLargeError } from './errors.js';
import { vbiLength, writeVbi } from './primitives.js';
import { alloc } from './bytes.js';

/** Allocates the packet buffer for a Remaining Length and writes the fixed header. Throws PacketTooLargeError past the largest packet MQTT can frame. */
export function allocPacket(first: number, rem: number): Buffer {
  if (rem > MAX_VARIABLE_BYTE_INTEGER) throw new PacketTooLargeError(1 + 4 + rem, MAX_PACKET_SIZE);
  const buf = alloc(1 + vbiLength(rem) + rem);
  buf[0] = first;
  writeVbi(buf, 1, rem);
  return buf;
}

/** Position right after the fixed header of an allocated packet. */
export function headerEnd(rem: number): number {
  return 1 + vbiLength(rem);
}

export function checkPacketId(id: unknown, what: string): number {
  if (typeof id !== 'number' || !Number.isInteger(id) || id < 1 || id > 0xffff) {
    throw new InvalidPacketError(`${what} needs a Packet Identifier in 1..65535, got ${String(id)}`, '[MQTT-2.2.1-3]');
  }
  return id;
}

export function checkByte(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xff) throw new InvalidPacketError(`${what} must be a byte, got ${String(v)}`);
  return v;
}
