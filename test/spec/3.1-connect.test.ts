/**
 * MQTT 3.1.1 §3.1 / 5.0 §3.1 CONNECT (with the CONNACK rules of §3.2 it triggers): protocol
 * name and level, flags, client identifiers, takeover, Session Present, v5 capabilities and
 * Server Keep Alive, Session Expiry and wills (QoS, retain, delay).
 *
 * Every test runs for 3.1.1 (level 4) and 5.0 (level 5) unless marked 5.0-only; a title that
 * depends on the version names the id of each (3.1.1 and 5.0 number their statements differently).
 * Nothing sleeps: broker events and RawClient.barrier() decide when something did or did not happen.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ProtocolVersion } from '../../src/protocol/constants.js';
import { encode } from '../../src/protocol/encoder.js';
import type { ConnectPacket, Will } from '../../src/protocol/packets.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { RawClient } from '../helpers/raw-client.js';
import { brokerEvent, subscribe, persistent, will } from '../helpers/spec.js';

const disconnected = (b: TestBroker, clientId: string): Promise<unknown> => brokerEvent(b.broker, 'clientDisconnect', (c) => c.clientId === clientId);

/** QoS 1 publish; the PUBACK proves the broker has routed it (routing is synchronous). */
async function publish1(c: RawClient, topic: string, payload: string, packetId = 1, retain = false): Promise<void> {
  c.send({ type: 'publish', topic, payload: Buffer.from(payload), qos: 1, retain, dup: false, packetId });
  const ack = await c.next('puback');
  assert.equal(ack.packetId, packetId);
}

function connectBytes(v: ProtocolVersion, fields: Partial<ConnectPacket> = {}): Buffer {
  const p: ConnectPacket = { type: 'connect', protocolName: 'MQTT', protocolVersion: v, clean: true, keepAlive: 0, clientId: 'raw', ...fields };
  const buf = encode(p, v);
  assert.ok(buf[1]! < 0x80, 'one-byte Remaining Length, so the variable header starts at byte 2');
  return buf;
}

for (const version of [4, 5] as const) {
  const v5 = version === 5;
  const V = v5 ? '5.0' : '3.1.1';
  const id = (name: string): string => `${name}-${version}`;

  void describe(`§3.1 CONNECT (MQTT ${V})`, () => {
    let b: TestBroker;
    before(async () => {
      b = await startBroker();
    });
    after(async () => {
      RawClient.destroyEvery();
      await b.close();
    });

    /** Ends a stored session: a clean connection whose session ends with it. */
    async function forget(clientId: string): Promise<void> {
      const { client } = await RawClient.connect(b.port, { protocolVersion: version, clientId, clean: true });
      await client.disconnect();
    }

    // ------------------------------------------------------------------------------------------
    // Protocol name, level, flags, first and second CONNECT

    void it(`[MQTT-3.1.2-2] an unsupported Protocol Level is answered with CONNACK ${v5 ? '0x84 (Unsupported Protocol Version)' : '0x01 (unacceptable protocol level)'} and the connection closed`, async () => {
      const client = await RawClient.open(b.port, version);
      const bytes = connectBytes(version, { clientId: id('level') });
      bytes[8] = v5 ? 6 : 2; // 5.0: a level from the future; 3.1.1: a level from the past
      client.sendRaw(bytes);
      const ack = await client.next('connack');
      assert.equal(ack.reasonCode, v5 ? 0x84 : 0x01);
      assert.equal(ack.sessionPresent, false);
      await client.closed();
      assert.deepEqual(client.pending, []);
    });

    void it('[MQTT-3.1.2-1] a Protocol Name other than "MQTT" is not processed: the connection is closed without accepting it', async () => {
      const client = await RawClient.open(b.port, version);
      const bytes = connectBytes(version, { clientId: id('name') });
      bytes.write('MQTX', 4, 'latin1');
      client.sendRaw(bytes);
      await client.closed();
      // 5.0 allows a CONNACK 0x84 before closing; 3.1.1 has no return code for it.
      for (const p of client.pending) assert.ok(v5 && p.type === 'connack' && p.reasonCode === 0x84, `unexpected ${p.type}`);
    });

    void it('[MQTT-3.1.2-3] [MQTT-3.1.4-1] a CONNECT with the reserved flag set is not accepted: the connection is closed', async () => {
      const client = await RawClient.open(b.port, version);
      const bytes = connectBytes(version, { clientId: id('reserved') });
      bytes[9]! |= 0x01;
      client.sendRaw(bytes);
      await client.closed();
      // 3.1.1: closed without CONNACK; 5.0 may send CONNACK 0x81 (Malformed Packet) first.
      for (const p of client.pending) assert.ok(v5 && p.type === 'connack' && p.reasonCode === 0x81, `unexpected ${p.type}`);
    });

    void it('[MQTT-3.1.0-1] a first packet other than CONNECT closes the connection without any answer', async () => {
      const client = await RawClient.open(b.port, version);
      client.send({ type: 'pingreq' });
      await client.closed();
      assert.deepEqual(client.pending, []);
    });

    void it(`[MQTT-3.1.0-2] a second CONNECT is a protocol violation: the connection is closed${v5 ? ' after DISCONNECT 0x82 (Protocol Error)' : ''}`, async () => {
      const { client, connack } = await RawClient.connect(b.port, { protocolVersion: version, clientId: id('twice') });
      assert.equal(connack.reasonCode, 0);
      client.send({ type: 'connect', protocolName: 'MQTT', protocolVersion: version, clean: true, keepAlive: 0, clientId: id('twice') });
      if (v5) {
        const d = await client.next('disconnect');
        assert.equal(d.reasonCode, 0x82);
      }
      await client.closed();
      assert.deepEqual(client.pending, []);
    });

    void it(`${v5 ? '[MQTT-3.1.4-6]' : '[MQTT-3.1.4-5]'} after refusing a CONNECT the server processes nothing else the client sent, not even another CONNECT`, async () => {
      const cid = id('after-refusal');
      const refused = v5
        ? connectBytes(version, { clientId: id('refused'), properties: { authenticationMethod: 'no-such-method' } })
        : connectBytes(version, { clientId: '', clean: false });
      const second = connectBytes(version, { clientId: cid, ...persistent(version) });
      const connects: string[] = [];
      const onConnect = (c: { clientId: string }): void => {
        connects.push(c.clientId);
      };
      b.broker.on('clientConnect', onConnect);
      try {
        const client = await RawClient.open(b.port, version);
        client.sendRaw(Buffer.concat([refused, second]));
        const ack = await client.next('connack');
        assert.equal(ack.reasonCode, v5 ? 0x8c : 0x02);
        await client.closed();
        assert.deepEqual(client.pending, [], 'nothing after the refusing CONNACK');
        assert.deepEqual(connects, [], 'the CONNECT after the refused one must not be processed');
        // Had it been processed, it would have left a session behind.
        const { client: probe, connack } = await RawClient.connect(b.port, { protocolVersion: version, clientId: cid, clean: false });
        assert.equal(connack.sessionPresent, false);
        await probe.disconnect();
      } finally {
        b.broker.off('clientConnect', onConnect);
      }
    });

    // ------------------------------------------------------------------------------------------
    // Client identifiers

    if (!v5) {
      void it('[MQTT-3.1.3-8] [MQTT-3.2.2-4] [MQTT-3.2.2-5] a zero-length ClientId with CleanSession 0 is refused with CONNACK 0x02, Session Present 0, and closed', async () => {
        const { client, connack } = await RawClient.connect(b.port, { protocolVersion: 4, clientId: '', clean: false });
        assert.equal(connack.reasonCode, 0x02);
        assert.equal(connack.sessionPresent, false);
        await client.closed();
        assert.deepEqual(client.pending, []);
      });
    }

    void it(`${v5 ? '[MQTT-3.1.3-6] [MQTT-3.1.3-7] [MQTT-3.2.2-16]' : '[MQTT-3.1.3-6]'} a zero-length ClientId${v5 ? '' : ' with CleanSession 1'} is accepted and a unique ClientId assigned${v5 ? ' and returned as Assigned Client Identifier' : ''}`, async () => {
      const assigned: string[] = [];
      for (let i = 0; i < 2; i++) {
        const seen = brokerEvent(b.broker, 'clientConnect', (c) => c.protocolVersion === version && !assigned.includes(c.clientId));
        const { client, connack } = await RawClient.connect(b.port, { protocolVersion: version, clientId: '', clean: true });
        assert.equal(connack.reasonCode, 0);
        const [info] = await seen;
        assert.ok(info.clientId.length > 0);
        if (v5) assert.equal(connack.properties?.assignedClientIdentifier, info.clientId);
        else assert.equal(connack.properties, undefined);
        assigned.push(info.clientId);
        // Processed as if the client had sent that id: a barrier round trip works.
        assert.deepEqual(await client.barrier(), []);
        await client.disconnect();
      }
      assert.notEqual(assigned[0], assigned[1]);
    });

    // ------------------------------------------------------------------------------------------
    // Takeover

    void it(`${v5 ? '[MQTT-3.1.4-3]' : '[MQTT-3.1.4-2]'} a CONNECT with the ClientId of a connected client closes the existing connection${v5 ? ' after DISCONNECT 0x8E (Session taken over)' : ''}`, async () => {
      const cid = id('takeover');
      const { client: first } = await RawClient.connect(b.port, { protocolVersion: version, clientId: cid });
      const { client: second, connack } = await RawClient.connect(b.port, { protocolVersion: version, clientId: cid });
      assert.equal(connack.reasonCode, 0);
      if (v5) {
        const d = await first.next('disconnect');
        assert.equal(d.reasonCode, 0x8e);
      }
      await first.closed();
      assert.deepEqual(first.pending, []);
      assert.deepEqual(await second.barrier(), [], 'the new connection is unaffected');
      assert.equal(second.isClosed, false);
      await second.disconnect();
    });

    void it(`${v5 ? '[MQTT-3.1.4-3] [MQTT-3.2.2-3]' : '[MQTT-3.1.4-2] [MQTT-3.2.2-2]'} the connection taking over with clean 0 continues the session (Session Present 1, subscriptions kept)`, async () => {
      const cid = id('takeover-session');
      const topic = `takeover/${version}`;
      const { client: first } = await RawClient.connect(b.port, { protocolVersion: version, clientId: cid, ...persistent(version) });
      await subscribe(first, topic, 1);
      const { client: second, connack } = await RawClient.connect(b.port, { protocolVersion: version, clientId: cid, ...persistent(version) });
      assert.equal(connack.sessionPresent, true);
      await first.closed();
      const { client: pub } = await RawClient.connect(b.port, { protocolVersion: version, clientId: id('takeover-pub') });
      await publish1(pub, topic, 'still subscribed');
      const msg = await second.next('publish');
      assert.equal(msg.payload.toString(), 'still subscribed');
      second.send({ type: 'puback', packetId: msg.packetId! });
      await second.disconnect();
      await pub.disconnect();
      await forget(cid);
    });

    void it(`[MQTT-3.1.2-8] the will of a connection closed by a takeover is published${v5 ? ' (Will Delay Interval 0)' : ''}`, async () => {
      const topic = `will/takeover/${version}`;
      const cid = id('takeover-will');
      const { client: watcher } = await RawClient.connect(b.port, { protocolVersion: version, clientId: id('takeover-watch') });
      await subscribe(watcher, topic);
      const { client: first } = await RawClient.connect(b.port, { protocolVersion: version, clientId: cid, will: will(topic, 'taken over') });
      const { client: second } = await RawClient.connect(b.port, { protocolVersion: version, clientId: cid });
      await first.closed();
      const w = await watcher.next('publish');
      assert.equal(w.payload.toString(), 'taken over');
      await second.disconnect();
      assert.deepEqual(await watcher.barrier(), [], 'the new connection has no will');
      await watcher.disconnect();
    });

    // ------------------------------------------------------------------------------------------
    // Session Present and Clean Session / Clean Start

    void it(`${v5 ? '[MQTT-3.2.2-2] [MQTT-3.1.2-4]' : '[MQTT-3.2.2-1] [MQTT-3.1.2-6]'} clean 1 gets Session Present 0 even when a session was stored, and the stored session is discarded`, async () => {
      const cid = id('clean1');
      const topic = `clean1/${version}`;
      const { client: c1 } = await RawClient.connect(b.port, { protocolVersion: version, clientId: cid, ...persistent(version) });
      await subscribe(c1, topic, 1);
      await c1.disconnect();
      const { client: c2, connack } = await RawClient.connect(b.port, { protocolVersion: version, clientId: cid, clean: true });
      assert.equal(connack.reasonCode, 0);
      assert.equal(connack.sessionPresent, false);
      const { client: pub } = await RawClient.connect(b.port, { protocolVersion: version, clientId: id('clean1-pub') });
      await publish1(pub, topic, 'nobody subscribed');
      assert.deepEqual(await c2.barrier(), [], 'the old subscription went with the old session');
      await c2.disconnect();
      await pub.disconnect();
      // The clean session lasted as long as its connection: nothing of it is left to resume.
      const { client: c3, connack: third } = await RawClient.connect(b.port, { protocolVersion: version, clientId: cid, clean: false });
      assert.equal(third.sessionPresent, false);
      await c3.disconnect();
      await forget(cid);
    });

    void it(`${v5 ? '[MQTT-3.2.2-3] [MQTT-3.1.2-5]' : '[MQTT-3.2.2-2] [MQTT-3.1.2-4]'} clean 0 with a stored session gets Session Present 1 and resumes it`, async () => {
      const cid = id('resume');
      const topic = `resume/${version}`;
      const { client: c1, connack: first } = await RawClient.connect(b.port, { protocolVersion: version, clientId: cid, ...persistent(version) });
      assert.equal(first.sessionPresent, false);
      await subscribe(c1, topic, 1);
      await c1.disconnect();
      const { client: c2, connack } = await RawClient.connect(b.port, { protocolVersion: version, clientId: cid, ...persistent(version) });
      assert.equal(connack.reasonCode, 0);
      assert.equal(connack.sessionPresent, true);
      const { client: pub } = await RawClient.connect(b.port, { protocolVersion: version, clientId: id('resume-pub') });
      await publish1(pub, topic, 'resumed');
      const msg = await c2.next('publish');
      assert.equal(msg.payload.toString(), 'resumed');
      c2.send({ type: 'puback', packetId: msg.packetId! });
      await c2.disconnect();
      await pub.disconnect();
      await forget(cid);
    });

    void it(`${v5 ? '[MQTT-3.2.2-3] [MQTT-3.1.2-6]' : '[MQTT-3.2.2-3] [MQTT-3.1.2-4]'} clean 0 without a stored session gets Session Present 0 and a new session`, async () => {
      const cid = id('fresh');
      const { client, connack } = await RawClient.connect(b.port, { protocolVersion: version, clientId: cid, ...persistent(version) });
      assert.equal(connack.reasonCode, 0);
      assert.equal(connack.sessionPresent, false);
      await client.disconnect();
      // The new session was stored: the next clean 0 connection finds it.
      const { client: again, connack: second } = await RawClient.connect(b.port, { protocolVersion: version, clientId: cid, ...persistent(version) });
      assert.equal(second.sessionPresent, true);
      await again.disconnect();
      await forget(cid);
    });

    // ------------------------------------------------------------------------------------------
    // Wills

    void it('[MQTT-3.1.2-8] the will is published when the connection ends without DISCONNECT', async () => {
      const topic = `will/drop/${version}`;
      const { client: watcher } = await RawClient.connect(b.port, { protocolVersion: version, clientId: id('drop-watch') });
      await subscribe(watcher, topic);
      const { client } = await RawClient.connect(b.port, { protocolVersion: version, clientId: id('drop'), will: will(topic, 'dropped') });
      assert.deepEqual(await watcher.barrier(), [], 'nothing while the client is connected');
      client.destroy();
      const w = await watcher.next('publish');
      assert.equal(w.topic, topic);
      assert.equal(w.payload.toString(), 'dropped');
      await watcher.disconnect();
    });

    void it(`${v5 ? '[MQTT-3.1.2-8] [MQTT-4.13.1-1]' : '[MQTT-3.1.2-8]'} the will is published when the server closes the connection for a protocol violation`, async () => {
      const topic = `will/violation/${version}`;
      const { client: watcher } = await RawClient.connect(b.port, { protocolVersion: version, clientId: id('violation-watch') });
      await subscribe(watcher, topic);
      const { client } = await RawClient.connect(b.port, { protocolVersion: version, clientId: id('violation'), will: will(topic, 'violated') });
      // SUBSCRIBE with fixed-header flags 0000 instead of 0010 [MQTT-3.8.1-1]: malformed.
      client.sendRaw('80 06 00 01 00 01 61 00');
      if (v5) {
        const d = await client.next('disconnect');
        assert.equal(d.reasonCode, 0x81);
      }
      await client.closed();
      const w = await watcher.next('publish');
      assert.equal(w.payload.toString(), 'violated');
      await watcher.disconnect();
    });

    void it(`${v5 ? '[MQTT-3.1.2-15]' : '[MQTT-3.1.2-9] [MQTT-3.1.2-17]'} the will is published with its Will QoS and, with Will Retain 1, as a retained message`, async () => {
      const topic = `will/retained/${version}`;
      const { client: watcher } = await RawClient.connect(b.port, { protocolVersion: version, clientId: id('retain-watch') });
      await subscribe(watcher, topic, 2);
      const { client } = await RawClient.connect(b.port, { protocolVersion: version, clientId: id('retain-will'), will: will(topic, 'kept', 1, true) });
      client.destroy();
      const w = await watcher.next('publish');
      assert.equal(w.qos, 1, 'Will QoS 1 (subscription allows 2)');
      assert.equal(w.payload.toString(), 'kept');
      watcher.send({ type: 'puback', packetId: w.packetId! });
      // A later subscriber gets it as the retained message of the topic.
      const { client: late } = await RawClient.connect(b.port, { protocolVersion: version, clientId: id('retain-late') });
      await subscribe(late, topic, 1);
      const r = await late.next('publish');
      assert.equal(r.retain, true);
      assert.equal(r.qos, 1);
      assert.equal(r.payload.toString(), 'kept');
      late.send({ type: 'puback', packetId: r.packetId! });
      // Clean up the retained message.
      late.send({ type: 'publish', topic, payload: Buffer.alloc(0), qos: 0, retain: true, dup: false });
      await late.disconnect();
      await watcher.disconnect();
    });

    void it(`${v5 ? '[MQTT-3.1.2-14]' : '[MQTT-3.1.2-16]'} with Will Retain 0 the will is published as a non-retained message`, async () => {
      const topic = `will/plain/${version}`;
      const { client: watcher } = await RawClient.connect(b.port, { protocolVersion: version, clientId: id('plain-watch') });
      await subscribe(watcher, topic, 2);
      const { client } = await RawClient.connect(b.port, { protocolVersion: version, clientId: id('plain-will'), will: will(topic, 'not kept', 2, false) });
      client.destroy();
      const w = await watcher.next('publish');
      assert.equal(w.qos, 2);
      assert.equal(w.payload.toString(), 'not kept');
      watcher.send({ type: 'pubrec', packetId: w.packetId! });
      await watcher.next('pubrel');
      watcher.send({ type: 'pubcomp', packetId: w.packetId! });
      const { client: late } = await RawClient.connect(b.port, { protocolVersion: version, clientId: id('plain-late') });
      await subscribe(late, topic, 1);
      assert.deepEqual(await late.barrier(), [], 'no retained message');
      await late.disconnect();
      await watcher.disconnect();
    });

    // ------------------------------------------------------------------------------------------
    // 5.0 only: CONNACK properties, Server Keep Alive, Session Expiry, Will Delay

    if (v5) {
      void it('§3.2.2.3 (5.0) CONNACK announces Receive Maximum, Retain Available, Maximum Packet Size, Topic Alias Maximum and Wildcard / Subscription Identifier / Shared Subscription availability as configured', async () => {
        const { client, connack } = await RawClient.connect(b.port, { protocolVersion: 5, clientId: id('caps') });
        const p = connack.properties ?? {};
        const m = b.broker.mqtt;
        assert.equal(p.receiveMaximum, m.receiveMaximum);
        assert.equal(p.retainAvailable ?? 1, m.retainAvailable ? 1 : 0);
        assert.equal(p.maximumPacketSize, m.maxPacketSize);
        assert.equal(p.topicAliasMaximum ?? 0, m.topicAliasMaximum);
        assert.equal(p.wildcardSubscriptionAvailable ?? 1, m.wildcardSubscriptionAvailable ? 1 : 0);
        assert.equal(p.subscriptionIdentifiersAvailable ?? 1, m.subscriptionIdentifiersAvailable ? 1 : 0);
        assert.equal(p.sharedSubscriptionAvailable ?? 1, m.sharedSubscriptionAvailable ? 1 : 0);
        await client.disconnect();

        const custom = await startBroker({
          mqtt: {
            receiveMaximum: 10,
            retainAvailable: false,
            maxPacketSize: 4096,
            topicAliasMaximum: 5,
            wildcardSubscriptionAvailable: false,
            subscriptionIdentifiersAvailable: false,
            sharedSubscriptionAvailable: false,
          },
        });
        try {
          const { client: c, connack: ack } = await RawClient.connect(custom.port, { protocolVersion: 5, clientId: id('caps-custom') });
          const q = ack.properties ?? {};
          assert.equal(q.receiveMaximum, 10);
          assert.equal(q.retainAvailable, 0);
          assert.equal(q.maximumPacketSize, 4096);
          assert.equal(q.topicAliasMaximum, 5);
          assert.equal(q.wildcardSubscriptionAvailable, 0);
          assert.equal(q.subscriptionIdentifiersAvailable, 0);
          assert.equal(q.sharedSubscriptionAvailable, 0);
          await c.disconnect();
        } finally {
          RawClient.destroyEvery();
          await custom.close();
        }
      });

      void it('§3.2.2.3.2 (5.0) a Session Expiry Interval above the configured maximum is lowered, and CONNACK tells the client the value used', async () => {
        const capped = await startBroker({ mqtt: { maxSessionExpiryInterval: 10 } });
        try {
          for (const [asked, told] of [
            [3600, 10],
            [0xffffffff, 10],
            [10, undefined],
            [5, undefined],
          ] as const) {
            const { client, connack } = await RawClient.connect(capped.port, {
              protocolVersion: 5,
              clientId: id(`sei-${asked}`),
              clean: true,
              properties: { sessionExpiryInterval: asked },
            });
            assert.equal(connack.properties?.sessionExpiryInterval, told, `Session Expiry Interval ${asked}`);
            client.send({ type: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 0 } });
            await client.closed();
          }
        } finally {
          RawClient.destroyEvery();
          await capped.close();
        }
      });

      void it('[MQTT-3.2.2-9] (5.0) Maximum QoS is absent while QoS 2 is supported, and announced when the broker is configured with a lower maximum', async () => {
        const { client, connack } = await RawClient.connect(b.port, { protocolVersion: 5, clientId: id('maxqos') });
        assert.equal(connack.properties?.maximumQoS, undefined);
        await client.disconnect();
        const q1 = await startBroker({ mqtt: { maximumQoS: 1 } });
        try {
          const { client: c, connack: ack } = await RawClient.connect(q1.port, { protocolVersion: 5, clientId: id('maxqos-1') });
          assert.equal(ack.properties?.maximumQoS, 1);
          await c.disconnect();
        } finally {
          RawClient.destroyEvery();
          await q1.close();
        }
      });

      void it('[MQTT-3.2.2-13] (5.0) a will with Will Retain 1 while retained messages are unavailable is refused with CONNACK 0x9A (Retain not supported) and the connection closed', async () => {
        const nr = await startBroker({ mqtt: { retainAvailable: false } });
        try {
          const { client, connack } = await RawClient.connect(nr.port, {
            protocolVersion: 5,
            clientId: id('will-retain'),
            will: will('will/retain', 'x', 0, true),
          });
          assert.equal(connack.reasonCode, 0x9a);
          assert.equal(connack.sessionPresent, false);
          await client.closed();
        } finally {
          RawClient.destroyEvery();
          await nr.close();
        }
      });

      void it('[MQTT-3.1.3-10] (5.0) the will is published with its properties, User Properties in their order', async () => {
        const topic = `will/props/${version}`;
        const { client: watcher } = await RawClient.connect(b.port, { protocolVersion: 5, clientId: id('props-watch') });
        await subscribe(watcher, topic);
        const userProperties: Array<[string, string]> = [
          ['b', '1'],
          ['a', '2'],
          ['b', '3'],
        ];
        const { client } = await RawClient.connect(b.port, {
          protocolVersion: 5,
          clientId: id('props'),
          will: will(topic, '{"gone":true}', 0, false, {
            userProperties,
            contentType: 'application/json',
            payloadFormatIndicator: 1,
            responseTopic: 'answers',
            correlationData: Buffer.from('c0ffee', 'hex'),
          }),
        });
        client.destroy();
        const w = await watcher.next('publish');
        assert.equal(w.payload.toString(), '{"gone":true}');
        assert.deepEqual(w.properties?.userProperties, userProperties);
        assert.equal(w.properties?.contentType, 'application/json');
        assert.equal(w.properties?.payloadFormatIndicator, 1);
        assert.equal(w.properties?.responseTopic, 'answers');
        assert.deepEqual(w.properties?.correlationData, Buffer.from('c0ffee', 'hex'));
        assert.equal(w.properties?.willDelayInterval, undefined);
        await watcher.disconnect();
      });

      void it("[MQTT-3.1.3-9] [MQTT-3.1.4-3] (5.0) a takeover with Clean Start 0 within the Will Delay Interval cancels the old connection's will; with Clean Start 1 the session ends and the will is published", async () => {
        const topic = `will/takeover-delay/${version}`;
        const { client: watcher } = await RawClient.connect(b.port, { protocolVersion: 5, clientId: id('tod-watch') });
        await subscribe(watcher, topic);
        const delayed = (payload: string): Will => will(topic, payload, 0, false, { willDelayInterval: 1 });
        // Clean Start 0: the session continues, the will waits for a delay that never ends.
        const keep = id('tod-keep');
        const { client: k1 } = await RawClient.connect(b.port, { protocolVersion: 5, clientId: keep, ...persistent(5, 60), will: delayed('kept session') });
        const { client: k2, connack } = await RawClient.connect(b.port, { protocolVersion: 5, clientId: keep, ...persistent(5, 60) });
        assert.equal(connack.sessionPresent, true);
        assert.equal((await k1.next('disconnect')).reasonCode, 0x8e);
        // Clean Start 1: the old session ends with the takeover, and its will goes out.
        const end = id('tod-end');
        const { client: e1 } = await RawClient.connect(b.port, { protocolVersion: 5, clientId: end, ...persistent(5, 60), will: delayed('ended session') });
        const { client: e2 } = await RawClient.connect(b.port, { protocolVersion: 5, clientId: end, clean: true });
        assert.equal((await e1.next('disconnect')).reasonCode, 0x8e);
        const w = await watcher.next('publish');
        assert.equal(w.payload.toString(), 'ended session');
        // A control will with the same delay, started after the first takeover, proves the kept
        // session's will is not merely late.
        const ctl = id('tod-control');
        const { client: control } = await RawClient.connect(b.port, { protocolVersion: 5, clientId: ctl, ...persistent(5, 60), will: delayed('control') });
        const ctlGone = brokerEvent(b.broker, 'clientDisconnect', (c) => c.clientId === ctl);
        control.destroy();
        await ctlGone;
        assert.equal((await watcher.next('publish')).payload.toString(), 'control');
        assert.deepEqual(await watcher.barrier(), []);
        k2.send({ type: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 0 } });
        await k2.closed();
        await e2.disconnect();
        await forget(ctl);
        await watcher.disconnect();
      });

      void it('[MQTT-3.2.2-12] (5.0) a Will QoS above the Maximum QoS is refused with CONNACK 0x9B (QoS not supported) and the connection closed', async () => {
        const q1 = await startBroker({ mqtt: { maximumQoS: 1 } });
        try {
          const { client, connack } = await RawClient.connect(q1.port, { protocolVersion: 5, clientId: id('will-qos2'), will: will('will/qos2', 'x', 2) });
          assert.equal(connack.reasonCode, 0x9b);
          assert.equal(connack.sessionPresent, false);
          await client.closed();
        } finally {
          RawClient.destroyEvery();
          await q1.close();
        }
      });
    }

    if (v5) {
      void it('[MQTT-3.2.2-21] [MQTT-3.2.2-22] (5.0) a Keep Alive above the configured maximum, or 0, is replaced by a Server Keep Alive in CONNACK; one within it is kept', async () => {
        const k = await startBroker({ mqtt: { maxKeepAlive: 30 } });
        try {
          for (const [asked, told] of [
            [60, 30],
            [0, 30],
            [30, undefined],
            [10, undefined],
          ] as const) {
            const { client, connack } = await RawClient.connect(k.port, { protocolVersion: 5, clientId: id(`ska-${asked}`), keepAlive: asked });
            assert.equal(connack.reasonCode, 0);
            assert.equal(connack.properties?.serverKeepAlive, told, `Keep Alive ${asked}`);
            await client.disconnect();
          }
        } finally {
          RawClient.destroyEvery();
          await k.close();
        }
      });

      void it('[MQTT-3.1.2-22] [MQTT-3.2.2-21] (5.0) the server enforces the Server Keep Alive it announced: silent for 1.5 × that, the client gets DISCONNECT 0x8D', async () => {
        const k = await startBroker({ mqtt: { maxKeepAlive: 1 } });
        try {
          const { client, connack } = await RawClient.connect(k.port, { protocolVersion: 5, clientId: id('ska-enforced'), keepAlive: 0 });
          assert.equal(connack.properties?.serverKeepAlive, 1);
          const started = Date.now();
          const d = await client.next('disconnect', 4000);
          assert.equal(d.reasonCode, 0x8d);
          assert.ok(Date.now() - started >= 1000, 'not before the keep alive ran out');
          await client.closed();
        } finally {
          RawClient.destroyEvery();
          await k.close();
        }
      });
    } else {
      void it('[MQTT-3.2.2-4] [MQTT-3.2.2-5] (3.1.1) with a configured maximum keep alive, a Keep Alive above it (or 0) is refused with CONNACK 0x02 and the connection closed; one within it is accepted', async () => {
        const k = await startBroker({ mqtt: { maxKeepAlive: 30 } });
        try {
          for (const asked of [60, 0]) {
            const { client, connack } = await RawClient.connect(k.port, { protocolVersion: 4, clientId: id(`ka-${asked}`), keepAlive: asked });
            assert.equal(connack.reasonCode, 0x02, `Keep Alive ${asked}`);
            assert.equal(connack.sessionPresent, false);
            await client.closed();
          }
          const { client, connack } = await RawClient.connect(k.port, { protocolVersion: 4, clientId: id('ka-30'), keepAlive: 30 });
          assert.equal(connack.reasonCode, 0);
          await client.disconnect();
        } finally {
          RawClient.destroyEvery();
          await k.close();
        }
      });
    }

    if (v5) {
      void it('[MQTT-3.1.2-23] (5.0) Session Expiry Interval 0 (absent): the session ends with the connection, a later Clean Start 0 finds none', async () => {
        const cid = id('expiry0');
        const topic = `expiry0/${version}`;
        const { client: c1 } = await RawClient.connect(b.port, { protocolVersion: 5, clientId: cid, clean: false });
        await subscribe(c1, topic, 1);
        await c1.disconnect();
        const { client: c2, connack } = await RawClient.connect(b.port, { protocolVersion: 5, clientId: cid, clean: false });
        assert.equal(connack.sessionPresent, false);
        const { client: pub } = await RawClient.connect(b.port, { protocolVersion: 5, clientId: id('expiry0-pub') });
        await publish1(pub, topic, 'to nobody');
        assert.deepEqual(await c2.barrier(), [], 'the subscription ended with the first session');
        await c2.disconnect();
        await pub.disconnect();
      });

      void it('[MQTT-3.1.2-23] [MQTT-3.1.2-5] (5.0) Session Expiry Interval > 0: the session outlives the connection and QoS 1 messages published meanwhile arrive on resume', async () => {
        const cid = id('expiry60');
        const topic = `expiry60/${version}`;
        const { client: c1 } = await RawClient.connect(b.port, { protocolVersion: 5, clientId: cid, ...persistent(5, 60) });
        await subscribe(c1, topic, 1);
        const gone = disconnected(b, cid);
        c1.destroy();
        await gone;
        const { client: pub } = await RawClient.connect(b.port, { protocolVersion: 5, clientId: id('expiry60-pub') });
        await publish1(pub, topic, 'one', 1);
        await publish1(pub, topic, 'two', 2);
        const { client: c2, connack } = await RawClient.connect(b.port, { protocolVersion: 5, clientId: cid, ...persistent(5, 60) });
        assert.equal(connack.sessionPresent, true);
        const got: string[] = [];
        for (let i = 0; i < 2; i++) {
          const m = await c2.next('publish');
          assert.equal(m.qos, 1);
          assert.equal(m.dup, false);
          got.push(m.payload.toString());
          c2.send({ type: 'puback', packetId: m.packetId! });
        }
        assert.deepEqual(got, ['one', 'two']);
        assert.deepEqual(await c2.barrier(), []);
        await pub.disconnect();
        const ended = brokerEvent(b.broker, 'clientDisconnect', (c) => c.clientId === cid);
        c2.send({ type: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 0 } });
        await ended;
      });

      void it('[MQTT-4.1.0-2] (5.0) once the Session Expiry Interval has passed the session is discarded: the broker reports it expired and a return finds no session', async () => {
        const cid = id('expiry1');
        const topic = `expiry1/${version}`;
        const { client: c1 } = await RawClient.connect(b.port, { protocolVersion: 5, clientId: cid, ...persistent(5, 1) });
        await subscribe(c1, topic, 1);
        const expired = brokerEvent(b.broker, 'sessionExpired', (c) => c === cid, 5000);
        const started = Date.now();
        await c1.disconnect();
        await expired;
        assert.ok(Date.now() - started >= 900, 'not before the interval');
        const { client: pub } = await RawClient.connect(b.port, { protocolVersion: 5, clientId: id('expiry1-pub') });
        await publish1(pub, topic, 'after expiry');
        const { client: c2, connack } = await RawClient.connect(b.port, { protocolVersion: 5, clientId: cid, clean: false });
        assert.equal(connack.sessionPresent, false);
        assert.deepEqual(await c2.barrier(), [], 'nothing was kept for the expired session');
        await c2.disconnect();
        await pub.disconnect();
      });

      void it('[MQTT-3.1.2-8] (5.0) with a Will Delay Interval the will is published only once the delay has passed', async () => {
        const topic = `will/delay/${version}`;
        const cid = id('delay');
        const { client: watcher } = await RawClient.connect(b.port, { protocolVersion: 5, clientId: id('delay-watch') });
        await subscribe(watcher, topic);
        const { client } = await RawClient.connect(b.port, {
          protocolVersion: 5,
          clientId: cid,
          ...persistent(5, 60),
          will: will(topic, 'late', 0, false, { willDelayInterval: 1 }),
        });
        const gone = disconnected(b, cid);
        const started = Date.now();
        client.destroy();
        await gone;
        assert.deepEqual(await watcher.barrier(), [], 'not at the disconnect');
        const w = await watcher.next('publish');
        assert.equal(w.payload.toString(), 'late');
        assert.ok(Date.now() - started >= 900, `published after ${Date.now() - started} ms`);
        await watcher.disconnect();
        await forget(cid);
      });

      void it('[MQTT-3.1.3-9] [MQTT-3.1.2-8] (5.0) a new connection to the session within the Will Delay Interval cancels the will', async () => {
        const topic = `will/cancel/${version}`;
        const cid = id('cancel');
        const ctl = id('cancel-control');
        const { client: watcher } = await RawClient.connect(b.port, { protocolVersion: 5, clientId: id('cancel-watch') });
        await subscribe(watcher, topic);
        const delayed = (payload: string): Will => will(topic, payload, 0, false, { willDelayInterval: 1 });
        const { client } = await RawClient.connect(b.port, { protocolVersion: 5, clientId: cid, ...persistent(5, 60), will: delayed('cancelled') });
        const { client: control } = await RawClient.connect(b.port, { protocolVersion: 5, clientId: ctl, ...persistent(5, 60), will: delayed('control') });
        const gone = disconnected(b, cid);
        client.destroy();
        await gone;
        const { client: back, connack } = await RawClient.connect(b.port, { protocolVersion: 5, clientId: cid, ...persistent(5, 60) });
        assert.equal(connack.sessionPresent, true);
        // The control client's identical will delay starts later, so its will comes after the
        // cancelled one would have: once it is here, the cancelled one is provably not coming.
        const ctlGone = disconnected(b, ctl);
        control.destroy();
        await ctlGone;
        const w = await watcher.next('publish');
        assert.equal(w.payload.toString(), 'control');
        assert.deepEqual(await watcher.barrier(), []);
        back.send({ type: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 0 } });
        await back.closed();
        await forget(ctl);
        await watcher.disconnect();
      });

      void it('[MQTT-3.1.2-8] (5.0) a Session Expiry Interval shorter than the Will Delay Interval: the will is published when the session ends', async () => {
        const topic = `will/session-end/${version}`;
        const cid = id('session-end');
        const { client: watcher } = await RawClient.connect(b.port, { protocolVersion: 5, clientId: id('session-end-watch') });
        await subscribe(watcher, topic);
        const { client } = await RawClient.connect(b.port, {
          protocolVersion: 5,
          clientId: cid,
          ...persistent(5, 1),
          will: will(topic, 'session over', 0, false, { willDelayInterval: 60 }),
        });
        const expired = brokerEvent(b.broker, 'sessionExpired', (c) => c === cid, 5000);
        const started = Date.now();
        client.destroy();
        const w = await watcher.next('publish');
        assert.equal(w.payload.toString(), 'session over');
        const elapsed = Date.now() - started;
        assert.ok(elapsed >= 900 && elapsed < 5000, `published after ${elapsed} ms: at the session's end, not the will delay's`);
        await expired;
        await watcher.disconnect();
      });

      void it('[MQTT-3.1.2-8] (5.0) Session Expiry 0 with a Will Delay Interval: the session ends at once, and the will with it', async () => {
        const topic = `will/expiry0/${version}`;
        const cid = id('will-expiry0');
        const { client: watcher } = await RawClient.connect(b.port, { protocolVersion: 5, clientId: id('will-expiry0-watch') });
        await subscribe(watcher, topic);
        const { client } = await RawClient.connect(b.port, {
          protocolVersion: 5,
          clientId: cid,
          will: will(topic, 'at once', 0, false, { willDelayInterval: 60 }),
        });
        const gone = disconnected(b, cid);
        client.destroy();
        await gone;
        const arrived = await watcher.barrier();
        assert.equal(arrived.length, 1);
        assert.equal(arrived[0]?.type === 'publish' ? arrived[0].payload.toString() : arrived[0]?.type, 'at once');
        await watcher.disconnect();
      });
    }
  });
}
