/**
 * A session's queue: its outbound QoS 1/2 entries waiting for the window to open or the client
 * to return. What may enter it (the session's limits on count and bytes, drop-oldest or not, the
 * broker's shared byte budget), the byte accounting as entries enter and leave, and the Message
 * Expiry of what waits (the session's deadline, and the purge at that deadline).
 *
 * Plain functions of the session, not methods of an object held per session: delivery calls them
 * as it called the private methods they were, and nothing is allocated. The fields they use are
 * internal to the session's modules (see Session).
 */
import { detach as detachMessage, messageBytes } from './message.js';
import type { Session } from './session.js';
import type { Outbound } from './session-types.js';

/** The queue of every session with nothing queued (frozen: a push must replace it first). */
export const NO_QUEUE: Outbound[] = Object.freeze([]) as unknown as Outbound[];

/** A message with this expiry joined `s`'s queue; true when it is now the earliest. */
export function queuedExpiry(s: Session, expiresAt: number): boolean {
  if (expiresAt === 0 || (s.queueExpiresAt !== 0 && s.queueExpiresAt <= expiresAt)) return false;
  s.queueExpiresAt = expiresAt;
  return true;
}

/** `entry` left `s`'s queue: its bytes no longer count, for the session or the budget. */
export function unqueued(s: Session, entry: Outbound): void {
  const size = messageBytes(entry.message);
  s.queueBytes -= size;
  s.env.budget.used -= size;
}

/** Queues `entry` (into `held` when given, see Session.hold), within the session's and the broker's limits. */
export function enqueue(s: Session, entry: Outbound, held: Outbound[] | undefined): void {
  const limits = s.env.limits;
  const size = messageBytes(entry.message);
  const budget = s.env.budget;
  if (budget.max > 0 && budget.used + size > budget.max) {
    budget.dropped++;
    s.outlet?.dropped?.('budget');
    return;
  }
  while (s.queued >= limits.maxQueuedMessages || s.queueBytes + size > limits.maxQueuedBytes) {
    if (limits.queueFullPolicy === 'drop-oldest' && s.queue.length > s.head) {
      const old = s.queue[s.head]!;
      s.queue[s.head++] = undefined as unknown as Outbound;
      unqueued(s, old);
      s.env.counters.droppedQueueFull++;
      s.outlet?.dropped?.('queue-full');
      s.journal?.removed(s, old);
    } else {
      s.env.counters.droppedQueueFull++;
      s.outlet?.dropped?.('queue-full');
      return;
    }
  }
  // Kept until the window opens or the client returns: only its own bytes (message.ts detach).
  detachMessage(entry.message);
  if (held !== undefined) held.push(entry);
  else {
    if (s.queue === NO_QUEUE) s.queue = [];
    s.queue.push(entry);
  }
  s.queueBytes += size;
  budget.used += size;
  s.journal?.added(s, entry);
  // Expired messages leave the queue at their deadline, not at the next drain: they must not
  // hold the queue's room (or the store's) from live ones while the client is away.
  if (queuedExpiry(s, entry.message.expiresAt)) s.env.host.reschedule(s);
}

/**
 * Drops queued messages whose Message Expiry has passed [MQTT-3.3.2-5]; one in flight stays
 * (its delivery has begun). Recomputes `queueExpiresAt`.
 */
export function dropExpiredEntries(s: Session, now: number): void {
  const queue = s.queue;
  let next = 0;
  let kept: Outbound[] | undefined;
  for (let i = s.head; i < queue.length; i++) {
    const e = queue[i]!;
    const at = e.message.expiresAt;
    if (at !== 0 && at <= now) {
      unqueued(s, e);
      s.env.counters.droppedExpired++;
      s.journal?.removed(s, e);
      kept ??= queue.slice(s.head, i);
      continue;
    }
    if (at !== 0 && (next === 0 || at < next)) next = at;
    if (kept !== undefined) kept.push(e);
  }
  if (kept !== undefined) {
    s.queue = kept;
    s.head = 0;
  }
  s.queueExpiresAt = next;
}
