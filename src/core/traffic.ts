/**
 * Traffic counters of one listener: plain integers the connections of that listener increment on
 * the hot path (one `++` or `+=` each, no clock, no lookup beyond an array index). Everything that
 * reports them ($SYS, /metrics, the dashboard) reads them on its own timer or when asked.
 */
import type { Packet } from '../protocol/packets.js';

export interface TrafficCounters {
  /** Sockets (or streams handed in) accepted. */
  socketsAccepted: number;
  /** Wire bytes received / handed to the socket. */
  bytesIn: number;
  bytesOut: number;
  /** Packets received / sent by MQTT packet type (index = type code 1..15; 0 unused). */
  readonly packetsIn: number[];
  readonly packetsOut: number[];
  /** PUBLISH packets received / sent by QoS (index 0..2). */
  readonly publishIn: number[];
  readonly publishOut: number[];
  /** Payload bytes of PUBLISH packets received; wire bytes of PUBLISH packets sent. */
  publishBytesIn: number;
  publishBytesOut: number;
}

export function createTrafficCounters(): TrafficCounters {
  return {
    socketsAccepted: 0,
    bytesIn: 0,
    bytesOut: 0,
    packetsIn: new Array<number>(16).fill(0),
    packetsOut: new Array<number>(16).fill(0),
    publishIn: [0, 0, 0],
    publishOut: [0, 0, 0],
    publishBytesIn: 0,
    publishBytesOut: 0,
  };
}

/** Packet type name → type code (the high nibble of the first byte). */
export const PACKET_CODE: Readonly<Record<Packet['type'], number>> = {
  connect: 1,
  connack: 2,
  publish: 3,
  puback: 4,
  pubrec: 5,
  pubrel: 6,
  pubcomp: 7,
  subscribe: 8,
  suback: 9,
  unsubscribe: 10,
  unsuback: 11,
  pingreq: 12,
  pingresp: 13,
  disconnect: 14,
  auth: 15,
};

/**
 * PACKET_CODE[type] as a switch, for the per-packet counter: a lookup keyed by a string that
 * varies per call is a megamorphic keyed load (a stub cache probe); this is a few pointer
 * comparisons, the most frequent types first.
 */
export function packetCode(type: Packet['type']): number {
  switch (type) {
    case 'publish':
      return 3;
    case 'puback':
      return 4;
    case 'pubrec':
      return 5;
    case 'pubrel':
      return 6;
    case 'pubcomp':
      return 7;
    case 'pingreq':
      return 12;
    default:
      return PACKET_CODE[type];
  }
}

/** Type code → lower-case name (index 0 unused). */
export const PACKET_NAMES: readonly string[] = [
  '',
  'connect',
  'connack',
  'publish',
  'puback',
  'pubrec',
  'pubrel',
  'pubcomp',
  'subscribe',
  'suback',
  'unsubscribe',
  'unsuback',
  'pingreq',
  'pingresp',
  'disconnect',
  'auth',
];

/** Adds `b` into `a` (for totals over listeners). */
export function addTraffic(a: TrafficCounters, b: TrafficCounters): void {
  a.socketsAccepted += b.socketsAccepted;
  a.bytesIn += b.bytesIn;
  a.bytesOut += b.bytesOut;
  for (let i = 0; i < 16; i++) {
    a.packetsIn[i]! += b.packetsIn[i]!;
    a.packetsOut[i]! += b.packetsOut[i]!;
  }
  for (let q = 0; q < 3; q++) {
    a.publishIn[q]! += b.publishIn[q]!;
    a.publishOut[q]! += b.publishOut[q]!;
  }
  a.publishBytesIn += b.publishBytesIn;
  a.publishBytesOut += b.publishBytesOut;
}
