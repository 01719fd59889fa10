/**
 * Deadlines: every time-based event of the core (session expiry, will delay, expiry of queued
 * messages) on one binary min-heap keyed by absolute epoch milliseconds, with ONE timer armed
 * for the earliest. An item carries its own heap position (`deadlineIndex`, like the Sweeper's
 * `sweepIndex`), so scheduling, moving and cancelling are O(log n) and allocate nothing: an
 * offline session costs two numbers, not a Timeout object and a closure.
 *
 * Any interval the protocol allows is honoured: a Node timer cannot wait longer than 2^31−1 ms
 * (~24.8 days; a longer `setTimeout` fires after 1 ms with a TimeoutOverflowWarning), so the
 * timer is armed for at most `maxDelayMs` and, when it fires before the earliest deadline, the
 * clock is read again and the timer re-armed. Deadlines are compared with the wall clock
 * (`clock.now()`, epoch ms) when the timer fires, not with the timer's own (monotonic) clock:
 * they come from the store after a restart, and a capped wait also bounds how late a deadline
 * fires after the wall clock was stepped or the machine slept.
 */

/** Time and timers (injectable: tests drive a fake clock through a whole range in no time). */
export interface Clock {
  /** Epoch milliseconds. */
  now(): number;
  /** Calls `fn` once after about `ms` milliseconds (never more than 2^31−1 are asked for). */
  setTimer(fn: () => void, ms: number): unknown;
  clearTimer(handle: unknown): void;
}

/** Date.now and an unref'd setTimeout: a pending deadline never keeps the process alive. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer: (fn, ms) => setTimeout(fn, ms).unref(),
  clearTimer: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/** The longest delay a Node timer takes as asked (2^31−1 ms, ~24.8 days). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** Default longest wait before the clock is read again (one hour; see the module comment). */
export const DEFAULT_MAX_DELAY_MS = 3_600_000;

/** Something with one deadline at a time. */
export interface Scheduled {
  /** Position in the heap (maintained by Deadlines; -1 = not scheduled). */
  deadlineIndex: number;
  /** Epoch ms it is due at (maintained by Deadlines while scheduled). */
  deadlineAt: number;
}

export class Deadlines<T extends Scheduled> {
  readonly #heap: T[] = [];
  readonly #onDue: (item: T, now: number) => void;
  readonly #clock: Clock;
  readonly #maxDelayMs: number;
  #timer: unknown = undefined;
  /** The deadline the timer was armed for (it fires at the latest `maxDelayMs` from arming). */
  #timerAt = Infinity;
  #running = false;
  #stopped = false;

  /**
   * `onDue` is called once per item whose deadline has come, after the item left the heap; it may
   * schedule and cancel items (the item itself included, for a later deadline).
   */
  constructor(onDue: (item: T, now: number) => void, clock: Clock = systemClock, maxDelayMs = DEFAULT_MAX_DELAY_MS) {
    this.#onDue = onDue;
    this.#clock = clock;
    this.#maxDelayMs = Math.max(1, Math.min(MAX_TIMER_MS, Math.floor(maxDelayMs)));
  }

  get size(): number {
    return this.#heap.length;
  }

  /** The earliest deadline (epoch ms), or undefined when nothing is scheduled. */
  get next(): number | undefined {
    return this.#heap[0]?.deadlineAt;
  }

  /** Schedules `item` at epoch ms `at`, or moves it there when it is already scheduled. */
  schedule(item: T, at: number): void {
    const heap = this.#heap;
    let i = item.deadlineIndex;
    const before = item.deadlineAt;
    item.deadlineAt = at;
    if (i < 0) {
      i = heap.length;
      heap.push(item);
      item.deadlineIndex = i;
      this.#up(i);
    } else if (at < before) this.#up(i);
    else this.#down(i);
    this.#arm();
  }

  /** Takes `item` off the heap (nothing happens when it is not scheduled). */
  cancel(item: T): void {
    const i = item.deadlineIndex;
    if (i < 0) return;
    item.deadlineIndex = -1;
    const heap = this.#heap;
    const last = heap.pop()!;
    if (last !== item) {
      heap[i] = last;
      last.deadlineIndex = i;
      this.#down(i);
      this.#up(last.deadlineIndex);
    }
    // An earlier timer than needed just fires and re-arms; with nothing left there is no timer.
    if (heap.length === 0) this.#disarm();
  }

  /** Clears the timer for good (broker shutdown); items stay where they are. */
  stop(): void {
    this.#stopped = true;
    this.#disarm();
  }

  #disarm(): void {
    if (this.#timer !== undefined) this.#clock.clearTimer(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
  }

  /** Makes sure a timer fires by the earliest deadline (not during #fire: it arms when done). */
  #arm(): void {
    if (this.#running || this.#stopped) return;
    const first = this.#heap[0];
    if (first === undefined) return this.#disarm();
    const at = first.deadlineAt;
    if (this.#timer !== undefined && this.#timerAt <= at) return;
    if (this.#timer !== undefined) this.#clock.clearTimer(this.#timer);
    const delay = at - this.#clock.now();
    this.#timerAt = at;
    this.#timer = this.#clock.setTimer(() => this.#fire(), delay < 1 ? 1 : delay > this.#maxDelayMs ? this.#maxDelayMs : delay);
  }

  #fire(): void {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    this.#running = true;
    try {
      const heap = this.#heap;
      const now = this.#clock.now();
      // Early (capped wait, or the wall clock behind the timer's clock): nothing due, re-armed below.
      while (heap.length > 0 && heap[0]!.deadlineAt <= now) {
        const item = heap[0]!;
        this.cancel(item);
        this.#onDue(item, now);
      }
    } finally {
      this.#running = false;
      this.#arm();
    }
  }

  #up(i: number): void {
    const heap = this.#heap;
    const item = heap[i]!;
    const at = item.deadlineAt;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = heap[p]!;
      if (parent.deadlineAt <= at) break;
      heap[i] = parent;
      parent.deadlineIndex = i;
      i = p;
    }
    heap[i] = item;
    item.deadlineIndex = i;
  }

  #down(i: number): void {
    const heap = this.#heap;
    const n = heap.length;
    const item = heap[i]!;
    const at = item.deadlineAt;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && heap[r]!.deadlineAt < heap[l]!.deadlineAt ? r : l;
      const child = heap[c]!;
      if (child.deadlineAt >= at) break;
      heap[i] = child;
      child.deadlineIndex = i;
      i = c;
    }
    heap[i] = item;
    item.deadlineIndex = i;
  }
}
