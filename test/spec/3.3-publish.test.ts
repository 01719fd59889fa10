/**
 * MQTT 3.1.1 §3.3 / 5.0 §3.3 PUBLISH, server side: retained messages, QoS downgrade, overlapping
 * subscriptions, topic name rules, the configured QoS / retain limits, and the 5.0 additions
 * (Retain Handling, Retain As Published, topic aliases, forwarded properties, message expiry,
 * No Local, reason codes, the client's Maximum Packet Size).
 *
 * Ids differ between the versions; each title names the id of the version it runs under.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import type { ProtocolVersion, QoS } from '../../src/protocol/constants.js';
import type { Packet, Properties, PublishPacket, Subscription } from '../../src/protocol/packets.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { RawClient } from '../helpers/raw-client.js';
import { connect, connectFull, destroyAll, publishesIn, so, withBroker } from '../helpers/spec.js';

let pid = 0;
const nextPid = (): number => (pid = (pid % 0xffff) + 1);

async function subscribe(c: RawClient, subs: Subscription | Subscription[], properties?: Properties): Promise<number[]> {
  const packetId = nextPid();
  c.send({ type: 'subscribe', packetId, subscriptions: Array.isArray(subs) ? subs : [subs], ...(properties === undefined ? {} : { properties }) });
  const ack = await c.next('suback');
  assert.equal(ack.packetId, packetId);
  return ack.reasonCodes;
}

interface Pub {
  topic: string;
  payload?: string | Buffer;
  qos?: QoS;
  retain?: boolean;
  properties?: Properties;
}

function publishPacket(p: Pub): PublishPacket {
  const qos = p.qos ?? 0;
  const packet: PublishPacket = {
    type: 'publish',
    topic: p.topic,
    payload: typeof p.payload === 'string' || p.payload === undefined ? Buffer.from(p.payload ?? '') : p.payload,
    qos,
    retain: p.retain ?? false,
    dup: false,
  };
  if (qos > 0) packet.packetId = nextPid();
  if (p.properties !== undefined) packet.properties = p.properties;
  return packet;
}

/** Publishes and completes the QoS flow; returns the PUBACK / PUBREC (undefined for QoS 0). */
async function publish(c: RawClient, p: Pub): Promise<Packet | undefined> {
  const packet = publishPacket(p);
  c.send(packet);
  if (packet.qos === 0) return undefined;
  if (packet.qos === 1) {
    const ack = await c.next('puback');
    assert.equal(ack.packetId, packet.packetId);
    return ack;
  }
  const rec = await c.next('pubrec');
  assert.equal(rec.packetId, packet.packetId);
  if ((rec.reasonCode ?? 0) < 0x80) {
    c.send({ type: 'pubrel', packetId: rec.packetId });
    const comp = await c.next('pubcomp');
    assert.equal(comp.packetId, rec.packetId);
  }
  return rec;
}

/** The connection is closed by the broker: 5.0 first gets a DISCONNECT with `code`. */
async function expectClosed(c: RawClient, version: ProtocolVersion, code: number): Promise<void> {
  if (version === 5) {
    const d = await c.next('disconnect');
    assert.equal(d.reasonCode, code, `DISCONNECT reason 0x${(d.reasonCode ?? 0).toString(16)}`);
  }
  await c.closed();
  assert.deepEqual(c.pending, []);
}

afterEach(destroyAll);

/** A broker with other options for one test; clients are gone before it closes (close waits for them). */
for (const version of [4, 5] as const) {
  const v5 = version === 5;
  const V = v5 ? '5.0' : '3.1.1';

  void describe(`§3.3 PUBLISH (MQTT ${V})`, () => {
    let b: TestBroker;
    before(async () => {
      b = await startBroker();
    });
    after(() => b.close());

    // -------------------------------------------------------------------------------------------
    // Retained messages

    void it(`${v5 ? '[MQTT-3.3.1-5] [MQTT-3.3.1-9]' : '[MQTT-3.3.1-5] [MQTT-3.3.1-6] [MQTT-3.3.1-8]'} a retained message is stored with its QoS and sent to a new subscriber after the SUBACK with RETAIN 1`, async () => {
      const topic = `ret/store/${version}`;
      const pub = await connect(b.port, version, 'ret-pub');
      await publish(pub, { topic, payload: 'kept', qos: 1, retain: true });
      const sub = await connect(b.port, version, 'ret-sub');
      assert.deepEqual(await subscribe(sub, so(`ret/store/+`, 2)), [2]);
      const m = await sub.next('publish');
      assert.equal(m.topic, topic);
      assert.equal(m.payload.toString(), 'kept');
      assert.equal(m.retain, true);
      assert.equal(m.qos, 1, 'stored with its QoS 1, delivered at min(1, granted 2)');
      sub.send({ type: 'puback', packetId: m.packetId! });
      assert.deepEqual(await sub.barrier(), []);
      // A subscriber granted QoS 0 gets it at QoS 0 ([MQTT-3.8.4-6] / [MQTT-3.8.4-8]).
      const sub0 = await connect(b.port, version, 'ret-sub0');
      await subscribe(sub0, so(topic, 0));
      const m0 = await sub0.next('publish');
      assert.equal(m0.qos, 0);
      assert.equal(m0.retain, true);
    });

    void it(`${v5 ? '[MQTT-3.3.1-5]' : '[MQTT-3.3.1-5] [MQTT-3.3.1-7]'} a new retained message replaces the stored one (also a QoS 0 one)`, async () => {
      const topic = `ret/replace/${version}`;
      const pub = await connect(b.port, version, 'rep-pub');
      await publish(pub, { topic, payload: 'first', qos: 1, retain: true });
      await publish(pub, { topic, payload: 'second', qos: 0, retain: true });
      await pub.barrier();
      const sub = await connect(b.port, version, 'rep-sub');
      await subscribe(sub, so(topic, 1));
      const got = publishesIn(await sub.barrier());
      assert.deepEqual(
        got.map((p) => [p.payload.toString(), p.qos, p.retain]),
        [['second', 0, true]],
      );
    });

    void it(`${v5 ? '[MQTT-3.3.1-6] [MQTT-3.3.1-7]' : '[MQTT-3.3.1-10] [MQTT-3.3.1-11]'} an empty retained PUBLISH is forwarded as normal and deletes the retained message; it is not stored`, async () => {
      const topic = `ret/delete/${version}`;
      const pub = await connect(b.port, version, 'del-pub');
      await publish(pub, { topic, payload: 'doomed', qos: 1, retain: true });
      const existing = await connect(b.port, version, 'del-existing');
      await subscribe(existing, so(topic, 0));
      assert.equal((await existing.next('publish')).payload.toString(), 'doomed');
      await publish(pub, { topic, payload: '', qos: 1, retain: true });
      const forwarded = await existing.next('publish');
      assert.equal(forwarded.payload.length, 0);
      assert.equal(forwarded.retain, false, 'forwarded "as normal": RETAIN 0 to an established subscription');
      const late = await connect(b.port, version, 'del-late');
      await subscribe(late, so(topic, 1));
      assert.deepEqual(await late.barrier(), [], 'no retained message after the delete (not even the empty one)');
    });

    void it(`${v5 ? '[MQTT-3.3.1-8]' : '[MQTT-3.3.1-12]'} a PUBLISH with RETAIN 0 neither stores nor replaces the retained message`, async () => {
      const topic = `keep/${version}/a`;
      const pub = await connect(b.port, version, 'keep-pub');
      await publish(pub, { topic, payload: 'retained', qos: 1, retain: true });
      await publish(pub, { topic, payload: 'transient', qos: 1, retain: false });
      await publish(pub, { topic: `keep/${version}/b`, payload: 'transient', qos: 1, retain: false });
      const sub = await connect(b.port, version, 'keep-sub');
      await subscribe(sub, so(`keep/${version}/+`, 0));
      const got = publishesIn(await sub.barrier());
      assert.deepEqual(
        got.map((p) => [p.topic, p.payload.toString()]),
        [[topic, 'retained']],
      );
    });

    void it(`${v5 ? '[MQTT-3.3.1-12]' : '[MQTT-3.3.1-9]'} a retained PUBLISH forwarded to an established subscription has RETAIN 0`, async () => {
      const topic = `ret/fwd/${version}`;
      const sub = await connect(b.port, version, 'fwd-sub');
      await subscribe(sub, so(topic, 1));
      const pub = await connect(b.port, version, 'fwd-pub');
      await publish(pub, { topic, payload: 'live', qos: 1, retain: true });
      const m = await sub.next('publish');
      assert.equal(m.payload.toString(), 'live');
      assert.equal(m.retain, false);
    });

    if (v5) {
      void it('[MQTT-3.3.1-13] Retain As Published 1: the forwarded RETAIN flag equals the received one', async () => {
        const topic = 'rap/t';
        const sub = await connect(b.port, version, 'rap-sub');
        await subscribe(sub, so(topic, 0, { retainAsPublished: true }));
        const pub = await connect(b.port, version, 'rap-pub');
        await publish(pub, { topic, payload: 'r1', retain: true });
        await publish(pub, { topic, payload: 'r0', retain: false });
        await pub.barrier();
        const got = publishesIn(await sub.barrier());
        assert.deepEqual(
          got.map((p) => [p.payload.toString(), p.retain]),
          [
            ['r1', true],
            ['r0', false],
          ],
        );
      });

      void it('[MQTT-3.3.1-9] [MQTT-3.3.1-10] [MQTT-3.3.1-11] Retain Handling 0 sends retained messages on every SUBSCRIBE, 1 only for a new subscription, 2 never', async () => {
        const pub = await connect(b.port, version, 'rh-pub');
        await publish(pub, { topic: 'rh/a', payload: 'A', qos: 1, retain: true });
        const sub = await connect(b.port, version, 'rh-sub');
        const payloads = async (): Promise<string[]> => publishesIn(await sub.barrier()).map((p) => p.payload.toString());

        await subscribe(sub, so('rh/#', 0, { retainHandling: 0 }));
        assert.deepEqual(await payloads(), ['A'], 'RH 0, new subscription');
        await subscribe(sub, so('rh/#', 0, { retainHandling: 0 }));
        assert.deepEqual(await payloads(), ['A'], 'RH 0, existing subscription: sent again');

        await subscribe(sub, so('rh/+', 0, { retainHandling: 1 }));
        assert.deepEqual(await payloads(), ['A'], 'RH 1, new subscription');
        await subscribe(sub, so('rh/+', 0, { retainHandling: 1 }));
        assert.deepEqual(await payloads(), [], 'RH 1, existing subscription: not sent');

        await subscribe(sub, so('rh/a', 0, { retainHandling: 2 }));
        assert.deepEqual(await payloads(), [], 'RH 2, new subscription: not sent');
      });
    }

    // -------------------------------------------------------------------------------------------
    // QoS of forwarded messages

    void it(`${v5 ? '[MQTT-3.8.4-8]' : '[MQTT-3.8.4-6]'} a message is delivered at the minimum of its QoS and the granted QoS`, async () => {
      const topic = `qos/min/${version}`;
      const subs: RawClient[] = [];
      for (const q of [0, 1, 2] as const) {
        const s = await connect(b.port, version, `min-sub${q}`);
        assert.deepEqual(await subscribe(s, so(topic, q)), [q]);
        subs.push(s);
      }
      const pub = await connect(b.port, version, 'min-pub');
      for (const q of [0, 1, 2] as const) await publish(pub, { topic, payload: `p${q}`, qos: q });
      for (const [granted, s] of subs.entries()) {
        const got = publishesIn(await s.barrier());
        assert.deepEqual(
          got.map((p) => [p.payload.toString(), p.qos]),
          [0, 1, 2].map((q) => [`p${q}`, Math.min(q, granted)]),
          `subscriber granted QoS ${granted}`,
        );
      }
    });

    void it(`${v5 ? '[MQTT-3.3.4-2] [MQTT-3.3.4-3] [MQTT-3.3.4-4]' : '[MQTT-3.3.5-1]'} overlapping subscriptions: one delivery at the highest granted QoS${v5 ? ', carrying every matching subscription identifier' : ''}`, async () => {
      const sub = await connect(b.port, version, 'ov-sub');
      const filters: Array<[string, QoS]> = [
        ['ov/+/c', 0],
        ['ov/#', 2],
        ['ov/b/c', 1],
        ['ov/x', 2],
      ];
      for (const [i, [f, q]] of filters.entries()) {
        await subscribe(sub, so(f, q), v5 ? { subscriptionIdentifiers: [10 + i] } : undefined);
      }
      const pub = await connect(b.port, version, 'ov-pub');
      await publish(pub, { topic: 'ov/b/c', payload: 'once', qos: 2 });
      const got = publishesIn(await sub.barrier());
      assert.equal(got.length, 1, 'exactly one copy');
      const m = got[0]!;
      assert.equal(m.qos, 2);
      if (v5) assert.deepEqual([...(m.properties?.subscriptionIdentifiers ?? [])].sort(), [10, 11, 12]);
      // A QoS 1 message still goes out at QoS 1 (the maximum over min(message, granted)).
      await publish(pub, { topic: 'ov/b/c', payload: 'q1', qos: 1 });
      const again = publishesIn(await sub.barrier());
      assert.deepEqual(
        again.map((p) => p.qos),
        [1],
      );
    });

    // -------------------------------------------------------------------------------------------
    // Topic names and configured limits

    void it(`${v5 ? '[MQTT-3.3.2-2] [MQTT-4.7.0-1] [MQTT-4.13.1-1]' : '[MQTT-3.3.2-2] [MQTT-4.7.1-1] [MQTT-4.8.0-1]'} a topic name with a wildcard closes the connection${v5 ? ' with DISCONNECT 0x90' : ''}; nothing is forwarded`, async () => {
      const watcher = await connect(b.port, version, 'wild-watch');
      await subscribe(watcher, so('wild/#', 0));
      for (const topic of ['wild/+', 'wild/#', 'wild/a+b']) {
        const pub = await connect(b.port, version, 'wild-pub');
        pub.send(publishPacket({ topic, payload: 'x', qos: 1 }));
        await expectClosed(pub, version, 0x90);
      }
      assert.deepEqual(await watcher.barrier(), []);
    });

    void it(`${v5 ? '[MQTT-3.2.2-9] [MQTT-3.2.2-11] [MQTT-4.13.1-1]' : '[MQTT-3.3.5-2]'} a PUBLISH above the configured maximum QoS closes the connection${v5 ? ' with DISCONNECT 0x9B' : ''}`, async () => {
      await withBroker({ mqtt: { maximumQoS: 1 } }, async (limited) => {
        const watcher = await connect(limited.port, version, 'mq-watch');
        assert.deepEqual(await subscribe(watcher, so('mq/t', 2)), [1]);
        const { client: pub, connack } = await connectFull(limited.port, version, 'mq-pub');
        if (v5) assert.equal(connack.properties?.maximumQoS, 1);
        await publish(pub, { topic: 'mq/t', payload: 'ok', qos: 1 });
        assert.equal((await watcher.next('publish')).payload.toString(), 'ok');
        pub.send(publishPacket({ topic: 'mq/t', payload: 'too high', qos: 2 }));
        await expectClosed(pub, version, 0x9b);
        assert.deepEqual(publishesIn(await watcher.barrier()), []);
      });
    });

    void it(`${v5 ? '[MQTT-3.2.2-14] [MQTT-4.13.1-1]' : '[MQTT-3.3.5-2]'} a retained PUBLISH while retain is unavailable closes the connection${v5 ? ' with DISCONNECT 0x9A' : ''}`, async () => {
      await withBroker({ mqtt: { retainAvailable: false } }, async (noRetain) => {
        const watcher = await connect(noRetain.port, version, 'nr-watch');
        await subscribe(watcher, so('nr/t', 0));
        const { client: pub, connack } = await connectFull(noRetain.port, version, 'nr-pub');
        if (v5) assert.equal(connack.properties?.retainAvailable, 0);
        pub.send(publishPacket({ topic: 'nr/t', payload: 'keep me', retain: true }));
        await expectClosed(pub, version, 0x9a);
        assert.deepEqual(await watcher.barrier(), []);
      });
    });

    if (!v5) return;

    // -------------------------------------------------------------------------------------------
    // 5.0 only: topic aliases

    void it('[MQTT-3.3.2-12] an inbound Topic Alias is set by a PUBLISH with a topic and used by later ones with an empty topic; a new topic re-maps it', async () => {
      const sub = await connect(b.port, version, 'ta-sub');
      await subscribe(sub, so('ta/#', 0));
      const { client: pub, connack } = await connectFull(b.port, version, 'ta-pub');
      const max = connack.properties?.topicAliasMaximum ?? 0;
      assert.ok(max >= 2, `Topic Alias Maximum ${max}`);
      await publish(pub, { topic: 'ta/one', payload: '1', qos: 1, properties: { topicAlias: 1 } });
      await publish(pub, { topic: '', payload: '2', qos: 1, properties: { topicAlias: 1 } });
      await publish(pub, { topic: 'ta/two', payload: '3', qos: 1, properties: { topicAlias: 1 } });
      await publish(pub, { topic: '', payload: '4', qos: 1, properties: { topicAlias: 1 } });
      await publish(pub, { topic: 'ta/max', payload: '5', qos: 0, properties: { topicAlias: max } });
      await publish(pub, { topic: '', payload: '6', qos: 0, properties: { topicAlias: max } });
      await pub.barrier();
      const got = publishesIn(await sub.barrier());
      assert.deepEqual(
        got.map((p) => [p.topic, p.payload.toString()]),
        [
          ['ta/one', '1'],
          ['ta/one', '2'],
          ['ta/two', '3'],
          ['ta/two', '4'],
          ['ta/max', '5'],
          ['ta/max', '6'],
        ],
      );
      // The subscriber announced no Topic Alias Maximum: it gets no aliases.
      assert.ok(got.every((p) => p.properties?.topicAlias === undefined));
    });

    void it('[MQTT-3.3.2-7] [MQTT-4.13.1-1] topic aliases do not outlive the connection: an empty topic with an alias set on an earlier connection → DISCONNECT 0x82', async () => {
      const clientId = 'ta-carry';
      const first = await connect(b.port, version, 'unused', { clientId, clean: false, properties: { sessionExpiryInterval: 30 } });
      await publish(first, { topic: 'ta/carry', payload: 'set', qos: 1, properties: { topicAlias: 3 } });
      await first.disconnect();
      const second = await connect(b.port, version, 'unused', { clientId, clean: false, properties: { sessionExpiryInterval: 0 } });
      second.send(publishPacket({ topic: '', payload: 'use', qos: 1, properties: { topicAlias: 3 } }));
      await expectClosed(second, version, 0x82);
    });

    void it('[MQTT-3.3.2-8] [MQTT-3.3.2-9] [MQTT-4.13.1-1] Topic Alias 0 or above the Topic Alias Maximum → DISCONNECT 0x94', async () => {
      await withBroker({ mqtt: { topicAliasMaximum: 5 } }, async (small) => {
        const watcher = await connect(small.port, version, 'tai-watch');
        await subscribe(watcher, so('tai/#', 0));
        for (const alias of [0, 6]) {
          const { client: pub, connack } = await connectFull(small.port, version, 'tai-pub');
          assert.equal(connack.properties?.topicAliasMaximum, 5);
          pub.send(publishPacket({ topic: 'tai/t', payload: String(alias), qos: 1, properties: { topicAlias: alias } }));
          await expectClosed(pub, version, 0x94);
        }
        assert.deepEqual(await watcher.barrier(), []);
      });
    });

    void it('[MQTT-4.13.1-1] §3.3.4: an empty topic with a Topic Alias that has no mapping is a Protocol Error → DISCONNECT 0x82', async () => {
      const pub = await connect(b.port, version, 'tau-pub');
      await publish(pub, { topic: 'tau/t', payload: 'set', qos: 0, properties: { topicAlias: 1 } });
      pub.send(publishPacket({ topic: '', payload: 'unknown', qos: 0, properties: { topicAlias: 2 } }));
      await expectClosed(pub, version, 0x82);
    });

    void it('[MQTT-3.3.4-6] [MQTT-4.13.1-1] a PUBLISH from a client carrying a Subscription Identifier (once or twice) is a Protocol Error → DISCONNECT 0x82; nothing is forwarded', async () => {
      const watcher = await connect(b.port, version, 'sid-watch');
      await subscribe(watcher, so('sid/#', 0));
      for (const ids of [[7], [7, 8]]) {
        const pub = await connect(b.port, version, 'sid-pub');
        pub.send(publishPacket({ topic: 'sid/t', payload: String(ids), qos: 1, properties: { subscriptionIdentifiers: ids } }));
        await expectClosed(pub, version, 0x82);
      }
      assert.deepEqual(await watcher.barrier(), []);
    });

    // -------------------------------------------------------------------------------------------
    // 5.0 only: properties, expiry, No Local, reason codes, Maximum Packet Size

    void it('[MQTT-3.3.2-4] [MQTT-3.3.2-15] [MQTT-3.3.2-16] [MQTT-3.3.2-17] [MQTT-3.3.2-18] [MQTT-3.3.2-20] payload format indicator, content type, response topic, correlation data and user properties (in order) are forwarded unaltered, live and retained', async () => {
      const props: Properties = {
        payloadFormatIndicator: 1,
        contentType: 'application/json; charset=utf-8',
        responseTopic: 'props/reply/ü',
        correlationData: Buffer.from([0, 1, 2, 0xfe, 0xff]),
        userProperties: [
          ['k', '1'],
          ['a', 'two'],
          ['k', '3'],
          ['', ''],
        ],
      };
      const sub = await connect(b.port, version, 'prop-sub');
      await subscribe(sub, so('props/t', 1));
      const pub = await connect(b.port, version, 'prop-pub');
      await publish(pub, { topic: 'props/t', payload: '{"a":1}', qos: 1, retain: true, properties: props });
      const check = (m: PublishPacket): void => {
        const p = m.properties ?? {};
        assert.equal(p.payloadFormatIndicator, 1);
        assert.equal(p.contentType, props.contentType);
        assert.equal(p.responseTopic, props.responseTopic);
        assert.deepEqual(Buffer.from(p.correlationData ?? []), props.correlationData);
        assert.deepEqual(p.userProperties, props.userProperties);
      };
      const live = await sub.next('publish');
      check(live);
      sub.send({ type: 'puback', packetId: live.packetId! });
      const late = await connect(b.port, version, 'prop-late');
      await subscribe(late, so('props/t', 0));
      check(await late.next('publish'));
    });

    void it('[MQTT-3.3.2-6] a forwarded PUBLISH carries the Message Expiry Interval (received value minus time waited)', async () => {
      const sub = await connect(b.port, version, 'exp-live-sub');
      await subscribe(sub, so('exp/live', 0));
      const pub = await connect(b.port, version, 'exp-live-pub');
      await publish(pub, { topic: 'exp/live', payload: 'x', properties: { messageExpiryInterval: 30 } });
      await publish(pub, { topic: 'exp/live', payload: 'y' });
      await pub.barrier();
      const [withExpiry, without] = publishesIn(await sub.barrier());
      const e = withExpiry?.properties?.messageExpiryInterval;
      assert.ok(e !== undefined && e >= 1 && e <= 30, `forwarded expiry ${String(e)}`);
      assert.equal(without?.properties?.messageExpiryInterval, undefined, 'no expiry is invented');
    });

    void it('[MQTT-3.3.2-5] [MQTT-3.3.2-6] a queued message whose expiry passed is not delivered; a live one arrives with its interval reduced by the time it waited', async () => {
      const clientId = 'exp-offline';
      const sub = await connect(b.port, version, 'unused', { clientId, clean: true, properties: { sessionExpiryInterval: 60 } });
      await subscribe(sub, so('exp/q', 1));
      await sub.disconnect();
      const pub = await connect(b.port, version, 'exp-pub');
      await publish(pub, { topic: 'exp/q', payload: 'short', qos: 1, properties: { messageExpiryInterval: 1 } });
      await publish(pub, { topic: 'exp/q', payload: 'long', qos: 1, properties: { messageExpiryInterval: 60 } });
      // The broker stamped both before it acknowledged them; wait until 'short' is past its expiry.
      const deadline = Date.now() + 1_050;
      while (Date.now() < deadline) await pub.barrier();
      const { client: back, connack } = await connectFull(b.port, version, 'unused', { clientId, clean: false, properties: { sessionExpiryInterval: 0 } });
      assert.equal(connack.sessionPresent, true);
      const got = publishesIn(await back.barrier());
      assert.deepEqual(
        got.map((p) => p.payload.toString()),
        ['long'],
      );
      const e = got[0]!.properties?.messageExpiryInterval;
      assert.ok(e !== undefined && e >= 1 && e <= 59, `expiry ${String(e)} is 60 minus the time waited`);
    });

    void it('[MQTT-3.8.3-3] No Local: a message is not forwarded to the connection that published it; other subscribers still get it', async () => {
      const a = await connect(b.port, version, 'nl-a');
      await subscribe(a, [so('nl/local', 0, { noLocal: true }), so('nl/echo', 0)]);
      const other = await connect(b.port, version, 'nl-other');
      await subscribe(other, so('nl/local', 0, { noLocal: true }));
      await publish(a, { topic: 'nl/local', payload: 'not to me' });
      await publish(a, { topic: 'nl/echo', payload: 'echo' });
      assert.deepEqual(
        publishesIn(await a.barrier()).map((p) => p.topic),
        ['nl/echo'],
      );
      assert.deepEqual(
        publishesIn(await other.barrier()).map((p) => p.payload.toString()),
        ['not to me'],
      );
    });

    void it('[MQTT-3.4.2-1] [MQTT-3.5.2-1] PUBACK / PUBREC carry 0x10 (No matching subscribers) when nobody subscribes, 0x00 otherwise', async () => {
      const pub = await connect(b.port, version, 'nms-pub');
      const ack1 = await publish(pub, { topic: 'nms/none', payload: 'x', qos: 1 });
      assert.equal((ack1 as { reasonCode?: number }).reasonCode, 0x10);
      const rec = await publish(pub, { topic: 'nms/none', payload: 'x', qos: 2 });
      assert.equal((rec as { reasonCode?: number }).reasonCode, 0x10);
      const sub = await connect(b.port, version, 'nms-sub');
      await subscribe(sub, so('nms/some', 0));
      const ack2 = await publish(pub, { topic: 'nms/some', payload: 'x', qos: 1 });
      assert.equal((ack2 as { reasonCode?: number }).reasonCode ?? 0, 0);
    });

    void it('[MQTT-3.4.2-1] [MQTT-3.5.2-1] §3.3.2.3.2: Payload Format Indicator 1 with a payload that is not UTF-8 → PUBACK / PUBREC 0x99, not forwarded', async () => {
      const sub = await connect(b.port, version, 'pfi-sub');
      await subscribe(sub, so('pfi/t', 0));
      const pub = await connect(b.port, version, 'pfi-pub');
      const bad = Buffer.from([0x61, 0xff, 0xfe, 0x62]);
      const ack = await publish(pub, { topic: 'pfi/t', payload: bad, qos: 1, properties: { payloadFormatIndicator: 1 } });
      assert.equal((ack as { reasonCode?: number }).reasonCode, 0x99);
      const rec = await publish(pub, { topic: 'pfi/t', payload: bad, qos: 2, properties: { payloadFormatIndicator: 1 } });
      assert.equal((rec as { reasonCode?: number }).reasonCode, 0x99);
      // The same bytes without the indicator, and UTF-8 with it, are fine.
      await publish(pub, { topic: 'pfi/t', payload: bad, qos: 1 });
      await publish(pub, { topic: 'pfi/t', payload: 'héllo', qos: 1, properties: { payloadFormatIndicator: 1 } });
      const got = publishesIn(await sub.barrier());
      assert.deepEqual(
        got.map((p) => [p.payload.toString('hex'), p.properties?.payloadFormatIndicator]),
        [
          [bad.toString('hex'), undefined],
          [Buffer.from('héllo').toString('hex'), 1],
        ],
      );
    });

    void it('[MQTT-3.1.2-24] [MQTT-3.1.2-25] a message larger than the Maximum Packet Size a client announced is not sent to it (and not retried); other subscribers get it', async () => {
      const tooLarge = b.broker.stats().droppedTooLarge;
      const small = await connect(b.port, version, 'mps-small', { properties: { maximumPacketSize: 128 } });
      const big = await connect(b.port, version, 'mps-big');
      await subscribe(small, so('mps/t', 1));
      await subscribe(big, so('mps/t', 1));
      const pub = await connect(b.port, version, 'mps-pub');
      await publish(pub, { topic: 'mps/t', payload: Buffer.alloc(300, 0x41), qos: 1 });
      await publish(pub, { topic: 'mps/t', payload: 'small', qos: 1 });
      const toBig = publishesIn(await big.barrier());
      assert.deepEqual(
        toBig.map((p) => p.payload.length),
        [300, 5],
      );
      const toSmall = publishesIn(await small.barrier());
      assert.deepEqual(
        toSmall.map((p) => p.payload.toString()),
        ['small'],
        'only the message that fits',
      );
      small.send({ type: 'puback', packetId: toSmall[0]!.packetId! });
      assert.deepEqual(await small.barrier(), [], 'the discarded one is not retried');
      assert.equal(b.broker.stats().droppedTooLarge, tooLarge + 1, 'counted in stats()');
    });
  });
}
