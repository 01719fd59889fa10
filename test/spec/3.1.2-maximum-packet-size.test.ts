/**
 * 5.0 §3.1.2.11.4 Maximum Packet Size, as the client announces it in CONNECT: the server sends
 * nothing larger [MQTT-3.1.2-24], whatever the packet. Reason String and User Property are left
 * out where they would not fit (CONNACK [MQTT-3.2.2-19] [MQTT-3.2.2-20], PUBACK [MQTT-3.4.2-2],
 * PUBREC [MQTT-3.5.2-2], DISCONNECT [MQTT-3.14.2-3]); a CONNACK also drops capability
 * properties at their default values. A packet that cannot be made to fit is not sent: without
 * a CONNACK the connection is closed, without a SUBACK it is closed with DISCONNECT 0x95.
 * (A PUBLISH that does not fit is discarded instead [MQTT-3.1.2-25]: see 3.3-publish.test.ts.)
 *
 * Sizes are measured by encoding the decoded packet again: the codec's encoding is canonical.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { encode } from '../../src/protocol/encoder.js';
import type { ConnectPacket, Packet, Properties } from '../../src/protocol/packets.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { RawClient } from '../helpers/raw-client.js';
import { connectFull, destroyAll, so, track } from '../helpers/spec.js';

const size = (p: Packet): number => encode(p, 5).length;

/** Opens a 5.0 connection announcing `maximumPacketSize` (none when undefined) and sends the CONNECT. */
async function open(port: number, clientId: string, maximumPacketSize: number | undefined, extra: Properties = {}): Promise<RawClient> {
  const c = track(await RawClient.open(port, 5));
  const properties: Properties = { ...extra };
  if (maximumPacketSize !== undefined) properties.maximumPacketSize = maximumPacketSize;
  const connect: ConnectPacket = { type: 'connect', protocolName: 'MQTT', protocolVersion: 5, clean: true, keepAlive: 0, clientId, properties };
  c.send(connect);
  return c;
}

afterEach(destroyAll);

void describe('§3.1.2.11.4 the client’s Maximum Packet Size bounds every packet the server sends (MQTT 5.0)', () => {
  let b: TestBroker;
  before(async () => {
    b = await startBroker();
  });
  after(() => b.close());

  void it('[MQTT-3.1.2-24] [MQTT-3.2.2-19] [MQTT-3.2.2-20] a CONNACK fits the Maximum Packet Size: at 20 the capability properties at their default values are left out (24 bytes otherwise), those that differ stay, and the client is accepted', async () => {
    const full = await (await open(b.port, 'mps-full', undefined)).next('connack');
    assert.equal(size(full), 24, 'the CONNACK without a limit');
    assert.equal(full.properties?.retainAvailable, 1);

    const c = await open(b.port, 'mps-20', 20);
    const ack = await c.next('connack');
    assert.equal(ack.reasonCode, 0);
    assert.ok(size(ack) <= 20, `CONNACK of ${size(ack)} bytes`);
    assert.equal(ack.properties?.maximumPacketSize, 1024 * 1024, 'the broker’s own limit (not the default) stays');
    assert.equal(ack.properties?.topicAliasMaximum, 65535, 'a Topic Alias Maximum above the default 0 stays');
    for (const k of [
      'receiveMaximum',
      'retainAvailable',
      'wildcardSubscriptionAvailable',
      'subscriptionIdentifiersAvailable',
      'sharedSubscriptionAvailable',
    ] as const) {
      assert.equal(ack.properties?.[k], undefined, `${k} at its default is left out`);
    }
    c.send({ type: 'pingreq' });
    assert.equal((await c.next()).type, 'pingresp', 'connected');
  });

  void it('[MQTT-3.1.2-24] when not even the smallest CONNACK (5 bytes) fits (Maximum Packet Size 2 or 4), the connection is closed without one and nothing is accepted: no session is created', async () => {
    for (const max of [2, 4]) {
      const clientId = `mps-tiny-${max}`;
      const c = await open(b.port, clientId, max, { sessionExpiryInterval: 60 });
      await c.closed();
      assert.deepEqual(c.pending, [], `nothing sent for ${max}`);
      const { connack } = await connectFull(b.port, 5, 'unused', { clientId, clean: false, properties: { sessionExpiryInterval: 0 } });
      assert.equal(connack.sessionPresent, false, 'no session was created');
    }
  });

  void it('[MQTT-3.1.2-24] [MQTT-3.2.2-19] a refusing CONNACK leaves out its Reason String when it would not fit, and is sent without it', async () => {
    const auth = { authenticationMethod: 'no-such-method' };
    const full = await (await open(b.port, 'mps-refused', undefined, auth)).next('connack');
    assert.equal(full.reasonCode, 0x8c);
    assert.ok(full.properties?.reasonString !== undefined, 'a Reason String without a limit');

    const c = await open(b.port, 'mps-refused', 10, auth);
    const ack = await c.next('connack');
    assert.deepEqual([ack.reasonCode, ack.properties], [0x8c, undefined]);
    assert.ok(size(ack) <= 10);
    await c.closed();
  });

  void it('[MQTT-3.1.2-24] [MQTT-3.14.2-3] a DISCONNECT leaves out its Reason String when it would not fit (Topic Alias 0 → 0x94)', async () => {
    for (const max of [undefined, 16]) {
      const c = await open(b.port, `mps-disc-${max ?? 'none'}`, max);
      assert.equal((await c.next('connack')).reasonCode, 0);
      c.send({ type: 'publish', topic: 'mps/t', payload: Buffer.from('x'), qos: 0, retain: false, dup: false, properties: { topicAlias: 0 } });
      const d = await c.next('disconnect');
      assert.equal(d.reasonCode, 0x94);
      if (max === undefined) assert.ok(d.properties?.reasonString !== undefined, 'a Reason String without a limit');
      else assert.deepEqual([d.properties, size(d) <= max], [undefined, true]);
      await c.closed();
    }
  });

  void it('[MQTT-3.1.2-24] [MQTT-3.4.2-2] [MQTT-3.5.2-2] PUBACK and PUBREC leave out their Reason String when it would not fit (payload not UTF-8 → 0x99)', async () => {
    for (const max of [undefined, 16]) {
      const c = await open(b.port, `mps-ack-${max ?? 'none'}`, max);
      assert.equal((await c.next('connack')).reasonCode, 0);
      for (const qos of [1, 2] as const) {
        c.send({
          type: 'publish',
          topic: 'mps/utf8',
          payload: Buffer.from([0xff]),
          qos,
          retain: false,
          dup: false,
          packetId: qos,
          properties: { payloadFormatIndicator: 1 },
        });
        const a = await c.next(qos === 1 ? 'puback' : 'pubrec');
        assert.equal(a.reasonCode, 0x99);
        if (max === undefined) assert.ok(a.properties?.reasonString !== undefined, 'a Reason String without a limit');
        else assert.deepEqual([a.properties, size(a) <= max], [undefined, true]);
      }
    }
  });

  void it('[MQTT-3.1.2-24] [MQTT-4.13.1-1] a SUBACK that cannot fit (20 filters, Maximum Packet Size 20) is not sent: the connection is closed with DISCONNECT 0x95, within the limit', async () => {
    const c = await open(b.port, 'mps-suback', 20);
    assert.equal((await c.next('connack')).reasonCode, 0);
    c.send({ type: 'subscribe', packetId: 1, subscriptions: Array.from({ length: 20 }, (_, i) => so(`mps/${i}`, 0)) });
    const d = await c.next('disconnect');
    assert.equal(d.reasonCode, 0x95);
    assert.ok(size(d) <= 20);
    await c.closed();
    assert.deepEqual(c.pending, []);
  });
});
