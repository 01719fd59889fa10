/** Shapes shared by the orchestrator (bench/run.ts) and the load generator process. */
import type { Version } from './loadgen/mqtt.js';

export const SCENARIOS = ['fanin', 'fanout', 'qos1', 'latency', 'idle', 'retained', 'durable'] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

export interface ScenarioParams {
  warmupMs: number;
  durationMs: number;
  payloadSize: number;
  version: Version;
  /** Worker threads in the generator (all pinned to the generator's CPU). */
  workers: number;
  faninPublishers: number;
  fanoutSubscribers: number;
  qos1Pairs: number;
  qos1Window: number;
  latencyRate: number;
  /**
   * Latency: warm-up before the window. Longer than the throughput scenarios' because V8 keeps
   * compiling a JIT's hot path on background threads for the first seconds at 5k msg/s, and
   * those threads share the broker's CPU: the window is to measure the broker running, not
   * starting (what the first seconds cost is what `--latency-warmup 1` shows).
   */
  latencyWarmupMs: number;
  idleConnections: number;
  /** Handshakes in flight at once while opening the idle connections (whole generator). */
  connectWindow: number;
  idleSettleMs: number;
  /** Idle time after the burst before the steady RSS is read. */
  idleSteadyMs: number;
  /** Idle: at least this many generator processes (connect.c) share the connections (0 = as few as the cap allows). */
  idleProcesses: number;
  /** Idle: most connections one generator process opens (its file descriptor limit, less a margin). */
  idleProcessCap: number;
  /** Idle: destination addresses 127.0.0.1.. to spread over (the broker listens on all, 0.0.0.0, when > 1). */
  idleDests: number;
  retainedTopics: number;
  /** QoS 0 flood: messages per write(). */
  batch: number;
  /** Fan-in QoS 0: messages per publisher sent but not yet received by the subscriber. */
  faninWindow: number;
  /** Fan-out QoS 0: messages sent but not yet received by every subscriber. */
  fanoutWindow: number;
}

export interface GeneratorJob {
  scenario: ScenarioName;
  broker: string;
  host: string;
  port: number;
  brokerPid: number;
  /** The broker (a Node process started with --expose-gc) collects garbage on SIGUSR2. */
  gcSignal?: boolean;
  params: ScenarioParams;
}

export interface ScenarioResult {
  scenario: ScenarioName;
  broker: string;
  metrics: Record<string, number | null>;
  notes: string[];
  error?: string;
  skipped?: string;
}
