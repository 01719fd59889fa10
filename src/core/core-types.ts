/** What the core shows the rest of the broker: its observer, live connections, counters and session filters. */
import type { Message } from './message.js';

/** What the core tells the outside world (the Broker turns these into events). */
export interface CoreObserver {
  publish(m: Message, clientId: string): void;
  sessionExpired(clientId: string): void;
}

/** A live connection as the core sees it: something it can end when another takes its session over. */
export interface LiveConnection {
  takeover(): void;
  /** Closed because this node can no longer serve the session (5.0: DISCONNECT 0x8B), dropping output not yet committed: the client goes elsewhere. */
  fence(): void;
}

export interface CoreCounters {
  messagesIn: number;
  messagesOut: number;
  willsPublished: number;
  sessionsExpired: number;
  /** Messages published here that matched no subscriber (on this node). */
  messagesUnrouted: number;
  sessionsCreated: number;
  sessionsResumed: number;
  /** Live connections ended because another connection took their client id over. */
  sessionsTakenOver: number;
}

/** Which sessions a forwarded message may reach (cluster recovery of a dead node; see src/cluster/node.ts). */
export interface SessionFilter {
  readonly only?: ReadonlySet<string>;
  readonly exclude?: ReadonlySet<string>;
  /** Handed back by a session's previous node (Session.deliverBack): ahead of what the session holds. */
  readonly back?: boolean;
}
