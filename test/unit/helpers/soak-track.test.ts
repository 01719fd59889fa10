/**
 * The soak run's bookkeeping (scripts/soak/track.ts): sequence sets that find duplicates and gaps,
 * and the growth verdict on RSS samples (a steady rise fails, noise and a one-time step do not).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SeqSet, clearGrowth, trend, type Sample } from '../../../scripts/soak/track.js';

const MiB = 1024 * 1024;

/** 30 minutes of samples every 10 s, RSS from `rss(t seconds)`. */
function samples(rss: (t: number) => number): Sample[] {
  return Array.from({ length: 181 }, (_, i) => ({ t: i * 10, rss: rss(i * 10), anon: 0, self: 0 }));
}

void describe('soak bookkeeping', () => {
  void it('SeqSet counts each sequence number once, reports repeats and grows past its first size', () => {
    const s = new SeqSet();
    for (const seq of [0, 1, 2, 100_000, 5]) assert.equal(s.add(seq), true);
    assert.equal(s.add(2), false);
    assert.equal(s.add(100_000), false);
    assert.equal(s.count, 5);
    assert.equal(s.duplicates, 2);
    assert.equal(s.has(3), false);
    assert.equal(s.has(100_000), true);
    assert.equal(s.has(10_000_000), false);
  });

  void it('trend fits the slope in KiB/min after warm-up', () => {
    // 1 MiB per minute, from a 100 MiB start; the warm-up's spike is left out.
    const t = trend(
      samples((x) => (x < 300 ? 400 * MiB : 100 * MiB + (x / 60) * MiB)),
      300,
    );
    assert.ok(Math.abs(t.slopeKiBPerMin - 1024) < 1, `slope ${t.slopeKiBPerMin}`);
    assert.ok(t.r2 > 0.999);
    assert.equal(t.n, 151);
  });

  void it('a steady rise is growth; flat noise and a one-time step are not', () => {
    const rising = clearGrowth(
      samples((x) => 100 * MiB + x * 10_000 + (x % 50) * 10_000),
      360,
    );
    assert.equal(rising.growing, true, 'about 590 KiB/min over 24 min');
    const flat = clearGrowth(
      samples((x) => 100 * MiB + ((x / 10) % 7) * MiB),
      360,
    );
    assert.equal(flat.growing, false);
    assert.equal(flat.step, false);
    const step = clearGrowth(
      samples((x) => (x < 1000 ? 120 * MiB : 150 * MiB)),
      360,
    );
    assert.equal(step.growing, false);
    assert.equal(step.step, true);
  });
});
