/**
 * MQTT 3.1.1 §4.1 / 5.0 §4.1 session state, with the retry rule of §4.4: what the server keeps
 * for a client between network connections (subscriptions, QoS 1/2 messages queued while it is
 * offline, messages in flight, inbound QoS 2 state), what it does not keep (QoS 0), how in-flight
 * messages are resent on resume, and Courier's per-session queue limit.
 *
 * Every test runs for 3.1.1 (CleanSession 0) and 5.0 (Clean Start 0 with a Session Expiry
 * Interval); a title that depends on the version names the id of each. Nothing sleeps: a QoS 1
 * PUBACK proves a publish was routed, broker events and RawClient.barrier() do the rest.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Broker, SessionLimits } from '../../src/index.js';
import type { QoS } from '../../src/protocol/constants.js';
import type { ConnectPacket, PublishPacket } from '../../src/protocol/packets.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { RawClient } from '../helpers/raw-client.js';
import { brokerEvent, subscribe, persistent } from '../helpers/spec.js';

/**
 * Publishes and completes the publisher's side of the exchange: the PUBACK or PUBREC comes after
 * the broker has routed the message, so once this returns every subscriber has it (or has it queued).
 */
async function publish(c: RawClient, topic: string, payload: string, qos: QoS, packetId = 1): Promise<void> {
  const p: PublishPacket = { type: 'publish', topic, payload: Buffer.from(payload), qos, retain: false, dup: false };
  if (qos > 0) p.packetId = packetId;
  c.send(p);
  if (qos === 1) {
    assert.equal((await c.next('puback')).packetId, packetId);
  } else if (qos === 2) {
    assert.equal((await c.next('pubrec')).packetId, packetId);
    c.send({ type: 'pubrel', packetId });
    assert.equal((await c.next('pubcomp')).packetId, packetId);
  } else {
    await c.barrier();
  }
}

/** Receives the next PUBLISH and acknowledges it completely (for one message in flight at a time). */
async function receive(c: RawClient): Promise<PublishPacket> {
  const m = await c.next('publish');
  if (m.qos === 1) c.send({ type: 'puback', packetId: m.packetId! });
  if (m.qos === 2) {
    c.send({ type: 'pubrec', packetId: m.packetId! });
    assert.equal((await c.next('pubrel')).packetId, m.packetId);
    c.send({ type: 'pubcomp', packetId: m.packetId! });
  }
  return m;
}

/** Completes the receiver's side for several PUBLISHes received back to back. */
async function acknowledge(c: RawClient, msgs: PublishPacket[]): Promise<void> {
  for (const m of msgs) c.send({ type: m.qos === 1 ? 'puback' : 'pubrec', packetId: m.packetId! });
  for (const m of msgs.filter((x) => x.qos === 2)) {
    assert.equal((await c.next('pubrel')).packetId, m.packetId);
    c.send({ type: 'pubcomp', packetId: m.packetId! });
  }
}

for (const version of [4, 5] as const) {
  const v5 = version === 5;
  const V = v5 ? '5.0' : '3.1.1';
  const id = (name: string): string => `${name}-${version}`;

  void describe(`§4.1 session state (MQTT ${V})`, () => {
    let b: TestBroker;
    before(async () => {
      b = await startBroker();
    });
    after(async () => {
      RawClient.destroyEvery();
      await b.close();
    });

    const connect = (port: number, clientId: string, fields: Partial<ConnectPacket> = persistent(version)): ReturnType<typeof RawClient.connect> =>
      RawClient.connect(port, { protocolVersion: version, clientId, ...fields });

    /** Ends the connection abnormally and waits until the broker has seen it end. */
    async function drop(broker: Broker, c: RawClient, clientId: string): Promise<void> {
      const gone = brokerEvent(broker, 'clientDisconnect', (info) => info.clientId === clientId);
      c.destroy();
      await gone;
    }

    /** Ends a stored session: a clean connection whose session ends with it. */
    async function forget(port: number, clientId: string): Promise<void> {
      const { client } = await connect(port, clientId, { clean: true });
      await client.disconnect();
    }

    // ------------------------------------------------------------------------------------------
    // What the session keeps

    void it(`${v5 ? '[MQTT-4.1.0-1] [MQTT-3.1.2-23] [MQTT-3.1.2-5]' : '[MQTT-4.1.0-1] [MQTT-3.1.2-4]'} subscriptions are session state: after a reconnect with clean 0 they deliver without a new SUBSCRIBE, at their granted QoS`, async () => {
      const cid = id('subs');
      const { client: c1 } = await connect(b.port, cid);
      await subscribe(c1, `subs/one/${version}`, 1, 1);
      await subscribe(c1, `subs/two/${version}`, 2, 2);
      await drop(b.broker, c1, cid);
      const { client: c2, connack } = await connect(b.port, cid);
      assert.equal(connack.sessionPresent, true);
      const { client: pub } = await connect(b.port, id('subs-pub'), { clean: true });
      await publish(pub, `subs/one/${version}`, 'one', 2, 1);
      await publish(pub, `subs/two/${version}`, 'two', 2, 2);
      const m1 = await receive(c2);
      const m2 = await receive(c2);
      assert.deepEqual([m1.topic, m1.qos, m1.payload.toString()], [`subs/one/${version}`, 1, 'one']);
      assert.deepEqual([m2.topic, m2.qos, m2.payload.toString()], [`subs/two/${version}`, 2, 'two']);
      assert.deepEqual(await c2.barrier(), []);
      await c2.disconnect();
      await pub.disconnect();
      await forget(b.port, cid);
    });

    void it(`${v5 ? '[MQTT-3.1.2-23]' : '[MQTT-3.1.2-5]'} [MQTT-3.3.1-3] QoS 1 and QoS 2 messages published while the client is offline are kept and delivered on resume, in order, at the subscription's QoS, with DUP 0`, async () => {
      const cid = id('offline');
      const topic = `offline/${version}`;
      const { client: c1 } = await connect(b.port, cid);
      await subscribe(c1, `${topic}/+`, 2);
      await drop(b.broker, c1, cid);
      const { client: pub } = await connect(b.port, id('offline-pub'), { clean: true });
      const sent: Array<[string, QoS]> = [
        ['a', 1],
        ['b', 2],
        ['c', 1],
        ['d', 2],
      ];
      let pid = 1;
      for (const [payload, qos] of sent) await publish(pub, `${topic}/${payload}`, payload, qos, pid++);
      const { client: c2, connack } = await connect(b.port, cid);
      assert.equal(connack.sessionPresent, true);
      const got: PublishPacket[] = [];
      for (let i = 0; i < sent.length; i++) got.push(await c2.next('publish'));
      assert.deepEqual(
        got.map((m) => [m.payload.toString(), m.qos]),
        sent,
      );
      for (const m of got) assert.equal(m.dup, false, 'never sent before, so not a retransmission');
      await acknowledge(c2, got);
      assert.deepEqual(await c2.barrier(), []);
      await c2.disconnect();
      await pub.disconnect();
      await forget(b.port, cid);
    });

    void it(`${v5 ? '[MQTT-3.1.2-23]' : '[MQTT-3.1.2-5]'} only QoS 1 and 2 messages are kept for an offline client; QoS 0 ones (which the server MAY keep) are not`, async () => {
      const cid = id('qos0');
      const topic = `qos0/${version}`;
      const { client: c1 } = await connect(b.port, cid);
      await subscribe(c1, topic, 2);
      await drop(b.broker, c1, cid);
      const { client: pub } = await connect(b.port, id('qos0-pub'), { clean: true });
      await publish(pub, topic, 'zero', 0);
      await publish(pub, topic, 'one', 1);
      const { client: c2 } = await connect(b.port, cid);
      const m = await receive(c2);
      assert.equal(m.payload.toString(), 'one');
      assert.deepEqual(await c2.barrier(), [], 'the QoS 0 message was not queued');
      await c2.disconnect();
      await pub.disconnect();
      await forget(b.port, cid);
    });

    void it(`${v5 ? '[MQTT-3.1.2-4]' : '[MQTT-3.1.2-6]'} messages kept for an offline session are discarded with it when the client returns with clean 1`, async () => {
      const cid = id('discard');
      const topic = `discard/${version}`;
      const { client: c1 } = await connect(b.port, cid);
      await subscribe(c1, topic, 1);
      await drop(b.broker, c1, cid);
      const { client: pub } = await connect(b.port, id('discard-pub'), { clean: true });
      await publish(pub, topic, 'stale', 1);
      const { client: c2, connack } = await connect(b.port, cid, { clean: true });
      assert.equal(connack.sessionPresent, false);
      assert.deepEqual(await c2.barrier(), []);
      await c2.disconnect();
      await pub.disconnect();
    });

    // ------------------------------------------------------------------------------------------
    // Message delivery retry (§4.4)

    void it('[MQTT-4.4.0-1] [MQTT-3.3.1-1] unacknowledged QoS 1 and QoS 2 PUBLISHes are resent on resume with DUP 1 and their original Packet Identifiers, and not before', async () => {
      const cid = id('inflight');
      const topic = `inflight/${version}`;
      const { client: c1 } = await connect(b.port, cid);
      await subscribe(c1, `${topic}/+`, 2);
      const { client: pub } = await connect(b.port, id('inflight-pub'), { clean: true });
      await publish(pub, `${topic}/q1`, 'q1', 1, 1);
      await publish(pub, `${topic}/q2`, 'q2', 2, 2);
      const first1 = await c1.next('publish');
      const first2 = await c1.next('publish');
      assert.deepEqual([first1.payload.toString(), first1.qos, first1.dup], ['q1', 1, false]);
      assert.deepEqual([first2.payload.toString(), first2.qos, first2.dup], ['q2', 2, false]);
      // Not acknowledged, but the connection is up: nothing is resent on it [MQTT-4.4.0-1].
      assert.deepEqual(await c1.barrier(), []);
      await drop(b.broker, c1, cid);
      const { client: c2, connack } = await connect(b.port, cid);
      assert.equal(connack.sessionPresent, true);
      const again1 = await c2.next('publish');
      const again2 = await c2.next('publish');
      assert.deepEqual([again1.payload.toString(), again1.qos, again1.dup, again1.packetId], ['q1', 1, true, first1.packetId]);
      assert.deepEqual([again2.payload.toString(), again2.qos, again2.dup, again2.packetId], ['q2', 2, true, first2.packetId]);
      c2.send({ type: 'puback', packetId: again1.packetId! });
      c2.send({ type: 'pubrec', packetId: again2.packetId! });
      assert.equal((await c2.next('pubrel')).packetId, again2.packetId);
      c2.send({ type: 'pubcomp', packetId: again2.packetId! });
      assert.deepEqual(await c2.barrier(), []);
      // Acknowledged now: a further resume resends nothing.
      await drop(b.broker, c2, cid);
      const { client: c3 } = await connect(b.port, cid);
      assert.deepEqual(await c3.barrier(), []);
      await c3.disconnect();
      await pub.disconnect();
      await forget(b.port, cid);
    });

    void it(`[MQTT-4.4.0-1] ${v5 ? '[MQTT-4.3.3-6]' : '[MQTT-4.3.3-1]'} an unacknowledged PUBREL is resent on resume with its original Packet Identifier, and the PUBLISH it released is not`, async () => {
      const cid = id('pubrel');
      const topic = `pubrel/${version}`;
      const { client: c1 } = await connect(b.port, cid);
      await subscribe(c1, topic, 2);
      const { client: pub } = await connect(b.port, id('pubrel-pub'), { clean: true });
      await publish(pub, topic, 'released', 2);
      const m = await c1.next('publish');
      c1.send({ type: 'pubrec', packetId: m.packetId! });
      assert.equal((await c1.next('pubrel')).packetId, m.packetId);
      await drop(b.broker, c1, cid);
      const { client: c2 } = await connect(b.port, cid);
      const rel = await c2.next('pubrel');
      assert.equal(rel.packetId, m.packetId);
      c2.send({ type: 'pubcomp', packetId: rel.packetId });
      assert.deepEqual(await c2.barrier(), [], 'no PUBLISH after its PUBREL');
      await c2.disconnect();
      await pub.disconnect();
      await forget(b.port, cid);
    });

    void it(`${v5 ? '[MQTT-4.3.3-10]' : '[MQTT-4.3.3-2]'} [MQTT-4.1.0-1] inbound QoS 2 state is session state: a PUBLISH resent after a reconnect, before PUBREL, is acknowledged but not delivered twice`, async () => {
      const cid = id('inbound');
      const topic = `inbound/${version}`;
      const { client: sub } = await connect(b.port, id('inbound-sub'), { clean: true });
      await subscribe(sub, topic, 2);
      const { client: p1 } = await connect(b.port, cid);
      const packet: PublishPacket = { type: 'publish', topic, payload: Buffer.from('once'), qos: 2, retain: false, dup: false, packetId: 7 };
      p1.send(packet);
      assert.equal((await p1.next('pubrec')).packetId, 7);
      assert.equal((await receive(sub)).payload.toString(), 'once');
      await drop(b.broker, p1, cid);
      const { client: p2, connack } = await connect(b.port, cid);
      assert.equal(connack.sessionPresent, true);
      p2.send({ ...packet, dup: true });
      assert.equal((await p2.next('pubrec')).packetId, 7);
      p2.send({ type: 'pubrel', packetId: 7 });
      const comp = await p2.next('pubcomp');
      assert.equal(comp.packetId, 7);
      assert.equal(comp.reasonCode ?? 0, 0, 'the id was still pending from the first connection');
      assert.deepEqual(await sub.barrier(), [], 'delivered once');
      await p2.disconnect();
      await sub.disconnect();
      await forget(b.port, cid);
    });

    // ------------------------------------------------------------------------------------------
    // Courier's per-session queue limit (§4.1: storage capabilities have limits)

    for (const policy of ['drop-new', 'drop-oldest'] as const) {
      void it(`§4.1 a session queue holds at most sessions.maxQueuedMessages messages; with queueFullPolicy ${policy} the ${policy === 'drop-new' ? 'newest' : 'oldest'} ones are dropped`, async () => {
        const limits: Partial<SessionLimits> = { maxQueuedMessages: 3, queueFullPolicy: policy };
        const own = await startBroker({ sessions: limits });
        try {
          const cid = id(`queue-${policy}`);
          const topic = `queue/${policy}/${version}`;
          const { client: c1 } = await connect(own.port, cid);
          await subscribe(c1, topic, 1);
          await drop(own.broker, c1, cid);
          const { client: pub } = await connect(own.port, id(`queue-${policy}-pub`), { clean: true });
          for (let i = 1; i <= 5; i++) await publish(pub, topic, `m${i}`, 1, i);
          const { client: c2 } = await connect(own.port, cid);
          const got: string[] = [];
          for (let i = 0; i < 3; i++) got.push((await receive(c2)).payload.toString());
          assert.deepEqual(got, policy === 'drop-new' ? ['m1', 'm2', 'm3'] : ['m3', 'm4', 'm5']);
          assert.deepEqual(await c2.barrier(), [], 'nothing beyond the limit');
          // The queue works normally again once drained.
          await publish(pub, topic, 'after', 1, 6);
          assert.equal((await receive(c2)).payload.toString(), 'after');
          await c2.disconnect();
          await pub.disconnect();
        } finally {
          RawClient.destroyEvery();
          await own.close();
        }
      });
    }
  });
}
