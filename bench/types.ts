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
  idleConnections: number;
  /** Handshakes in flight at once while opening the idle connections (whole generator). */
  connectWindow: number;
  idleSettleMs: number;
  /** Idle time after the burst before the steady RSS is read. */
  idleSteadyMs: number;
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
