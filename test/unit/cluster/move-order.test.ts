/**
 * MoveOrder (src/cluster/move-order.ts) with a fake node: a session claimed from a live node is
 * released when that node answers the kick; a message left to that node afterwards holds the
 * session again and sends one barrier per turn; only the answer to the last barrier, with
 * nothing left since, releases it; answers from another node or to older barriers do not; a
 * node that never answers releases the session at the timeout, with one warning; a session that
 * lets go by itself (its queue half full) is forgotten, with one warning.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MoveOrder } from '../../../src/cluster/move-order.js';
import type { Logger } from '../../../src/options.js';
import { pollUntil } from '../../helpers/wait.js';

function fake(timeoutMs = 60_000) {
  const marks: Array<[number, string, string, number]> = [];
  const gone: Array<() => void> = [];
  const events: string[] = [];
  const warnings: string[] = [];
  const overflows = new Map<string, () => void>();
  const log = { warn: (_o: unknown, msg: string) => warnings.push(msg), error() {}, info() {}, debug() {} } as unknown as Logger;
  const order = new MoveOrder(
    {
      mark: (nid, kind, cid, seq, g) => {
        marks.push([nid, kind, cid, seq]);
        gone.push(g);
      },
      hold: (cid, overflow) => {
        events.push(`hold ${cid}`);
        overflows.set(cid, overflow);
      },
      release: (cid) => events.push(`release ${cid}`),
    },
    log,
    timeoutMs,
  );
  return { order, marks, gone, events, warnings, overflows };
}

const tick = (): Promise<void> => new Promise((r) => process.nextTick(r));

void describe('MoveOrder: barriers between the node a session moved to and the one it came from', () => {
  void it('a claim sends a barrier to the node it came from and waits for its answer (the answer to the kick is not enough)', async () => {
    const f = fake();
    f.order.claimed('c', 3);
    await tick();
    assert.equal(f.marks.length, 1);
    const [nid, kind, cid, seq] = f.marks[0]!;
    assert.deepEqual([nid, kind, cid], [3, 'b', 'c']);
    f.order.answered('c', 0, 3);
    assert.deepEqual(f.events, [], 'the answer to the kick: what this node published during its claim may still be on its way');
    f.order.answered('c', seq, 4);
    assert.deepEqual(f.events, [], 'an answer from another node does not count');
    f.order.answered('c', seq, 3);
    assert.deepEqual(f.events, ['release c']);
    assert.equal(f.order.size, 0);
    f.order.stop();
  });

  void it('messages left to the old node hold the session and send one barrier per turn; the last answer releases it', async () => {
    const f = fake();
    f.order.claimed('c', 3);
    await tick();
    f.order.answered('c', f.marks.shift()![3], 3);
    f.order.left('c', 3);
    f.order.left('c', 3);
    assert.deepEqual(f.events, ['release c', 'hold c']);
    await tick();
    assert.equal(f.marks.length, 1, 'one barrier for both');
    const [nid, kind, cid, first] = f.marks[0]!;
    assert.deepEqual([nid, kind, cid], [3, 'b', 'c']);
    f.order.left('c', 3); // left after that barrier went out
    await tick();
    assert.equal(f.marks.length, 2);
    const second = f.marks[1]![3];
    assert.ok(second > first);
    f.order.answered('c', first, 3);
    assert.deepEqual(f.events, ['release c', 'hold c'], 'the answer to an older barrier does not release');
    f.order.left('c', 3);
    f.order.answered('c', second, 3);
    assert.deepEqual(f.events, ['release c', 'hold c'], 'nor one while something was left since');
    await tick();
    f.order.answered('c', f.marks[2]![3], 3);
    assert.deepEqual(f.events, ['release c', 'hold c', 'release c']);
    f.order.stop();
  });

  void it('a session that leaves stops waiting; one whose old node never answers is released at the timeout, with a warning', async () => {
    const f = fake(200);
    f.order.claimed('gone', 3);
    f.order.dropped('gone');
    f.order.claimed('c', 3);
    await pollUntil(() => f.events.length > 0, { timeoutMs: 5000, what: 'release at the timeout' });
    assert.deepEqual(f.events, ['release c']);
    assert.equal(f.order.timedOut, 1);
    assert.equal(f.warnings.length, 1);
    f.order.stop();
  });

  void it('a session that lets go by itself (its queue half full) stops waiting, with one warning and no release', async () => {
    const f = fake(200);
    f.order.left('c', 3);
    await tick();
    assert.deepEqual(f.events, ['hold c']);
    f.overflows.get('c')!();
    assert.equal(f.order.overflows, 1);
    assert.equal(f.order.size, 0);
    assert.equal(f.warnings.length, 1);
    f.order.answered('c', f.marks[0]![3], 3);
    assert.deepEqual(f.events, ['hold c'], 'the late answer releases nothing');
    f.order.left('c', 3);
    assert.deepEqual(f.events, ['hold c'], 'a message left to the old node soon after does not hold it again (it would only let go again)');
    await pollUntil(
      () => {
        f.order.left('c', 3);
        return f.events.length > 1;
      },
      { timeoutMs: 5000, what: 'held again after the timeout' },
    );
    assert.deepEqual(f.events, ['hold c', 'hold c']);
    f.order.stop();
  });

  void it('a barrier that finds no inbox (the node left or died) waits for the answer to the kick its recovery sends instead', async () => {
    const f = fake();
    f.order.claimed('c', 3);
    await tick();
    f.gone[0]!();
    assert.deepEqual(f.events, []);
    f.order.answered('c', 0, 3);
    assert.deepEqual(f.events, ['release c'], 'released by the answer to the kick');
    const g = fake();
    g.order.claimed('d', 3);
    await tick();
    g.order.answered('d', 0, 3);
    assert.deepEqual(g.events, [], 'the kick answered first: still waiting for the barrier');
    g.gone[0]!();
    assert.deepEqual(g.events, ['release d'], 'then the barrier finds no inbox: nothing more can come');
    f.order.stop();
    g.order.stop();
  });
});
