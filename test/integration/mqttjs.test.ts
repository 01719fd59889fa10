/**
 * Interop with MQTT.js (the `mqtt` npm package), MQTT 3.1.1 and 5.0, over TCP and WebSocket:
 * wildcards, QoS 0/1/2 both ways, retained messages, wills on abrupt close, and persistent
 * sessions that get their queued QoS 1 messages on resume.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import mqtt, { type MqttClient } from 'mqtt';
import { Inbox, connectClient, endAll, startSubject, unique, type Subject } from '../helpers/interop.js';

const VERSIONS = [
  { name: 'MQTT 3.1.1', protocolVersion: 4 as const },
  { name: 'MQTT 5.0', protocolVersion: 5 as const },
];
const TRANSPORTS = ['tcp', 'ws'] as const;

void describe('MQTT.js interop', () => {
  let subject: Subject;
  const clients = new Set<MqttClient>();

  before(async () => {
    subject = await startSubject();
  });
  after(async () => {
    await endAll(clients);
    await subject?.close();
  });

  for (const transport of TRANSPORTS) {
    for (const v of VERSIONS) {
      void describe(`${v.name} over ${transport}`, () => {
        const url = () => (transport === 'tcp' ? subject.tcpUrl : subject.wsUrl);
        const connect = async (opts: mqtt.IClientOptions = {}) => {
          const c = await connectClient(url(), { protocolVersion: v.protocolVersion, clientId: unique('mqttjs'), ...opts });
          clients.add(c);
          return c;
        };

        void it('connects and gets a CONNACK with no session present for a clean start', async () => {
          const c = await connect({ clean: true });
          assert.equal(c.connected, true);
          await c.endAsync();
          clients.delete(c);
        });

        void it('routes by + and # wildcards and skips non-matching topics', async () => {
          const root = unique('wild');
          const sub = await connect();
          const inbox = new Inbox(sub);
          const granted = await sub.subscribeAsync({ [`${root}/+/temp`]: { qos: 0 }, [`${root}/alerts/#`]: { qos: 0 } });
          assert.deepEqual(
            granted.map((g) => g.qos),
            [0, 0],
          );
          const pub = await connect();
          await pub.publishAsync(`${root}/kitchen/humidity`, 'no', { qos: 1 });
          await pub.publishAsync(`${root}/kitchen/temp`, '21', { qos: 1 });
          await pub.publishAsync(`${root}/a/b/temp`, 'no', { qos: 1 });
          await pub.publishAsync(`${root}/alerts`, 'parent', { qos: 1 }); // '#' also matches the parent level
          await pub.publishAsync(`${root}/alerts/fire/now`, 'deep', { qos: 1 });
          const got = await inbox.take(3);
          assert.deepEqual(
            got.map((m) => [m.topic, m.payload]),
            [
              [`${root}/kitchen/temp`, '21'],
              [`${root}/alerts`, 'parent'],
              [`${root}/alerts/fire/now`, 'deep'],
            ],
          );
        });

        for (const subQos of [0, 1, 2] as const) {
          void it(`delivers QoS 0/1/2 publishes to a QoS ${subQos} subscriber at min(publish, subscription) QoS`, async () => {
            const topic = unique('qos');
            const sub = await connect();
            const inbox = new Inbox(sub);
            const [grant] = await sub.subscribeAsync(topic, { qos: subQos });
            assert.equal(grant?.qos, subQos);
            const pub = await connect();
            for (const qos of [0, 1, 2] as const) {
              // publishAsync resolves on PUBACK (QoS 1) / PUBCOMP (QoS 2): the broker completed the flow.
              await pub.publishAsync(topic, `q${qos}`, { qos });
            }
            const got = await inbox.take(3);
            assert.deepEqual(
              got.map((m) => [m.payload, m.packet.qos]),
              [0, 1, 2].map((q) => [`q${q}`, Math.min(q, subQos)]),
            );
          });
        }

        void it('keeps a retained message for later subscribers, and clears it with an empty payload', async () => {
          const topic = unique('retained');
          const pub = await connect();
          await pub.publishAsync(topic, 'last known', { qos: 1, retain: true });

          const late = await connect();
          const inbox = new Inbox(late);
          await late.subscribeAsync(topic, { qos: 1 });
          const m = await inbox.next();
          assert.equal(m.payload, 'last known');
          assert.equal(m.packet.retain, true, 'a retained message sent on subscribe has RETAIN set');

          await pub.publishAsync(topic, '', { qos: 1, retain: true });
          const later = await connect();
          const inbox2 = new Inbox(later);
          const marker = `${topic}/marker`;
          await later.subscribeAsync([topic, marker], { qos: 1 });
          await pub.publishAsync(marker, 'after', { qos: 1 });
          const first = await inbox2.next();
          assert.deepEqual([first.topic, first.payload], [marker, 'after'], 'no retained message is left after clearing');
        });

        void it('publishes the will when the client connection drops without DISCONNECT', async () => {
          const topic = unique('will');
          const watcher = await connect();
          const inbox = new Inbox(watcher);
          await watcher.subscribeAsync(topic, { qos: 1 });
          const dying = await connect({ will: { topic, payload: Buffer.from('gone'), qos: 1, retain: false } });
          dying.stream.destroy(); // abrupt close: no DISCONNECT
          clients.delete(dying);
          const m = await inbox.next();
          assert.deepEqual([m.topic, m.payload, m.packet.qos], [topic, 'gone', 1]);
          dying.end(true);
        });

        void it('does not publish the will after a normal DISCONNECT', async () => {
          const topic = unique('nowill');
          const watcher = await connect();
          const inbox = new Inbox(watcher);
          await watcher.subscribeAsync([topic, `${topic}/marker`], { qos: 1 });
          const leaving = await connect({ will: { topic, payload: Buffer.from('gone'), qos: 1, retain: false } });
          await leaving.endAsync();
          clients.delete(leaving);
          const pub = await connect();
          await pub.publishAsync(`${topic}/marker`, 'after', { qos: 1 });
          const first = await inbox.next();
          assert.equal(first.topic, `${topic}/marker`);
        });

        void it('resumes a persistent session and delivers the QoS 1 messages queued while offline', async () => {
          const clientId = unique('persist');
          const topic = unique('queued');
          const sessionOpts: mqtt.IClientOptions = v.protocolVersion === 5 ? { clean: false, properties: { sessionExpiryInterval: 300 } } : { clean: false };
          const first = await connect({ clientId, ...sessionOpts });
          await first.subscribeAsync(topic, { qos: 1 });
          await first.endAsync();
          clients.delete(first);

          const pub = await connect();
          for (const n of [1, 2, 3]) await pub.publishAsync(topic, `m${n}`, { qos: 1 });

          // mqtt.connect (not connectAsync) so the message handler is in place before CONNACK.
          const again = mqtt.connect(url(), {
            protocolVersion: v.protocolVersion,
            clientId,
            reconnectPeriod: 0,
            connectTimeout: 5000,
            ...sessionOpts,
          });
          clients.add(again);
          again.on('error', () => {});
          const inbox = new Inbox(again);
          const connack = await new Promise<mqtt.IConnackPacket>((resolve, reject) => {
            again.once('connect', resolve);
            again.once('close', () => reject(new Error('closed before CONNACK')));
          });
          assert.equal(connack.sessionPresent, true, 'CONNACK has Session Present = 1');
          const got = await inbox.take(3);
          assert.deepEqual(
            got.map((m) => [m.payload, m.packet.qos]),
            [
              ['m1', 1],
              ['m2', 1],
              ['m3', 1],
            ],
          );
        });

        if (v.protocolVersion === 5) {
          void it('carries v5 user properties, content type and response topic end to end', async () => {
            const topic = unique('props');
            const sub = await connect();
            const inbox = new Inbox(sub);
            await sub.subscribeAsync(topic, { qos: 1 });
            const pub = await connect();
            await pub.publishAsync(topic, '{"a":1}', {
              qos: 1,
              properties: {
                userProperties: { origin: 'test', k: 'v' },
                contentType: 'application/json',
                responseTopic: `${topic}/reply`,
                correlationData: Buffer.from('c0'),
              },
            });
            const m = await inbox.next();
            assert.deepEqual({ ...m.packet.properties?.userProperties }, { origin: 'test', k: 'v' });
            assert.equal(m.packet.properties?.contentType, 'application/json');
            assert.equal(m.packet.properties?.responseTopic, `${topic}/reply`);
            assert.deepEqual(m.packet.properties?.correlationData, Buffer.from('c0'));
          });
        }
      });
    }
  }
});
