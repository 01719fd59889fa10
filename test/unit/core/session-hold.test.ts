/**
 * Session.hold (Cluster II, see src/cluster/move-order.ts): while a session that moved here waits
 * for its previous node to hand back what it still got, QoS 1/2 messages routed here directly
 * are journaled and counted but not sent; what is handed back (deliverBack) goes ahead of them;
 * release() sends the held ones after, in order. Shared-subscription deliveries and QoS 0 are
 * not held.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMessage, type Message } from '../../../src/core/message.js';
import { Session, type Journal, type Outbound, type Outlet, type SessionEnv, type SharedGroup } from '../../../src/core/session.js';
import { defaultSessionLimits, type SessionLimits } from '../../../src/options.js';
import type { QoS } from '../../../src/protocol/constants.js';
import { OutboundJournal } from '../../../src/core/journal.js';
import { MemoryStore } from '../../../src/store/memory.js';
import { queueOrder } from '../../../src/core/session-restore.js';
import type { StoredOutbound } from '../../../src/store/types.js';

function env(limits: Partial<SessionLimits> = {}): SessionEnv {
  return {
    limits: { ...defaultSessionLimits, ...limits },
    budget: { used: 0, max: 0, dropped: 0 },
    counters: { droppedQos0: 0, droppedQueueFull: 0, droppedExpired: 0, droppedTooLarge: 0 },
    host: { reschedule: () => {} },
  };
}

/** A connection that records what it is sent (payloads) and takes `quota` unacknowledged messages. */
function outlet(quota = 100): Outlet & { sent: string[] } {
  const sent: string[] = [];
  return {
    sent,
    version: 5,
    sendQuota: quota,
    congested: () => false,
    sendPublish: (m: Message, qos: QoS) => {
      sent.push(`${m.payload.toString()}@${qos}`);
      return true;
    },
    sendPubrel: () => {},
  };
}

const msg = (p: string, qos: QoS = 1): Message => createMessage('t/x', Buffer.from(p), qos, false, undefined, 'pub', Date.now());

void describe('Session.hold: direct deliveries wait behind what the previous node hands back', () => {
  void it('holds direct QoS 1/2 messages (journaled, counted), sends handed-back ones first, then the held ones in order', () => {
    const journaled: string[] = [];
    const journal: Journal = {
      added: (_s, e: Outbound) => journaled.push(e.message.payload.toString()),
      updated: () => {},
      removed: () => {},
    };
    const s = new Session('c', env());
    s.journal = journal;
    const o = outlet();
    s.attach(o, Date.now());
    s.hold();
    assert.equal(s.holding, true);
    s.deliver(msg('new-1'), 1, false, undefined);
    s.deliver(msg('new-2', 2), 2, false, undefined);
    assert.deepEqual(o.sent, [], 'nothing direct is sent while holding');
    assert.equal(s.queued, 2, 'held messages count as queued (limits, stats)');
    assert.deepEqual(journaled, ['new-1', 'new-2'], 'and are journaled (durable before any acknowledgement)');
    s.deliverBack(msg('old-1'), 1, false, undefined);
    s.deliverBack(msg('old-2'), 1, false, undefined);
    assert.deepEqual(o.sent, ['old-1@1', 'old-2@1'], 'what is handed back goes out at once');
    s.release(Date.now());
    assert.equal(s.holding, false);
    assert.deepEqual(o.sent, ['old-1@1', 'old-2@1', 'new-1@1', 'new-2@2'], 'then the held ones, in order');
    assert.deepEqual(
      journaled.filter((p) => p.startsWith('new')),
      ['new-1', 'new-2'],
      'not journaled again at the release (a refused commit of that would hand them to a newer claimant as new: duplicates)',
    );
    s.deliver(msg('new-3'), 1, false, undefined);
    assert.deepEqual(o.sent.at(-1), 'new-3@1', 'after the release, direct as before');
  });

  void it('offline, with a small window: handed-back messages queue ahead of the held ones', () => {
    const s = new Session('c', env());
    s.hold();
    s.deliver(msg('new-1'), 1, false, undefined);
    s.deliverBack(msg('old-1'), 1, false, undefined);
    s.deliver(msg('new-2'), 1, false, undefined);
    s.deliverBack(msg('old-2'), 1, false, undefined);
    assert.deepEqual(
      [...s.entries()].map((e) => e.message.payload.toString()),
      ['old-1', 'old-2', 'new-1', 'new-2'],
    );
    const o = outlet(1);
    s.attach(o, Date.now());
    assert.deepEqual(o.sent, ['old-1@1'], 'the window opens on the handed-back ones; nothing held leaves while holding');
    s.complete(1, Date.now());
    s.complete(2, Date.now());
    assert.deepEqual(o.sent, ['old-1@1', 'old-2@1']);
    s.complete(3, Date.now());
    assert.deepEqual(o.sent, ['old-1@1', 'old-2@1'], 'held until released');
    s.release(Date.now());
    assert.deepEqual(o.sent, ['old-1@1', 'old-2@1', 'new-1@1']);
  });

  void it('QoS 0 and shared-subscription deliveries are not held; held messages count as queued', () => {
    const s = new Session('c', env({ maxQueuedMessages: 10 }));
    const o = outlet();
    s.attach(o, Date.now());
    s.hold();
    s.deliver(msg('zero', 0), 0, false, undefined);
    const group = { group: 'g', filter: 't/x', members: new Map(), order: [], cursor: 0, sticky: undefined } as SharedGroup;
    s.deliver(msg('shared'), 1, false, undefined, group);
    assert.deepEqual(o.sent, ['zero@0', 'shared@1']);
    s.deliver(msg('a'), 1, false, undefined);
    s.deliver(msg('b'), 1, false, undefined);
    assert.equal(s.queued, 2);
    s.release(Date.now());
    assert.deepEqual(o.sent, ['zero@0', 'shared@1', 'a@1', 'b@1']);
  });

  void it('lets go by itself once its queue is half full, so holding never drops a message (then order is best effort)', () => {
    // The case behind it: a session taken from a worker that was just killed holds until that
    // worker's recovery answers, while the recovery's replay fills its queue (before, the held
    // messages beyond the queue limit were dropped: 320-1,600 lost in the workers kill test).
    const s = new Session('c', env({ maxQueuedMessages: 4 }));
    let overflows = 0;
    s.hold(() => overflows++);
    s.deliver(msg('a'), 1, false, undefined);
    s.deliverBack(msg('old'), 1, false, undefined);
    assert.equal(s.holding, true, 'below half: still holding');
    s.deliver(msg('b'), 1, false, undefined);
    assert.equal(s.holding, false, 'half full: let go');
    assert.equal(overflows, 1, 'and said so once');
    assert.deepEqual(
      [...s.entries()].map((e) => e.message.payload.toString()),
      ['old', 'a', 'b'],
      'nothing dropped; what was held follows what was handed back',
    );
    s.deliver(msg('c'), 1, false, undefined);
    s.deliver(msg('d'), 1, false, undefined);
    assert.equal(s.queued, 4, 'd does not fit: the queue limit applies as for any session');
    assert.equal(overflows, 1);
    const o = outlet();
    s.attach(o, Date.now());
    assert.deepEqual(o.sent, ['old@1', 'a@1', 'b@1', 'c@1']);
  });

  void it('stores what is handed back with a queue position below the held ones: a node the session moves to next loads the order it was delivered in', async () => {
    // The --workers move test (shared balance) saw "r17-1 r17-0 r17-2": r17-0 was left to the
    // previous node and came back after r17-1 was held; both were journaled in arrival order,
    // and the next node loaded the session by key [MQTT-4.6.0-5].
    const store = new MemoryStore();
    const journal = new OutboundJournal(store);
    const s = new Session('c', env());
    s.journal = journal;
    s.deliver(msg('queued'), 1, false, undefined);
    s.hold();
    s.deliver(msg('new-1'), 1, false, undefined);
    s.deliverBack(msg('old-1'), 1, false, undefined);
    s.deliver(msg('new-2'), 1, false, undefined);
    s.deliverBack(msg('old-2'), 1, false, undefined);
    s.release(Date.now());
    s.deliverBack(msg('later'), 1, false, undefined);
    const inMemory = [...s.entries()].map((e) => e.message.payload.toString());
    assert.deepEqual(inMemory, ['queued', 'old-1', 'old-2', 'new-1', 'new-2', 'later']);
    journal.flush();
    const loaded = (await store.load()).outbound.get('c')!;
    const keys = loaded.map(([seq]) => seq);
    assert.deepEqual(
      keys,
      [...keys].sort((a, b) => a - b),
      "keys grow in the order of writing (the cluster store tells a fenced node's new entries by key)",
    );
    assert.deepEqual(
      queueOrder(loaded).map(([, e]) => e.message!.payload.toString()),
      inMemory,
      'loaded in the order of delivery',
    );
  });

  void it('handed back to a connected session with room: sent at once, stored below the held ones too', async () => {
    const store = new MemoryStore();
    const journal = new OutboundJournal(store);
    const s = new Session('c', env());
    s.journal = journal;
    s.attach(outlet(), Date.now());
    s.hold();
    s.deliver(msg('new-1'), 1, false, undefined);
    s.deliverBack(msg('old-1'), 1, false, undefined);
    journal.flush();
    const stored = queueOrder((await store.load()).outbound.get('c')!).map(([, e]) => `${e.message!.payload.toString()}#${e.packetId ?? 0}`);
    assert.deepEqual(stored, ['old-1#1', 'new-1#0']);
  });

  void it('queueOrder: by position where an entry has one, else by key; stable; the same array when none has one', () => {
    const e = (order?: number): StoredOutbound => ({ messageId: 1, qos: 1, retain: false, ...(order === undefined ? {} : { order }) });
    const plain: Array<[number, StoredOutbound]> = [
      [3, e()],
      [7, e()],
    ];
    assert.equal(queueOrder(plain), plain);
    const mixed: Array<[number, StoredOutbound]> = [
      [10, e()],
      [2000, e()],
      [2001, e(1001)],
      [2002, e()],
      [2003, e(1002)],
    ];
    assert.deepEqual(
      queueOrder(mixed).map(([k]) => k),
      [10, 2001, 2003, 2000, 2002],
    );
  });
});
