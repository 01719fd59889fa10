/**
 * Routing scratch and the shared deadline sweep: BrokerCore.publish reuses its per-message state
 * (marks on sessions instead of a map per message), so messages routed back to back — and one
 * published by a `publish` event handler while the broker handles another — must each reach
 * every client once, with the right subscription identifiers; and the Sweeper must check every
 * registered item even when items leave while it runs.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { Sweeper, type Sweepable } from '../../../src/core/sweeper.js';
import { connect, destroyAll, publishesIn, so, withBroker } from '../../helpers/spec.js';

afterEach(destroyAll);

void describe('routing', () => {
  void it('[MQTT-3.3.4-3] [MQTT-3.3.4-5] one copy per client with every matching subscription identifier, also for messages a publish event handler publishes', async () => {
    await withBroker({}, async ({ broker, port }) => {
      // Each message to src/... makes the broker publish one to echo/... from inside the event.
      broker.on('publish', (m) => {
        if (m.topic.startsWith('src/')) broker.publish({ topic: `echo/${m.topic.slice(4)}`, payload: m.payload, qos: 1 });
      });
      const sub = await connect(port, 5, 'route-sub');
      sub.send({ type: 'subscribe', packetId: 1, subscriptions: [so('src/#', 1)], properties: { subscriptionIdentifiers: [1] } });
      await sub.next('suback');
      sub.send({ type: 'subscribe', packetId: 2, subscriptions: [so('src/+', 0)], properties: { subscriptionIdentifiers: [2] } });
      await sub.next('suback');
      sub.send({ type: 'subscribe', packetId: 3, subscriptions: [so('echo/#', 1)], properties: { subscriptionIdentifiers: [3] } });
      await sub.next('suback');
      sub.send({ type: 'subscribe', packetId: 4, subscriptions: [so('echo/+', 1)], properties: { subscriptionIdentifiers: [4] } });
      await sub.next('suback');
      const other = await connect(port, 5, 'route-other');
      other.send({ type: 'subscribe', packetId: 1, subscriptions: [so('#', 0)] });
      await other.next('suback');

      const pub = await connect(port, 5, 'route-pub');
      for (const t of ['a', 'b']) {
        pub.send({ type: 'publish', topic: `src/${t}`, payload: Buffer.from(t), qos: 1, retain: false, dup: false, packetId: t === 'a' ? 1 : 2 });
        await pub.next('puback');
      }
      const got = publishesIn(await sub.barrier());
      const seen = got.map((p) => [p.topic, p.qos, [...(p.properties?.subscriptionIdentifiers ?? [])].sort()]);
      assert.deepEqual(
        seen.sort((x, y) => String(x[0]).localeCompare(String(y[0]))),
        [
          ['echo/a', 1, [3, 4]],
          ['echo/b', 1, [3, 4]],
          ['src/a', 1, [1, 2]],
          ['src/b', 1, [1, 2]],
        ],
        'each message once, at the highest QoS, with both identifiers',
      );
      const toOther = publishesIn(await other.barrier()).map((p) => p.topic);
      assert.deepEqual(toOther.sort(), ['echo/a', 'echo/b', 'src/a', 'src/b']);
    });
  });
});

class Item implements Sweepable {
  sweepIndex = -1;
  swept = 0;
  constructor(private readonly onSweep: (item: Item) => void = () => {}) {}
  sweep(): void {
    this.swept++;
    this.onSweep(this);
  }
}

void describe('Sweeper', () => {
  void it('checks every item once per sweep, also when items remove themselves or others during the sweep', async () => {
    const sweeper = new Sweeper(5);
    let removeOther: Item | undefined;
    const items: Item[] = [];
    const firstSweep = new Promise<void>((resolve) => {
      for (let i = 0; i < 10; i++) {
        items.push(
          new Item((it) => {
            // Item 7 leaves during its own check; item 3 removes item 1 (not yet checked: the sweep runs backwards).
            if (it === items[7]) sweeper.remove(it);
            if (it === items[3] && removeOther !== undefined) {
              sweeper.remove(removeOther);
              removeOther = undefined;
            }
            if (it === items[0]) resolve();
          }),
        );
      }
      removeOther = undefined;
      for (const it of items) sweeper.add(it);
      removeOther = items[1];
    });
    // The sweeper's timer is unref'd; this one keeps the test alive and fails it if no sweep comes.
    let guard: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      guard = setTimeout(() => reject(new Error('no sweep within 5 s')), 5000);
    });
    try {
      await Promise.race([firstSweep, timeout]);
    } finally {
      clearTimeout(guard);
      sweeper.stop();
    }
    assert.equal(items[7]!.sweepIndex, -1, 'item 7 left');
    assert.equal(items[1]!.sweepIndex, -1, 'item 1 was removed');
    assert.equal(items[1]!.swept, 0, 'a removed item is not checked afterwards');
    for (const i of [0, 2, 3, 4, 5, 6, 7, 8, 9]) assert.ok(items[i]!.swept >= 1, `item ${i} was checked`);
    assert.equal(sweeper.size, 8);
    // Indices stay consistent: every remaining item can be removed exactly once.
    for (const it of items) sweeper.remove(it);
    assert.equal(sweeper.size, 0);
  });

  void it('adding twice registers once; the timer stops when the last item leaves', () => {
    const sweeper = new Sweeper(1000);
    const a = new Item();
    sweeper.add(a);
    sweeper.add(a);
    assert.equal(sweeper.size, 1);
    sweeper.remove(a);
    sweeper.remove(a);
    assert.equal(sweeper.size, 0);
    assert.equal(a.sweepIndex, -1);
  });
});
