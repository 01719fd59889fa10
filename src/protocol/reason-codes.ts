/**
 * Which reason codes each packet type may carry (MQTT 5.0 §2.4 Table 2-6 and the per-packet
 * tables), and MQTT 3.1.1's CONNACK / SUBACK return codes. A receiver that gets any other value
 * has received a packet the sender MUST NOT send: the decoder reports a Protocol Error.
 */
import { PacketType } from './constants.js';

function set(...codes: number[]): Uint8Array {
  const t = new Uint8Array(256);
  for (const c of codes) t[c] = 1;
  return t;
}

const PUB_ACK = set(0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99);
const PUB_REL_COMP = set(0x00, 0x92);

/** v5 tables, indexed by packet type code. */
const V5: Array<Uint8Array | undefined> = [];
V5[PacketType.CONNACK] = set(
  0x00,
  0x80,
  0x81,
  0x82,
  0x83,
  0x84,
  0x85,
  0x86,
  0x87,
  0x88,
  0x89,
  0x8a,
  0x8c,
  0x90,
  0x95,
  0x97,
  0x99,
  0x9a,
  0x9b,
  0x9c,
  0x9d,
  0x9f,
);
V5[PacketType.PUBACK] = PUB_ACK;
V5[PacketType.PUBREC] = PUB_ACK;
V5[PacketType.PUBREL] = PUB_REL_COMP;
V5[PacketType.PUBCOMP] = PUB_REL_COMP;
V5[PacketType.SUBACK] = set(0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8f, 0x91, 0x97, 0x9e, 0xa1, 0xa2);
V5[PacketType.UNSUBACK] = set(0x00, 0x11, 0x80, 0x83, 0x87, 0x8f, 0x91);
V5[PacketType.DISCONNECT] = set(
  0x00,
  0x04,
  0x80,
  0x81,
  0x82,
  0x83,
  0x87,
  0x89,
  0x8b,
  0x8d,
  0x8e,
  0x8f,
  0x90,
  0x93,
  0x94,
  0x95,
  0x96,
  0x97,
  0x98,
  0x99,
  0x9a,
  0x9b,
  0x9c,
  0x9d,
  0x9e,
  0x9f,
  0xa0,
  0xa1,
  0xa2,
);
V5[PacketType.AUTH] = set(0x00, 0x18, 0x19);

/** v3.1.1 tables (3.1 uses the same values). */
const V3: Array<Uint8Array | undefined> = [];
V3[PacketType.CONNACK] = set(0, 1, 2, 3, 4, 5);
V3[PacketType.SUBACK] = set(0x00, 0x01, 0x02, 0x80);

/** True when `code` is a reason/return code `packetType` may carry in protocol `version`. */
export function isValidReasonCode(packetType: number, code: number, version: number): boolean {
  const table = version === 5 ? V5[packetType] : V3[packetType];
  return table !== undefined && table[code] === 1;
}

/** The statement requiring a defined reason code, per packet type (MQTT 5.0 numbering). */
export const REASON_CODE_STATEMENT: Readonly<Record<number, string>> = {
  [PacketType.CONNACK]: '[MQTT-3.2.2-8]',
  [PacketType.PUBACK]: '[MQTT-3.4.2-1]',
  [PacketType.PUBREC]: '[MQTT-3.5.2-1]',
  [PacketType.PUBREL]: '[MQTT-3.6.2-1]',
  [PacketType.PUBCOMP]: '[MQTT-3.7.2-1]',
  [PacketType.SUBACK]: '[MQTT-3.9.3-2]',
  [PacketType.UNSUBACK]: '[MQTT-3.11.3-2]',
  [PacketType.DISCONNECT]: '[MQTT-3.14.2-1]',
  [PacketType.AUTH]: '[MQTT-3.15.2-1]',
};
