/** The broker's connections: those still open, and how many are not ended (in all, at most at once, per listener). */
import type { Connection } from '../core/connection.js';

export class Connections {
  /**
   * Connections whose stream is still open (a closed connection's socket may still be flushing);
   * those not yet ended are the broker's connections (`count` of them). One set, not two: every
   * entry of a Set costs each idle connection ~40 bytes.
   */
  readonly open = new Set<Connection>();
  count = 0;
  max = 0;
  /** Connections not ended, by listener name. */
  readonly perListener = new Map<string, number>();
  /** Runs when the last open connection is released (set while the broker closes). */
  onAllReleased: (() => void) | undefined = undefined;

  added(conn: Connection): void {
    this.open.add(conn);
    if (++this.count > this.max) this.max = this.count;
    this.perListener.set(conn.info.listener, (this.perListener.get(conn.info.listener) ?? 0) + 1);
  }

  /** Once per connection (Connection.end runs once). */
  closed(c: Connection): void {
    this.count--;
    this.perListener.set(c.info.listener, (this.perListener.get(c.info.listener) ?? 1) - 1);
  }

  /** Its stream is closed. */
  released(c: Connection): void {
    if (this.open.delete(c) && this.open.size === 0) this.onAllReleased?.();
  }

  /** The connections not yet ended (a copy: callers may end them while iterating). */
  connected(): Connection[] {
    const out: Connection[] = [];
    for (const c of this.open) if (!c.ended) out.push(c);
    return out;
  }
}
