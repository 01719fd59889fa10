/**
 * Bookkeeping of the soak run (scripts/soak.ts): which sequence numbers each subscriber got from
 * each publisher (a growing bitmap per pair), RSS samples and their trend. Pure: no I/O.
 */
import { mean, median } from '../../bench/stats.js';

/** Sequence numbers one subscriber received from one publisher: a bitmap that grows. */
export class SeqSet {
  private bits = new Uint8Array(1024);
  count = 0;
  duplicates = 0;

  /** Records `seq`; false when it was already there (a duplicate). */
  add(seq: number): boolean {
    const byte = seq >>> 3;
    if (byte >= this.bits.length) {
      const grown = new Uint8Array(Math.max(this.bits.length * 2, byte + 1));
      grown.set(this.bits);
      this.bits = grown;
    }
    const mask = 1 << (seq & 7);
    if ((this.bits[byte]! & mask) !== 0) {
      this.duplicates++;
      return false;
    }
    this.bits[byte]! |= mask;
    this.count++;
    return true;
  }

  has(seq: number): boolean {
    const byte = seq >>> 3;
    return byte < this.bits.length && (this.bits[byte]! & (1 << (seq & 7))) !== 0;
  }
}

/** One RSS reading: seconds since the start, bytes of the broker's processes, of this process. */
export interface Sample {
  t: number;
  rss: number;
  /** The anonymous part of rss (heaps; the rest is mapped files, e.g. LMDB's data file). */
  anon: number;
  self: number;
}

export interface Trend {
  /** Least-squares slope of the broker's RSS after warm-up, KiB per minute. */
  slopeKiBPerMin: number;
  /** Coefficient of determination of that fit (0..1): how much of the movement is a line. */
  r2: number;
  /** Mean RSS after warm-up, bytes. */
  meanRss: number;
  /** Median of the first and last third of the samples after warm-up, bytes. */
  firstThird: number;
  lastThird: number;
  /** Samples the fit used and the minutes they span. */
  n: number;
  minutes: number;
}

/** The trend of the samples taken at or after `warmupS` seconds (of `rss`, or of another reading). */
export function trend(samples: readonly Sample[], warmupS: number, of: (s: Sample) => number = (s) => s.rss): Trend {
  const pts = samples.filter((s) => s.t >= warmupS);
  const n = pts.length;
  const xs = pts.map((p) => p.t / 60);
  const ys = pts.map((p) => of(p) / 1024);
  // No samples: 0 (not NaN) for the means and the thirds' medians, as the report prints them.
  const mx = n === 0 ? 0 : mean(xs);
  const my = n === 0 ? 0 : mean(ys);
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    sxy += (xs[i]! - mx) * (ys[i]! - my);
    sxx += (xs[i]! - mx) ** 2;
    syy += (ys[i]! - my) ** 2;
  }
  const slope = sxx > 0 ? sxy / sxx : 0;
  const r2 = sxx > 0 && syy > 0 ? (sxy * sxy) / (sxx * syy) : 0;
  const third = Math.max(1, Math.floor(n / 3));
  return {
    slopeKiBPerMin: slope,
    r2,
    meanRss: my * 1024,
    firstThird: n === 0 ? 0 : median(pts.slice(0, third).map(of)),
    lastThird: n === 0 ? 0 : median(pts.slice(n - third).map(of)),
    n,
    minutes: n > 1 ? (pts[n - 1]!.t - pts[0]!.t) / 60 : 0,
  };
}

/**
 * Clear growth: over the window after warm-up the fitted line rises by more than
 * `max(8 MiB, 10 % of the mean)`, the last third's median sits more than half that above the first
 * third's, and the line fitted to the second half of the window alone still rises by more than
 * half the limit. A leak keeps rising; a single step (a heap that grew once under a burst of
 * contention and then stayed) fails the last condition and is reported, not judged a trend.
 */
export function clearGrowth(
  samples: readonly Sample[],
  warmupS: number,
): { growing: boolean; step: boolean; limitBytes: number; fittedBytes: number; secondHalfBytes: number } {
  const t = trend(samples, warmupS);
  const limitBytes = Math.max(8 * 1024 * 1024, 0.1 * t.meanRss);
  const fittedBytes = t.slopeKiBPerMin * 1024 * t.minutes;
  const after = samples.filter((s) => s.t >= warmupS);
  const mid = after.length > 0 ? (after[0]!.t + after[after.length - 1]!.t) / 2 : warmupS;
  const half = trend(samples, mid);
  const secondHalfBytes = half.slopeKiBPerMin * 1024 * half.minutes;
  const rose = t.n >= 6 && fittedBytes > limitBytes && t.lastThird - t.firstThird > limitBytes / 2;
  return { growing: rose && secondHalfBytes > limitBytes / 2, step: rose && secondHalfBytes <= limitBytes / 2, limitBytes, fittedBytes, secondHalfBytes };
}
