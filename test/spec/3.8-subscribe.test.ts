/**
 * MQTT 3.1.1 §3.8–3.9 / 5.0 §3.8–3.9 SUBSCRIBE and SUBACK, server side, with the topic matching
 * rules of §4.7 that decide what a subscription receives: return / reason codes per filter,
 * invalid filters, the configured maximum QoS, replacing a subscription, '#', '+', '$' topics,
 * case sensitivity, an empty SUBSCRIBE, and 5.0 shared subscriptions when switched off.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import type { QoS } from '../../src/protocol/constants.js';
import type { Properties, PublishPacket, Subscription } from '../../src/protocol/packets.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { RawClient } from '../helpers/raw-client.js';
import { connect, connectFull, destroyAll, publishesIn, so, withBroker } from '../helpers/spec.js';

let pid = 0;
const nextPid = (): number => (pid = (pid % 0xffff) + 1);

async function subscribe(c: RawClient, subs: Subscription | Subscription[], properties?: Properties): Promise<number[]> {
  const packetId = nextPid();
  c.send({ type: 'subscribe', packetId, subscriptions: Array.isArray(subs) ? subs : [subs], ...(properties === undefined ? {} : { properties }) });
  const ack = await c.next('suback');
  assert.equal(ack.packetId, packetId, 'SUBACK has the SUBSCRIBE packet id');
  return ack.reasonCodes;
}

/** Publishes (QoS 0 unless given; QoS 1 waits for the PUBACK) and lets the broker finish routing. */
async function publish(c: RawClient, topic: string, payload = topic, qos: QoS = 0, retain = false): Promise<void> {
  const p: PublishPacket = { type: 'publish', topic, payload: Buffer.from(payload), qos, retain, dup: false };
  if (qos > 0) p.packetId = nextPid();
  c.send(p);
  if (qos === 1) await c.next('puback');
  await c.barrier();
}

async function received(c: RawClient): Promise<string[]> {
  return publishesIn(await c.barrier()).map((p) => p.topic);
}

afterEach(destroyAll);

for (const version of [4, 5] as const) {
  const v5 = version === 5;
  const FAIL = v5 ? 0x8f : 0x80;

  void describe(`§3.8 SUBSCRIBE (MQTT ${v5 ? '5.0' : '3.1.1'})`, () => {
    let b: TestBroker;
    before(async () => {
      b = await startBroker();
    });
    after(() => b.close());

    void it(`${v5 ? '[MQTT-3.8.4-1] [MQTT-3.8.4-2] [MQTT-3.8.4-6] [MQTT-3.9.3-1]' : '[MQTT-3.8.4-1] [MQTT-3.8.4-2] [MQTT-3.8.4-5] [MQTT-3.9.3-1]'} SUBACK carries the SUBSCRIBE's packet id and one code per filter, in order, granting the requested QoS`, async () => {
      const c = await connect(b.port, version, 'codes');
      assert.deepEqual(await subscribe(c, [so('codes/2', 2), so('codes/0', 0), so('codes/+/x', 1), so('codes/#', 2), so('codes/1', 1)]), [2, 0, 1, 2, 1]);
      c.send({ type: 'subscribe', packetId: 0xfffe, subscriptions: [so('codes/z', 0)] });
      assert.deepEqual(await c.next(), { type: 'suback', packetId: 0xfffe, reasonCodes: [0] });
    });

    void it(`${v5 ? '[MQTT-4.7.1-1] [MQTT-4.7.1-2] [MQTT-3.9.3-2] [MQTT-3.8.4-5]' : '[MQTT-4.7.1-2] [MQTT-4.7.1-3] [MQTT-3.9.3-2] [MQTT-3.8.4-4]'} invalid filters ('#' not last or not a whole level, '+' not a whole level) get 0x${FAIL.toString(16)}; the valid filters of the same SUBSCRIBE are granted and work`, async () => {
      const c = await connect(b.port, version, 'invalid');
      const codes = await subscribe(c, [so('inv/a', 1), so('inv/#/b', 1), so('inv/a#', 0), so('inv+', 0), so('inv/+x/c', 2), so('inv/+/c', 2)]);
      assert.deepEqual(codes, [1, FAIL, FAIL, FAIL, FAIL, 2]);
      const pub = await connect(b.port, version, 'invalid-pub');
      for (const t of ['inv/a', 'inv/x/b', 'inv/a/b', 'inv/z/c']) await publish(pub, t);
      assert.deepEqual(await received(c), ['inv/a', 'inv/z/c']);
    });

    void it(`${v5 ? '[MQTT-3.2.2-10] [MQTT-3.8.4-7] [MQTT-3.8.4-8]' : '[MQTT-3.8.4-5] [MQTT-3.8.4-6]'} the granted QoS is capped by the configured maximum QoS, and deliveries follow it`, async () => {
      await withBroker({ mqtt: { maximumQoS: 1 } }, async (tb) => {
        const c = await connect(tb.port, version, 'cap');
        assert.deepEqual(await subscribe(c, [so('cap/0', 0), so('cap/1', 1), so('cap/2', 2)]), [0, 1, 1]);
        const pub = await connect(tb.port, version, 'cap-pub');
        await publish(pub, 'cap/2', 'x', 1);
        const [m] = publishesIn(await c.barrier());
        assert.equal(m?.qos, 1);
      });
    });

    void it(`${v5 ? '[MQTT-3.8.4-3] [MQTT-3.8.4-4]' : '[MQTT-3.8.4-3]'} a SUBSCRIBE with an existing filter replaces the subscription (new QoS${v5 ? ', new subscription id' : ''}), re-sends the retained messages, and leaves one subscription`, async () => {
      const pub = await connect(b.port, version, 'repl-pub');
      await publish(pub, 'repl/t', 'retained', 1, true);
      const c = await connect(b.port, version, 'repl');
      assert.deepEqual(await subscribe(c, so('repl/t', 2), v5 ? { subscriptionIdentifiers: [5] } : undefined), [2]);
      const first = publishesIn(await c.barrier());
      assert.deepEqual(
        first.map((p) => [p.payload.toString(), p.retain, p.qos]),
        [['retained', true, 1]],
      );
      c.send({ type: 'puback', packetId: first[0]!.packetId! });
      assert.deepEqual(await subscribe(c, so('repl/t', 0), v5 ? { subscriptionIdentifiers: [6] } : undefined), [0]);
      const again = publishesIn(await c.barrier());
      assert.deepEqual(
        again.map((p) => [p.payload.toString(), p.retain, p.qos]),
        [['retained', true, 0]],
        'retained message re-sent',
      );
      await publish(pub, 'repl/t', 'live', 1);
      const live = publishesIn(await c.barrier());
      assert.deepEqual(
        live.map((p) => [p.payload.toString(), p.qos]),
        [['live', 0]],
        'one copy, at the new QoS',
      );
      if (v5) assert.deepEqual(live[0]!.properties?.subscriptionIdentifiers, [6]);
    });

    void it(`${v5 ? '[MQTT-3.8.4-5]' : '[MQTT-3.8.4-4]'} several filters in one SUBSCRIBE act as a sequence of SUBSCRIBEs: a repeated filter replaces the earlier one`, async () => {
      const c = await connect(b.port, version, 'seqsub');
      assert.deepEqual(await subscribe(c, [so('seq/a', 2), so('seq/+', 1), so('seq/a', 0)]), [2, 1, 0]);
      const pub = await connect(b.port, version, 'seqsub-pub');
      pub.send({ type: 'publish', topic: 'seq/a', payload: Buffer.from('m'), qos: 2, retain: false, dup: false, packetId: 1 });
      await pub.next('pubrec');
      const got = publishesIn(await c.barrier());
      assert.deepEqual(
        got.map((p) => p.qos),
        [1],
        'one copy at max(seq/a → 0, seq/+ → 1)',
      );
    });

    void it(`${v5 ? '[MQTT-3.8.3-2] [MQTT-4.13.1-1]' : '[MQTT-3.8.3-3] [MQTT-4.8.0-1]'} a SUBSCRIBE without any topic filter closes the connection${v5 ? ' (DISCONNECT 0x82)' : ''}`, async () => {
      const c = await connect(b.port, version, 'empty');
      c.sendRaw(v5 ? '82 03 0001 00' : '82 02 0001');
      if (v5) assert.equal((await c.next('disconnect')).reasonCode, 0x82);
      await c.closed();
      assert.deepEqual(c.pending, []);
    });

    void it(`[MQTT-4.7.3-1] ${v5 ? '[MQTT-4.13.1-1]' : '[MQTT-4.8.0-1]'} a SUBSCRIBE with a zero-length topic filter, or '$share/group/' with an empty filter part, is malformed: no SUBACK, the connection is closed${v5 ? ' (DISCONNECT 0x81)' : ''}, valid filters beside it notwithstanding`, async () => {
      for (const filter of ['', '$share/group/']) {
        const c = await connect(b.port, version, 'empty-filter');
        c.send({ type: 'subscribe', packetId: nextPid(), subscriptions: [so('ok/a', 1), so(filter, 1)] });
        if (v5) assert.equal((await c.next('disconnect')).reasonCode, 0x81, JSON.stringify(filter));
        await c.closed();
        assert.deepEqual(c.pending, [], `nothing else for ${JSON.stringify(filter)}`);
      }
    });

    void describe('topic matching (own broker: nothing retained, nothing else published)', () => {
      let m: TestBroker;
      before(async () => {
        // No $SYS tree either: only what the tests publish.
        m = await startBroker({ sys: { interval: 0 } });
      });
      after(() => m.close());

      void it('[MQTT-3.3.2-3] §4.7.1: "#" matches the parent and any number of levels ("sport/#" matches "sport"), "+" exactly one level (possibly empty)', async () => {
        const filters = ['sport/#', 'sport/tennis/+', 'sport/+', '+/+', '+', '/+', '#', 'sport/tennis/player1/#', '+/tennis/#'];
        const subs = new Map<string, RawClient>();
        for (const f of filters) {
          const c = await connect(m.port, version, 'match');
          assert.deepEqual(await subscribe(c, so(f, 0)), [0], f);
          subs.set(f, c);
        }
        const topics = ['sport', 'sport/', 'sport/tennis', 'sport/tennis/player1', 'sport/tennis/player1/ranking', '/finance', 'finance'];
        const pub = await connect(m.port, version, 'match-pub');
        for (const t of topics) await publish(pub, t);
        const expected: Record<string, string[]> = {
          'sport/#': ['sport', 'sport/', 'sport/tennis', 'sport/tennis/player1', 'sport/tennis/player1/ranking'],
          'sport/tennis/+': ['sport/tennis/player1'],
          'sport/+': ['sport/', 'sport/tennis'],
          '+/+': ['sport/', 'sport/tennis', '/finance'],
          '+': ['sport', 'finance'],
          '/+': ['/finance'],
          '#': topics,
          'sport/tennis/player1/#': ['sport/tennis/player1', 'sport/tennis/player1/ranking'],
          '+/tennis/#': ['sport/tennis', 'sport/tennis/player1', 'sport/tennis/player1/ranking'],
        };
        for (const [f, c] of subs) assert.deepEqual(await received(c), expected[f], `filter ${f}`);
      });

      void it('[MQTT-4.7.2-1] a topic starting with "$" is not matched by filters starting with "#" or "+"; "$SYS/#" does match it', async () => {
        const wild = await connect(m.port, version, 'dollar-wild');
        await subscribe(wild, [so('#', 0), so('+/x', 0), so('+/#', 0)]);
        const sys = await connect(m.port, version, 'dollar-sys');
        await subscribe(sys, [so('$SYS/#', 0)]);
        const pub = await connect(m.port, version, 'dollar-pub');
        // Clients may not publish under $SYS/ (the broker's own tree): the broker does.
        m.broker.publish({ topic: '$SYS/x', payload: '' });
        await publish(pub, '$other/x');
        assert.deepEqual(await received(wild), []);
        assert.deepEqual(await received(sys), ['$SYS/x']);
        await publish(pub, 'sys/x');
        assert.deepEqual(await received(wild), ['sys/x'], 'one copy for the three matching filters');
      });

      void it('[MQTT-4.7.3-4] matching is case sensitive and does no normalization', async () => {
        const c = await connect(m.port, version, 'case');
        await subscribe(c, [so('Case/Topic', 0), so('caf\u00e9', 0)]);
        const pub = await connect(m.port, version, 'case-pub');
        for (const t of ['case/topic', 'CASE/TOPIC', 'Case/Topic', 'cafe\u0301', 'caf\u00e9', 'Case/Topic ']) await publish(pub, t);
        assert.deepEqual(await received(c), ['Case/Topic', 'caf\u00e9']);
      });
    });

    if (!v5) return;

    void it('[MQTT-4.13.1-1] §3.2.2.3.13: with sharedSubscriptionAvailable false, CONNACK says 0 and a SUBSCRIBE to "$share/g/t" is a Protocol Error → DISCONNECT 0x9E; nothing was subscribed', async () => {
      await withBroker({ mqtt: { sharedSubscriptionAvailable: false } }, async (nb) => {
        const { client: c, connack } = await connectFull(nb.port, version, 'share-strict');
        assert.equal(connack.properties?.sharedSubscriptionAvailable, 0);
        c.send({ type: 'subscribe', packetId: 4, subscriptions: [so('$share/g/share/t', 0)] });
        assert.equal((await c.next('disconnect')).reasonCode, 0x9e);
        await c.closed();
        assert.equal(nb.broker.stats().subscriptions, 0);
      });
    });

    void it('§3.2.2.3.13 shared subscriptions are available by default: CONNACK says 1 and "$share/g/t" is granted', async () => {
      const { client: c, connack } = await connectFull(b.port, version, 'share');
      assert.equal(connack.properties?.sharedSubscriptionAvailable, 1);
      c.send({ type: 'subscribe', packetId: 3, subscriptions: [so('$share/g/share/t', 1)] });
      assert.deepEqual(await c.next('suback'), { type: 'suback', packetId: 3, reasonCodes: [1] });
    });
  });
}
