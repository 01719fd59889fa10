/**
 * The dashboard's live data: once a second one snapshot becomes one point of each chart series
 * (rates from counter deltas, gauges as read), kept in a ring of the last 15 minutes, and handed
 * to listeners (the SSE stream). Alarms are evaluated on the same tick, raised and cleared with
 * hysteresis.
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import { DROP_REASONS, type Snapshot } from './snapshot.js';

export const HISTORY_POINTS = 900;

export const SERIES = [
  'messagesIn',
  'messagesOut',
  'bytesIn',
  'bytesOut',
  'connections',
  'sessions',
  'subscriptions',
  'retained',
  'eventLoopP99Ms',
  'heapUsedBytes',
  'rssBytes',
  ...DROP_REASONS.map((r) => `dropped_${r}`),
] as const;
export type SeriesName = (typeof SERIES)[number];

export interface Sample {
  /** ms since the epoch */
  t: number;
  v: Record<SeriesName, number>;
}

export interface Alarm {
  name: string;
  message: string;
  raisedAt: string;
  clearedAt?: string;
}

/**
 * How often libuv's histogram samples the loop. Its timer wakes an idle broker at this rate. At
 * 20 ms an idle `courier` (admin listener on) used 0.6 % of a core, against 0.05 % for Mosquitto
 * and for Courier without the listener; at 100 ms, 0.2 %. A block of the loop longer than this
 * is always seen, and the alarm watches for 100 ms.
 */
export const LOOP_DELAY_RESOLUTION_MS = 100;

/** Event-loop delay, measured by libuv's histogram (nothing per message); read in windows of at least 5 s. */
export class LoopDelay {
  readonly #h: IntervalHistogram;
  #window = { p50: 0, p99: 0, max: 0 };
  #since = Date.now();

  constructor() {
    this.#h = monitorEventLoopDelay({ resolution: LOOP_DELAY_RESOLUTION_MS });
    this.#h.enable();
  }

  /** Seconds. */
  read(now = Date.now()): { p50: number; p99: number; max: number } {
    const h = this.#h;
    const current = h.count > 0 ? { p50: h.percentile(50) / 1e9, p99: h.percentile(99) / 1e9, max: h.max / 1e9 } : this.#window;
    if (now - this.#since >= 5_000) {
      this.#window = current;
      this.#since = now;
      h.reset();
    }
    return current;
  }

  stop(): void {
    this.#h.disable();
  }
}

interface AlarmRule {
  name: string;
  /** Raised above `on`, cleared below `off`; `value` null = not applicable. */
  value: (s: Snapshot) => number | null;
  on: number;
  off: number;
  /** Consecutive samples above `on` before raising. */
  after: number;
  message: (v: number) => string;
}

const RULES: AlarmRule[] = [
  {
    name: 'event_loop_delay',
    value: (s) => s.eventLoopDelay.p99 * 1000,
    on: 100,
    off: 50,
    after: 30,
    message: (v) => `event loop delay p99 ${v.toFixed(0)} ms (over 100 ms for 30 s)`,
  },
  {
    name: 'heap',
    value: (s) => (s.memory.heapUsed / getHeapStatistics().heap_size_limit) * 100,
    on: 85,
    off: 75,
    after: 5,
    message: (v) => `heap at ${v.toFixed(0)} % of its limit`,
  },
  {
    name: 'queue_budget',
    value: (s) => (s.queuedBytesLimit > 0 ? (s.queuedBytes / s.queuedBytesLimit) * 100 : null),
    on: 80,
    off: 70,
    after: 1,
    message: (v) => `queued messages use ${v.toFixed(0)} % of limits.maxQueuedBytesTotal`,
  },
  {
    name: 'messages_dropped',
    value: () => null,
    on: 0,
    off: 0,
    after: 1,
    message: () => '',
  },
];

export class Sampler {
  readonly #read: () => Snapshot;
  readonly #connectionLimit: number;
  #timer: NodeJS.Timeout | undefined = undefined;
  readonly #ring: Sample[] = [];
  #prev: Snapshot | undefined = undefined;
  readonly #listeners = new Set<(s: Sample) => void>();
  readonly #above = new Map<string, number>();
  readonly active = new Map<string, Alarm>();
  readonly history: Alarm[] = [];
  readonly #alarmListeners = new Set<(a: Alarm) => void>();

  constructor(read: () => Snapshot, connectionLimit: number) {
    this.#read = read;
    this.#connectionLimit = connectionLimit;
  }

  start(): void {
    if (this.#timer !== undefined) return;
    this.tick();
    this.#timer = setInterval(() => this.tick(), 1000);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#listeners.clear();
    this.#alarmListeners.clear();
  }

  samples(): readonly Sample[] {
    return this.#ring;
  }

  onSample(fn: (s: Sample) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  onAlarm(fn: (a: Alarm) => void): () => void {
    this.#alarmListeners.add(fn);
    return () => this.#alarmListeners.delete(fn);
  }

  clearHistory(): void {
    this.history.length = 0;
  }

  tick(): void {
    const s = this.#read();
    const p = this.#prev ?? s;
    this.#prev = s;
    const dt = Math.max(0.001, (s.time - p.time) / 1000);
    const rate = (a: number, b: number): number => (s === p ? 0 : Math.max(0, (a - b) / dt));
    const sumQ = (a: readonly number[]): number => a[0]! + a[1]! + a[2]!;
    const v = {
      messagesIn: rate(sumQ(s.traffic.publishIn), sumQ(p.traffic.publishIn)),
      messagesOut: rate(sumQ(s.traffic.publishOut), sumQ(p.traffic.publishOut)),
      bytesIn: rate(s.traffic.bytesIn, p.traffic.bytesIn),
      bytesOut: rate(s.traffic.bytesOut, p.traffic.bytesOut),
      connections: s.connections,
      sessions: s.sessionsOnline + s.sessionsOffline,
      subscriptions: s.subscriptions,
      retained: s.retained,
      eventLoopP99Ms: s.eventLoopDelay.p99 * 1000,
      heapUsedBytes: s.memory.heapUsed,
      rssBytes: s.memory.rss,
    } as Record<SeriesName, number>;
    let dropRate = 0;
    for (const r of DROP_REASONS) {
      const x = rate(s.dropped[r], p.dropped[r]);
      v[`dropped_${r}`] = x;
      dropRate += x;
    }
    const sample: Sample = { t: s.time, v };
    this.#ring.push(sample);
    if (this.#ring.length > HISTORY_POINTS) this.#ring.shift();
    this.#alarms(s, dropRate);
    for (const fn of this.#listeners) fn(sample);
  }

  #alarms(s: Snapshot, dropRate: number): void {
    const check = (name: string, value: number | null, on: number, off: number, after: number, message: string): void => {
      if (value === null) return;
      const n = value > on ? (this.#above.get(name) ?? 0) + 1 : 0;
      this.#above.set(name, n);
      const active = this.active.get(name);
      if (active === undefined && n >= after) this.#raise(name, message);
      else if (active !== undefined && value < off) this.#clear(name);
    };
    for (const r of RULES) {
      if (r.name === 'messages_dropped') continue;
      const value = r.value(s);
      check(r.name, value, r.on, r.off, r.after, value === null ? '' : r.message(value));
    }
    const lim = this.#connectionLimit;
    if (lim > 0) {
      const pct = (s.connections / lim) * 100;
      check('connections', pct, 90, 80, 1, `${s.connections} connections, ${pct.toFixed(0)} % of limits.maxConnections`);
    }
    // Drops increasing: raised on any drop in a sample, cleared after 10 s without any.
    const quiet = dropRate === 0 ? (this.#above.get('drops_quiet') ?? 0) + 1 : 0;
    this.#above.set('drops_quiet', quiet);
    if (dropRate > 0 && !this.active.has('messages_dropped')) this.#raise('messages_dropped', `messages are being dropped (${dropRate.toFixed(1)}/s)`);
    else if (quiet >= 10 && this.active.has('messages_dropped')) this.#clear('messages_dropped');
  }

  #raise(name: string, message: string): void {
    const a: Alarm = { name, message, raisedAt: new Date().toISOString() };
    this.active.set(name, a);
    this.history.unshift(a);
    if (this.history.length > 100) this.history.pop();
    for (const fn of this.#alarmListeners) fn(a);
  }

  #clear(name: string): void {
    const a = this.active.get(name);
    if (a === undefined) return;
    this.active.delete(name);
    a.clearedAt = new Date().toISOString();
    for (const fn of this.#alarmListeners) fn(a);
  }
}
