/** The Broker's public types: its events, what `publish` listeners see, its stats (re-exported by broker.ts). */
import type { QoS } from '../protocol/constants.js';
import type { MessageProperties } from '../core/message.js';
import type { CoreCounters } from '../core/broker-core.js';
import type { DeliveryCounters } from '../core/session.js';
import type { ClientInfo, LimitCounters } from '../core/connection.js';
import type { ClusterStats } from '../cluster/options.js';
import type { BridgeStats } from '../bridge/index.js';

/** A message as seen by `publish` listeners and accepted by `broker.publish()`. */
export interface PublishedMessage {
  topic: string;
  payload: Buffer;
  qos: QoS;
  retain: boolean;
  properties?: MessageProperties;
}

export interface SubscriptionReport {
  filter: string;
  qos: QoS;
  reasonCode: number;
}

/** Typed events of a Broker. */
export interface BrokerEvents {
  clientConnect: [client: ClientInfo, sessionPresent: boolean];
  clientDisconnect: [client: ClientInfo, reason: string];
  /** Every message routed (client publishes, wills and `broker.publish`); clientId '' for the broker itself. */
  publish: [message: PublishedMessage, clientId: string];
  subscribe: [client: ClientInfo, subscriptions: SubscriptionReport[]];
  unsubscribe: [client: ClientInfo, filters: string[]];
  sessionExpired: [clientId: string];
  error: [err: Error];
}

export interface BrokerStats extends CoreCounters, DeliveryCounters, LimitCounters {
  /** Bytes of queued QoS 1/2 messages across all sessions (limited by limits.maxQueuedBytesTotal). */
  queuedBytesTotal: number;
  /** QoS 1/2 messages dropped because that budget was reached. */
  queueBudgetDrops: number;
  connections: number;
  sessions: number;
  subscriptions: number;
  retained: number;
  /** Present when the broker is a cluster node: this node's cluster counters and the cluster's totals. */
  cluster?: ClusterStats;
  /** Present when bridges are configured: one entry per bridge (docs/bridges.md). */
  bridges?: BridgeStats[];
}
