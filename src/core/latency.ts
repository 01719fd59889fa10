/**
 * Delivery latency, sampled: one routed message in `every` (default 64) is marked with a clock
 * reading; when the first subscriber's PUBLISH for it is written to a connection's output, the
 * elapsed time goes into a fixed bucket array. Unsampled messages cost one counter decrement in
 * routing and one pointer comparison per delivery; no clock is read for them.
 */
import { performance } from 'node:perf_hooks';

/** Upper bounds of the buckets, in seconds (the last bucket is +Inf). */
export const LATENCY_BUCKETS: readonly number[] = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export class LatencySampler {
  /** The message being timed (at most one at a time). */
  message: object | undefined = undefined;
  #start = 0;
  #countdown: number;
  readonly #every: number;
  /** Observations per bucket (index LATENCY_BUCKETS.length = above the last bound). */
  readonly counts = new Float64Array(LATENCY_BUCKETS.length + 1);
  sum = 0;
  count = 0;

  constructor(every = 64) {
    this.#every = every;
    this.#countdown = every;
  }

  /** Called once per routed message. */
  routed(m: object): void {
    if (--this.#countdown !== 0) return;
    this.#countdown = this.#every;
    this.message = m;
    this.#start = performance.now();
  }

  /** The sampled message's first PUBLISH was written (the caller compared `message`). */
  delivered(): void {
    this.message = undefined;
    const s = (performance.now() - this.#start) / 1000;
    let i = 0;
    while (i < LATENCY_BUCKETS.length && s > LATENCY_BUCKETS[i]!) i++;
    this.counts[i]!++;
    this.sum += s;
    this.count++;
  }
}
