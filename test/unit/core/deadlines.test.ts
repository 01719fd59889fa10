/**
 * The deadline scheduler (src/core/deadlines.ts) on a fake clock: every interval the protocol
 * allows (up to 0xFFFFFFFE s) fires exactly at its deadline, never a millisecond early, with one
 * timer at most and no timer longer than Node takes (2^31−1 ms); deadlines are absolute, so a
 * restart that schedules the same times resumes them; cancel and move keep the order.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_MAX_DELAY_MS, Deadlines, MAX_TIMER_MS, type Scheduled } from '../../../src/core/deadlines.js';
import { FakeClock } from '../../helpers/fake-clock.js';

const BASE = Date.UTC(2026, 11, 5, 8, 0, 0);
const DAY = 86_400_000;

class Item implements Scheduled {
  deadlineIndex = -1;
  deadlineAt = 0;
  readonly fired: number[] = [];
  constructor(readonly name: string) {}
}

/** Offsets from BASE across the whole range, in ms: around the Node timer limit and beyond. */
const OFFSETS: Array<[string, number]> = [
  ['1 s', 1_000],
  ['2^31-2 ms', MAX_TIMER_MS - 1],
  ['2^31-1 ms', MAX_TIMER_MS],
  ['2^31 ms', MAX_TIMER_MS + 1],
  ['2^31 ms + 1 s', 2 ** 31 + 1_000],
  ['30 days', 2_592_000 * 1000],
  ['30 days again', 2_592_000 * 1000],
  ['40 days', 40 * DAY],
  ['999,999,999 s', 999_999_999 * 1000],
  ['0xFFFFFFFE s', 0xfffffffe * 1000],
];

function setup(maxDelayMs?: number): { clock: FakeClock; deadlines: Deadlines<Item>; order: Item[] } {
  const clock = new FakeClock(BASE);
  const order: Item[] = [];
  const deadlines = new Deadlines<Item>(
    (item, now) => {
      item.fired.push(now);
      order.push(item);
    },
    clock,
    maxDelayMs,
  );
  return { clock, deadlines, order };
}

/** Advances to each deadline in turn: its items not fired 1 ms before, fired exactly at it. */
function walk(clock: FakeClock, items: Item[]): void {
  const times = [...new Set(items.map((i) => i.deadlineAt))].sort((a, b) => a - b);
  for (const at of times) {
    const due = items.filter((i) => i.deadlineAt === at);
    clock.advanceTo(at - 1);
    for (const item of due) assert.deepEqual(item.fired, [], `${item.name}: not fired 1 ms before its deadline`);
    clock.advanceTo(at);
    for (const item of due) assert.deepEqual(item.fired, [at], `${item.name}: fired once, exactly at its deadline`);
  }
}

void describe('Deadlines', () => {
  for (const [label, cap] of [
    ['the default wait cap (1 h)', undefined],
    ['the Node limit as the cap', MAX_TIMER_MS],
  ] as const) {
    void it(`fires every deadline from 1 s to 0xFFFFFFFE s exactly, one timer at most, none longer than 2^31-1 ms (${label})`, () => {
      const { clock, deadlines, order } = setup(cap);
      const items = OFFSETS.map(([name]) => new Item(name));
      // Scheduled out of order: the heap sorts them.
      for (const i of [5, 9, 0, 3, 8, 1, 6, 2, 7, 4]) deadlines.schedule(items[i]!, BASE + OFFSETS[i]![1]);
      assert.equal(deadlines.size, OFFSETS.length);
      assert.equal(deadlines.next, BASE + 1_000);
      walk(clock, items);
      assert.deepEqual(
        order.map((i) => i.fired[0]! - BASE),
        OFFSETS.map(([, ms]) => ms),
        'in deadline order',
      );
      assert.equal(deadlines.size, 0);
      assert.equal(clock.pending, 0, 'no timer left once nothing is scheduled');
      assert.equal(clock.maxPending, 1, 'never more than one timer');
      // The wait is capped, so the timer is re-armed on the way (FakeClock refuses > 2^31-1 ms).
      const waits = Math.ceil((0xfffffffe * 1000) / (cap ?? DEFAULT_MAX_DELAY_MS));
      assert.ok(clock.set >= waits && clock.set <= waits + 4 * OFFSETS.length, `${clock.set} timers for ${waits} capped waits`);
    });
  }

  void it('resumes absolute deadlines after a restart: one that passed while down fires at once, the others exactly', () => {
    const a = setup();
    const names = ['passed while down', '30 days', '999,999,999 s', '0xFFFFFFFE s'];
    const at = [BASE + 15 * DAY, BASE + 30 * DAY, BASE + 999_999_999_000, BASE + 0xfffffffe * 1000];
    const before = names.map((n) => new Item(n));
    before.forEach((item, i) => a.deadlines.schedule(item, at[i]!));
    a.clock.advanceTo(BASE + 10 * DAY);
    assert.deepEqual(a.order, []);
    a.deadlines.stop();
    assert.equal(a.clock.pending, 0, 'stop() leaves no timer');

    // Down for 10 days; the store gives back the same absolute deadlines.
    const b = setup();
    b.clock.jumpTo(BASE + 20 * DAY);
    const after = names.map((n) => new Item(n));
    after.forEach((item, i) => b.deadlines.schedule(item, at[i]!));
    b.clock.advanceTo(BASE + 20 * DAY + 1);
    assert.deepEqual(after[0]!.fired, [BASE + 20 * DAY + 1], 'the deadline passed while down fires on the first tick');
    walk(b.clock, after.slice(1));
    assert.equal(b.clock.maxPending, 1);
  });

  void it('cancel and move keep the heap in order (random operations against a sorted model)', () => {
    const { clock, deadlines, order } = setup(MAX_TIMER_MS);
    let seed = 12345;
    const rand = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    const items = Array.from({ length: 300 }, (_, i) => new Item(`i${i}`));
    const model = new Map<Item, number>();
    for (let op = 0; op < 5000; op++) {
      const item = items[rand(items.length)]!;
      if (rand(4) === 0) {
        deadlines.cancel(item);
        model.delete(item);
        assert.equal(item.deadlineIndex, -1);
      } else {
        const at = BASE + 1 + rand(0xfffffffe) * 1000;
        deadlines.schedule(item, at);
        model.set(item, at);
      }
      assert.equal(deadlines.size, model.size);
    }
    const expected = [...model].sort((x, y) => x[1] - y[1]);
    assert.equal(deadlines.next, expected[0]?.[1]);
    clock.advanceTo(BASE + 0xfffffffe * 1000 + 1);
    assert.deepEqual(
      order.map((i) => [i.name, i.fired]),
      expected.map(([i, at]) => [i.name, [at]]),
      'exactly the scheduled items fired, each once at its last deadline, in deadline order',
    );
  });

  void it('an item may reschedule itself when due; a cancelled one never fires', () => {
    const clock = new FakeClock(BASE);
    const seen: number[] = [];
    const gone = new Item('gone');
    const deadlines: Deadlines<Item> = new Deadlines<Item>((item, now) => {
      seen.push(now - BASE);
      if (seen.length < 3) deadlines.schedule(item, now + 2 ** 31);
    }, clock);
    deadlines.schedule(new Item('again'), BASE + 5_000);
    deadlines.schedule(gone, BASE + 6_000);
    deadlines.cancel(gone);
    clock.advanceTo(BASE + 10 * 2 ** 31);
    assert.deepEqual(seen, [5_000, 5_000 + 2 ** 31, 5_000 + 2 ** 32]);
    assert.deepEqual(gone.fired, []);
    assert.equal(clock.pending, 0);
  });

  void it('a timer that fires before the wall clock reaches the deadline re-arms for the rest', () => {
    const { clock, deadlines } = setup();
    const item = new Item('x');
    deadlines.schedule(item, BASE + 60_000);
    // The wall clock is stepped back 30 s (NTP): the timer, armed for 60 s, fires at wall time +30 s.
    clock.jumpTo(BASE - 30_000);
    clock.advanceTo(BASE + 30_000);
    assert.equal(clock.set, 2, 'the timer fired and was re-armed');
    assert.deepEqual(item.fired, [], 'not due yet by the wall clock');
    clock.advanceTo(BASE + 59_999);
    assert.deepEqual(item.fired, []);
    clock.advanceTo(BASE + 60_000);
    assert.deepEqual(item.fired, [BASE + 60_000]);
  });
});
