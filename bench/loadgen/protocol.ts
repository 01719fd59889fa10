/** Messages between the generator's main thread and its workers, and the shared counter layout. */
import type { Version } from './mqtt.js';

/** Per-worker BigInt64 slots in the shared counter buffer. */
export const SLOT_RECEIVED = 0;
export const SLOT_SENT = 1;
export const SLOT_ACKED = 2;
export const SLOT_LOST_CONNECTIONS = 3;
/** Messages missing at a subscriber (gaps in a publisher's sequence numbers). */
export const SLOT_GAPS = 4;
/** Times a QoS 0 publisher gave up waiting for its window and forgave what was in flight. */
export const SLOT_STALLS = 5;
export const SLOTS = 6;

/**
 * Every payload starts with [publisher stream u32][sequence u32][send time u64 (hrtime ns)];
 * payloads are at least this long.
 */
export const PAYLOAD_HEADER = 16;

/** Int32 flags shared by all workers. */
export const FLAG_MEASURING = 0;
export const FLAGS = 1;

export interface WorkerConfig {
  index: number;
  host: string;
  port: number;
  version: Version;
  counters: SharedArrayBuffer;
  flags: SharedArrayBuffer;
  /** Int32 [stream * columns + column]: last sequence number subscriber `column` got from `stream`. */
  progress: SharedArrayBuffer;
  streams: number;
  columns: number;
}

export interface PublisherSpec {
  /** flood: as fast as the socket accepts (QoS 0) or as the window allows (QoS 1).
   *  rate: a fixed rate with a send timestamp in every payload.
   *  seed: `count` messages on `topic` + index, QoS 1 with `window`, then report 'seeded'. */
  mode: 'flood' | 'rate' | 'seed';
  topic: string;
  qos: 0 | 1;
  payloadSize: number;
  retain?: boolean;
  /** QoS 0 flood: messages per write(). */
  batch?: number;
  /** This publisher's stream number (row in the progress table). */
  stream: number;
  /** QoS 0 flood: at most this many messages sent but not yet seen by every watched subscriber. */
  e2eWindow?: number;
  /** Subscriber columns whose progress bounds the QoS 0 window. */
  watch?: number[];
  /** QoS 1: unacknowledged messages allowed per publisher. */
  window?: number;
  /** rate mode: messages per second for this publisher. */
  rate?: number;
  /** seed mode: how many distinct topics. */
  count?: number;
  /**
   * flood mode: stamp the send time (hrtime ns) into the first message of every write and zero
   * it in the others, so subscribers with `latency` sample one message per write.
   */
  stamp?: boolean;
}

export interface ConnSpec {
  clientId: string;
  /** Connect to this port instead of the worker's (several brokers, e.g. cluster nodes, in one run). */
  port?: number;
  subscribe?: { topic: string; qos: 0 | 1 }[];
  publish?: PublisherSpec;
  /** This subscriber's column in the progress table; without it payloads are not inspected. */
  column?: number;
  /** Read a send timestamp from every payload received (latency scenario); a zero stamp is skipped. */
  latency?: boolean;
  /** Post 'done' once this many PUBLISH packets have arrived on this connection. */
  expect?: number;
  /** Connect only; send the SUBSCRIBE on 'subscribe-now' (retained scenario). */
  deferSubscribe?: boolean;
  /** Clean session flag (default true); false = a persistent session the broker must keep. */
  clean?: boolean;
}

export type ToWorker =
  | { op: 'connect'; conns: ConnSpec[]; window: number; timeoutMs: number }
  | { op: 'start' }
  | { op: 'seed'; timeoutMs: number }
  | { op: 'subscribe-now'; timeoutMs: number }
  | { op: 'stop' }
  | { op: 'latencies' }
  | { op: 'close' };

export type FromWorker =
  | { op: 'connected'; ok: number; failed: number; firstError?: string }
  | { op: 'seeded'; ok: boolean; acked: number }
  | { op: 'subscribed'; atNs: string }
  | { op: 'done'; atNs: string; received: number }
  | { op: 'latencies'; samplesUs: Float64Array }
  | { op: 'closed' }
  | { op: 'ack' }
  | { op: 'error'; message: string };
