/**
 * Interop with Eclipse Paho's Python client (python3-paho-mqtt under /usr/bin/python3), MQTT 3.1.1
 * and 5.0: Paho subscribes and publishes at QoS 1 and 2, MQTT.js is on the other side.
 * The Paho side is test/fixtures/interop/paho_client.py, which reports events as JSON lines.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import type { MqttClient } from 'mqtt';
import { Peers, missingPythonModule, peerGate } from '../helpers/peers.js';
import { Inbox, connectClient, endAll, startSubject, unique, type Subject } from '../helpers/interop.js';

const PYTHON = '/usr/bin/python3';
const SCRIPT = fileURLToPath(new URL('../fixtures/interop/paho_client.py', import.meta.url));
const gate = peerGate('paho-mqtt (python3-paho-mqtt)', missingPythonModule(PYTHON, 'paho.mqtt.client'));

interface PahoEvent {
  event: string;
  [key: string]: unknown;
}

function events(out: string): PahoEvent[] {
  return out
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as PahoEvent);
}

void describe('Paho Python interop', gate, () => {
  let subject: Subject;
  const peers = new Peers();
  const clients = new Set<MqttClient>();

  before(async () => {
    subject = await startSubject();
  });
  after(async () => {
    await peers.killAll();
    await endAll(clients);
    await subject?.close();
  });

  for (const v of [
    { paho: '311', mqttjs: 4 as const },
    { paho: '5', mqttjs: 5 as const },
  ]) {
    void it(`MQTT ${v.paho === '5' ? '5.0' : '3.1.1'}: Paho subscribes and publishes at QoS 1 and 2, both directions`, async () => {
      const toPaho = unique('to-paho');
      const fromPaho = unique('from-paho');
      const js = await connectClient(subject.tcpUrl, { protocolVersion: v.mqttjs, clientId: unique('js') });
      clients.add(js);
      const inbox = new Inbox(js);
      await js.subscribeAsync(fromPaho, { qos: 2 });

      const paho = peers.spawn(PYTHON, [SCRIPT, v.paho, String(subject.port), toPaho, fromPaho, '2']);
      await paho.waitFor(/"event": "subscribed"/);
      assert.deepEqual(events(paho.stdout()).find((e) => e.event === 'subscribed')?.granted, [2]);

      const properties = v.mqttjs === 5 ? { userProperties: { from: 'mqttjs' } } : undefined;
      await js.publishAsync(toPaho, 'js-q1', { qos: 1, ...(properties ? { properties } : {}) });
      await js.publishAsync(toPaho, 'js-q2', { qos: 2, ...(properties ? { properties } : {}) });

      const { code } = await paho.exited();
      assert.equal(code, 0, `paho exited ${code}\n${paho.stdout()}\n${paho.stderr()}`);
      const all = events(paho.stdout());
      assert.equal(all.find((e) => e.event === 'connected')?.rc, 0);
      const received = all.filter((e) => e.event === 'message').map((e) => [e.topic, e.payload, e.qos, e.retain]);
      assert.deepEqual(received, [
        [toPaho, 'js-q1', 1, false],
        [toPaho, 'js-q2', 2, false],
      ]);
      if (v.mqttjs === 5) {
        for (const m of all.filter((e) => e.event === 'message')) assert.deepEqual(m.user_properties, [['from', 'mqttjs']]);
      }
      assert.equal(all.filter((e) => e.event === 'published').length, 2, 'both Paho publishes completed (PUBACK, PUBCOMP)');

      const got = await inbox.take(2);
      assert.deepEqual(
        got.map((m) => [m.topic, m.payload, m.packet.qos]),
        [
          [fromPaho, 'paho-q1', 1],
          [fromPaho, 'paho-q2', 2],
        ],
      );
      if (v.mqttjs === 5) {
        for (const m of got) assert.deepEqual({ ...m.packet.properties?.userProperties }, { from: 'paho' });
      }
    });
  }
});
