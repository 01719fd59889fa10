/**
 * What the cluster tail (tail.ts) needs of the broker core and of its node; the inbox entry
 * handler (inbox-entry.ts) uses the same.
 */
import type { Redis } from 'ioredis';
import type { Message } from '../core/message.js';
import type { SessionFilter } from '../core/broker-core.js';
import type { RouteTable } from './routes.js';

/** What the tail needs of the broker core. */
export interface ClusterCore {
  publishForwarded(m: Message, plain: boolean, groups: readonly string[] | undefined, sessions?: SessionFilter): number;
  /** True while a connected receiver's queue is more than half full (inbox reading slows down). */
  forwardPressure(): boolean;
  applyRetained(m: Message): void;
  dropRetained(topic: string): void;
  readonly retained: { entries(): IterableIterator<[string, Message]> };
}

/** What the tail needs of its node. */
export interface TailOwner {
  readonly redis: Redis;
  readonly routes: RouteTable;
  readonly available: boolean;
  received(count: number): void;
  /** Inbox entries are about to be handled (true): their writes are kept in one atomic commit with the trim; false: nothing was. */
  handling(on: boolean): void;
  /** Inbox entries before `minid` are handled: trimmed together with the writes they caused. */
  handled(inbox: string, minid: string): void;
  /** Another node claimed the session of `clientId` with `token` (with Clean Start when `clean`). */
  kicked(clientId: string, token: string, clean: boolean): void;
  /** Outbound entries of a session this node took over, written by its previous owner after the claim. */
  redirected(clientId: string, entries: Buffer[]): void;
  /** A barrier (`b`) from the node a session moved to, or the answer (`a`) to one of ours (move-order.ts). */
  barrier(kind: 'b' | 'a', clientId: string, from: number, seq: number): void;
  /** The sessions a forward must not reach here: those adopted from a dead node that was also a destination of that turn (its copy is replayed). */
  excluded(destinations: string, topic: string, sender?: number, viaStore?: boolean): ReadonlySet<string> | undefined;
  /** The node a session was claimed from sent the cut (`c`) of its forwards for it (see ClusterSessions.cut). */
  cut(clientId: string, from: number): void;
  /** The sessions adopted from the dead node `nid` (a forward meant for it reaches only them). */
  adoptedFrom(nid: number): ReadonlySet<string> | undefined;
  /** A forward meant for the dead node `nid` (whose sessions this node adopted) was handled. */
  forwardedForDead(nid: number, m: Message): void;
  /** The node a session that is no longer here moved on to (its tombstone), if any: what is handed over to it here follows it. */
  movedOn(clientId: string): number | undefined;
  /** Hands message `m` over to node `nid` for the session of `clientId` (an `o` entry in its inbox). */
  handOver(nid: number, clientId: string, m: Message): void;
  /** A forward to this node was handled (sessions that moved away may need it handed over). */
  forwardedHere(m: Message): void;
  /** A promise while the inbox must wait (a session claim in flight), else undefined. */
  quiet(): Promise<void> | undefined;
  /**
   * Whether this node may still handle its inbox: false once it fenced itself, or when its last
   * heartbeat is so old that it may have been declared dead (it then fences itself). What it does
   * not handle stays in the inbox for the survivor that recovers it.
   */
  serving(): boolean;
}
