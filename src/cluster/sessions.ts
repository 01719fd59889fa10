/**
 * Cluster II: persistent sessions that survive any node. Session state lives in Redis
 * (RedisStore); this node holds in memory only the sessions it claimed. This module does the
 * cluster side of it:
 *
 * - claim at CONNECT (fenced takeover: the previous owner is kicked through its inbox and every
 *   write it makes for that session from then on is refused by Redis),
 * - kicks and fenced commits (the session moved elsewhere: its copy here is dropped silently,
 *   the node that took it decides the will),
 * - entries handed over by a previous owner after a claim (`r` inbox entries),
 * - recovery of a dead node: adopt its sessions (wills as stored, exactly once: an adoption is
 *   an atomic claim that only succeeds while the dead node still owns the session), switch its
 *   routes to this node in one route-log entry, and replay what was forwarded to it and not
 *   handled (its inbox, trimmed only together with the writes it caused).
 *
 * What this node remembers of the sessions that moved (tombstones, sessions taken from other
 * nodes, cuts) and what that decides for each message is moved-sessions.ts, which this class extends.
 */
import type { Logger } from '../options.js';
import type { SessionClaim } from '../core/cluster-link.js';
import { fromStored } from '../core/broker-core.js';
import type { StoredOutbound } from '../store/types.js';
import { decodeOutbound } from '../store/outbound-codec.js';
import type { FencedBy, RedisStore } from './redis-store.js';
import type { Keys } from './scripts.js';
import { MoveOrder } from './move-order.js';
import { HANDOVER_MS, MovedSessions, type Tombstone } from './moved-sessions.js';
import { Recovery } from './recovery.js';
import type { SessionCore, SessionCounters, SessionsOwner } from './session-types.js';

export type { SessionCore, SessionCounters, SessionsOwner } from './session-types.js';

export class ClusterSessions extends MovedSessions {
  readonly counters: SessionCounters = {
    takeovers: 0,
    kicks: 0,
    fencedCommits: 0,
    adopted: 0,
    recoveries: 0,
    replayed: 0,
    handedOver: 0,
    handedOverLost: 0,
  };
  readonly #owner: SessionsOwner;
  readonly #store: RedisStore;
  readonly #log: Logger;
  #core: SessionCore | undefined = undefined;
  /** Claims in flight: the inbox waits (see quiet). */
  #claiming = 0;
  #quiet: Array<() => void> = [];
  /**
   * Sessions dropped here because Redis refused a commit for them (claimed elsewhere) before their
   * kick was read: the kick still needs their filters for the tombstone (client id → filters).
   */
  readonly #fencedFilters = new Map<string, { filters: Tombstone['filters']; until: number }>();
  /** Kicks read while a claim of ours may still be in flight: client id → the kick's token seq. */
  readonly #superseded = new Map<string, number>();
  readonly #recovery: Recovery;
  /** Direct deliveries held behind what a session's previous node still hands back. */
  readonly order: MoveOrder;

  constructor(owner: SessionsOwner, store: RedisStore, keys: Keys, log: Logger, leaseMs: number) {
    super(owner);
    this.#owner = owner;
    this.#store = store;
    this.#log = log;
    this.order = new MoveOrder(
      {
        mark: (nid, kind, cid, seq, gone) => owner.mark(nid, kind, cid, seq, undefined, gone),
        hold: (cid, overflow) => this.#c.sessions.get(cid)?.hold(overflow),
        release: (cid) => this.#c.sessions.get(cid)?.release(Date.now()),
      },
      log,
      // A live node answers within a round trip and a commit. A node that died answers only
      // through its recovery, after its lease: meanwhile the held messages count against the
      // session's queue and nothing drains it, so the hold gives up after a second (order with
      // that node's replay is then best effort; nothing is lost).
      Math.min(3 * leaseMs, 1000),
    );
    store.onFenced = (ids, tokens, takers) => this.#fenced(ids, tokens, takers);
    this.#recovery = new Recovery({
      owner,
      store,
      keys,
      log,
      leaseMs,
      counters: this.counters,
      core: () => this.#c,
      hold: () => this.#hold(),
      remember: (from, cid, filters) => this.remember(from, cid, filters),
      members: (from) => this.members(from),
      tombstone: (cid) => this.tombstones.get(cid),
      movedFrom: (dead, sessions) => this.movedFrom(dead, sessions),
      answered: (cid, seq, from) => this.order.answered(cid, seq, from),
      redirected: (cid, entries) => this.redirected(cid, entries),
      passOnRedirected: (to, cid, entries) => this.passOnRedirected(to, cid, entries),
    });
  }

  attach(core: SessionCore): void {
    this.#core = core;
  }

  get #c(): SessionCore {
    if (this.#core === undefined) throw new Error('cluster sessions used before the core was attached');
    return this.#core;
  }

  // ---------------------------------------------------------------------------------------------
  // Claims, kicks, fences

  /**
   * While a claim is in flight (until the session is installed, after the claim's continuations),
   * this node's inbox is not read: a message handled here meanwhile could have been meant for the
   * session being installed and be missed. Undefined when nothing waits.
   */
  quiet(): Promise<void> | undefined {
    if (this.#claiming === 0) return undefined;
    return new Promise((resolve) => this.#quiet.push(resolve));
  }

  /** Holds the inbox (see quiet) until the returned release runs; it lets go after the continuations of that turn have run. */
  #hold(): () => void {
    this.#claiming++;
    return () =>
      setImmediate(() => {
        if (--this.#claiming === 0) for (const w of this.#quiet.splice(0)) w();
      });
  }

  async claim(clientId: string, clean: boolean): Promise<SessionClaim> {
    this.#superseded.delete(clientId);
    this.#fencedFilters.delete(clientId);
    const release = this.#hold();
    let r: Awaited<ReturnType<RedisStore['claim']>>;
    try {
      r = await this.#store.claim(clientId, this.#owner.nid, { clean });
    } finally {
      // Released after the continuations of this claim (the session's install) have run.
      release();
    }
    const kickedBy = this.#superseded.get(clientId);
    this.#superseded.delete(clientId);
    const self = String(this.#owner.nid);
    // Taken back from the node that took it from here (within the hand-over time): that node
    // left to this one what it forwarded here (ClusterSessions.excluded there), so its copy of the
    // session never had those messages, and they are delivered here.
    const back = this.tombstones.get(clientId)?.to === Number(r.previousOwner);
    this.tombstones.delete(clientId);
    // Resumed here (not clean): the session, and whatever its last move still waits for, stay.
    // Its hold ends with the answer it waits for; forgotten, the session would hold every later
    // message while it stays here, and deliver directly what the node it came from still hands
    // over (its forwards are not cut yet).
    if (clean || r.previousOwner !== self) {
      this.order.dropped(clientId);
      this.uncut.delete(clientId);
    }
    // The previous owner hands back what it still gets; direct deliveries wait for its answer to the kick.
    const hold = !clean && r.previousAlive && r.previousOwner !== null && r.previousOwner !== self;
    if (hold) this.order.claimed(clientId, Number(r.previousOwner));
    if (r.previousOwner !== null && r.previousOwner !== self) {
      this.counters.takeovers++;
      const subs = r.loaded?.session?.subscriptions;
      if (!clean && subs !== undefined) {
        const from = Number(r.previousOwner);
        if (!back) this.uncut.set(clientId, { from, pipeline: false, store: false });
        this.remember(
          from,
          clientId,
          subs.map((x) => x.filter),
        );
      }
    }
    return {
      token: r.token,
      self,
      previousOwner: r.previousOwner,
      previousAlive: r.previousAlive,
      session: r.loaded?.session,
      outbound: r.loaded?.outbound ?? [],
      inbound: r.loaded?.inbound ?? [],
      superseded: kickedBy !== undefined && kickedBy > seqOf(r.token),
      hold: hold ? () => this.order.overflowed(clientId) : undefined,
    };
  }

  /** A session of this node ended for good: its ownership record goes (unless someone claimed it since). */
  ended(clientId: string, token: string | undefined): void {
    this.forgetTaken(clientId);
    this.uncut.delete(clientId);
    if (token === undefined) return;
    this.#store.release(clientId, token).catch((err: unknown) => this.#log.warn({ clientId, err: String(err) }, 'cluster: session ownership not released'));
  }

  kicked(clientId: string, token: string, clean: boolean): void {
    const mine = this.#store.fence(clientId);
    const seq = seqOf(token);
    const to = nidOf(token);
    const answer = Number.isFinite(to) && to !== this.#owner.nid;
    if (mine !== undefined && seqOf(mine) >= seq) {
      // A newer claim of ours.
      if (answer) this.#answerKick(to, clientId);
      return;
    }
    if (this.#superseded.size > 10_000) this.#superseded.clear();
    this.#superseded.set(clientId, seq);
    this.counters.kicks++;
    // What still arrives here for it goes to its new node (which leaves those messages to us).
    const s = this.#c.sessions.get(clientId);
    // Dropped already by a refused commit (a message handled here between the claim and this
    // kick): its filters were kept for this moment, or messages the new node leaves to us are lost.
    const fenced = this.#fencedFilters.get(clientId);
    this.#fencedFilters.delete(clientId);
    let filters: Tombstone['filters'] = [];
    if (s !== undefined) {
      if (s.expiryInterval > 0) filters = persistentFilters(s);
    } else if (fenced !== undefined && fenced.until >= Date.now()) filters = fenced.filters;
    // Taken back by the node this one took it from: that node delivers what this one forwards it
    // (this node left those messages to it), so nothing forwarded there is handed over, cut or not.
    // (A refused commit may have dropped the session and set the tombstone already, see #fenced.)
    const earlier = this.tombstones.get(clientId);
    const back = this.tookFrom(to, clientId) || (earlier?.to === to && earlier.cut === true);
    if (!clean && Number.isFinite(to) && filters.length > 0) this.tombstones.set(clientId, { to, filters, until: Date.now() + HANDOVER_MS, cut: back });
    this.#drop(clientId);
    // The claimant holds the session's direct deliveries until this answer, sent once what this
    // node leaves behind for it (redirected by refused commits, handed over) is on its way.
    if (answer) this.#answerKick(to, clientId);
  }

  /**
   * Answers a kick (seq 0) once this node's writes so far are committed, and cuts its forwards
   * to the claimant for that session in both of their streams: the answer goes through the
   * store's commits (as its QoS 2 forwards), a `c` entry through the pipeline (as the others).
   * Until a stream's cut, the claimant does not deliver the session what this node forwards it
   * (this node's copy of the session had it, or its tombstone hands it over, see handOver);
   * after it, it does, and this node hands nothing over that it forwarded there too.
   */
  #answerKick(to: number, clientId: string): void {
    // Not committed: no answer and no cut (the claimant releases the session at its timeout, and
    // this node's tombstone goes on handing over what it forwards there too).
    this.#afterCommit(() => {
      this.#owner.mark(to, 'a', clientId, 0);
      this.#owner.mark(to, 'c', clientId, 0);
      const t = this.tombstones.get(clientId);
      if (t !== undefined && t.to === to) t.cut = true;
    });
  }

  /** Runs `then` once this node's store writes so far are committed (at once when none wait); never if they fail. */
  #afterCommit(then: () => void): void {
    const committed = this.#c.commitPoint();
    if (committed === null) then();
    else committed.then(then).catch(() => {});
  }

  /**
   * Commits refused for sessions claimed elsewhere whose kick this node has not read yet. The
   * session is dropped here now, and what this node still handles for it before the kick (its
   * inbox holds forwards sent before the claim) goes to the node that took it, as after a kick:
   * dropped without a tombstone, those messages reached nobody.
   */
  #fenced(ids: string[], tokens: string[], takers: readonly FencedBy[] | undefined): void {
    ids.forEach((id, i) => {
      this.counters.fencedCommits++;
      // Still held here by the token Redis refused: it moved without a kick read yet.
      if (this.#store.fence(id) !== tokens[i]) return;
      const s = this.#c.sessions.get(id);
      if (s !== undefined && s.expiryInterval > 0) {
        const filters = persistentFilters(s);
        const until = Date.now() + HANDOVER_MS;
        if (this.#fencedFilters.size > 10_000) this.#fencedFilters.clear();
        // Kept for the kick, which names the claim that fenced us (see kicked).
        this.#fencedFilters.set(id, { filters, until });
        const by = takers?.[i];
        const to = by === undefined || by.token === '' ? NaN : nidOf(by.token);
        if (by !== undefined && !by.clean && Number.isFinite(to) && to !== this.#owner.nid && filters.length > 0)
          this.tombstones.set(id, { to, filters, until, cut: this.tookFrom(to, id) });
      }
      this.#drop(id);
    });
  }

  /**
   * The node a session that is no longer here moved on to (its tombstone), if it did: messages
   * handed over or redirected to it here after it left are passed on there (its new node left
   * them to this one).
   */
  movedOn(clientId: string): number | undefined {
    if (this.#c.sessions.has(clientId)) return undefined;
    const t = this.tombstones.get(clientId);
    return t === undefined || t.until < Date.now() ? undefined : t.to;
  }

  /** A barrier from the node a session moved to (answered once this node's leftovers are on their way), or an answer to ours. */
  barrier(kind: 'b' | 'a', clientId: string, from: number, seq: number): void {
    if (kind === 'a' && seq === 0) this.cutStream(clientId, from, 'store');
    if (kind === 'a') this.order.answered(clientId, seq, from);
    else this.#answer(from, clientId, seq);
  }

  /** Answers barrier `seq` of `clientId` to node `to` once this node's store writes so far are committed (their redirects made). */
  #answer(to: number, clientId: string, seq: number, as?: number): void {
    // Not committed: no answer (the waiting node releases the session at its timeout).
    this.#afterCommit(() => this.#owner.mark(to, 'a', clientId, seq, as));
  }

  #drop(clientId: string): void {
    this.order.dropped(clientId);
    this.uncut.delete(clientId);
    this.forgetTaken(clientId);
    // Entries queued for it this turn are journaled but not yet written (the core writes them at
    // its next commit point): written now, they carry the old token, are refused, and their
    // commit hands them to the new owner. Written after the forget below, they would carry no
    // token and land in Redis unseen by the new owner (lost for it, loaded at a later claim).
    void this.#c.commitPoint()?.catch(() => {});
    // Evicted first (its last writes still carry the old token and are refused), then forgotten.
    this.#c.evict(clientId);
    this.#store.forget(clientId);
  }

  redirected(clientId: string, entries: Buffer[]): void {
    const decoded = this.#decode(clientId, entries);
    this.counters.handedOver += decoded.length;
    if (!this.#c.deliverStored(clientId, decoded)) {
      // It moved on from here meanwhile: they follow it.
      const onward = this.movedOn(clientId);
      if (onward !== undefined) {
        this.#passOn(onward, clientId, decoded);
        return;
      }
      this.counters.handedOverLost += decoded.length;
      this.#log.warn({ clientId, entries: decoded.length }, 'cluster: entries handed over for a session no longer here; dropped');
    }
  }
  /** Redirected entries (`r`) of a session that went to node `to`: handed over there; how many. */
  passOnRedirected(to: number, clientId: string, entries: Buffer[]): number {
    const decoded = this.#decode(clientId, entries);
    this.#passOn(to, clientId, decoded);
    return decoded.length;
  }

  #passOn(to: number, clientId: string, entries: readonly StoredOutbound[]): void {
    for (const e of entries) if (e.message !== undefined) this.#owner.handOver(to, clientId, fromStored(e.message));
  }

  /** Outbound entries as redirected (`r`); an unreadable one is logged and skipped. */
  #decode(clientId: string, entries: Buffer[]): StoredOutbound[] {
    const decoded: StoredOutbound[] = [];
    for (const e of entries) {
      try {
        decoded.push(decodeOutbound(e));
      } catch (err) {
        this.#log.error({ clientId, err: String(err) }, 'cluster: unreadable handed-over entry skipped');
      }
    }
    return decoded;
  }

  /** Every session dropped here (this node fenced itself): tokens forgotten. */
  reset(): void {
    this.order.reset();
    this.forgetMoves();
    this.#fencedFilters.clear();
    this.#superseded.clear();
    this.#store.forgetAll();
  }

  // ---------------------------------------------------------------------------------------------
  // Recovery of a dead node (recovery.ts)

  /** Recovers the dead incarnation `dead` unless another node holds its recovery lock. */
  recover(dead: number): Promise<void> {
    return this.#recovery.recover(dead);
  }
}

/** A session's filters that messages are handed over for (shared subscriptions are not: another member takes them). */
function persistentFilters(s: { subscriptions: ReadonlyMap<string, { filter: string; noLocal: boolean }> }): Tombstone['filters'] {
  return [...s.subscriptions.values()].filter((x) => !x.filter.startsWith('$share/')).map((x) => ({ filter: x.filter, noLocal: x.noLocal }));
}

/** The node part of a fencing token "<seq>:<nid>". */
export function nidOf(token: string): number {
  return Number(token.slice(token.indexOf(':') + 1));
}

/** The sequence part of a fencing token "<seq>:<nid>". */
export function seqOf(token: string): number {
  const i = token.indexOf(':');
  return Number(i < 0 ? token : token.slice(0, i));
}
