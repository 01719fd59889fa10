/**
 * When to restart a worker that died, and when to stop trying (pure: the primary feeds it events
 * with their times). A worker that dies before it was ready, or sooner than `stableMs` after it
 * became ready, adds one to its run of failures; one that ran longer starts a new run. Each
 * restart waits `baseMs * 2^(failures-1)` (at most `maxDelayMs`); after `maxFailures` failures
 * in a run the primary gives up (stops everything and exits non-zero) instead of crash-looping.
 */
export interface RestartPolicyOptions {
  baseMs: number;
  maxDelayMs: number;
  stableMs: number;
  maxFailures: number;
}

export const defaultRestartPolicy: RestartPolicyOptions = { baseMs: 100, maxDelayMs: 5_000, stableMs: 10_000, maxFailures: 5 };

export type RestartDecision = { restart: true; delayMs: number; failures: number } | { restart: false; failures: number };

export class RestartPolicy {
  readonly #readyAt = new Map<number, number>();
  readonly #failures = new Map<number, number>();

  constructor(private readonly options: RestartPolicyOptions = defaultRestartPolicy) {}

  ready(slot: number, now: number): void {
    this.#readyAt.set(slot, now);
  }

  /** A worker exited without being asked to. */
  exited(slot: number, now: number): RestartDecision {
    const readyAt = this.#readyAt.get(slot);
    this.#readyAt.delete(slot);
    const stable = readyAt !== undefined && now - readyAt >= this.options.stableMs;
    const failures = stable ? 1 : (this.#failures.get(slot) ?? 0) + 1;
    this.#failures.set(slot, failures);
    if (failures > this.options.maxFailures) return { restart: false, failures };
    return { restart: true, failures, delayMs: Math.min(this.options.baseMs * 2 ** (failures - 1), this.options.maxDelayMs) };
  }
}
