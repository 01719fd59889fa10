/**
 * Prometheus exposition (`GET /metrics`) through prom-client, used only at scrape time: every
 * Courier metric has a `collect()` callback that copies a value from one snapshot of the broker's
 * plain counters (taken once per scrape). Nothing here runs per message. Names: `courier_`
 * prefix, `_total` on counters, base units (seconds, bytes), bounded labels only (listener name,
 * packet type, QoS, reason): never a client id or a topic. Node's process metrics are
 * prom-client's defaults, without the three gauges `promtool check metrics` rejects.
 */
import { readdirSync } from 'node:fs';
import type { Registry } from 'prom-client';
import { lazyRequire } from '../lazy-require.js';
import { DISCONNECT_REASONS, DROP_REASONS, REFUSAL_REASONS, type Snapshot } from './snapshot.js';
import { PACKET_NAMES } from '../core/traffic.js';
import { LATENCY_BUCKETS } from '../core/latency.js';
import type { BridgeStats } from '../bridge/types.js';

/**
 * The usual process metrics under their usual names, read at scrape time. prom-client's
 * `collectDefaultMetrics` is not used: it keeps a GC observer and a 10 ms event-loop timer
 * running between scrapes (measured: several per cent of a core at 500k msg/s).
 */
function processSpecs(): MetricSpec[] {
  const g = (name: string, help: string, read: Read, labels?: string[]): MetricSpec => ({ name, help, type: 'gauge', read, ...(labels ? { labels } : {}) });
  const c = (name: string, help: string, read: Read): MetricSpec => ({ name, help, type: 'counter', read });
  const cpu = (): NodeJS.CpuUsage => process.cpuUsage();
  return [
    c('process_cpu_user_seconds_total', 'User CPU time spent in seconds.', () => cpu().user / 1e6),
    c('process_cpu_system_seconds_total', 'System CPU time spent in seconds.', () => cpu().system / 1e6),
    c('process_cpu_seconds_total', 'Total user and system CPU time spent in seconds.', () => {
      const u = cpu();
      return (u.user + u.system) / 1e6;
    }),
    g('process_start_time_seconds', 'Start time of the process since unix epoch in seconds.', () => Math.round(Date.now() / 1000 - process.uptime())),
    g('process_resident_memory_bytes', 'Resident memory size in bytes.', (s) => s.memory.rss),
    g('process_open_fds', 'Number of open file descriptors.', () => {
      try {
        return readdirSync('/proc/self/fd').length - 1;
      } catch {
        return 0;
      }
    }),
    g('nodejs_heap_size_total_bytes', 'Process heap size from Node.js in bytes.', (s) => s.memory.heapTotal),
    g('nodejs_heap_size_used_bytes', 'Process heap size used from Node.js in bytes.', (s) => s.memory.heapUsed),
    g('nodejs_external_memory_bytes', 'Node.js external memory size in bytes.', (s) => s.memory.external),
    g('nodejs_eventloop_lag_p50_seconds', 'The 50th percentile of the recorded event loop delays.', (s) => s.eventLoopDelay.p50),
    g('nodejs_eventloop_lag_p99_seconds', 'The 99th percentile of the recorded event loop delays.', (s) => s.eventLoopDelay.p99),
    g('nodejs_eventloop_lag_max_seconds', 'The maximum recorded event loop delay.', (s) => s.eventLoopDelay.max),
    g(
      'nodejs_version_info',
      'Node.js version info.',
      () => {
        const [major, minor, patch] = process.versions.node.split('.');
        return [[{ version: process.version, major: major ?? '', minor: minor ?? '', patch: patch ?? '' }, 1]];
      },
      ['version', 'major', 'minor', 'patch'],
    ),
  ];
}

type Labels = Record<string, string>;
type Read = (s: Snapshot) => number | Array<[Labels, number]>;

interface MetricSpec {
  name: string;
  help: string;
  type: 'counter' | 'gauge';
  labels?: string[];
  read: Read;
}

function specs(): MetricSpec[] {
  const g = (name: string, help: string, read: Read, labels?: string[]): MetricSpec => ({ name, help, type: 'gauge', read, ...(labels ? { labels } : {}) });
  const c = (name: string, help: string, read: Read, labels?: string[]): MetricSpec => ({ name, help, type: 'counter', read, ...(labels ? { labels } : {}) });
  const byListener = (f: (l: Snapshot['listeners'][number]) => number) => (s: Snapshot) =>
    s.listeners.map((l): [Labels, number] => [{ listener: l.name }, f(l)]);
  const byType = (a: (s: Snapshot) => readonly number[]) => (s: Snapshot) => PACKET_NAMES.slice(1).map((type, i): [Labels, number] => [{ type }, a(s)[i + 1]!]);
  const byQos = (a: (s: Snapshot) => readonly number[]) => (s: Snapshot) => [0, 1, 2].map((q): [Labels, number] => [{ qos: String(q) }, a(s)[q]!]);
  return [
    g('courier_build_info', 'Courier build information (value 1).', (s) => [[{ version: s.version, node_version: process.version }, 1]], [
      'version',
      'node_version',
    ]),
    g('courier_start_time_seconds', 'When the broker started, in seconds since the epoch.', (s) => s.startedAt / 1000),
    g('courier_uptime_seconds', 'Seconds since the broker started.', (s) => s.uptimeSeconds),
    g(
      'courier_connections',
      'Open MQTT connections by listener.',
      byListener((l) => l.connections),
      ['listener'],
    ),
    g('courier_connections_max', 'Most open connections at once since start.', (s) => s.connectionsMax),
    g(
      'courier_sessions',
      'Sessions by state (offline: persistent sessions without a connection).',
      (s) => [
        [{ state: 'online' }, s.sessionsOnline],
        [{ state: 'offline' }, s.sessionsOffline],
      ],
      ['state'],
    ),
    g('courier_subscriptions', 'Subscriptions of all sessions (shared ones included).', (s) => s.subscriptions),
    g('courier_shared_subscriptions', 'Shared subscription groups.', (s) => s.sharedSubscriptions),
    g('courier_retained_messages', 'Retained messages held.', (s) => s.retained),
    g('courier_queued_messages', 'QoS 1/2 messages queued for sessions (offline or beyond the in-flight window).', (s) => s.queuedMessages),
    g('courier_queued_bytes', 'Payload bytes of queued QoS 1/2 messages across all sessions.', (s) => s.queuedBytes),
    g('courier_queued_bytes_limit', 'Limit on queued bytes across all sessions (limits.maxQueuedBytesTotal; 0 = none).', (s) => s.queuedBytesLimit),
    g('courier_inflight_messages', 'QoS 1/2 messages sent and awaiting acknowledgement.', (s) => s.inflight),
    g('courier_outbound_buffer_bytes', "Bytes waiting in connections' socket buffers (write backlog).", (s) => s.outboundBufferBytes),
    g('courier_event_loop_delay_p99_seconds', 'Event loop delay, 99th percentile since the previous reading.', (s) => s.eventLoopDelay.p99),
    c(
      'courier_sockets_accepted_total',
      'Connections accepted by listener.',
      byListener((l) => l.traffic.socketsAccepted),
      ['listener'],
    ),
    c(
      'courier_network_received_bytes_total',
      'Bytes received by listener.',
      byListener((l) => l.traffic.bytesIn),
      ['listener'],
    ),
    c(
      'courier_network_sent_bytes_total',
      'Bytes sent by listener.',
      byListener((l) => l.traffic.bytesOut),
      ['listener'],
    ),
    c(
      'courier_packets_received_total',
      'MQTT packets received by type.',
      byType((s) => s.traffic.packetsIn),
      ['type'],
    ),
    c(
      'courier_packets_sent_total',
      'MQTT packets sent by type.',
      byType((s) => s.traffic.packetsOut),
      ['type'],
    ),
    c(
      'courier_messages_received_total',
      'PUBLISH packets received from clients by QoS.',
      byQos((s) => s.traffic.publishIn),
      ['qos'],
    ),
    c(
      'courier_messages_sent_total',
      'PUBLISH packets sent to clients by QoS.',
      byQos((s) => s.traffic.publishOut),
      ['qos'],
    ),
    c('courier_publish_received_bytes_total', 'Payload bytes of PUBLISH packets received.', (s) => s.traffic.publishBytesIn),
    c('courier_publish_sent_bytes_total', 'Bytes of PUBLISH packets sent (on the wire).', (s) => s.traffic.publishBytesOut),
    c('courier_messages_routed_total', 'Messages routed (from clients, wills and the broker itself).', (s) => s.messagesIn),
    c('courier_messages_delivered_total', 'Deliveries of routed messages to sessions.', (s) => s.messagesOut),
    c('courier_messages_unrouted_total', 'Messages that matched no subscriber.', (s) => s.messagesUnrouted),
    c(
      'courier_messages_dropped_total',
      'Messages dropped on their way to a subscriber, by reason.',
      (s) => DROP_REASONS.map((reason): [Labels, number] => [{ reason }, s.dropped[reason]]),
      ['reason'],
    ),
    c(
      'courier_refusals_total',
      'Connections, publishes and subscriptions refused, by reason.',
      (s) => REFUSAL_REASONS.map((reason): [Labels, number] => [{ reason }, s.refused[reason]]),
      ['reason'],
    ),
    c(
      'courier_disconnects_total',
      'Connections ended after CONNECT, by reason.',
      (s) => DISCONNECT_REASONS.map((reason): [Labels, number] => [{ reason }, s.disconnects[reason]]),
      ['reason'],
    ),
    c('courier_wills_published_total', 'Wills published.', (s) => s.willsPublished),
    c('courier_sessions_created_total', 'Sessions created.', (s) => s.sessionsCreated),
    c('courier_sessions_resumed_total', 'Sessions resumed by a new connection.', (s) => s.sessionsResumed),
    c('courier_sessions_taken_over_total', 'Connections ended because another took their client id over.', (s) => s.sessionsTakenOver),
    c('courier_sessions_expired_total', 'Sessions ended by their expiry interval.', (s) => s.sessionsExpired),
    ...bridgeSpecs(),
  ];
}

/** One series per configured bridge (none without bridges). */
function bridgeSpecs(): MetricSpec[] {
  const g = (name: string, help: string, read: Read, labels: string[]): MetricSpec => ({ name, help, type: 'gauge', read, labels });
  const c = (name: string, help: string, read: Read, labels: string[]): MetricSpec => ({ name, help, type: 'counter', read, labels });
  const each =
    (f: (b: BridgeStats) => number) =>
    (s: Snapshot): Array<[Labels, number]> =>
      (s.bridges ?? []).map((b): [Labels, number] => [{ bridge: b.name }, f(b)]);
  return [
    g(
      'courier_bridge_up',
      'Whether a bridge is connected to its remote broker (1) or not (0).',
      each((b) => (b.connected ? 1 : 0)),
      ['bridge'],
    ),
    g(
      'courier_bridge_queued_messages',
      'QoS 1/2 messages a bridge holds for its remote (queued and in flight).',
      each((b) => b.queued),
      ['bridge'],
    ),
    c(
      'courier_bridge_connects_total',
      'Connections a bridge made to its remote.',
      each((b) => b.connects),
      ['bridge'],
    ),
    c(
      'courier_bridge_forwarded_total',
      'Messages a bridge forwarded, by direction (out: to the remote, acknowledged; in: from the remote, published here).',
      (s) =>
        (s.bridges ?? []).flatMap(
          (b): Array<[Labels, number]> => [
            [{ bridge: b.name, direction: 'out' }, b.forwardedOut],
            [{ bridge: b.name, direction: 'in' }, b.forwardedIn],
          ],
        ),
      ['bridge', 'direction'],
    ),
    c(
      'courier_bridge_dropped_total',
      'Messages a bridge dropped, by reason (qos0: remote away or backed up; queue_full: QoS 1/2 not queued, its queue full; refused: by the remote; loop: its own message echoed back).',
      (s) =>
        (s.bridges ?? []).flatMap(
          (b): Array<[Labels, number]> => [
            [{ bridge: b.name, reason: 'qos0' }, b.dropped.qos0],
            [{ bridge: b.name, reason: 'queue_full' }, b.dropped.queueFull],
            [{ bridge: b.name, reason: 'refused' }, b.dropped.refused],
            [{ bridge: b.name, reason: 'loop' }, b.dropped.loop],
          ],
        ),
      ['bridge', 'reason'],
    ),
  ];
}

function clusterSpecs(): MetricSpec[] {
  const cs = (s: Snapshot) => s.cluster!;
  const g = (name: string, help: string, read: Read, labels?: string[]): MetricSpec => ({ name, help, type: 'gauge', read, ...(labels ? { labels } : {}) });
  const c = (name: string, help: string, read: Read): MetricSpec => ({ name, help, type: 'counter', read });
  return [
    g('courier_cluster_nodes', 'Live nodes of the cluster, this one included.', (s) => cs(s).nodes),
    g('courier_cluster_available', 'Whether this node reaches Redis (1) or not (0).', (s) => (cs(s).available ? 1 : 0)),
    g('courier_cluster_remote_routes', 'Route entries of other nodes held in memory.', (s) => cs(s).remoteRoutes),
    c('courier_cluster_forwarded_sent_total', 'Messages forwarded to other nodes (one per message and node).', (s) => cs(s).forwardedOut),
    c('courier_cluster_forward_batches_total', 'Inbox entries written (one per destination node and turn).', (s) => cs(s).forwardBatches),
    c('courier_cluster_forwarded_received_total', 'Messages received from other nodes.', (s) => cs(s).forwardedIn),
    c('courier_cluster_forwards_to_gone_nodes_total', 'Messages for a node that had left or died meanwhile.', (s) => cs(s).forwardsToGoneNodes),
    c('courier_cluster_forwards_dropped_lagging_total', 'QoS 0 messages not sent to a node that was behind on its inbox.', (s) => cs(s).forwardsDroppedLagging),
    c('courier_cluster_route_changes_total', 'Route changes this node announced.', (s) => cs(s).routeChanges),
    c('courier_cluster_retained_changes_total', 'Retained changes this node wrote.', (s) => cs(s).retainedChanges),
    c('courier_cluster_rejoins_total', 'Times this node rejoined as a new incarnation.', (s) => cs(s).rejoins),
    c('courier_cluster_redis_disconnects_total', 'Times the connection to Redis was lost.', (s) => cs(s).redisDisconnects),
    c(
      'courier_cluster_self_fences_total',
      'Times this node dropped its clients and sessions (declared dead, cut off from Redis, Redis lost its data).',
      (s) => cs(s).selfFences,
    ),
    c('courier_cluster_takeovers_total', 'Sessions claimed at CONNECT from another node.', (s) => cs(s).sessions?.takeovers ?? 0),
    c('courier_cluster_kicks_total', 'Sessions this node let go because another node claimed them.', (s) => cs(s).sessions?.kicks ?? 0),
    c('courier_cluster_fenced_commits_total', 'Session writes of this node refused by a newer claim.', (s) => cs(s).sessions?.fencedCommits ?? 0),
    c('courier_cluster_sessions_adopted_total', 'Sessions adopted from dead nodes.', (s) => cs(s).sessions?.adopted ?? 0),
    c('courier_cluster_recoveries_total', 'Dead nodes this node recovered.', (s) => cs(s).sessions?.recoveries ?? 0),
    c('courier_cluster_replayed_total', "Messages replayed from dead nodes' inboxes.", (s) => cs(s).sessions?.replayed ?? 0),
    g(
      'courier_cluster_sessions_holding',
      'Sessions that moved here holding their direct deliveries until their previous node has handed back what it still had.',
      (s) => cs(s).sessions?.holding ?? 0,
    ),
    c(
      'courier_cluster_hold_timeouts_total',
      'Moved sessions released without their previous node answering in time (order then best effort).',
      (s) => cs(s).sessions?.holdTimeouts ?? 0,
    ),
    c(
      'courier_cluster_hold_overflows_total',
      'Moved sessions that let go before their previous node answered because their queue was half full (order then best effort; nothing dropped for it).',
      (s) => cs(s).sessions?.holdOverflows ?? 0,
    ),
    g(
      'courier_cluster_totals',
      'Sums over the live nodes of their broker counters, as of the last heartbeat.',
      (s) => Object.entries(cs(s).totals).map(([stat, v]): [Labels, number] => [{ stat }, v]),
      ['stat'],
    ),
  ];
}

/** prom-client (~80 modules with @opentelemetry/api): required by the first Metrics (a scrape), not at import. */
const prom = lazyRequire<typeof import('prom-client')>('prom-client');

export class Metrics {
  readonly registry: Registry = new (prom().Registry)();
  readonly #read: () => Snapshot;
  #snapshot: Snapshot | undefined = undefined;

  constructor(read: () => Snapshot, options: { cluster: boolean }) {
    this.#read = read;
    for (const spec of [...specs(), ...(options.cluster ? clusterSpecs() : [])]) this.#register(spec);
    for (const spec of processSpecs()) this.#register(spec);
    this.#registerLatency();
  }

  /** The sampled delivery latency histogram, from the core's own bucket array (a prom-client Histogram would cost 140+ ns per observation). */
  #registerLatency(): void {
    const name = 'courier_delivery_latency_seconds';
    const help = 'Time from routing to the PUBLISH written to the first subscriber, sampled (1 routed message in 64).';
    const custom = {
      name,
      help,
      type: 'histogram',
      aggregator: 'sum',
      get: () => {
        const l = this.#current().deliveryLatency;
        let cumulative = 0;
        const values = LATENCY_BUCKETS.map((le, i) => {
          cumulative += l.counts[i]!;
          return { labels: { le }, value: cumulative, metricName: `${name}_bucket` };
        });
        values.push({ labels: { le: '+Inf' as unknown as number }, value: l.count, metricName: `${name}_bucket` });
        return Promise.resolve({
          name,
          help,
          type: 'histogram',
          aggregator: 'sum',
          values: [...values, { labels: {}, value: l.sum, metricName: `${name}_sum` }, { labels: {}, value: l.count, metricName: `${name}_count` }],
        });
      },
      reset: () => {},
    };
    this.registry.registerMetric(custom as unknown as Parameters<Registry['registerMetric']>[0]);
  }

  #register(spec: MetricSpec): void {
    const current = (): Snapshot => this.#current();
    const labelNames = spec.labels ?? [];
    const config = { name: spec.name, help: spec.help, labelNames, registers: [this.registry] };
    const { Counter, Gauge } = prom();
    if (spec.type === 'gauge') {
      new Gauge({
        ...config,
        collect() {
          const v = spec.read(current());
          if (typeof v === 'number') this.set(v);
          else {
            this.reset();
            for (const [labels, x] of v) this.set(labels, x);
          }
        },
      });
    } else {
      new Counter({
        ...config,
        collect() {
          const v = spec.read(current());
          this.reset();
          if (typeof v === 'number') this.inc(v);
          else for (const [labels, x] of v) this.inc(labels, x);
        },
      });
    }
  }

  #current(): Snapshot {
    return (this.#snapshot ??= this.#read());
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The exposition text; one snapshot serves the whole scrape. */
  async render(snapshot?: Snapshot): Promise<string> {
    this.#snapshot = snapshot;
    try {
      return await this.registry.metrics();
    } finally {
      this.#snapshot = undefined;
    }
  }
}

/** Metric names and types this broker exposes (for docs and tests). */
export function metricNames(cluster: boolean): Array<{ name: string; type: string; help: string }> {
  return [
    ...[...specs(), ...(cluster ? clusterSpecs() : [])].map((s) => ({ name: s.name, type: s.type, help: s.help })),
    {
      name: 'courier_delivery_latency_seconds',
      type: 'histogram',
      help: 'Time from routing to the PUBLISH written to the first subscriber, sampled (1 routed message in 64).',
    },
  ];
}
