/**
 * What ClusterSessions (sessions.ts), its hand-over bookkeeping (moved-sessions.ts) and the
 * recovery of dead nodes (recovery.ts) need of the broker core and of their node, and the
 * counters they keep.
 */
import type { Redis } from 'ioredis';
import type { BrokerCore } from '../core/broker-core.js';
import type { Message } from '../core/message.js';
import type { RouteTable } from './routes.js';

/** What cluster sessions need of the broker core. */
export type SessionCore = Pick<BrokerCore, 'sessions' | 'evict' | 'restoreSession' | 'deliverStored' | 'publishForwarded' | 'commitPoint' | 'forwardPressure'>;

/** What cluster sessions need of their node. */
export interface SessionsOwner {
  readonly nid: number;
  /**
   * This incarnation may act for its sessions (joined, not fenced). A recovery that outlives it
   * (the node fenced itself or joined again meanwhile) must take nothing into memory: what it
   * adopted in Redis belongs to the old incarnation, whose own recovery hands it on.
   */
  readonly standing: boolean;
  readonly redis: Redis;
  readonly routes: RouteTable;
  /** While on, this node's new interest is collected (for the route switch) instead of announced. */
  collectInterest(on: boolean): void;
  /** The filters collected so far (and forgets them). */
  takeCollected(): string[];
  /** Queues `m` for the session `clientId` on node `nid` only (an `o` inbox entry), with this turn's writes. */
  handOver(nid: number, clientId: string, m: Message): void;
  /** Queues a barrier or an answer for a moved session to node `nid`, behind this turn's writes (move-order.ts); `as` a dead node in its recovery. */
  mark(nid: number, kind: 'b' | 'a' | 'c', clientId: string, seq: number, as?: number, gone?: () => void): void;
}

export interface SessionCounters {
  /** Sessions claimed at CONNECT from another node, kicks obeyed, commits refused by a fence. */
  takeovers: number;
  kicks: number;
  fencedCommits: number;
  /** Sessions adopted from dead nodes, dead nodes recovered, messages replayed from their inboxes. */
  adopted: number;
  recoveries: number;
  replayed: number;
  /** Entries handed over by a previous owner, and those that found no session here. */
  handedOver: number;
  handedOverLost: number;
}
