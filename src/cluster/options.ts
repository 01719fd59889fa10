/** Cluster options (config section `cluster`); defaults in one place. */

export interface ClusterOptions {
  /** Redis (or Valkey) URL, e.g. `redis://127.0.0.1:6379`; `rediss://` for TLS. */
  redis: string;
  /** This node's name, unique in the cluster (default: the host name). */
  nodeName: string;
  /** Key prefix, so several clusters can share one Redis. */
  prefix: string;
  /** A node that has not renewed its lease for this long is declared dead (ms). */
  leaseMs: number;
  /** How often a node renews its lease and publishes its counters (ms). */
  heartbeatMs: number;
  /** Unread inbox entries (one per sending node and turn) beyond which a node counts as lagging: others stop sending it QoS 0 messages. */
  inboxSoftLimit: number;
}

export const defaultClusterOptions: Omit<ClusterOptions, 'redis' | 'nodeName'> = {
  prefix: 'courier:',
  leaseMs: 15_000,
  heartbeatMs: 3_000,
  inboxSoftLimit: 10_000,
};

/** What each node counts (summed over live nodes for the cluster totals). */
export interface ClusterCounters {
  /** Messages sent to other nodes (one per message and destination node). */
  forwardedOut: number;
  /** Inbox entries written (one per destination node and event-loop turn). */
  forwardBatches: number;
  /** Messages received from other nodes. */
  forwardedIn: number;
  /** Messages for a node that had left or died meanwhile (its inbox was gone). */
  forwardsToGoneNodes: number;
  /** QoS 0 messages not sent to a node that was behind on its inbox (see inboxSoftLimit). */
  forwardsDroppedLagging: number;
  /** Route changes this node announced. */
  routeChanges: number;
  /** Retained changes this node wrote. */
  retainedChanges: number;
  /** Times this node found itself declared dead and joined again as a new incarnation. */
  rejoins: number;
  /** Times the connection to Redis was lost. */
  redisDisconnects: number;
  /** Times this node dropped its clients and sessions because it could no longer speak for them (declared dead, cut off from Redis, Redis lost its data). */
  selfFences: number;
}

/** Every counter at zero (a node's start). */
export function newClusterCounters(): ClusterCounters {
  return {
    forwardedOut: 0,
    forwardBatches: 0,
    forwardedIn: 0,
    forwardsToGoneNodes: 0,
    forwardsDroppedLagging: 0,
    routeChanges: 0,
    retainedChanges: 0,
    rejoins: 0,
    redisDisconnects: 0,
    selfFences: 0,
  };
}

export interface ClusterStats extends ClusterCounters {
  node: string;
  /** This node's current incarnation id. */
  nodeId: number;
  /** Whether the node can reach Redis now (CONNECTs are refused while not). */
  available: boolean;
  /** Live nodes, this one included. */
  nodes: number;
  /** Route entries (node, filter) of other nodes held in memory. */
  remoteRoutes: number;
  /**
   * Cluster II session counters (takeovers, kicks, adoptions, recoveries), with a RedisStore;
   * `holding`: sessions that moved here holding their direct deliveries behind what their
   * previous node still hands back, `holdTimeouts`: released without its answer,
   * `holdOverflows`: let go early because their queue was half full (move-order.ts).
   */
  sessions?: import('./sessions.js').SessionCounters & { holding: number; holdTimeouts: number; holdOverflows: number };
  /** Sums over the live nodes of their broker counters (connections, messagesIn, ...), as of the last heartbeat. */
  totals: Record<string, number>;
}
