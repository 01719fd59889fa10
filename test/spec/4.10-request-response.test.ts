/**
 * MQTT 5.0 §4.10 Request / Response: Response Topic and Correlation Data pass unaltered from a
 * requester to a responder and back [MQTT-3.3.2-15], [MQTT-3.3.2-16]; Request Response
 * Information is answered with Response Information when configured (§3.1.2.11.7, §3.2.2.3.15).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import mqtt from 'mqtt';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { RawClient } from '../helpers/raw-client.js';

void describe('§4.10 Request / Response (MQTT 5.0)', () => {
  let b: TestBroker;
  before(async () => {
    b = await startBroker({ mqtt: { responseInformation: 'reply/%c/' } });
  });
  after(() => b.close());

  void it("[MQTT-3.3.2-15] [MQTT-3.3.2-16] a requester and a responder (MQTT.js) exchange 20 requests; every response carries the request's correlation data to the response topic", async () => {
    const responder = await mqtt.connectAsync(`mqtt://127.0.0.1:${b.port}`, { protocolVersion: 5, clientId: 'rr-responder' });
    await responder.subscribeAsync('rr/service', { qos: 1 });
    responder.on('message', (_t, payload, packet) => {
      const rt = packet.properties?.responseTopic;
      const cd = packet.properties?.correlationData;
      assert.ok(rt !== undefined && cd !== undefined);
      void responder.publishAsync(rt, `re:${payload.toString()}`, { qos: 1, properties: { correlationData: cd } });
    });
    const requester = mqtt.connect(`mqtt://127.0.0.1:${b.port}`, {
      protocolVersion: 5,
      clientId: 'rr-requester',
      properties: { requestResponseInformation: true },
    });
    const connack = await new Promise<mqtt.IConnackPacket>((resolve) => requester.once('connect', resolve));
    // The broker's Response Information names this client's reply prefix; the requester builds its response topic on it.
    const info = connack.properties?.responseInformation;
    assert.equal(info, 'reply/rr-requester/');
    const replyTopic = `${info}answers`;
    await requester.subscribeAsync(replyTopic, { qos: 1 });
    const pending = new Map<string, (v: string) => void>();
    requester.on('message', (t, payload, packet) => {
      assert.equal(t, replyTopic);
      const key = packet.properties?.correlationData?.toString() ?? '';
      pending.get(key)?.(payload.toString());
    });
    const answers = await Promise.all(
      Array.from(
        { length: 20 },
        (_, i) =>
          new Promise<string>((resolve) => {
            pending.set(`c${i}`, resolve);
            void requester.publishAsync('rr/service', `q${i}`, { qos: 1, properties: { responseTopic: replyTopic, correlationData: Buffer.from(`c${i}`) } });
          }),
      ),
    );
    assert.deepEqual(
      answers,
      Array.from({ length: 20 }, (_, i) => `re:q${i}`),
    );
    await requester.endAsync();
    await responder.endAsync();
  });

  void it('§3.2.2.3.15 CONNACK carries Response Information only when the client asks for it', async () => {
    const { client: asks, connack } = await RawClient.connect(b.port, {
      protocolVersion: 5,
      clientId: 'ri-asks',
      properties: { requestResponseInformation: 1 },
    });
    assert.equal(connack.properties?.responseInformation, 'reply/ri-asks/');
    await asks.disconnect();
    const { client: silent, connack: c2 } = await RawClient.connect(b.port, { protocolVersion: 5, clientId: 'ri-silent' });
    assert.equal(c2.properties?.responseInformation, undefined);
    await silent.disconnect();
  });

  void it('[MQTT-3.3.2-14] a Response Topic with a wildcard is a Protocol Error: DISCONNECT 0x82', async () => {
    const { client } = await RawClient.connect(b.port, { protocolVersion: 5, clientId: 'rr-wild' });
    client.send({ type: 'publish', topic: 'rr/x', payload: Buffer.from('q'), qos: 0, retain: false, dup: false, properties: { responseTopic: 'reply/#' } });
    assert.equal((await client.next('disconnect')).reasonCode, 0x82);
    await client.closed();
  });
});
