/**
 * A QoS 2 PUBLISH from a persisted session: its inbound packet id, the entries it queues for
 * persistent subscribers and the forwards a cluster sends through the store are written inside one
 * atomic unit of the store (Store.atomic). A resend after a crash is recognised by that packet id
 * and not routed again [MQTT-4.3.3-9], so an engine that splits large turns over several commits
 * (RedisStore) must never commit the id without the rest. Proved with a recording store and
 * MQTT.js clients.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import mqtt from 'mqtt';
import { MemoryStore } from '../../../src/store/memory.js';
import { startBroker, type TestBroker } from '../../helpers/broker.js';
import { pollUntil } from '../../helpers/wait.js';

type Call = ['atomic', boolean] | ['putInbound', string, number] | ['putOutbound', string, number];

/** MemoryStore that records its atomic units and the writes the test looks at. */
class RecordingStore extends MemoryStore {
  readonly calls: Call[] = [];
  atomic(on: boolean): void {
    this.calls.push(['atomic', on]);
  }
  override putInbound(clientId: string, packetId: number): void {
    this.calls.push(['putInbound', clientId, packetId]);
    super.putInbound(clientId, packetId);
  }
  override putOutbound(...args: Parameters<MemoryStore['putOutbound']>): void {
    this.calls.push(['putOutbound', args[0], args[1]]);
    super.putOutbound(...args);
  }
}

void describe('QoS 2 from a persisted session: one atomic store unit', () => {
  const brokers: TestBroker[] = [];
  const clients: mqtt.MqttClient[] = [];
  after(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => {})));
    await Promise.all(brokers.map((b) => b.close()));
  });

  async function connect(port: number, clientId: string, clean: boolean): Promise<mqtt.MqttClient> {
    const c = await mqtt.connectAsync({
      host: '127.0.0.1',
      port,
      clientId,
      clean,
      protocolVersion: 5,
      properties: clean ? {} : { sessionExpiryInterval: 600 },
      reconnectPeriod: 0,
    });
    clients.push(c);
    return c;
  }

  void it('the packet id and every queued entry of that message are written inside one unit; QoS 1 and clean publishers open none', async () => {
    const store = new RecordingStore();
    const b = await startBroker({ store });
    brokers.push(b);
    // Three persistent subscribers, two of them offline (their entries are queued in the store).
    for (const id of ['s1', 's2', 's3']) {
      const s = await connect(b.port, id, false);
      await s.subscribeAsync('t/#', { qos: 2 });
      if (id !== 's3') await s.endAsync();
    }
    const pub = await connect(b.port, 'pub', false);
    store.calls.length = 0;
    await pub.publishAsync('t/1', 'two', { qos: 2 });
    const calls = store.calls.slice();
    const open = calls.findIndex((c) => c[0] === 'atomic' && c[1]);
    const close = calls.findIndex((c) => c[0] === 'atomic' && !c[1]);
    assert.ok(open >= 0 && close > open, `one unit opened and closed: ${JSON.stringify(calls)}`);
    const inside = calls.slice(open + 1, close);
    assert.ok(
      inside.some((c) => c[0] === 'putInbound' && c[1] === 'pub'),
      'the packet id inside the unit',
    );
    const queuedFor = new Set(inside.filter((c) => c[0] === 'putOutbound').map((c) => c[1]));
    for (const id of ['s1', 's2', 's3']) assert.ok(queuedFor.has(id), `${id}'s entry inside the unit`);
    assert.equal(calls.filter((c) => c[0] === 'atomic').length, 2, 'one unit per QoS 2 PUBLISH');

    // QoS 1, and QoS 2 from a clean session (nothing of it persisted): no unit.
    store.calls.length = 0;
    await pub.publishAsync('t/1', 'one', { qos: 1 });
    const clean = await connect(b.port, 'cleanpub', true);
    await clean.publishAsync('t/1', 'clean two', { qos: 2 });
    await pollUntil(() => store.calls.some((c) => c[0] === 'putOutbound'), { what: 'entries queued' });
    assert.deepEqual(
      store.calls.filter((c) => c[0] === 'atomic'),
      [],
    );
  });
});
