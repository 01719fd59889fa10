/**
 * A session's hold (cluster, see src/cluster/move-order.ts): while a session that moved here
 * waits for its previous node to hand back what it still had, QoS 1/2 messages routed here
 * directly wait in the hold (journaled and counted as queued, not sent) behind what is handed
 * back (Session.deliverBack), which goes to the queue ahead of them; the release appends them.
 *
 * Plain functions of the session, called through Session.hold and Session.release (and by
 * delivery while a hold is on); the fields they use are internal to the session's modules.
 */
import type { Session } from './session.js';
import { NO_QUEUE, queuedExpiry } from './session-queue.js';
import type { Outbound } from './session-types.js';

/** A session's hold (see Session.hold). */
export interface Hold {
  /** The direct deliveries held, in order. */
  readonly entries: Outbound[];
  overflow: (() => void) | undefined;
  /**
   * Queue positions set aside when the hold began (Journal.reserve), for what is handed back
   * meanwhile (older than anything held): the next one, and the end of the block (exclusive; 0: none).
   */
  back: number;
  readonly backEnd: number;
}

/**
 * Starts holding `s`'s direct deliveries. `overflow` runs when the session lets go by itself:
 * holding must never be why a message is dropped, so once the session's queue is half full
 * (count or bytes) what is held joins the queue and order becomes best effort (the other half
 * stays for what is handed back, which is older).
 */
export function startHold(s: Session, overflow: (() => void) | undefined): void {
  if (s.currentHold !== undefined) {
    s.currentHold.overflow = overflow;
    return;
  }
  // Positions for what is handed back while holding: at most a queue's worth (the hold lets go at half).
  const count = s.env.limits.maxQueuedMessages;
  const back = s.journal?.reserve?.(count) ?? 0;
  s.currentHold = { entries: [], overflow, back, backEnd: back === 0 ? 0 : back + count };
}

/** Whether `s`'s hold just ended because the queue is half full (see startHold). */
export function holdOverflows(s: Session): boolean {
  const limits = s.env.limits;
  if (s.queued * 2 < limits.maxQueuedMessages && s.queueBytes * 2 < limits.maxQueuedBytes) return false;
  const overflow = s.currentHold?.overflow;
  releaseHold(s, Date.now());
  overflow?.();
  return true;
}

/** Stops holding: what was held joins the queue behind what was handed back, and is sent as the window allows. */
export function releaseHold(s: Session, now: number): void {
  const hold = s.currentHold;
  if (hold === undefined) return;
  s.currentHold = undefined;
  const held = hold.entries;
  if (held.length === 0) return;
  if (s.queue === NO_QUEUE) s.queue = [];
  let earlier = false;
  // Not journaled again behind what was handed back meanwhile: a commit of that refused by a
  // newer claim would hand the entries to the claimant as new while it loaded them already
  // (QoS 2 duplicates in the --workers soak). What was handed back meanwhile is stored with
  // a position below their keys (see startHold), so the stored order is this order.
  for (const e of held) {
    s.queue.push(e);
    if (queuedExpiry(s, e.message.expiresAt)) earlier = true;
  }
  if (earlier) s.env.host.reschedule(s);
  s.drain(now);
}
