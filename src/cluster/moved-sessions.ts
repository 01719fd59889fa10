/**
 * Cluster II: what this node remembers of the sessions that moved lately, and what it decides
 * for the messages it handles meanwhile (ClusterSessions, sessions.ts, is the claims, kicks and
 * refused commits that change it):
 *
 * - sessions that moved from here to another node (tombstones): what still arrives here for them
 *   is handed over to their new node,
 * - sessions taken from another node (claimed, or adopted after it died): what that node also
 *   got is left to it, so their copy comes here handed over (or replayed), once (`excluded`),
 * - which of those claims still wait for their previous node's cut in either stream (`uncut`),
 * - sessions of recovered dead nodes that had moved elsewhere (forwards still naming the dead node).
 *
 * These run for each message forwarded while sessions moved lately (`tracking`); ClusterSessions
 * extends this class so that the node reaches them without a hop.
 */
import type { Message } from '../core/message.js';
import { filterMatches } from '../topics/index.js';
import type { MoveOrder } from './move-order.js';
import type { SessionsOwner } from './session-types.js';

/** A session that moved from this node to another: what it subscribed to, for messages still arriving here. */
export interface Tombstone {
  readonly to: number;
  readonly filters: ReadonlyArray<{ filter: string; noLocal: boolean }>;
  readonly until: number;
  /** The kick was answered and the cut sent: what this node forwards to `to` from now on, `to` delivers itself. */
  cut?: boolean;
}

/**
 * How long a session that moved between nodes is remembered on both sides: the new node leaves
 * messages that the old node also got to the old node (which hands them over), so each arrives
 * once; the old node hands over what still arrives for it. Publishers learn of route changes in
 * milliseconds; this bounds the bookkeeping, not the common case.
 */
export const HANDOVER_MS = 10 * 60_000;

export abstract class MovedSessions {
  readonly #owner: Pick<SessionsOwner, 'handOver'>;
  /** Sessions taken from each node (claimed from it, or adopted after it died): client id → until when, and the filters it came with (see excluded / adoptedFrom). */
  readonly #from = new Map<number, Map<string, { until: number; filters: readonly string[] }>>();
  /** Sessions that moved from here to another node: client id → what still arriving here is handed over. */
  protected readonly tombstones = new Map<string, Tombstone>();
  /** Sessions of recovered dead nodes that had moved elsewhere: dead nid → client id → its node and filters (for forwards that still name the dead node). */
  readonly #movedFrom = new Map<number, Map<string, { to: number; filters: string[] }>>();
  /**
   * Sessions claimed from another node whose forwards for them are not cut yet in both streams
   * (see ClusterSessions' answerKick): until then what that node forwards here is not delivered to them here.
   */
  protected readonly uncut = new Map<string, { from: number; pipeline: boolean; store: boolean }>();
  /** The order kept across moves (ClusterSessions.order): `excluded` tells it what is left to another node. */
  abstract readonly order: MoveOrder;

  constructor(owner: Pick<SessionsOwner, 'handOver'>) {
    this.#owner = owner;
  }

  /**
   * A message handled here (forwarded in from another node, or published here with
   * `destinations` the nodes it was forwarded to): the sessions that moved away and match it get
   * it through their new node, unless that node got it in the same step after the cut (see
   * ClusterSessions' answerKick).
   */
  handOver(m: Message, destinations: readonly number[] | undefined): void {
    const now = Date.now();
    for (const [cid, t] of this.tombstones) {
      if (t.until < now) {
        this.tombstones.delete(cid);
        continue;
      }
      if (t.cut === true && destinations !== undefined && destinations.includes(t.to)) continue;
      if (t.filters.some((f) => filterMatches(f.filter, m.topic) && !(f.noLocal && m.origin === cid))) this.#owner.handOver(t.to, cid, m);
    }
  }

  /** A forward meant for the dead node `dead` arrived here (its adopter): the sessions that had moved elsewhere get it handed over. */
  forwardedForDead(dead: number, m: Message): void {
    const moved = this.#movedFrom.get(dead);
    if (moved === undefined) return;
    for (const [cid, h] of moved) if (h.filters.some((f) => filterMatches(f, m.topic))) this.#owner.handOver(h.to, cid, m);
  }

  get handingOver(): boolean {
    return this.tombstones.size > 0;
  }

  /** Whether forwards must be looked at message by message (sessions moved here or away lately). */
  get tracking(): boolean {
    return this.tombstones.size > 0 || this.#from.size > 0;
  }

  /** `excluded` for a message published here and forwarded to `destinations`. */
  excludedFor(destinations: readonly number[], topic: string): ReadonlySet<string> | undefined {
    return this.#from.size === 0 ? undefined : this.excluded(destinations.join(','), topic);
  }

  protected forgetTaken(clientId: string): void {
    for (const m of this.#from.values()) m.delete(clientId);
  }

  protected remember(from: number, clientId: string, filters: readonly string[]): void {
    let m = this.#from.get(from);
    if (m === undefined) this.#from.set(from, (m = new Map()));
    m.set(clientId, { until: Date.now() + HANDOVER_MS, filters: filters.filter((f) => !f.startsWith('$share/')) });
  }

  /** The sessions taken from `from` (still remembered); with `topic`, only those whose filters then matched it. */
  protected members(from: number, topic?: string): Set<string> | undefined {
    const m = this.#from.get(from);
    if (m === undefined) return undefined;
    const now = Date.now();
    const out = new Set<string>();
    for (const [cid, x] of m) {
      if (x.until < now) m.delete(cid);
      else if (topic === undefined || x.filters.some((f) => filterMatches(f, topic))) out.add(cid);
    }
    if (m.size === 0) this.#from.delete(from);
    return out;
  }

  /** Whether this node took `clientId` from node `from` (and still remembers it). */
  protected tookFrom(from: number, clientId: string): boolean {
    return this.#from.get(from)?.has(clientId) === true;
  }

  /** Forwards still naming the recovered dead node `dead` go to these sessions' new nodes for a while. */
  protected movedFrom(dead: number, sessions: Map<string, { to: number; filters: string[] }>): void {
    this.#movedFrom.set(dead, sessions);
    setTimeout(() => this.#movedFrom.delete(dead), HANDOVER_MS).unref();
  }

  /** The node a session was claimed from cut its pipeline of forwards for it (see ClusterSessions' answerKick). */
  cut(clientId: string, from: number): void {
    this.cutStream(clientId, from, 'pipeline');
  }

  protected cutStream(clientId: string, from: number, stream: 'pipeline' | 'store'): void {
    const u = this.uncut.get(clientId);
    if (u === undefined || u.from !== from) return;
    u[stream] = true;
    if (u.pipeline && u.store) this.uncut.delete(clientId);
  }

  /**
   * The sessions here that a message forwarded to `destinations` must not reach directly: those
   * taken from one of those nodes with a filter matching it, since that node got it too and its
   * copy comes here handed over (or replayed), once.
   */
  excluded(destinations: string, topic: string, sender?: number, viaStore = false): ReadonlySet<string> | undefined {
    if (this.#from.size === 0) return undefined;
    let out: Set<string> | undefined;
    // Forwarded by the node a session was claimed from before its cut in this stream: that
    // node's copy of the session had it (committed, so loaded with the claim, or refused and
    // redirected here) or its tombstone hands it over; delivered here too, it would arrive twice.
    if (sender !== undefined && this.uncut.size > 0) {
      const set = this.members(sender, topic);
      if (set !== undefined)
        for (const cid of set) {
          const u = this.uncut.get(cid);
          if (u !== undefined && u.from === sender && !(viaStore ? u.store : u.pipeline)) (out ??= new Set()).add(cid);
        }
    }
    for (const d of destinations.split(',')) {
      const set = this.members(Number(d), topic);
      if (set === undefined || set.size === 0) continue;
      // It comes back handed over: direct deliveries after it wait for it.
      for (const cid of set) this.order.left(cid, Number(d));
      if (out === undefined) out = set;
      else for (const id of set) out.add(id);
    }
    return out;
  }

  adoptedFrom(nid: number): ReadonlySet<string> | undefined {
    return this.members(nid);
  }

  /** Everything remembered of moved sessions forgotten (this node fenced itself). */
  protected forgetMoves(): void {
    this.uncut.clear();
    this.#from.clear();
    this.#movedFrom.clear();
    this.tombstones.clear();
  }
}
