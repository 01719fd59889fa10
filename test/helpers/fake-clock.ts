/**
 * A fake Clock for Deadlines (src/core/deadlines.ts): time moves only when a test says so, and
 * `advanceTo` runs the timers due on the way in order, each at exactly its time. Like Node, the
 * timers run on their own (monotonic) clock and `now()` is the wall clock, which `jumpTo` can
 * step without moving the timers. It refuses what a real Node timer would not take: delays
 * above 2^31−1 ms or below 1 ms.
 */
import type { Clock } from '../../src/core/deadlines.js';
import { MAX_TIMER_MS } from '../../src/core/deadlines.js';

interface FakeTimer {
  at: number;
  fn: () => void;
}

export class FakeClock implements Clock {
  /** Timer clock; the wall clock is it plus #offset. */
  #mono = 0;
  #offset: number;
  readonly #timers = new Set<FakeTimer>();
  /** Timers set so far, and the largest number pending at once. */
  set = 0;
  maxPending = 0;

  constructor(start: number) {
    this.#offset = start;
  }

  get pending(): number {
    return this.#timers.size;
  }

  now(): number {
    return this.#mono + this.#offset;
  }

  setTimer(fn: () => void, ms: number): unknown {
    if (!(ms >= 1 && ms <= MAX_TIMER_MS) || !Number.isInteger(ms)) throw new RangeError(`a Node timer cannot wait ${ms} ms`);
    const t: FakeTimer = { at: this.#mono + ms, fn };
    this.#timers.add(t);
    this.set++;
    if (this.#timers.size > this.maxPending) this.maxPending = this.#timers.size;
    return t;
  }

  clearTimer(handle: unknown): void {
    this.#timers.delete(handle as FakeTimer);
  }

  /** Moves time to `t`, running every timer due by then at its own time, earliest first. */
  advanceTo(wall: number): void {
    const t = wall - this.#offset;
    for (;;) {
      let first: FakeTimer | undefined;
      for (const timer of this.#timers) if (timer.at <= t && (first === undefined || timer.at < first.at)) first = timer;
      if (first === undefined) break;
      this.#timers.delete(first);
      this.#mono = first.at;
      first.fn();
    }
    this.#mono = t;
  }

  /** Sets the wall clock without running timers (a clock step, or time passing while the broker was down). */
  jumpTo(wall: number): void {
    this.#offset = wall - this.#mono;
  }
}
