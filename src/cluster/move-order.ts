/**
 * Order across a session's move between nodes (Cluster II). After node N claims a session from
 * a live node O, some messages for it still come through O: those O handled before it read the
 * kick (its refused commits redirect them), and those O handles after (its tombstone hands them
 * over), among them every message N left to O (ClusterSessions.excluded). A message that N
 * delivered directly meanwhile would overtake them, breaking the per-topic order of
 * [MQTT-4.6.0-5] / [MQTT-4.6.0-6]. So N holds its direct deliveries to the session (journaled,
 * not sent: Session.hold) until O has confirmed that everything sent to it before a barrier has
 * come back:
 *
 * - right after the claim N sends O a barrier (a `b` entry in O's inbox, behind the kick and
 *   behind what N published while its claim was in flight, which went to O only); O answers it
 *   (an `a` entry in N's inbox) once the commits that redirect its leftovers are done, behind
 *   the hand-overs it queued before. O also answers the kick itself (seq 0);
 * - each message N leaves to O after that marks the session; N then sends O another barrier
 *   (behind that message in O's inbox) and O answers it the same way;
 * - N releases the session when the answer to its last barrier came and nothing was left to O
 *   since. What comes back goes ahead of what is held (Session.deliverBack).
 *
 * A node that dies answers through its recovery (the replay answers the kicks and barriers in
 * its inbox after the hand-overs), but only after its lease. If no answer comes within `timeoutMs`
 * (at most a second: the held messages fill the session's queue meanwhile; a lost write), the
 * session is released anyway with a warning: order is then best effort, nothing is lost.
 */
import type { Logger } from '../options.js';

/** What MoveOrder needs of its node. */
export interface MoveOrderOwner {
  /**
   * Queues a barrier for `clientId` to node `nid`'s inbox, behind this node's earlier writes;
   * `gone` runs when that inbox no longer exists (the node left or died).
   */
  mark(nid: number, kind: 'b', clientId: string, seq: number, gone: () => void): void;
  /**
   * The session here starts holding its direct deliveries (no-op when it is not here); it calls
   * `overflow` if it lets go by itself (its queue half full, Session.hold).
   */
  hold(clientId: string, overflow: () => void): void;
  /** The session here stops holding (no-op when it is not here). */
  release(clientId: string): void;
}

interface Waiting {
  /** The node the session came from, which answers the barriers. */
  readonly from: number;
  /** The last barrier sent (0: the kick). */
  sent: number;
  /** A message was left to `from` since that barrier. */
  dirty: boolean;
  /** When the last barrier was sent. */
  at: number;
  /** The kick was answered (seq 0). */
  kickAnswered: boolean;
}

export class MoveOrder {
  readonly #owner: MoveOrderOwner;
  readonly #log: Logger;
  readonly #timeoutMs: number;
  readonly #waiting = new Map<string, Waiting>();
  /** Sessions that let go by themselves (see overflowed): not held again until then. */
  readonly #letGo = new Map<string, number>();
  #seq = 0;
  #flushScheduled = false;
  #sweep: NodeJS.Timeout | undefined = undefined;
  /** Sessions released because no answer came in time. */
  timedOut = 0;
  /** Sessions that let go because their queue was half full before the answer came. */
  overflows = 0;

  constructor(owner: MoveOrderOwner, log: Logger, timeoutMs: number) {
    this.#owner = owner;
    this.#log = log;
    this.#timeoutMs = timeoutMs;
  }

  get size(): number {
    return this.#waiting.size;
  }

  /**
   * This node claimed `clientId` from the live node `from` (which was kicked). A barrier follows
   * at once: messages this node published while its claim was in flight went to `from` only
   * (the session was not here yet), behind the kick; the barrier goes behind them.
   */
  claimed(clientId: string, from: number): void {
    this.#letGo.delete(clientId);
    this.#waiting.set(clientId, { from, sent: 0, dirty: true, at: Date.now(), kickAnswered: false });
    this.#arm();
    this.#schedule();
  }

  /** A message for `clientId` was left to node `from` (it comes back handed over): later direct deliveries wait for it. */
  left(clientId: string, from: number): void {
    const w = this.#waiting.get(clientId);
    if (w === undefined) {
      // Let go for a full queue lately: holding again would only let go again (and warn again).
      const until = this.#letGo.get(clientId);
      if (until !== undefined) {
        if (until > Date.now()) return;
        this.#letGo.delete(clientId);
      }
      this.#waiting.set(clientId, { from, sent: -1, dirty: true, at: Date.now(), kickAnswered: false });
      this.#owner.hold(clientId, () => this.overflowed(clientId));
      this.#arm();
    } else w.dirty = true;
    this.#schedule();
  }

  #schedule(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    process.nextTick(() => this.#flush());
  }

  /** Barriers for the sessions marked this turn (one each). */
  #flush(): void {
    this.#flushScheduled = false;
    const now = Date.now();
    for (const [cid, w] of this.#waiting) {
      if (!w.dirty) continue;
      w.dirty = false;
      const seq = (w.sent = ++this.#seq);
      w.at = now;
      this.#owner.mark(w.from, 'b', cid, seq, () => this.#unheard(cid, seq));
    }
  }

  /**
   * Barrier `seq` of `clientId` found no inbox: its node left or died. Its recovery replays what
   * that inbox held, hand-overs first, then answers the kicks in it (seq 0, for it): that answer
   * is then enough.
   */
  #unheard(clientId: string, seq: number): void {
    const w = this.#waiting.get(clientId);
    if (w === undefined || w.sent !== seq || w.dirty) return;
    w.sent = 0;
    if (w.kickAnswered) this.#release(clientId);
  }

  #release(clientId: string): void {
    this.#waiting.delete(clientId);
    this.#owner.release(clientId);
  }

  /** The session let go by itself before the answer (its queue half full): order is best effort from here. */
  overflowed(clientId: string): void {
    const w = this.#waiting.get(clientId);
    if (w === undefined) return;
    this.#waiting.delete(clientId);
    if (this.#letGo.size > 10_000) this.#letGo.clear();
    this.#letGo.set(clientId, Date.now() + this.#timeoutMs);
    this.overflows++;
    this.#log.warn(
      { clientId, nodeId: w.from },
      'cluster: a moved session filled half its queue waiting for the node it came from; its deliveries go on (order with what that node still hands over is best effort)',
    );
  }

  /** Node `from` answered barrier `seq` of `clientId`. */
  answered(clientId: string, seq: number, from: number): void {
    const w = this.#waiting.get(clientId);
    if (w === undefined || w.from !== from) return;
    if (seq === 0) w.kickAnswered = true;
    if (seq < w.sent || w.dirty) return;
    this.#release(clientId);
  }

  /** The session left this node (kicked, ended): nothing to wait for. */
  dropped(clientId: string): void {
    this.#waiting.delete(clientId);
    this.#letGo.delete(clientId);
  }

  reset(): void {
    this.#waiting.clear();
    this.#letGo.clear();
    this.stop();
  }

  stop(): void {
    if (this.#sweep !== undefined) clearInterval(this.#sweep);
    this.#sweep = undefined;
  }

  #arm(): void {
    if (this.#sweep !== undefined) return;
    this.#sweep = setInterval(() => this.#expire(), Math.max(50, Math.min(1000, this.#timeoutMs / 4)));
    this.#sweep.unref();
  }

  #expire(): void {
    const limit = Date.now() - this.#timeoutMs;
    for (const [cid, w] of this.#waiting) {
      if (w.at > limit) continue;
      this.#waiting.delete(cid);
      this.timedOut++;
      this.#owner.release(cid);
      this.#log.warn(
        { clientId: cid, nodeId: w.from, ms: this.#timeoutMs },
        'cluster: the node a session moved from did not answer in time; its deliveries go on (order with what that node still hands over is best effort)',
      );
    }
    if (this.#waiting.size === 0) this.stop();
  }
}
