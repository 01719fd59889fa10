/**
 * §3.1 CONNECT, the protocol level and what depends on it: MQTT 3.1 ("MQIsdp", level 3) next to
 * 3.1.1 and 5.0 (no Session Present in a 3.1 CONNACK, 3.1's 1–23 character client identifiers),
 * levels Courier does not speak (answered with a CONNACK the client can read), and a will topic
 * that is not a topic name (3.1 / 3.1.1 have no return code for it: closed without CONNACK).
 *
 * MQTT 3.1 numbers no statements; its tests cite the section, or the 3.1.1 statement it shares.
 * Raw bytes throughout: the encoder refuses a protocol name that does not match the level.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ProtocolVersion } from '../../src/protocol/constants.js';
import { encode } from '../../src/protocol/encoder.js';
import type { ConnectPacket } from '../../src/protocol/packets.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { RawClient } from '../helpers/raw-client.js';
import { persistent, will } from '../helpers/spec.js';

let b: TestBroker;
before(async () => {
  b = await startBroker();
});
after(async () => {
  RawClient.destroyEvery();
  await b.close();
});

function connectBytes(v: ProtocolVersion, fields: Partial<ConnectPacket> = {}): Buffer {
  const p: ConnectPacket = {
    type: 'connect',
    protocolName: v === 3 ? 'MQIsdp' : 'MQTT',
    protocolVersion: v,
    clean: true,
    keepAlive: 0,
    clientId: 'raw',
    ...fields,
  };
  const buf = encode(p, v);
  assert.ok(buf[1]! < 0x80, 'one-byte Remaining Length, so the variable header starts at byte 2');
  return buf;
}

/** Sends `bytes` as the first packet; returns the raw bytes the broker sent before it closed the connection. */
async function answerTo(bytes: Buffer): Promise<Buffer> {
  const c = await RawClient.open(b.port, 4);
  const got: Buffer[] = [];
  c.socket.prependListener('data', (chunk: Buffer) => got.push(chunk));
  c.sendRaw(bytes);
  await c.closed();
  return Buffer.concat(got);
}

void describe('§3.1 CONNECT: protocol levels Courier does not speak', () => {
  void it('[MQTT-3.1.2-2] "MQIsdp" at a level other than 3 is answered with the 3.1 CONNACK return code 0x01 (unacceptable protocol version), which a 3.1 client can read, and closed', async () => {
    for (const level of [4, 5, 6]) {
      const bytes = connectBytes(3, { clientId: `mqisdp-${level}` });
      assert.equal(bytes[10], 3, 'the level byte of an "MQIsdp" CONNECT');
      bytes[10] = level;
      assert.equal((await answerTo(bytes)).toString('hex'), '20020001', `MQIsdp level ${level}`);
    }
  });

  void it('[MQTT-3.1.2-2] "MQTT" above level 5 (a later version, which reads the 5.0 CONNACK) gets the 5.0 CONNACK 0x84; below 4 the 3.1.1 CONNACK 0x01; both then closed', async () => {
    for (const [level, answer] of [
      [6, '2003008400'],
      [0x7f, '2003008400'],
      [3, '20020001'],
      [0, '20020001'],
    ] as const) {
      const bytes = connectBytes(4, { clientId: `mqtt-${level}` });
      assert.equal(bytes[8], 4, 'the level byte of an "MQTT" CONNECT');
      bytes[8] = level;
      assert.equal((await answerTo(bytes)).toString('hex'), answer, `MQTT level ${level}`);
    }
  });
});

void describe('§3.1 CONNECT: MQTT 3.1 ("MQIsdp", level 3)', () => {
  void it('MQTT 3.1 §3.2 (3.1.1 [MQTT-3.2.2-2] introduced Session Present): a 3.1 client resuming a session gets CONNACK 20 02 00 00, its reserved first byte 0; the session is resumed all the same', async () => {
    const clientId = 'v31-resume';
    const first = await RawClient.connect(b.port, { protocolVersion: 3, clientId, ...persistent(3) });
    assert.equal(first.connack.reasonCode, 0);
    first.client.send({
      type: 'subscribe',
      packetId: 1,
      subscriptions: [{ topicFilter: 'v31/t', qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 }],
    });
    assert.deepEqual((await first.client.next('suback')).reasonCodes, [1]);
    await first.client.disconnect();

    const pub = await RawClient.connect(b.port, { protocolVersion: 4, clientId: 'v31-pub' });
    pub.client.send({ type: 'publish', topic: 'v31/t', payload: Buffer.from('kept'), qos: 1, retain: false, dup: false, packetId: 1 });
    await pub.client.next('puback');

    const again = await RawClient.open(b.port, 3);
    const raw: Buffer[] = [];
    again.socket.prependListener('data', (chunk: Buffer) => raw.push(chunk));
    assert.equal((await again.handshake({ clientId, ...persistent(3) })).reasonCode, 0);
    assert.equal(Buffer.concat(raw).subarray(0, 4).toString('hex'), '20020000');
    const m = await again.next('publish');
    assert.equal(m.payload.toString(), 'kept', 'the stored session was resumed');
    again.send({ type: 'puback', packetId: m.packetId! });
    await again.disconnect();
    await pub.client.disconnect();
  });

  void it('MQTT 3.1 §3.1 (Client Identifier): an empty client identifier, or one longer than 23 characters, is refused with CONNACK 0x02 and closed; 1 and 23 characters are accepted', async () => {
    for (const clientId of ['', 'x'.repeat(24)]) {
      const c = await RawClient.open(b.port, 3);
      const ack = await c.handshake({ clientId, clean: true });
      assert.deepEqual([ack.reasonCode, ack.sessionPresent], [0x02, false], `client id of ${clientId.length}`);
      await c.closed();
    }
    for (const clientId of ['y', 'y'.repeat(23)]) {
      const { client, connack } = await RawClient.connect(b.port, { protocolVersion: 3, clientId });
      assert.equal(connack.reasonCode, 0, `client id of ${clientId.length}`);
      await client.disconnect();
    }
  });
});

for (const version of [3, 4, 5] as const) {
  const name = version === 3 ? '3.1' : version === 4 ? '3.1.1' : '5.0';
  void it(`[MQTT-4.7.3-1] [MQTT-3.1.4-1] (MQTT ${name}) a CONNECT whose Will Topic is empty (or holds a wildcard) does not conform: ${version === 5 ? 'CONNACK 0x90 (Topic Name invalid), then' : 'no CONNACK,'} the connection is closed`, async () => {
    for (const topic of ['', 'will/+']) {
      const c = await RawClient.open(b.port, version);
      c.send({
        type: 'connect',
        protocolName: version === 3 ? 'MQIsdp' : 'MQTT',
        protocolVersion: version,
        clean: true,
        keepAlive: 0,
        clientId: `will-${version}`,
        will: will(topic, 'x'),
      });
      await c.closed();
      if (version === 5) {
        assert.equal(c.pending.length, 1, `one CONNACK for ${JSON.stringify(topic)}`);
        assert.deepEqual([c.pending[0]!.type, c.pending[0]!.type === 'connack' && c.pending[0]!.reasonCode], ['connack', 0x90]);
      } else {
        assert.deepEqual(c.pending, [], `nothing for ${JSON.stringify(topic)}`);
      }
    }
  });
}
