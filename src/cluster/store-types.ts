/**
 * The public types of RedisStore (redis-store.ts): its options, what a claim and a session load
 * return, who fenced a client's writes, and its counters.
 */
import type { Redis } from 'ioredis';
import type { StoredMessage, StoredOutbound, StoredSession } from '../store/types.js';

export interface RedisStoreOptions {
  /** An ioredis client (used as is, not closed by close()), or a Redis URL (a client of our own). */
  redis: Redis | string;
  /** Key prefix (default `courier:`), as the cluster's. */
  prefix?: string;
  /** Most writes in one commit call (default 256). */
  maxOpsPerCall?: number;
  /** Most value bytes in one commit call (default 512 KiB). */
  maxBytesPerCall?: number;
  /** With a URL: how long a command may go unanswered before it fails (default 5000 ms). */
  commandTimeoutMs?: number;
  /** Client ids whose writes a commit dropped because their session was claimed elsewhere (and the tokens those writes carried). */
  onFenced?: FencedHandler;
  /**
   * Part of a cluster (Cluster II): claims keep the own sets and kick the previous owner, and a
   * fenced client's new outbound entries are handed to the session's new owner (store-scripts.ts).
   */
  cluster?: boolean;
  /**
   * With a URL: commands wait for a reconnect (and are sent again) instead of failing at once,
   * as the cluster's own writes do; acknowledgements stay withheld meanwhile. Commits are
   * applied once even when sent again after a broken connection (COMMIT checks its call id).
   */
  waitForReconnect?: boolean;
}

/** Who fenced a client's writes: the token of the claim that took its session ('' when unknown), and whether that claim discarded the session (Clean Start). */
export interface FencedBy {
  token: string;
  clean: boolean;
}

/** Client ids whose writes a commit dropped, the tokens those writes carried, and who took each. */
export type FencedHandler = (clientIds: string[], tokens: string[], takers: FencedBy[]) => void;

export interface ClaimResult {
  /** The new fencing token; this store now writes the session with it. */
  token: string;
  /** nid of the previous claimant, null when none. */
  previousOwner: string | null;
  /** A session record was there. */
  present: boolean;
  /** In a cluster: the previous owner (another node) held a lease and was sent a kick. */
  previousAlive: boolean;
  /** When the previous owner was someone else: the session as it was before the claim (before a Clean Start discarded it). */
  loaded: LoadedSession | undefined;
}

export interface LoadedSession {
  /** The record; undefined when there is none (its outbound and inbound sets are then empty too, unless written without one). */
  session: StoredSession | undefined;
  /** Outbound entries in seq order. */
  outbound: Array<[number, StoredOutbound]>;
  inbound: number[];
  /** The messages the outbound entries reference (by message id), read in the same atomic call. */
  messages: Map<number, StoredMessage>;
  fence: string | undefined;
  owner: string | undefined;
}

export interface RedisStoreStats {
  /** Commit calls sent, and writes they carried. */
  calls: number;
  writes: number;
  /** Commit calls that failed (their commit points rejected). */
  failedCalls: number;
  /** Writes dropped by fencing, and the fencing reports made. */
  fencedWrites: number;
  fencedReports: number;
  /** Ownership records released, and the calls that carried them (the releases of one turn go in one call). */
  releases: number;
  releaseCalls: number;
}
