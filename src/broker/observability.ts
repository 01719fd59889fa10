/**
 * The broker's observability: per-listener traffic counters, disconnect reasons, the $SYS tree
 * and its client events, the 1 Hz sampler, the admin listener, the Prometheus registry, the
 * inspector, and one snapshot of all of it (src/observability/ does the reading and exporting;
 * this wires it to the broker's state).
 */
import { createMessage } from '../core/message.js';
import type { BrokerCore } from '../core/broker-core.js';
import type { ClientInfo, Connection, LimitCounters } from '../core/connection.js';
import type { BrokerOptions, Limits, Logger } from '../options.js';
import type { BoundAddress, Listener } from '../transport/types.js';
import type { ClusterNode } from '../cluster/node.js';
import { createTrafficCounters, addTraffic, type TrafficCounters } from '../core/traffic.js';
import { DISCONNECT_REASONS, type DisconnectReason, type Snapshot } from '../observability/snapshot.js';
import { Inspector } from '../observability/inspector.js';
import { SysTree } from '../observability/sys.js';
import { LoopDelay, Sampler } from '../observability/sampler.js';
import { Metrics } from '../observability/metrics.js';
import { courierVersion } from '../observability/version.js';
import { AdminServer } from '../admin/server.js';
import type { AdminBackend } from '../admin/types.js';
import type { Bridges } from '../bridge/index.js';
import type { Connections } from './connections.js';
import type { BrokerStats } from './types.js';

/** What the broker shows its observability. */
export interface ObservedBroker {
  readonly options: Readonly<BrokerOptions>;
  readonly core: BrokerCore;
  readonly log: Logger;
  readonly limits: Limits;
  readonly counters: LimitCounters;
  readonly cluster: ClusterNode | undefined;
  readonly bridges: Bridges | undefined;
  readonly listeners: readonly Listener[];
  readonly connections: Connections;
  /** The listeners' bound addresses (in the order of `listeners`; empty before listen). */
  addresses(): readonly BoundAddress[];
  publish: AdminBackend['publish'];
  /** Listening (the admin API's readiness). */
  ready(): boolean;
}

export class BrokerObservability {
  readonly #b: ObservedBroker;
  readonly #traffic = new Map<string, TrafficCounters>();
  /** Connections ended, by reason (the broker counts them). */
  readonly disconnects = Object.fromEntries(DISCONNECT_REASONS.map((r) => [r, 0])) as Record<DisconnectReason, number>;
  readonly #startedAt = Date.now();
  #loopDelay: LoopDelay | undefined = undefined;
  #sys: SysTree | undefined = undefined;
  #sampler: Sampler | undefined = undefined;
  #metrics: Metrics | undefined = undefined;
  #inspector: Inspector | undefined = undefined;
  #admin: AdminServer | undefined = undefined;

  constructor(broker: ObservedBroker) {
    this.#b = broker;
  }

  /** The packet and byte counters of the listener named `listener`. */
  trafficOf(listener: string): TrafficCounters {
    let t = this.#traffic.get(listener);
    if (t === undefined) {
      t = createTrafficCounters();
      this.#traffic.set(listener, t);
    }
    return t;
  }

  get sysEvents(): boolean {
    return this.#sys !== undefined && this.#b.options.sys?.events === true;
  }

  /** `$SYS/broker/events/client/{connected,disconnected}` (sys.events): fixed topics, JSON, not retained. */
  sysEvent(what: 'connected' | 'disconnected', client: ClientInfo, reason: string | undefined): void {
    const body: Record<string, unknown> = {
      clientId: client.clientId,
      username: client.username ?? null,
      ip: client.remoteAddress ?? null,
      transport: client.transport,
      protocolVersion: client.protocolVersion,
      ts: new Date().toISOString(),
    };
    if (reason !== undefined) body.reason = reason;
    this.#b.core.publishLocal(createMessage(`$SYS/broker/events/client/${what}`, Buffer.from(JSON.stringify(body)), 0, false, undefined, '', Date.now()));
  }

  async start(): Promise<void> {
    const interval = this.#b.options.sys?.interval ?? 10;
    // The event-loop delay histogram (a libuv timer) runs only for the admin listener's charts and metrics.
    if (this.#b.options.admin != null) this.#loopDelay ??= new LoopDelay();
    if (interval > 0) {
      this.#sys = new SysTree(
        interval,
        () => this.snapshot(),
        (topic, payload, retain) => this.#b.core.publishLocal(createMessage(topic, Buffer.from(payload), 0, retain, undefined, '', Date.now())),
      );
      this.#sys.start();
    }
    const admin = this.#b.options.admin;
    if (admin == null) return;
    // `metrics` is a getter: prom-client is required at the first scrape, not when the listener starts.
    const metrics = (): Metrics => this.metrics;
    const backend: AdminBackend = {
      log: this.#b.log,
      info: () => this.#info(),
      snapshot: () => this.snapshot(),
      inspector: this.inspector,
      get metrics() {
        return metrics();
      },
      sampler: this.#samplerOf(),
      sys: () => this.#sys?.values() ?? new Map(),
      publish: (m) => this.#b.publish(m),
      ready: () => this.#b.ready(),
    };
    this.#sampler!.start();
    this.#admin = new AdminServer(backend, admin);
    const a = await this.#admin.listen();
    const token = this.#admin.auth.token;
    this.#b.log.info(
      { admin: { host: a.address, port: a.port, url: this.#admin.url } },
      token === undefined
        ? `dashboard: ${this.#admin.url}`
        : `dashboard: ${this.#admin.url}  one-time token: ${token}  (no admin users yet: create one with "courier passwd --admin FILE USER" and set admin.usersFile)`,
    );
  }

  async stop(): Promise<void> {
    this.#sys?.stop();
    this.#sys = undefined;
    this.#sampler?.stop();
    const admin = this.#admin;
    this.#admin = undefined;
    if (admin !== undefined) await admin.close();
    this.#loopDelay?.stop();
    this.#loopDelay = undefined;
  }

  #samplerOf(): Sampler {
    return (this.#sampler ??= new Sampler(() => this.snapshot(), this.#b.limits.maxConnections));
  }

  #info(): ReturnType<AdminBackend['info']> {
    const b = this.#b;
    const addresses = b.addresses();
    return {
      version: courierVersion(),
      node: b.cluster?.stats().node ?? null,
      startedAt: new Date(this.#startedAt).toISOString(),
      cluster: b.cluster !== undefined,
      listeners: b.listeners.map((l, i) => ({
        name: l.name,
        transport: l.transport,
        host: addresses[i]?.host ?? '',
        port: addresses[i]?.port ?? 0,
        connections: b.connections.perListener.get(l.name) ?? 0,
      })),
    };
  }

  /** The admin listener's address and the one-time token while unused (undefined when the listener is off). */
  get admin(): { url: string; port: number; token: string | undefined } | undefined {
    const a = this.#admin;
    if (a === undefined) return undefined;
    return { url: a.url, port: a.address?.port ?? 0, token: a.auth.token };
  }

  /** Operator queries over clients, sessions, subscriptions and retained messages (the admin API uses it). */
  get inspector(): Inspector {
    const core = this.#b.core;
    return (this.#inspector ??= new Inspector({
      core,
      connection: (id) => core.live.get(id) as Connection | undefined,
      connectedAt: (id) => (core.live.get(id) as Connection | undefined)?.connectedAt,
    }));
  }

  /** The Prometheus registry of this broker (created on first use). */
  get metrics(): Metrics {
    return (this.#metrics ??= new Metrics(() => this.snapshot(), { cluster: this.#b.cluster !== undefined }));
  }

  /**
   * One reading of every counter and gauge (src/observability/snapshot.ts). Gauges are computed
   * here, walking sessions and connections: meant for exporters (once a second or less), not
   * for the message path.
   */
  snapshot(): Snapshot {
    const b = this.#b;
    const core = b.core;
    const now = Date.now();
    let online = 0;
    let offline = 0;
    let queued = 0;
    let inflight = 0;
    for (const s of core.sessions.values()) {
      if (s.outlet !== undefined) online++;
      else offline++;
      queued += s.queued;
      inflight += s.inflight.size;
    }
    let outbound = 0;
    for (const c of b.connections.open) if (!c.ended) outbound += c.outputBytes();
    const total = createTrafficCounters();
    for (const t of this.#traffic.values()) addTraffic(total, t);
    const addresses = b.addresses();
    const listeners = b.listeners.map((l, i) => ({
      name: l.name,
      transport: l.transport,
      host: addresses[i]?.host ?? '',
      port: addresses[i]?.port ?? 0,
      connections: b.connections.perListener.get(l.name) ?? 0,
      traffic: this.trafficOf(l.name),
    }));
    const mem = process.memoryUsage();
    const d = core.delivery;
    const k = b.counters;
    const cluster = b.cluster?.stats();
    return {
      time: now,
      version: courierVersion(),
      startedAt: this.#startedAt,
      uptimeSeconds: Math.floor((now - this.#startedAt) / 1000),
      connections: b.connections.count,
      connectionsMax: b.connections.max,
      sessionsOnline: online,
      sessionsOffline: offline,
      subscriptions: core.subscriptions.size,
      sharedSubscriptions: core.shared.size,
      retained: core.retained.size,
      queuedMessages: queued,
      queuedBytes: core.queueBudget.used,
      queuedBytesLimit: core.queueBudget.max,
      inflight,
      outboundBufferBytes: outbound,
      listeners,
      traffic: total,
      messagesIn: core.counters.messagesIn,
      messagesOut: core.counters.messagesOut,
      messagesUnrouted: core.counters.messagesUnrouted,
      willsPublished: core.counters.willsPublished,
      sessionsCreated: core.counters.sessionsCreated,
      sessionsResumed: core.counters.sessionsResumed,
      sessionsTakenOver: core.counters.sessionsTakenOver,
      sessionsExpired: core.counters.sessionsExpired,
      dropped: {
        qos0_backpressure: d.droppedQos0,
        queue_full: d.droppedQueueFull,
        expired: d.droppedExpired,
        too_large: d.droppedTooLarge,
        queue_budget: core.queueBudget.dropped,
      },
      refused: {
        limit: k.connectionsRefused,
        authentication: k.authenticationFailures,
        connect_timeout: k.connectTimeouts,
        rate_limited: k.rateLimited,
        publish_denied: k.publishesDenied,
        subscribe_denied: k.subscriptionsDenied,
        subscription_quota: k.subscriptionQuotaExceeded,
        topic_limit: k.topicLimitExceeded,
      },
      disconnects: { ...this.disconnects },
      eventLoopDelay: this.#loopDelay?.read(now) ?? { p50: 0, p99: 0, max: 0 },
      deliveryLatency: { counts: [...core.latency.counts], sum: core.latency.sum, count: core.latency.count },
      memory: { rss: mem.rss, heapUsed: mem.heapUsed, heapTotal: mem.heapTotal, external: mem.external },
      ...(cluster === undefined ? {} : { cluster }),
      ...(b.bridges === undefined ? {} : { bridges: b.bridges.stats() }),
    };
  }

  /** This node's counters as published to the cluster for its totals. */
  nodeStats(): Record<string, number> {
    const core = this.#b.core;
    return {
      connections: this.#b.connections.count,
      sessions: core.sessions.size,
      subscriptions: core.subscriptions.size,
      messagesIn: core.counters.messagesIn,
      messagesOut: core.counters.messagesOut,
    };
  }

  stats(): BrokerStats {
    const core = this.#b.core;
    const cluster = this.#b.cluster?.stats();
    const bridges = this.#b.bridges?.stats();
    return {
      ...(cluster === undefined ? {} : { cluster }),
      ...(bridges === undefined ? {} : { bridges }),
      ...core.counters,
      ...core.delivery,
      ...this.#b.counters,
      queuedBytesTotal: core.queueBudget.used,
      queueBudgetDrops: core.queueBudget.dropped,
      connections: this.#b.connections.count,
      sessions: core.sessions.size,
      subscriptions: core.subscriptions.size,
      retained: core.retained.size,
    };
  }
}
