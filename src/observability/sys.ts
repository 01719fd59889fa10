/**
 * The `$SYS/broker/...` tree, with Mosquitto's topic names where they exist (src/sys_tree.c) and
 * Courier's own beside them. Every `interval` seconds one snapshot is read, every topic's value
 * computed, and only the values that changed are published, retained, in memory only (never
 * stored, never sent to a cluster: each node has its own tree); `uptime` and `time` go out every
 * tick. Loads are Mosquitto's exponential moving averages (per minute, `%.2f`, republished when
 * they move by 0.01 or more).
 */
import { DROP_REASONS, droppedTotal, type Snapshot } from './snapshot.js';
import { PACKET_NAMES } from '../core/traffic.js';

export const SYS_PREFIX = '$SYS/broker/';

/** Publishes one retained `$SYS` value (the Broker routes it to this node's subscribers only). */
export type SysPublish = (topic: string, payload: string, retain: boolean) => void;

const LOAD_PERIODS: ReadonlyArray<[string, number]> = [
  ['1min', 60],
  ['5min', 300],
  ['15min', 900],
];

/** Counters whose rate is published under `load/...` (Mosquitto's `metric_loads[]`). */
const LOADS: ReadonlyArray<[string, (s: Snapshot) => number]> = [
  ['messages/received', (s) => sum(s.traffic.packetsIn)],
  ['messages/sent', (s) => sum(s.traffic.packetsOut)],
  ['publish/received', (s) => sum(s.traffic.publishIn)],
  ['publish/sent', (s) => sum(s.traffic.publishOut)],
  ['publish/dropped', (s) => droppedTotal(s)],
  ['bytes/received', (s) => s.traffic.bytesIn],
  ['bytes/sent', (s) => s.traffic.bytesOut],
  ['connections', (s) => s.traffic.packetsIn[1]!],
  ['sockets', (s) => s.traffic.socketsAccepted],
];

function sum(a: readonly number[]): number {
  let n = 0;
  for (const x of a) n += x;
  return n;
}

/** Per packet type: which directions Mosquitto's man page documents (`mqtt/<type>/{received,sent}`). */
const PACKET_DIRECTIONS: ReadonlyArray<[number, boolean, boolean]> = [
  [1, true, false],
  [2, false, true],
  [3, true, true],
  [4, true, true],
  [5, true, true],
  [6, true, true],
  [7, true, true],
  [8, true, false],
  [9, false, true],
  [10, true, false],
  [11, false, true],
  [12, true, false],
  [13, false, true],
  [14, true, true],
  [15, true, true],
];

/** Every topic and its value for one snapshot (without the loads). Exported for the API and tests. */
export function sysValues(s: Snapshot): Map<string, string> {
  const v = new Map<string, string>();
  const t = s.traffic;
  const set = (k: string, x: number | string): void => void v.set(k, String(x));
  set('version', `courier version ${s.version}`);
  set('uptime', `${s.uptimeSeconds} seconds`);
  set('time', new Date(s.time).toISOString());
  set('clients/connected', s.connections);
  set('clients/disconnected', s.sessionsOffline);
  set('clients/total', s.sessionsOnline + s.sessionsOffline);
  set('clients/maximum', s.connectionsMax);
  set('clients/expired', s.sessionsExpired);
  set('messages/received', sum(t.packetsIn));
  set('messages/sent', sum(t.packetsOut));
  set('messages/inflight', s.inflight);
  set('messages/queued', s.queuedMessages);
  set('bytes/received', t.bytesIn);
  set('bytes/sent', t.bytesOut);
  set('publish/messages/received', sum(t.publishIn));
  set('publish/messages/sent', sum(t.publishOut));
  set('publish/messages/dropped', droppedTotal(s));
  for (const r of DROP_REASONS) set(`publish/messages/dropped/${r}`, s.dropped[r]);
  set('publish/messages/unrouted', s.messagesUnrouted);
  set('publish/bytes/received', t.publishBytesIn);
  set('publish/bytes/sent', t.publishBytesOut);
  set('connections/socket/count', s.connections);
  set('subscriptions/count', s.subscriptions);
  set('shared_subscriptions/count', s.sharedSubscriptions);
  set('retained messages/count', s.retained);
  set('store/messages/count', s.queuedMessages);
  set('store/messages/bytes', s.queuedBytes);
  set('packet/out/bytes', s.outboundBufferBytes);
  set('heap/current', s.memory.heapUsed);
  set('refused/connections', s.refused.limit);
  set('refused/authentication', s.refused.authentication);
  set('refused/publish', s.refused.publish_denied);
  set('refused/subscribe', s.refused.subscribe_denied);
  set('refused/rate_limited', s.refused.rate_limited);
  set('refused/connect_timeout', s.refused.connect_timeout);
  for (const [code, rx, tx] of PACKET_DIRECTIONS) {
    const name = PACKET_NAMES[code]!;
    if (rx) set(`mqtt/${name}/received`, t.packetsIn[code]!);
    if (tx) set(`mqtt/${name}/sent`, t.packetsOut[code]!);
  }
  set('mqtt/publish/dropped', droppedTotal(s));
  const c = s.cluster;
  if (c !== undefined) {
    set('cluster/node', c.node);
    set('cluster/nodes', c.nodes);
    set('cluster/available', c.available ? 1 : 0);
    set('cluster/forwarded/sent', c.forwardedOut);
    set('cluster/forwarded/received', c.forwardedIn);
    set('cluster/forwarded/batches', c.forwardBatches);
    set('cluster/forwarded/gone', c.forwardsToGoneNodes);
    set('cluster/forwarded/dropped_lagging', c.forwardsDroppedLagging);
    set('cluster/routes/changes', c.routeChanges);
    set('cluster/routes/remote', c.remoteRoutes);
    set('cluster/retained/changes', c.retainedChanges);
    set('cluster/rejoins', c.rejoins);
    set('cluster/redis/disconnects', c.redisDisconnects);
    set('cluster/self_fences', c.selfFences);
    if (c.sessions !== undefined) {
      set('cluster/sessions/takeovers', c.sessions.takeovers);
      set('cluster/sessions/kicks', c.sessions.kicks);
      set('cluster/sessions/fenced_commits', c.sessions.fencedCommits);
      set('cluster/sessions/adopted', c.sessions.adopted);
      set('cluster/sessions/recoveries', c.sessions.recoveries);
      set('cluster/sessions/replayed', c.sessions.replayed);
    }
    for (const [k, x] of Object.entries(c.totals)) set(`cluster/totals/${k}`, x);
  }
  return v;
}

export class SysTree {
  readonly #publish: SysPublish;
  readonly #read: () => Snapshot;
  readonly #intervalMs: number;
  #timer: NodeJS.Timeout | undefined = undefined;
  readonly #last = new Map<string, string>();
  #heapMax = 0;
  /** Loads: last counter value and time, and the three averages per counter. */
  #prev: { time: number; counts: number[] } | undefined = undefined;
  readonly #loads: number[][] = LOADS.map(() => [0, 0, 0]);
  readonly #loadsShown: string[][] = LOADS.map(() => ['', '', '']);

  constructor(intervalSeconds: number, read: () => Snapshot, publish: SysPublish) {
    this.#intervalMs = intervalSeconds * 1000;
    this.#read = read;
    this.#publish = publish;
  }

  start(): void {
    if (this.#intervalMs <= 0 || this.#timer !== undefined) return;
    this.tick();
    this.#timer = setInterval(() => this.tick(), this.#intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** The tree as last published (topic → value), for the API. */
  values(): Map<string, string> {
    return new Map([...this.#last].map(([k, x]) => [SYS_PREFIX + k, x]));
  }

  /** Reads a snapshot and publishes what changed. */
  tick(): void {
    const s = this.#read();
    const values = sysValues(s);
    if (s.memory.heapUsed > this.#heapMax) this.#heapMax = s.memory.heapUsed;
    values.set('heap/maximum', String(this.#heapMax));
    this.#updateLoads(s, values);
    for (const [k, x] of values) {
      const always = k === 'uptime' || k === 'time';
      if (!always && this.#last.get(k) === x) continue;
      this.#last.set(k, x);
      this.#publish(SYS_PREFIX + k, x, true);
    }
  }

  #updateLoads(s: Snapshot, out: Map<string, string>): void {
    const counts = LOADS.map(([, f]) => f(s));
    const prev = this.#prev;
    this.#prev = { time: s.time, counts };
    const dt = prev === undefined ? 0 : (s.time - prev.time) / 1000;
    LOADS.forEach(([name], i) => {
      const avg = this.#loads[i]!;
      if (prev !== undefined && dt > 0) {
        const perMinute = ((counts[i]! - prev.counts[i]!) * 60) / dt;
        LOAD_PERIODS.forEach(([, period], j) => {
          avg[j] = perMinute + Math.exp(-dt / period) * (avg[j]! - perMinute);
        });
      }
      LOAD_PERIODS.forEach(([label], j) => {
        const shown = avg[j]!.toFixed(2);
        // Mosquitto republishes a load only when it moved by at least 0.01.
        if (shown !== this.#loadsShown[i]![j]) this.#loadsShown[i]![j] = shown;
        out.set(`load/${name}/${label}`, this.#loadsShown[i]![j]!);
      });
    });
  }
}
