/**
 * MQTT 3.1.1 §4.3 / 5.0 §4.3 Quality of Service levels and protocol flows, both directions, with
 * the exact acknowledgement packets; §4.4 retransmission on session resume; §4.6 ordering; and
 * the 5.0 flow control of §4.9 (Receive Maximum, the broker's inbound and the client's outbound).
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import type { ProtocolVersion, QoS } from '../../src/protocol/constants.js';
import type { ConnectPacket, Packet, PublishPacket } from '../../src/protocol/packets.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { RawClient } from '../helpers/raw-client.js';
import { connect, connectFull, destroyAll, publishesIn, withBroker } from '../helpers/spec.js';

/**
 * CONNECT fields for a session that outlives the connection: 5.0 Clean Start `fresh` with a
 * Session Expiry; 3.1.1 always Clean Session 0 (1 would end the session with the connection),
 * so the client ids used with it must be fresh.
 */
function persistent(version: ProtocolVersion, clientId: string, fresh: boolean): Partial<ConnectPacket> {
  return version === 5 ? { clientId, clean: fresh, properties: { sessionExpiryInterval: 60 } } : { clientId, clean: false };
}

async function subscribe(c: RawClient, topicFilter: string, qos: QoS): Promise<void> {
  c.send({ type: 'subscribe', packetId: 1, subscriptions: [{ topicFilter, qos, noLocal: false, retainAsPublished: false, retainHandling: 0 }] });
  assert.deepEqual((await c.next('suback')).reasonCodes, [qos]);
}

function pkt(topic: string, payload: string, qos: QoS, packetId?: number, dup = false): PublishPacket {
  const p: PublishPacket = { type: 'publish', topic, payload: Buffer.from(payload), qos, retain: false, dup };
  if (packetId !== undefined) p.packetId = packetId;
  return p;
}

/** An acknowledgement as decoded: 5.0 adds the reason code (0 for the short form). */
function ack(version: ProtocolVersion, type: 'puback' | 'pubrec' | 'pubrel' | 'pubcomp', packetId: number, reasonCode = 0): Packet {
  return version === 5 ? { type, packetId, reasonCode } : { type, packetId };
}

async function expectClosed(c: RawClient, version: ProtocolVersion, codes: number[]): Promise<void> {
  if (version === 5) {
    const d = await c.next('disconnect');
    assert.ok(codes.includes(d.reasonCode ?? 0), `DISCONNECT reason 0x${(d.reasonCode ?? 0).toString(16)}`);
  }
  await c.closed();
  assert.deepEqual(c.pending, []);
}

afterEach(destroyAll);

for (const version of [4, 5] as const) {
  const v5 = version === 5;

  void describe(`§4.3 QoS flows (MQTT ${v5 ? '5.0' : '3.1.1'})`, () => {
    let b: TestBroker;
    before(async () => {
      b = await startBroker();
    });
    after(() => b.close());

    // -------------------------------------------------------------------------------------------
    // QoS 1

    void it(`${v5 ? '[MQTT-4.3.2-4] [MQTT-4.3.2-5] [MQTT-3.3.1-3]' : '[MQTT-4.3.2-2] [MQTT-3.3.1-3]'} QoS 1 from a client: PUBACK with the PUBLISH's packet id; the same id after the PUBACK is a new message; DUP is not passed on`, async () => {
      const sub = await connect(b.port, version, 'q1in-sub');
      await subscribe(sub, 'q1in/t', 1);
      const pub = await connect(b.port, version, 'q1in-pub');
      pub.send(pkt('q1in/t', 'one', 1, 0x1234));
      assert.deepEqual(await pub.next(), ack(version, 'puback', 0x1234));
      pub.send(pkt('q1in/t', 'two', 1, 0x1234, true));
      assert.deepEqual(await pub.next(), ack(version, 'puback', 0x1234));
      const got = publishesIn(await sub.barrier());
      assert.deepEqual(
        got.map((p) => [p.payload.toString(), p.qos, p.dup]),
        [
          ['one', 1, false],
          ['two', 1, false],
        ],
      );
    });

    void it(`${v5 ? '[MQTT-4.3.2-1] [MQTT-4.3.2-2] [MQTT-4.3.2-3] [MQTT-4.4.0-1] [MQTT-3.3.1-1]' : '[MQTT-4.3.2-1] [MQTT-4.4.0-1] [MQTT-3.3.1-1]'} QoS 1 to a subscriber: PUBLISH QoS 1 DUP 0 with unused ids; an unacknowledged one is re-sent on resume with DUP 1 and its id`, async () => {
      const clientId = `q1out-${version}`;
      const sub = await connect(b.port, version, 'x', persistent(version, clientId, true));
      await subscribe(sub, 'q1out/t', 1);
      const pub = await connect(b.port, version, 'q1out-pub');
      pub.send(pkt('q1out/t', 'a', 1, 1));
      pub.send(pkt('q1out/t', 'b', 1, 2));
      await pub.barrier();
      const [a, bb] = publishesIn(await sub.barrier());
      for (const m of [a, bb]) {
        assert.ok(m !== undefined);
        assert.equal(m.qos, 1);
        assert.equal(m.dup, false);
        assert.ok(m.packetId !== undefined && m.packetId > 0);
      }
      assert.notEqual(a!.packetId, bb!.packetId, 'two unacknowledged messages, two ids');
      sub.send({ type: 'puback', packetId: a!.packetId! });
      assert.deepEqual(await sub.barrier(), []);
      sub.destroy();
      await sub.closed();
      const { client: back, connack } = await connectFull(b.port, version, 'x', persistent(version, clientId, false));
      assert.equal(connack.sessionPresent, true);
      const again = publishesIn(await back.barrier());
      assert.deepEqual(
        again.map((p) => [p.payload.toString(), p.packetId, p.dup, p.qos]),
        [['b', bb!.packetId, true, 1]],
      );
      back.send({ type: 'puback', packetId: bb!.packetId! });
      assert.deepEqual(await back.barrier(), []);
    });

    // -------------------------------------------------------------------------------------------
    // QoS 2

    void it(`${v5 ? '[MQTT-4.3.3-8] [MQTT-4.3.3-11]' : '[MQTT-4.3.3-2]'} QoS 2 from a client: PUBREC with the PUBLISH's id, PUBREL answered by PUBCOMP with the same id`, async () => {
      const sub = await connect(b.port, version, 'q2in-sub');
      await subscribe(sub, 'q2in/t', 2);
      const pub = await connect(b.port, version, 'q2in-pub');
      pub.send(pkt('q2in/t', 'exactly', 2, 0xbeef));
      assert.deepEqual(await pub.next(), ack(version, 'pubrec', 0xbeef));
      pub.send({ type: 'pubrel', packetId: 0xbeef });
      assert.deepEqual(await pub.next(), ack(version, 'pubcomp', 0xbeef));
      assert.deepEqual(await pub.barrier(), []);
      const got = publishesIn(await sub.barrier());
      assert.deepEqual(
        got.map((p) => [p.payload.toString(), p.qos]),
        [['exactly', 2]],
      );
    });

    void it(`${v5 ? '[MQTT-4.3.3-1] [MQTT-4.3.3-2] [MQTT-4.3.3-4]' : '[MQTT-4.3.3-1]'} QoS 2 to a subscriber: PUBLISH QoS 2 DUP 0, PUBREC answered by PUBREL with the same id, PUBCOMP ends it`, async () => {
      const sub = await connect(b.port, version, 'q2out-sub');
      await subscribe(sub, 'q2out/t', 2);
      const pub = await connect(b.port, version, 'q2out-pub');
      pub.send(pkt('q2out/t', 'x', 2, 7));
      await pub.next('pubrec');
      const m = await sub.next('publish');
      assert.equal(m.qos, 2);
      assert.equal(m.dup, false);
      assert.ok(m.packetId !== undefined && m.packetId > 0);
      sub.send({ type: 'pubrec', packetId: m.packetId });
      assert.deepEqual(await sub.next(), ack(version, 'pubrel', m.packetId));
      sub.send({ type: 'pubcomp', packetId: m.packetId });
      assert.deepEqual(await sub.barrier(), []);
    });

    void it(`${v5 ? '[MQTT-4.3.3-3] [MQTT-4.3.3-5] [MQTT-4.3.3-6] [MQTT-4.4.0-1]' : '[MQTT-4.3.3-1] [MQTT-4.4.0-1]'} on resume the broker re-sends the PUBREL (not the PUBLISH) of a released QoS 2 message and the PUBLISH (DUP 1) of an unreleased one`, async () => {
      const clientId = `q2re-${version}`;
      const sub = await connect(b.port, version, 'x', persistent(version, clientId, true));
      await subscribe(sub, 'q2re/t', 2);
      const pub = await connect(b.port, version, 'q2re-pub');
      pub.send(pkt('q2re/t', 'released', 2, 1));
      pub.send(pkt('q2re/t', 'unreleased', 2, 2));
      await pub.barrier();
      const [r, u] = publishesIn(await sub.barrier());
      assert.equal(r?.payload.toString(), 'released');
      assert.equal(u?.payload.toString(), 'unreleased');
      sub.send({ type: 'pubrec', packetId: r!.packetId! });
      assert.deepEqual(await sub.next(), ack(version, 'pubrel', r!.packetId!));
      sub.destroy();
      await sub.closed();
      const { client: back, connack } = await connectFull(b.port, version, 'x', persistent(version, clientId, false));
      assert.equal(connack.sessionPresent, true);
      const resent = await back.barrier();
      assert.deepEqual(
        resent.map((p) => (p.type === 'publish' ? ['publish', p.payload.toString(), p.packetId, p.dup] : [p.type, (p as { packetId: number }).packetId])),
        [
          ['pubrel', r!.packetId],
          ['publish', 'unreleased', u!.packetId, true],
        ],
      );
      back.send({ type: 'pubcomp', packetId: r!.packetId! });
      back.send({ type: 'pubrec', packetId: u!.packetId! });
      assert.deepEqual(await back.next(), ack(version, 'pubrel', u!.packetId!));
      back.send({ type: 'pubcomp', packetId: u!.packetId! });
      assert.deepEqual(await back.barrier(), []);
    });

    void it(`${v5 ? '[MQTT-4.3.3-10] [MQTT-4.3.3-12]' : '[MQTT-4.3.3-2]'} a QoS 2 PUBLISH re-sent with DUP before the PUBREL is acknowledged again but delivered once; after the PUBCOMP the id starts a new message`, async () => {
      const sub = await connect(b.port, version, 'once-sub');
      await subscribe(sub, 'once/t', 2);
      const pub = await connect(b.port, version, 'once-pub');
      pub.send(pkt('once/t', 'first', 2, 11));
      assert.deepEqual(await pub.next(), ack(version, 'pubrec', 11));
      pub.send(pkt('once/t', 'first', 2, 11, true));
      assert.deepEqual(await pub.next(), ack(version, 'pubrec', 11));
      pub.send(pkt('once/t', 'first', 2, 11, true));
      assert.deepEqual(await pub.next(), ack(version, 'pubrec', 11));
      const delivered = publishesIn(await sub.barrier());
      assert.deepEqual(
        delivered.map((p) => p.payload.toString()),
        ['first'],
        'delivered exactly once',
      );
      pub.send({ type: 'pubrel', packetId: 11 });
      assert.deepEqual(await pub.next(), ack(version, 'pubcomp', 11));
      pub.send(pkt('once/t', 'second', 2, 11));
      assert.deepEqual(await pub.next(), ack(version, 'pubrec', 11));
      assert.deepEqual(
        publishesIn(await sub.barrier()).map((p) => p.payload.toString()),
        ['second'],
      );
    });

    void it(`${v5 ? '[MQTT-4.3.3-11] [MQTT-3.7.2-1]' : '[MQTT-4.3.3-2]'} a PUBREL for an unknown packet id is answered with PUBCOMP${v5 ? ' 0x92 (Packet Identifier not found)' : ''}`, async () => {
      const c = await connect(b.port, version, 'relunk');
      c.send({ type: 'pubrel', packetId: 4242 });
      assert.deepEqual(await c.next(), ack(version, 'pubcomp', 4242, 0x92));
      assert.deepEqual(await c.barrier(), []);
    });

    void it(`${v5 ? '[MQTT-2.2.1-3] [MQTT-4.13.1-1]' : '[MQTT-2.3.1-1] [MQTT-4.8.0-1]'} Packet Identifier 0 in PUBLISH (QoS 1, 2), SUBSCRIBE or UNSUBSCRIBE closes the connection`, async () => {
      const watcher = await connect(b.port, version, 'pid0-watch');
      await subscribe(watcher, 'z', 0);
      const props = v5 ? '00' : '';
      const bad = [
        `32 ${v5 ? '07' : '06'} 0001 7a 0000 ${props} 70`,
        `34 ${v5 ? '07' : '06'} 0001 7a 0000 ${props} 70`,
        `82 ${v5 ? '07' : '06'} 0000 ${props} 0001 7a 00`,
        `a2 ${v5 ? '06' : '05'} 0000 ${props} 0001 7a`,
      ];
      for (const hex of bad) {
        const c = await connect(b.port, version, 'pid0');
        c.sendRaw(hex);
        await expectClosed(c, version, [0x81, 0x82]);
      }
      assert.deepEqual(await watcher.barrier(), [], 'nothing was published');
    });

    // -------------------------------------------------------------------------------------------
    // Flow control and ordering

    void it(`${v5 ? '[MQTT-3.3.4-9] [MQTT-3.3.4-10] [MQTT-4.9.0-2] [MQTT-4.6.0-5]' : '[MQTT-4.6.0-6]'} ${v5 ? "the client's Receive Maximum 2: at most 2 unacknowledged QoS 1 PUBLISHes, the rest follow as acks come, in publish order" : 'QoS 1 messages reach a subscriber in the order published, also when held back by an inflight window of 2'}`, async () => {
      const run = async (port: number): Promise<void> => {
        const sub = await connect(port, version, 'rm-sub', v5 ? { properties: { receiveMaximum: 2 } } : {});
        await subscribe(sub, 'rm/t', 1);
        const pub = await connect(port, version, 'rm-pub');
        for (let i = 0; i < 6; i++) pub.send(pkt('rm/t', `m${i}`, 1, i + 1));
        for (let i = 0; i < 6; i++) await pub.next('puback');
        const received: PublishPacket[] = publishesIn(await sub.barrier());
        const unacked = [...received];
        assert.equal(unacked.length, 2, 'two in flight; the PINGRESP is not held back');
        for (let round = 0; received.length < 6; round++) {
          const n = round % 2 === 0 ? 1 : 2;
          for (const p of unacked.splice(0, n)) sub.send({ type: 'puback', packetId: p.packetId! });
          const expected = Math.min(n, 6 - received.length);
          const more = publishesIn(await sub.barrier());
          assert.equal(more.length, expected, 'each ack frees one slot');
          received.push(...more);
          unacked.push(...more);
          assert.ok(unacked.length <= 2, `never more than 2 unacknowledged (got ${unacked.length})`);
        }
        for (const p of unacked) sub.send({ type: 'puback', packetId: p.packetId! });
        assert.deepEqual(await sub.barrier(), []);
        const order = received.map((p) => p.payload.toString());
        assert.deepEqual(order, ['m0', 'm1', 'm2', 'm3', 'm4', 'm5']);
      };
      if (v5) await run(b.port);
      else await withBroker({ sessions: { maxInflight: 2 } }, (tb) => run(tb.port));
    });

    if (!v5) return;

    void it('[MQTT-4.3.3-4] §3.5.2.1, §4.3.3: a PUBREC with a failure reason code ends the QoS 2 flow: no PUBREL (for an unknown id not even 0x92), the message is done: its in-flight slot frees at once and it is not re-sent on resume', async () => {
      const clientId = 'q2fail';
      const fields = { clientId, clean: true, properties: { sessionExpiryInterval: 60, receiveMaximum: 1 } };
      const sub = await connect(b.port, version, 'x', fields);
      await subscribe(sub, 'q2fail/t', 2);
      sub.send({ type: 'pubrec', packetId: 999, reasonCode: 0x80 });
      assert.deepEqual(await sub.barrier(), [], 'an unsolicited failed PUBREC gets no PUBREL');

      const pub = await connect(b.port, version, 'q2fail-pub');
      pub.send(pkt('q2fail/t', 'one', 2, 1));
      pub.send(pkt('q2fail/t', 'two', 2, 2));
      await pub.next('pubrec');
      await pub.next('pubrec');
      const one = await sub.next('publish');
      assert.equal(one.payload.toString(), 'one');
      assert.deepEqual(await sub.barrier(), [], 'Receive Maximum 1: the second waits');
      sub.send({ type: 'pubrec', packetId: one.packetId!, reasonCode: 0x80 });
      const two = await sub.next();
      assert.deepEqual([two.type, two.type === 'publish' && two.payload.toString()], ['publish', 'two'], 'no PUBREL; the slot is free for the next message');

      sub.destroy();
      await sub.closed();
      const back = await connect(b.port, version, 'x', { ...fields, clean: false });
      const again = await back.next('publish');
      assert.deepEqual([again.payload.toString(), again.dup], ['two', true], 'only the unacknowledged message is re-sent');
      back.send({ type: 'pubrec', packetId: again.packetId! });
      assert.deepEqual(await back.next(), ack(version, 'pubrel', again.packetId!));
      back.send({ type: 'pubcomp', packetId: again.packetId! });
      assert.deepEqual(await back.barrier(), []);
    });

    void it("[MQTT-3.3.4-7] [MQTT-4.13.1-1] the broker's Receive Maximum 2: a third unreleased QoS 2 PUBLISH → DISCONNECT 0x93; releasing one makes room", async () => {
      await withBroker({ mqtt: { receiveMaximum: 2 } }, async (tb) => {
        const { client: c, connack } = await connectFull(tb.port, version, 'rmin');
        assert.equal(connack.properties?.receiveMaximum, 2);
        c.send(pkt('rmin/t', '1', 2, 1));
        c.send(pkt('rmin/t', '2', 2, 2));
        assert.deepEqual(await c.next(), ack(version, 'pubrec', 1, 0x10));
        assert.deepEqual(await c.next(), ack(version, 'pubrec', 2, 0x10));
        c.send({ type: 'pubrel', packetId: 1 });
        assert.deepEqual(await c.next(), ack(version, 'pubcomp', 1));
        c.send(pkt('rmin/t', '3', 2, 3));
        assert.deepEqual(await c.next(), ack(version, 'pubrec', 3, 0x10));
        c.send(pkt('rmin/t', '4', 2, 4));
        await expectClosed(c, version, [0x93]);
      });
    });

    void it("[MQTT-3.3.4-7] [MQTT-4.9.0-2] the broker's Receive Maximum 2 counts QoS 1 too: a QoS 1 PUBLISH while 2 QoS 2 are unreleased → DISCONNECT 0x93", async () => {
      await withBroker({ mqtt: { receiveMaximum: 2 } }, async (tb) => {
        const c = await connect(tb.port, version, 'rmq1');
        c.send(pkt('rmq1/t', '1', 2, 1));
        c.send(pkt('rmq1/t', '2', 2, 2));
        await c.next('pubrec');
        await c.next('pubrec');
        c.send(pkt('rmq1/t', '3', 1, 3));
        await expectClosed(c, version, [0x93]);
      });
    });
  });
}
