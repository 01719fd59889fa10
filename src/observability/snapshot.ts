/**
 * One reading of everything the broker counts and every gauge, taken when an exporter asks
 * ($SYS tick, a /metrics scrape, the dashboard sampler, the API). Counters come from plain
 * integer fields the hot path increments; gauges are computed here, at read time.
 */
import type { TrafficCounters } from '../core/traffic.js';
import type { ClusterStats } from '../cluster/options.js';
import type { BridgeStats } from '../bridge/types.js';

/** Why connections ended (a fixed set: these are metric label values). */
export const DISCONNECT_REASONS = [
  'client',
  'keepalive_timeout',
  'protocol_error',
  'takeover',
  'socket_error',
  'admin',
  'shutdown',
  'redirect',
  'other',
] as const;
export type DisconnectReason = (typeof DISCONNECT_REASONS)[number];

/** Why messages were dropped on their way to a subscriber (metric label values). */
export const DROP_REASONS = ['qos0_backpressure', 'queue_full', 'expired', 'too_large', 'queue_budget'] as const;
export type DropReason = (typeof DROP_REASONS)[number];

/** Why connections, publishes or subscriptions were refused (metric label values). */
export const REFUSAL_REASONS = [
  'limit',
  'authentication',
  'connect_timeout',
  'rate_limited',
  'publish_denied',
  'subscribe_denied',
  'subscription_quota',
  'topic_limit',
] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];

export interface ListenerSnapshot {
  name: string;
  transport: string;
  host: string;
  port: number;
  connections: number;
  traffic: TrafficCounters;
}

export interface Snapshot {
  /** When it was taken (ms since the epoch). */
  time: number;
  version: string;
  startedAt: number;
  uptimeSeconds: number;
  connections: number;
  /** Most connections at once since start. */
  connectionsMax: number;
  sessionsOnline: number;
  /** Persistent sessions without a connection. */
  sessionsOffline: number;
  subscriptions: number;
  sharedSubscriptions: number;
  retained: number;
  queuedMessages: number;
  queuedBytes: number;
  queuedBytesLimit: number;
  inflight: number;
  /** Bytes waiting in the connections' sockets (write backlog). */
  outboundBufferBytes: number;
  listeners: ListenerSnapshot[];
  /** All listeners together. */
  traffic: TrafficCounters;
  messagesIn: number;
  messagesOut: number;
  messagesUnrouted: number;
  willsPublished: number;
  sessionsCreated: number;
  sessionsResumed: number;
  sessionsTakenOver: number;
  sessionsExpired: number;
  dropped: Record<DropReason, number>;
  refused: Record<RefusalReason, number>;
  disconnects: Record<DisconnectReason, number>;
  eventLoopDelay: { p50: number; p99: number; max: number };
  /** Sampled delivery latency (1 routed message in 64): counts per bucket of LATENCY_BUCKETS (+Inf last), sum in seconds, count. */
  deliveryLatency: { counts: number[]; sum: number; count: number };
  memory: { rss: number; heapUsed: number; heapTotal: number; external: number };
  cluster?: ClusterStats;
  /** One entry per configured bridge (docs/bridges.md). */
  bridges?: BridgeStats[];
}

export function droppedTotal(s: Snapshot): number {
  let n = 0;
  for (const r of DROP_REASONS) n += s.dropped[r];
  return n;
}

/** Maps a connection's close reason (free text) to its bounded label. */
export function classifyDisconnect(reason: string): DisconnectReason {
  if (reason.startsWith('client disconnected') || reason === 'connection closed by the client') return 'client';
  if (reason.startsWith('keep alive timeout')) return 'keepalive_timeout';
  if (reason.startsWith('protocol violation')) return 'protocol_error';
  if (reason.startsWith('session taken over')) return 'takeover';
  if (reason.startsWith('network error')) return 'socket_error';
  if (reason.startsWith('administrative action')) return 'admin';
  if (reason.startsWith('server shutting down')) return 'shutdown';
  if (reason.startsWith('redirected')) return 'redirect';
  return 'other';
}
