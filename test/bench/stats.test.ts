/**
 * bench/stats.ts: the median, percentile and mean every benchmark and script reports with.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mean, median, percentile, sortedNumbers } from '../../bench/stats.js';

void describe('median', () => {
  void it('is the middle value of an odd count, whatever the input order', () => {
    assert.equal(median([7]), 7);
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([10, -4, 5, 100, 0]), 5);
  });

  void it('sorts numerically, not as strings', () => {
    assert.equal(median([100, 9, 20]), 20);
  });

  void it('is the mean of the two middle values of an even count by default', () => {
    assert.equal(median([4, 1, 3, 2]), 2.5);
    assert.equal(median([1, 2]), 1.5);
    assert.equal(median([5, 5, 1, 9]), 5);
  });

  void it("is the upper of the two middle values of an even count with 'upper'", () => {
    assert.equal(median([4, 1, 3, 2], 'upper'), 3);
    assert.equal(median([1, 2], 'upper'), 2);
    assert.equal(median([3, 1, 2], 'upper'), 2);
  });

  void it('leaves its input as it was', () => {
    const xs = [3, 1, 2, 0];
    median(xs);
    assert.deepEqual(xs, [3, 1, 2, 0]);
  });

  void it('is NaN for no values', () => {
    assert.ok(Number.isNaN(median([])));
    assert.ok(Number.isNaN(median([], 'upper')));
  });
});

void describe('percentile (nearest rank)', () => {
  const ten = Float64Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);

  void it('is the smallest sample with at least that fraction at or below it', () => {
    assert.equal(percentile(ten, 0.5), 5);
    assert.equal(percentile(ten, 0.9), 9);
    assert.equal(percentile(ten, 0.91), 10);
    assert.equal(percentile(ten, 0.99), 10);
    assert.equal(percentile(ten, 0.1), 1);
    assert.equal(percentile(ten, 0.11), 2);
  });

  void it('clamps to the smallest and the largest sample', () => {
    assert.equal(percentile(ten, 0), 1);
    assert.equal(percentile(ten, 1), 10);
    assert.equal(percentile(ten, 1.5), 10);
    assert.equal(percentile([42], 0.999), 42);
  });

  void it('reads a plain array as given (the caller sorts)', () => {
    assert.equal(percentile(sortedNumbers([30, 10, 20, 40]), 0.5), 20);
    assert.equal(percentile([30, 10, 20, 40], 0.5), 10);
  });

  void it('is NaN for no samples', () => {
    assert.ok(Number.isNaN(percentile(new Float64Array(0), 0.5)));
    assert.ok(Number.isNaN(percentile([], 0.99)));
  });
});

void describe('sortedNumbers', () => {
  void it('is a new array in ascending numeric order', () => {
    const xs = [10, 9, 100, -1];
    assert.deepEqual(sortedNumbers(xs), [-1, 9, 10, 100]);
    assert.deepEqual(xs, [10, 9, 100, -1]);
  });
});

void describe('mean', () => {
  void it('is the sum over the count', () => {
    assert.equal(mean([1, 2, 3, 4]), 2.5);
    assert.equal(mean([-3]), -3);
  });

  void it('is NaN for no values', () => {
    assert.ok(Number.isNaN(mean([])));
  });
});
