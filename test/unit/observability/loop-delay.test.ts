/**
 * LoopDelay (src/observability/sampler.ts): libuv's event-loop delay histogram, sampled every
 * LOOP_DELAY_RESOLUTION_MS so that an idle broker wakes rarely, still sees a block of the loop
 * longer than that (the dashboard's alarm fires on a p99 over 100 ms).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LoopDelay, LOOP_DELAY_RESOLUTION_MS } from '../../../src/observability/sampler.js';

function blockFor(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // the event loop is blocked
  }
}

/** Resolves once `read()` reports a max of at least `seconds`, or rejects after `limitMs`. */
function maxReaches(d: LoopDelay, seconds: number, limitMs: number): Promise<number> {
  const start = Date.now();
  return new Promise((resolve, reject) => {
    const check = (): void => {
      const { max } = d.read();
      if (max >= seconds) resolve(max);
      else if (Date.now() - start > limitMs) reject(new Error(`max ${max} s after ${limitMs} ms`));
      else setImmediate(check);
    };
    check();
  });
}

void describe('LoopDelay', () => {
  void it(`records a block of the loop longer than its resolution (${LOOP_DELAY_RESOLUTION_MS} ms)`, async () => {
    const d = new LoopDelay();
    try {
      // The histogram's timer is due one resolution in; blocked for three, it fires two late.
      blockFor(LOOP_DELAY_RESOLUTION_MS * 3);
      const max = await maxReaches(d, LOOP_DELAY_RESOLUTION_MS / 1000, 5_000);
      assert.ok(max < 5, `max ${max} s`);
    } finally {
      d.stop();
    }
  });

  void it('samples no more often than every 50 ms (an idle broker wakes rarely)', () => {
    assert.ok(LOOP_DELAY_RESOLUTION_MS >= 50);
  });
});
