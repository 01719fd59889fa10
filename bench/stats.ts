/**
 * The small statistics the benchmarks and scripts report: median, nearest-rank percentile, mean.
 * Pure. An empty input gives NaN; a caller that wants another value for "no samples" says so.
 */

/**
 * The median of `xs` (not modified). An even count gives the mean of the two middle values
 * (`'mean'`, the default) or the upper of the two (`'upper'`: always one of the samples, what
 * bench/bridge.ts and bench/client.ts have always reported).
 */
export function median(xs: readonly number[], even: 'mean' | 'upper' = 'mean'): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  if (s.length % 2 === 1 || even === 'upper') return s[mid]!;
  return (s[mid - 1]! + s[mid]!) / 2;
}

/**
 * The nearest-rank percentile of `sorted` (ascending, as given: not sorted here, so a caller that
 * asks for several reads of one sorted array sorts it once): the smallest sample with at least a
 * fraction `q` (0..1) of the samples at or below it; `q` 0 gives the smallest sample.
 */
export function percentile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** `xs` sorted ascending into a new array. */
export function sortedNumbers(xs: readonly number[]): number[] {
  return [...xs].sort((a, b) => a - b);
}

/** The arithmetic mean of `xs`, summed in order. */
export function mean(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}
