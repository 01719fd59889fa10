/**
 * Session expiry and will delay through the core's deadline scheduler: on a fake clock, across
 * a restart from the store (MemoryStore and LmdbStore), every interval ends its session or sends
 * its will exactly on time, also beyond the 2^31−1 ms a Node timer can wait; and offline
 * sessions hold no timer of their own (100,000 of them, one timer).
 */
import assert from 'node:assert/strict';
import { createHook } from 'node:async_hooks';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { BrokerCore, NEVER_EXPIRES, type CoreObserver } from '../../../src/core/broker-core.js';
import type { Clock } from '../../../src/core/deadlines.js';
import { createMessage, type Message } from '../../../src/core/message.js';
import type { Outlet, Will } from '../../../src/core/session.js';
import { defaultMqttOptions, defaultSessionLimits, noopLogger, type SessionLimits } from '../../../src/options.js';
import { LmdbStore } from '../../../src/store/lmdb.js';
import { MemoryStore } from '../../../src/store/memory.js';
import type { Store } from '../../../src/store/types.js';
import { FakeClock } from '../../helpers/fake-clock.js';

const BASE = Date.UTC(2026, 11, 5, 8, 0, 0);
const DAY = 86_400_000;

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** What the core reported, with the (fake) time it happened. */
class Seen implements CoreObserver {
  readonly wills: Array<[string, number]> = [];
  readonly expired: Array<[string, number]> = [];
  constructor(private readonly clock: Clock) {}
  publish(m: { topic: string }): void {
    if (m.topic.startsWith('will/')) this.wills.push([m.topic.slice(5), this.clock.now()]);
  }
  sessionExpired(clientId: string): void {
    this.expired.push([clientId, this.clock.now()]);
  }
}

function core(store: Store, clock: Clock, seen: CoreObserver, limits: Partial<SessionLimits> = {}): BrokerCore {
  return new BrokerCore(defaultMqttOptions, { ...defaultSessionLimits, ...limits }, store, noopLogger, seen, clock);
}

/** A QoS 1 message to t/x with a Message Expiry Interval (seconds; undefined = none). */
function message(payload: string, now: number, expiry?: number): Message {
  return createMessage('t/x', Buffer.from(payload), 1, false, expiry === undefined ? undefined : { messageExpiryInterval: expiry }, 'pub', now);
}

/** A connection that takes one QoS 1 message at a time and never acknowledges it. */
const stalled: Outlet = {
  version: 5,
  sendQuota: 1,
  congested: () => false,
  sendPublish: () => true,
  sendPubrel: () => {},
};

/** A session that connects (with a will, maybe), subscribes to `t/#` at QoS 1 and goes offline at `now`. */
function offline(c: BrokerCore, clientId: string, expiry: number, now: number, willDelay?: number): void {
  const { session } = c.openSession(clientId, false);
  session.expiryInterval = expiry;
  c.connected(session);
  c.subscribe(session, { filter: 't/#', qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0, subscriptionId: undefined });
  const will: Will | undefined =
    willDelay === undefined
      ? undefined
      : { message: createMessage(`will/${clientId}`, Buffer.from('bye'), 1, false, undefined, clientId, now), delaySeconds: willDelay };
  c.connectionEnded(session, will, now);
}

const stores: Array<{ name: string; open(): () => Store }> = [
  {
    name: 'MemoryStore',
    open() {
      const s = new MemoryStore();
      return () => s;
    },
  },
  {
    name: 'LmdbStore',
    open() {
      const dir = mkdtempSync(path.join(tmpdir(), 'courier-deadlines-'));
      dirs.push(dir);
      return () => new LmdbStore({ dataDir: dir });
    },
  },
];

void describe('session deadlines', () => {
  for (const impl of stores) {
    void it(`[MQTT-3.1.2-23] [MQTT-3.1.3-9] session expiry and will delay of 30 days, 999,999,999 s and 0xFFFFFFFF run on exactly across a restart (${impl.name})`, async () => {
      const reopen = impl.open();
      const clock = new FakeClock(BASE);
      const seen = new Seen(clock);
      let store = reopen();
      await store.open();
      let c = core(store, clock, seen);
      await c.load(clock.now());
      offline(c, 'd30', 2_592_000, BASE);
      offline(c, 'd999', 999_999_999, BASE);
      offline(c, 'never', NEVER_EXPIRES, BASE);
      // Will delay longer than the session: the will goes with the session's end [MQTT-3.1.3-9].
      offline(c, 'will-at-end', 2_592_000, BASE, 40 * 86_400);
      // A session that never ends sends its will after 3,000,000 s (~34.7 days) and stays.
      offline(c, 'will-late', NEVER_EXPIRES, BASE, 3_000_000);
      c.publish(createMessage('t/x', Buffer.from('queued'), 1, false, undefined, 'pub', BASE), 'pub');
      assert.equal(c.sessions.get('d30')?.queued, 1);

      clock.advanceTo(BASE + 10 * DAY);
      assert.deepEqual([seen.wills, seen.expired], [[], []], 'nothing ends in the first 10 days');
      await c.flush();
      c.stop();
      await store.close();

      // Down for 10 days, then loaded from the store at day 20.
      clock.jumpTo(BASE + 20 * DAY);
      store = reopen();
      await store.open();
      c = core(store, clock, seen);
      await c.load(clock.now());
      assert.deepEqual([...c.sessions.keys()].sort(), ['d30', 'd999', 'never', 'will-at-end', 'will-late']);
      assert.equal(c.sessions.get('d30')?.queued, 1, 'the queued message survived');

      clock.advanceTo(BASE + 30 * DAY - 1);
      assert.deepEqual([seen.wills, seen.expired], [[], []], 'nothing ends 1 ms before 30 days');
      clock.advanceTo(BASE + 30 * DAY);
      assert.deepEqual(seen.expired.sort(), [
        ['d30', BASE + 30 * DAY],
        ['will-at-end', BASE + 30 * DAY],
      ]);
      assert.deepEqual(seen.wills, [['will-at-end', BASE + 30 * DAY]]);

      clock.advanceTo(BASE + 3_000_000_000 - 1);
      assert.equal(seen.wills.length, 1);
      clock.advanceTo(BASE + 3_000_000_000);
      assert.deepEqual(seen.wills[1], ['will-late', BASE + 3_000_000_000]);
      assert.ok(c.sessions.has('will-late'), 'the will went, the session stays');

      clock.advanceTo(BASE + 999_999_999_000 - 1);
      assert.ok(c.sessions.has('d999'));
      clock.advanceTo(BASE + 999_999_999_000);
      assert.deepEqual(seen.expired[2], ['d999', BASE + 999_999_999_000]);

      clock.advanceTo(BASE + 0xffffffff * 1000 + DAY);
      assert.deepEqual([...c.sessions.keys()].sort(), ['never', 'will-late'], '0xFFFFFFFF never expires');
      await c.flush();
      c.stop();
      await store.close();

      // What the store holds now: the two sessions, the late will no longer pending.
      store = reopen();
      await store.open();
      const snap = await store.load();
      await store.close();
      assert.deepEqual(snap.sessions.map((s) => [s.clientId, s.will !== undefined]).sort(), [
        ['never', false],
        ['will-late', false],
      ]);
    });
  }

  void it('[MQTT-3.3.2-5] queued messages leave the queue at their expiry (60 s, 30 days, 40 days, also after a restart), making room for live ones; one in flight stays', async () => {
    const clock = new FakeClock(BASE);
    const seen = new Seen(clock);
    const store = new MemoryStore();
    let c = core(store, clock, seen, { maxQueuedMessages: 3, queueFullPolicy: 'drop-new' });
    await c.load(clock.now());
    offline(c, 'sleeper', NEVER_EXPIRES, BASE);
    for (const [payload, expiry] of [
      ['60 s', 60],
      ['30 days', 2_592_000],
      ['40 days', 3_456_000],
      ['live 1', undefined],
    ] as const) {
      c.publish(message(payload, BASE, expiry), 'pub');
    }
    const sleeper = () => c.sessions.get('sleeper')!;
    assert.equal(sleeper().queued, 3);
    assert.equal(c.delivery.droppedQueueFull, 1, 'the queue is full: the live message is refused');

    clock.advanceTo(BASE + 60_000 - 1);
    assert.equal(sleeper().queued, 3);
    clock.advanceTo(BASE + 60_000);
    assert.equal(sleeper().queued, 2, 'the 60 s message left the queue at its expiry');
    assert.equal(c.delivery.droppedExpired, 1);
    c.publish(message('live 2', clock.now()), 'pub');
    assert.equal(sleeper().queued, 3, 'and its room takes a live message');

    clock.advanceTo(BASE + 2_592_000_000);
    assert.equal(sleeper().queued, 2, 'the 30-day message left at 30 days');
    await c.flush();
    c.stop();

    // Restart at day 35: the 40-day message is restored with its deadline.
    clock.jumpTo(BASE + 35 * DAY);
    c = core(store, clock, seen, { maxQueuedMessages: 3 });
    await c.load(clock.now());
    assert.equal(sleeper().queued, 2);
    clock.advanceTo(BASE + 3_456_000_000 - 1);
    assert.equal(sleeper().queued, 2);
    clock.advanceTo(BASE + 3_456_000_000);
    assert.equal(sleeper().queued, 1, 'the 40-day message left at 40 days');
    await c.flush();
    const snap = await store.load();
    assert.deepEqual(
      (snap.outbound.get('sleeper') ?? []).map(([, o]) => (o.message ?? snap.messages.get(o.messageId))?.payload.toString()),
      ['live 2'],
      'expired entries are gone from the store too',
    );

    // Online with a full window: the queued copy expires, the one in flight stays.
    const { session } = c.openSession('busy', false);
    session.expiryInterval = 3600;
    c.connected(session);
    c.subscribe(session, { filter: 't/#', qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0, subscriptionId: undefined });
    session.attach(stalled, clock.now());
    c.publish(message('in flight', clock.now(), 60), 'pub');
    c.publish(message('queued', clock.now(), 60), 'pub');
    assert.deepEqual([session.inflight.size, session.queued], [1, 1]);
    clock.advanceTo(clock.now() + 60_000);
    assert.deepEqual([session.inflight.size, session.queued], [1, 0]);
    c.stop();
  });

  void it('[MQTT-3.3.2-5] a retained message leaves at its Message Expiry (60 s, 30 days, across a restart); replacing one cancels its deadline', async () => {
    const clock = new FakeClock(BASE);
    const store = new MemoryStore();
    let c = core(store, clock, new Seen(clock));
    await c.load(clock.now());
    const retain = (topic: string, expiry?: number) =>
      c.publish(
        createMessage(topic, Buffer.from(topic), 0, true, expiry === undefined ? undefined : { messageExpiryInterval: expiry }, 'pub', clock.now()),
        'pub',
      );
    retain('r/60s', 60);
    retain('r/30days', 2_592_000);
    retain('r/replaced', 60);
    retain('r/replaced');
    const stored = async () => (await store.load()).retained.map(([topic]) => topic).sort();

    clock.advanceTo(BASE + 60_000 - 1);
    assert.equal(c.retained.size, 3);
    clock.advanceTo(BASE + 60_000);
    assert.equal(c.retained.size, 2, 'the 60 s message is gone at 60 s, the replacement of the other stays');
    assert.deepEqual(await stored(), ['r/30days', 'r/replaced']);
    await c.flush();
    c.stop();

    clock.jumpTo(BASE + 20 * DAY);
    c = core(store, clock, new Seen(clock));
    await c.load(clock.now());
    assert.equal(c.retained.size, 2);
    clock.advanceTo(BASE + 2_592_000_000 - 1);
    assert.equal(c.retained.size, 2);
    clock.advanceTo(BASE + 2_592_000_000);
    assert.equal(c.retained.size, 1);
    assert.deepEqual(await stored(), ['r/replaced']);
    assert.equal(c.deadlines.size, 0);
    c.stop();
  });

  void it('100,000 offline sessions (expiry and will delay) hold one timer between them, not one each', async () => {
    // Timeouts created and not yet destroyed: counts unref'd timers too, which
    // process.getActiveResourcesInfo() leaves out (the core's timers are unref'd).
    const live = new Set<number>();
    const hook = createHook({
      init(id, type) {
        if (type === 'Timeout') live.add(id);
      },
      destroy(id) {
        live.delete(id);
      },
    });
    const store = new MemoryStore();
    const c = new BrokerCore(defaultMqttOptions, defaultSessionLimits, store, noopLogger, { publish() {}, sessionExpired() {} });
    await c.load(Date.now());
    const activeBefore = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    hook.enable();
    try {
      const now = Date.now();
      for (let i = 0; i < 100_000; i++) offline(c, `off-${i}`, 3600 + (i % 1000), now, i % 2 === 0 ? 600 + (i % 100) : undefined);
      assert.equal(c.sessions.size, 100_000);
      assert.ok(live.size <= 1, `${live.size} live timers for 100,000 offline sessions`);
      assert.equal(c.deadlines.size, 100_000, 'every one of them has its deadline');
      const active = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
      assert.ok(active <= activeBefore + 1, `${active - activeBefore} more active timers`);
    } finally {
      hook.disable();
      c.stop();
    }
  });
});
