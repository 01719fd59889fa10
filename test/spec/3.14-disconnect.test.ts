/**
 * MQTT 3.1.1 §3.14 / 5.0 §3.14 DISCONNECT: what a client's DISCONNECT does to its will and (5.0)
 * its Session Expiry Interval, malformed DISCONNECTs, and the DISCONNECTs the server sends
 * (5.0 only; 3.1.1 has no server DISCONNECT), among them the one on broker.close().
 *
 * Every test runs for 3.1.1 (level 4) and 5.0 (level 5) unless marked 5.0-only. Nothing sleeps:
 * broker events and RawClient.barrier() decide when something did or did not happen.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ConnectPacket, Will } from '../../src/protocol/packets.js';
import mqtt, { type IDisconnectPacket } from 'mqtt';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { RawClient } from '../helpers/raw-client.js';
import { brokerEvent, subscribe, persistent, will } from '../helpers/spec.js';

for (const version of [4, 5] as const) {
  const v5 = version === 5;
  const V = v5 ? '5.0' : '3.1.1';
  const id = (name: string): string => `${name}-${version}`;

  void describe(`§3.14 DISCONNECT (MQTT ${V})`, () => {
    let b: TestBroker;
    before(async () => {
      b = await startBroker();
    });
    after(async () => {
      RawClient.destroyEvery();
      await b.close();
    });

    const disconnected = (clientId: string): Promise<unknown> => brokerEvent(b.broker, 'clientDisconnect', (c) => c.clientId === clientId);

    /** A watcher subscribed to `topic`, and a client with a will on it. */
    async function willPair(
      name: string,
      extra: Partial<ConnectPacket> = {},
      w?: Will,
    ): Promise<{ watcher: RawClient; client: RawClient; topic: string; cid: string }> {
      const topic = `disconnect/${name}/${version}`;
      const { client: watcher } = await RawClient.connect(b.port, { protocolVersion: version, clientId: id(`${name}-watch`) });
      await subscribe(watcher, topic);
      const cid = id(name);
      const { client, connack } = await RawClient.connect(b.port, { protocolVersion: version, clientId: cid, will: w ?? will(topic, name), ...extra });
      assert.equal(connack.reasonCode, 0);
      return { watcher, client, topic, cid };
    }

    // ------------------------------------------------------------------------------------------
    // DISCONNECT from the client

    const normalForms: Array<[string, string]> = v5
      ? [
          [' (Remaining Length 0)', 'e0 00'],
          [' (Reason Code 0x00)', 'e0 01 00'],
          [' (Reason Code 0x00, empty properties)', 'e0 02 00 00'],
        ]
      : [['', 'e0 00']];
    for (const [form, bytes] of normalForms) {
      void it(`[MQTT-3.14.4-3] [MQTT-3.1.2-10] on a normal DISCONNECT${form} the will is discarded, not published`, async () => {
        const { watcher, client, cid } = await willPair(`normal${bytes.replace(/\s/g, '')}`);
        const gone = disconnected(cid);
        client.sendRaw(bytes);
        await gone;
        await client.closed();
        assert.deepEqual(await watcher.barrier(), [], 'no will');
        await watcher.disconnect();
      });
    }

    void it('§3.14.4 on receipt of DISCONNECT the server closes the network connection', async () => {
      const { client } = await RawClient.connect(b.port, { protocolVersion: version, clientId: id('server-closes') });
      client.send({ type: 'disconnect' }); // the socket is left open by the client
      await client.closed();
      assert.deepEqual(client.pending, []);
    });

    void it(`${v5 ? '[MQTT-4.3.2-4]' : '[MQTT-4.3.2-2]'} §3.14.4 what the client sent before its DISCONNECT in the same write is acknowledged before the server closes`, async () => {
      const topic = `disconnect/before/${version}`;
      const { client } = await RawClient.connect(b.port, { protocolVersion: version, clientId: id('before') });
      const qos1 = Buffer.from([0x32, 2 + topic.length + 2 + (v5 ? 1 : 0) + 2, 0, topic.length, ...Buffer.from(topic), 0, 7, ...(v5 ? [0] : []), 0x68, 0x69]);
      const sub = Buffer.from([0x82, 2 + 2 + topic.length + 1 + (v5 ? 1 : 0), 0, 8, ...(v5 ? [0] : []), 0, topic.length, ...Buffer.from(topic), 0]);
      client.sendRaw(Buffer.concat([qos1, sub, Buffer.from('e000', 'hex')]));
      await client.closed();
      assert.deepEqual(
        client.pending.map((p) => [p.type, 'packetId' in p ? p.packetId : undefined]),
        [
          ['puback', 7],
          ['suback', 8],
        ],
      );
    });

    void it('§3.14.4 nothing the client sends after its DISCONNECT is processed', async () => {
      const topic = `disconnect/after/${version}`;
      const { client } = await RawClient.connect(b.port, { protocolVersion: version, clientId: id('after') });
      const publishAfter = Buffer.from([0x31, 2 + topic.length + 4, 0, topic.length, ...Buffer.from(topic), ...Buffer.from('late')]);
      client.sendRaw(Buffer.concat([Buffer.from('e000', 'hex'), publishAfter]));
      await client.closed();
      const { client: probe } = await RawClient.connect(b.port, { protocolVersion: version, clientId: id('after-probe') });
      await subscribe(probe, topic);
      assert.deepEqual(await probe.barrier(), [], 'the retained PUBLISH after DISCONNECT was not stored');
      await probe.disconnect();
    });

    void it(`[MQTT-3.14.1-1] a DISCONNECT with reserved fixed-header bits set is malformed: the connection is closed${v5 ? ' after DISCONNECT 0x81' : ''} and, not being a normal DISCONNECT, the will is published`, async () => {
      const { watcher, client } = await willPair('reserved-bits');
      client.sendRaw('e1 00');
      if (v5) {
        const d = await client.next('disconnect');
        assert.equal(d.reasonCode, 0x81);
      }
      await client.closed();
      const w = await watcher.next('publish');
      assert.equal(w.payload.toString(), 'reserved-bits');
      await watcher.disconnect();
    });

    void it(`${v5 ? '[MQTT-3.1.2-23]' : '[MQTT-3.1.2-4]'} a normal DISCONNECT keeps a session that is to outlive the connection`, async () => {
      const cid = id('keeps');
      const { client } = await RawClient.connect(b.port, { protocolVersion: version, clientId: cid, ...persistent(version) });
      await client.disconnect();
      const { client: back, connack } = await RawClient.connect(b.port, { protocolVersion: version, clientId: cid, ...persistent(version) });
      assert.equal(connack.sessionPresent, true);
      await back.disconnect();
      const { client: clean } = await RawClient.connect(b.port, { protocolVersion: version, clientId: cid, clean: true });
      await clean.disconnect();
    });

    // ------------------------------------------------------------------------------------------
    // 5.0: reason codes and Session Expiry Interval on DISCONNECT

    if (v5) {
      void it('[MQTT-3.1.2-8] (5.0) DISCONNECT with Reason Code 0x04 (Disconnect with Will Message): the will is published', async () => {
        const { watcher, client, cid } = await willPair('with-will');
        const gone = disconnected(cid);
        client.send({ type: 'disconnect', reasonCode: 0x04 });
        await gone;
        const w = await watcher.next('publish');
        assert.equal(w.payload.toString(), 'with-will');
        await client.closed();
        await watcher.disconnect();
      });

      void it('[MQTT-3.14.2-1] (5.0) a DISCONNECT with an undefined Reason Code is not a normal disconnection: the server closes with DISCONNECT 0x81/0x82 and the will is published', async () => {
        const { watcher, client } = await willPair('bad-reason');
        client.sendRaw('e0 01 03');
        const d = await client.next('disconnect');
        assert.ok(d.reasonCode === 0x81 || d.reasonCode === 0x82, `reason 0x${(d.reasonCode ?? 0).toString(16)}`);
        await client.closed();
        const w = await watcher.next('publish');
        assert.equal(w.payload.toString(), 'bad-reason');
        await watcher.disconnect();
      });

      void it('[MQTT-4.13.1-1] §3.14.2.2.2 (5.0) a non-zero Session Expiry Interval on DISCONNECT after CONNECT had 0 is a Protocol Error: DISCONNECT 0x82, the will is published and the session still ends', async () => {
        const { watcher, client, cid } = await willPair('expiry-raise', { clean: false });
        client.send({ type: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 300 } });
        const d = await client.next('disconnect');
        assert.equal(d.reasonCode, 0x82);
        await client.closed();
        const w = await watcher.next('publish');
        assert.equal(w.payload.toString(), 'expiry-raise', 'not a valid DISCONNECT, so the will goes out');
        const { client: back, connack } = await RawClient.connect(b.port, { protocolVersion: 5, clientId: cid, clean: false });
        assert.equal(connack.sessionPresent, false, 'the invalid DISCONNECT did not extend the session');
        await back.disconnect();
        await watcher.disconnect();
      });

      void it('[MQTT-4.1.0-2] §3.14.2.2.2 (5.0) Session Expiry Interval 0 on DISCONNECT replaces the CONNECT value: the session ends with the connection', async () => {
        const cid = id('expiry-drop');
        const { client } = await RawClient.connect(b.port, { protocolVersion: 5, clientId: cid, ...persistent(5, 300) });
        await subscribe(client, `disconnect/expiry-drop/${version}`, 1);
        const expired = brokerEvent(b.broker, 'clientDisconnect', (c) => c.clientId === cid);
        client.send({ type: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 0 } });
        await expired;
        await client.closed();
        const { client: back, connack } = await RawClient.connect(b.port, { protocolVersion: 5, clientId: cid, clean: false });
        assert.equal(connack.sessionPresent, false);
        await back.disconnect();
      });

      void it('[MQTT-3.1.2-23] §3.14.2.2.2 (5.0) a longer Session Expiry Interval on DISCONNECT replaces the CONNECT value: the session outlives the original interval', async () => {
        const cid = id('expiry-extend');
        const ctl = id('expiry-extend-control');
        const { client } = await RawClient.connect(b.port, { protocolVersion: 5, clientId: cid, ...persistent(5, 1) });
        const { client: control } = await RawClient.connect(b.port, { protocolVersion: 5, clientId: ctl, ...persistent(5, 1) });
        const gone = disconnected(cid);
        client.send({ type: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 300 } });
        await gone;
        // The control session keeps its 1 s and ends later than the first would have with it.
        const ctlExpired = brokerEvent(b.broker, 'sessionExpired', (c) => c === ctl, 5000);
        const expiredIds: string[] = [];
        const onExpired = (c: string): void => {
          expiredIds.push(c);
        };
        b.broker.on('sessionExpired', onExpired);
        try {
          await control.disconnect();
          await ctlExpired;
          assert.deepEqual(expiredIds, [ctl]);
        } finally {
          b.broker.off('sessionExpired', onExpired);
        }
        const { client: back, connack } = await RawClient.connect(b.port, { protocolVersion: 5, clientId: cid, clean: false });
        assert.equal(connack.sessionPresent, true);
        back.send({ type: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 0 } });
        await back.closed();
      });

      void it('[MQTT-3.14.2-2] (5.0) DISCONNECTs sent by the server (Protocol Error, Session taken over) carry no Session Expiry Interval', async () => {
        const { client: violator } = await RawClient.connect(b.port, { protocolVersion: 5, clientId: id('sent-82'), ...persistent(5) });
        violator.send({ type: 'connect', protocolName: 'MQTT', protocolVersion: 5, clean: true, keepAlive: 0, clientId: id('sent-82') });
        const d82 = await violator.next('disconnect');
        assert.equal(d82.reasonCode, 0x82);
        assert.equal(d82.properties?.sessionExpiryInterval, undefined);
        await violator.closed();

        const cid = id('sent-8e');
        const { client: first } = await RawClient.connect(b.port, { protocolVersion: 5, clientId: cid, ...persistent(5) });
        const { client: second } = await RawClient.connect(b.port, { protocolVersion: 5, clientId: cid, clean: true });
        const d8e = await first.next('disconnect');
        assert.equal(d8e.reasonCode, 0x8e);
        assert.equal(d8e.properties?.sessionExpiryInterval, undefined);
        await first.closed();
        await second.disconnect();
        const { client: clean } = await RawClient.connect(b.port, { protocolVersion: 5, clientId: id('sent-82'), clean: true });
        await clean.disconnect();
      });
    }

    // ------------------------------------------------------------------------------------------
    // DISCONNECT from the server

    if (v5) {
      void it('[MQTT-3.14.0-1] (5.0) the server sends no DISCONNECT before a successful CONNACK: a refused CONNECT gets its CONNACK and the connection closes, nothing else', async () => {
        const refused = await RawClient.open(b.port, 5);
        refused.send({
          type: 'connect',
          protocolName: 'MQTT',
          protocolVersion: 5,
          clean: true,
          keepAlive: 0,
          clientId: id('refused'),
          properties: { authenticationMethod: 'no-such-method' },
        });
        const ack = await refused.next('connack');
        assert.equal(ack.reasonCode, 0x8c);
        await refused.closed();
        assert.deepEqual(refused.pending, []);
      });
    }

    /** Runs `fn` against a broker of its own; whatever happens, its clients end and the broker closes. */
    async function ownBroker(fn: (own: TestBroker, close: () => Promise<void>) => Promise<void>): Promise<void> {
      const own = await startBroker();
      let closing: Promise<void> | undefined;
      const close = (): Promise<void> => (closing ??= own.close());
      try {
        await fn(own, close);
      } finally {
        RawClient.destroyEvery();
        await close();
      }
    }

    void it(
      v5
        ? '[MQTT-3.14.2-1] [MQTT-3.14.2-2] [MQTT-3.14.0-1] (5.0) broker.close() sends a connected client DISCONNECT 0x8B (Server shutting down) without Session Expiry Interval, then closes; a connection without CONNECT is closed silently'
        : '§3.14 (3.1.1) broker.close() closes connected clients, and connections without CONNECT, without sending any packet (3.1.1 has no server DISCONNECT)',
      async () => {
        await ownBroker(async (own, close) => {
          const { client } = await RawClient.connect(own.port, { protocolVersion: version, clientId: id('shutdown'), ...persistent(version) });
          const silent = await RawClient.open(own.port, version);
          assert.deepEqual(await client.barrier(), []);
          const closing = close();
          if (v5) {
            const d = await client.next('disconnect', 2000);
            assert.equal(d.reasonCode, 0x8b);
            assert.equal(d.properties?.sessionExpiryInterval, undefined);
          }
          await client.closed(2000);
          await silent.closed(2000);
          assert.deepEqual(client.pending, []);
          assert.deepEqual(silent.pending, []);
          await closing;
        });
      },
    );

    if (v5) {
      void it('[MQTT-3.14.2-1] (5.0) broker.close() sends DISCONNECT 0x8B (Server shutting down) to an MQTT.js client over WebSocket too', async () => {
        await ownBroker(async (own, close) => {
          const c = mqtt.connect(`ws://127.0.0.1:${own.wsPort}/mqtt`, {
            protocolVersion: 5,
            clientId: id('shutdown-ws'),
            reconnectPeriod: 0,
            connectTimeout: 2000,
          });
          try {
            await new Promise<void>((resolve, reject) => {
              c.once('connect', () => resolve());
              c.once('error', reject);
            });
            const disconnect = new Promise<IDisconnectPacket>((resolve) => c.once('disconnect', resolve));
            const ended = new Promise<void>((resolve) => c.once('close', () => resolve()));
            const closing = close();
            const d = await Promise.race([disconnect, ended.then(() => undefined)]);
            assert.ok(d !== undefined, 'the connection closed without a DISCONNECT');
            assert.equal(d.reasonCode, 0x8b);
            await ended;
            await closing;
          } finally {
            c.end(true);
          }
        });
      });
    }
  });
}
