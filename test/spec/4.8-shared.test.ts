/**
 * MQTT 5.0 §4.8.2 Shared Subscriptions: `$share/{ShareName}/{filter}` — each message to one
 * member of the group, spread by the configured strategy; QoS 1/2 messages in flight to a
 * member that drops go to another member (nothing lost); No Local is a Protocol Error; no
 * retained messages on a shared subscribe.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import mqtt from 'mqtt';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { RawClient } from '../helpers/raw-client.js';
import type { PublishPacket, Subscription } from '../../src/protocol/packets.js';

const so = (topicFilter: string, qos: 0 | 1 | 2, extra: Partial<Subscription> = {}): Subscription => ({
  topicFilter,
  qos,
  noLocal: false,
  retainAsPublished: false,
  retainHandling: 0,
  ...extra,
});

let n = 0;
const id = (p: string): string => `sh-${p}-${++n}`;

async function member(port: number, filter: string, qos: 0 | 1 | 2, clientId = id('m')): Promise<RawClient> {
  const { client } = await RawClient.connect(port, { protocolVersion: 5, clientId });
  client.send({ type: 'subscribe', packetId: 1, subscriptions: [so(filter, qos)] });
  const ack = await client.next('suback');
  assert.deepEqual(ack.reasonCodes, [qos]);
  return client;
}

async function publisher(port: number): Promise<RawClient> {
  return (await RawClient.connect(port, { protocolVersion: 5, clientId: id('pub') })).client;
}

/** Publishes QoS 1 messages 0..count-1 to `topic`, each acknowledged before the next. */
async function publishNumbered(pub: RawClient, topic: string, count: number, from = 0): Promise<void> {
  for (let i = from; i < from + count; i++) {
    pub.send({ type: 'publish', topic, payload: Buffer.from(String(i)), qos: 1, retain: false, dup: false, packetId: (i % 60000) + 1 });
    await pub.next('puback');
  }
}

/** Everything a client has received so far (PINGREQ barrier: nothing still on its way). */
async function drain(c: RawClient): Promise<PublishPacket[]> {
  return (await c.barrier()).filter((p): p is PublishPacket => p.type === 'publish');
}

void describe('§4.8.2 Shared Subscriptions (MQTT 5.0)', () => {
  let b: TestBroker;
  before(async () => {
    b = await startBroker();
  });
  after(() => b.close());

  void it('[MQTT-4.8.2-3] §4.8.2 each message goes to exactly one member at its granted QoS; round-robin spreads 30 messages 10/10/10', async () => {
    const members = await Promise.all([0, 1, 2].map(() => member(b.port, '$share/rr/sh/rr/+', 1)));
    const pub = await publisher(b.port);
    await publishNumbered(pub, 'sh/rr/x', 30);
    const got = await Promise.all(members.map(drain));
    for (const g of got) for (const p of g) members[got.indexOf(g)]!.send({ type: 'puback', packetId: p.packetId! });
    assert.deepEqual(
      got.map((g) => g.length),
      [10, 10, 10],
    );
    const all = got
      .flat()
      .map((p) => Number(p.payload.toString()))
      .sort((a, c) => a - c);
    assert.deepEqual(
      all,
      Array.from({ length: 30 }, (_, i) => i),
      'every message exactly once across the group',
    );
    for (const c of [...members, pub]) await c.disconnect();
  });

  void it('§4.8.2 a shared and a non-shared subscription of the same filter both get the message', async () => {
    const shared = await member(b.port, '$share/g1/sh/both', 0);
    const plain = await member(b.port, 'sh/both', 0);
    const pub = await publisher(b.port);
    pub.send({ type: 'publish', topic: 'sh/both', payload: Buffer.from('x'), qos: 0, retain: false, dup: false });
    assert.equal((await shared.next('publish')).payload.toString(), 'x');
    assert.equal((await plain.next('publish')).payload.toString(), 'x');
    for (const c of [shared, plain, pub]) await c.disconnect();
  });

  void it('§4.8.2 QoS 1 messages in flight to a member that drops go to another member at once: nothing lost', async () => {
    const a = await member(b.port, '$share/re/sh/re', 1);
    const c = await member(b.port, '$share/re/sh/re', 1);
    const pub = await publisher(b.port);
    await publishNumbered(pub, 'sh/re', 20);
    // a never acknowledges and then drops; c acknowledges everything it gets.
    const toA = await drain(a);
    assert.ok(toA.length > 0, 'a got some messages');
    a.destroy();
    const seen = new Set<number>();
    for (const p of await drain(c)) {
      seen.add(Number(p.payload.toString()));
      c.send({ type: 'puback', packetId: p.packetId! });
    }
    // a's unacknowledged messages arrive at c once the broker sees a gone.
    while (seen.size < 20) {
      const p = await c.next('publish');
      seen.add(Number(p.payload.toString()));
      c.send({ type: 'puback', packetId: p.packetId! });
    }
    assert.deepEqual(
      [...seen].sort((x, y) => x - y),
      Array.from({ length: 20 }, (_, i) => i),
    );
    for (const x of [c, pub]) await x.disconnect();
  });

  void it('[MQTT-4.8.2-4] [MQTT-4.8.2-5] a QoS 2 message in flight to a member that drops stays with it: resent when it resumes, never sent to another member', async () => {
    const aId = id('q2a');
    const { client: a } = await RawClient.connect(b.port, { protocolVersion: 5, clientId: aId, properties: { sessionExpiryInterval: 60 } });
    a.send({ type: 'subscribe', packetId: 1, subscriptions: [so('$share/q2/sh/q2', 2)] });
    await a.next('suback');
    const other = await member(b.port, '$share/q2/sh/q2', 2);
    const pub = await publisher(b.port);
    // Round robin: the first message goes to a (subscribed first).
    pub.send({ type: 'publish', topic: 'sh/q2', payload: Buffer.from('q2'), qos: 2, retain: false, dup: false, packetId: 1 });
    await pub.next('pubrec');
    const first = await a.next('publish');
    a.destroy();
    assert.deepEqual(await drain(other), [], 'the other member does not get it');
    const { client: again, connack } = await RawClient.connect(b.port, {
      protocolVersion: 5,
      clientId: aId,
      clean: false,
      properties: { sessionExpiryInterval: 60 },
    });
    assert.equal(connack.sessionPresent, true);
    const resent = await again.next('publish');
    assert.equal(resent.dup, true);
    assert.equal(resent.packetId, first.packetId);
    assert.equal(resent.payload.toString(), 'q2');
    for (const c of [again, other, pub]) await c.disconnect();
  });

  void it('§4.8.2 MQTT.js members of $share/js share 30 QoS 1 messages from an MQTT.js publisher, each once', async () => {
    const url = `mqtt://127.0.0.1:${b.port}`;
    const members = await Promise.all([0, 1, 2].map((i) => mqtt.connectAsync(url, { protocolVersion: 5, clientId: id(`js${i}`) })));
    const got: number[][] = [[], [], []];
    let total = 0;
    const all = new Promise<void>((resolve) => {
      members.forEach((m, i) =>
        m.on('message', (_t, p) => {
          got[i]!.push(Number(p.toString()));
          if (++total === 30) resolve();
        }),
      );
    });
    for (const m of members) await m.subscribeAsync('$share/js/sh/js', { qos: 1 });
    const pub = await mqtt.connectAsync(url, { protocolVersion: 5, clientId: id('jspub') });
    for (let i = 0; i < 30; i++) await pub.publishAsync('sh/js', String(i), { qos: 1 });
    await all;
    assert.deepEqual(
      got.map((g) => g.length),
      [10, 10, 10],
    );
    assert.deepEqual(
      got.flat().sort((x, y) => x - y),
      Array.from({ length: 30 }, (_, i) => i),
    );
    for (const c of [...members, pub]) await c.endAsync();
  });

  void it('[MQTT-3.8.3-4] No Local on a shared subscription is a Protocol Error: DISCONNECT 0x82', async () => {
    const { client } = await RawClient.connect(b.port, { protocolVersion: 5, clientId: id('nolocal') });
    client.send({ type: 'subscribe', packetId: 1, subscriptions: [so('$share/g/sh/nl', 1, { noLocal: true })] });
    assert.equal((await client.next('disconnect')).reasonCode, 0x82);
    await client.closed();
  });

  void it('§4.8.2 retained messages are not sent on a shared subscribe', async () => {
    const pub = await publisher(b.port);
    pub.send({ type: 'publish', topic: 'sh/ret', payload: Buffer.from('kept'), qos: 1, retain: true, dup: false, packetId: 1 });
    await pub.next('puback');
    const m = await member(b.port, '$share/g/sh/ret', 1);
    assert.deepEqual(await drain(m), []);
    const plain = await member(b.port, 'sh/ret', 1);
    assert.equal((await plain.next('publish')).payload.toString(), 'kept');
    for (const c of [m, plain, pub]) await c.disconnect();
  });

  void it('§4.8.2 an unsubscribed member gets no more messages; the group keeps serving the others', async () => {
    const a = await member(b.port, '$share/un/sh/un', 0);
    const c = await member(b.port, '$share/un/sh/un', 0);
    a.send({ type: 'unsubscribe', packetId: 2, topicFilters: ['$share/un/sh/un'] });
    assert.deepEqual((await a.next('unsuback')).reasonCodes, [0]);
    const pub = await publisher(b.port);
    for (let i = 0; i < 4; i++) pub.send({ type: 'publish', topic: 'sh/un', payload: Buffer.from(String(i)), qos: 0, retain: false, dup: false });
    await pub.barrier();
    assert.equal((await drain(c)).length, 4);
    assert.deepEqual(await drain(a), []);
    for (const x of [a, c, pub]) await x.disconnect();
  });
});

for (const strategy of ['random', 'sticky', 'hash'] as const) {
  void describe(`§4.8.2 shared subscription strategy "${strategy}" (MQTT 5.0)`, () => {
    let b: TestBroker;
    before(async () => {
      b = await startBroker({ mqtt: { sharedSubscriptionStrategy: strategy } });
    });
    after(() => b.close());

    void it('delivers every message to exactly one member, as the strategy says', async () => {
      const members = await Promise.all([0, 1, 2].map(() => member(b.port, `$share/s/sh/${strategy}/+`, 0)));
      const pub = await publisher(b.port);
      const topics = ['a', 'b', 'c', 'd', 'e', 'f'];
      for (let i = 0; i < 60; i++) {
        pub.send({
          type: 'publish',
          topic: `sh/${strategy}/${topics[i % topics.length]!}`,
          payload: Buffer.from(String(i)),
          qos: 0,
          retain: false,
          dup: false,
        });
      }
      await pub.barrier();
      const got = await Promise.all(members.map(drain));
      const all = got
        .flat()
        .map((p) => Number(p.payload.toString()))
        .sort((x, y) => x - y);
      assert.deepEqual(
        all,
        Array.from({ length: 60 }, (_, i) => i),
        'each message exactly once',
      );
      if (strategy === 'sticky')
        assert.deepEqual(
          got.map((g) => g.length).sort((x, y) => x - y),
          [0, 0, 60],
          'one member gets all while it stays',
        );
      if (strategy === 'hash') {
        // One topic always lands on the same member.
        for (const g of got) {
          const mine = new Set(g.map((p) => p.topic));
          for (const other of got) if (other !== g) for (const p of other) assert.ok(!mine.has(p.topic), `${p.topic} went to two members`);
        }
      }
      for (const c of [...members, pub]) await c.disconnect();
    });
  });
}
