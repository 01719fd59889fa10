/**
 * Reconnect delays: exponential from `initialDelay`, capped at `maxDelay`, with jitter so that
 * clients dropped together do not come back together. The attempt count starts again only after
 * a connection stayed up for `stableAfter` ms (a server that accepts and then kicks at once must
 * not be hammered at the initial delay).
 */
import type { ReconnectOptions } from './types.js';

export class Backoff {
  readonly initialDelay: number;
  readonly maxDelay: number;
  readonly jitter: 'full' | 'equal' | 'none';
  readonly stableAfter: number;
  readonly maxAttempts: number;
  attempt = 0;
  readonly #random: () => number;

  constructor(options: ReconnectOptions = {}, random: () => number = Math.random) {
    this.initialDelay = Math.max(0, options.initialDelay ?? 1000);
    this.maxDelay = Math.max(this.initialDelay, options.maxDelay ?? 30_000);
    this.jitter = options.jitter ?? 'full';
    this.stableAfter = options.stableAfter ?? 10_000;
    this.maxAttempts = options.maxAttempts ?? Infinity;
    this.#random = random;
  }

  /** The delay before the next attempt (and counts the attempt). */
  next(): number {
    const cap = Math.min(this.maxDelay, this.initialDelay * 2 ** Math.min(this.attempt, 30));
    this.attempt++;
    if (this.jitter === 'none') return cap;
    if (this.jitter === 'equal') return cap / 2 + this.#random() * (cap / 2);
    return this.#random() * cap;
  }

  /** A connection ended after being up `upFor` ms: resets the count if it was stable. */
  connectionEnded(upFor: number): void {
    if (upFor >= this.stableAfter) this.attempt = 0;
  }

  get exhausted(): boolean {
    return this.attempt >= this.maxAttempts;
  }
}
