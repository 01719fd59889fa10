/**
 * Issue 12, as a user met it: long Session Expiry Intervals through real clients. A client
 * subscribes at QoS 1 with a persistent session and DISCONNECTs, another publishes at QoS 1, the
 * first resumes with Clean Start 0 and must find its session (Session Present 1) and the queued
 * message. Intervals past the 2^31−1 ms a Node timer can wait (30 days, 999,999,999 s), the
 * never-expiring 0xFFFFFFFF, and a 40-day Message Expiry Interval; Paho Python and MQTT.js, MQTT
 * 5.0 and (where it applies: Clean Session 0, which the broker's maxSessionExpiryInterval caps)
 * 3.1.1. COURIER_INTEROP_BROKER=mosquitto runs the same against Mosquitto (no cap there).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import mqtt, { type MqttClient } from 'mqtt';
import { Peers, missingPythonModule, peerGate } from '../helpers/peers.js';
import { INTEROP_BROKER, Inbox, connectClient, endAll, startSubject, unique, type Subject } from '../helpers/interop.js';

const PYTHON = '/usr/bin/python3';
const SCRIPT = fileURLToPath(new URL('../fixtures/interop/paho_session.py', import.meta.url));
const gate = peerGate('paho-mqtt (python3-paho-mqtt)', missingPythonModule(PYTHON, 'paho.mqtt.client'));

const DAYS_30 = 2_592_000;
const FOREVER = 0xffffffff;

interface Case {
  name: string;
  /** MQTT 5.0 Session Expiry Interval, seconds. */
  sessionExpiry: number;
  /** Message Expiry Interval of the published message (5.0 only), seconds. */
  messageExpiry?: number;
  /** The broker's maxSessionExpiryInterval for the 3.1.1 run (Clean Session 0 gets it); undefined = no 3.1.1 run. */
  v311Cap?: number;
}

const CASES: Case[] = [
  { name: '[MQTT-3.1.2-23] Session Expiry Interval 2,592,000 s (30 days)', sessionExpiry: DAYS_30, v311Cap: DAYS_30 },
  { name: '[MQTT-3.1.2-23] Session Expiry Interval 999,999,999 s', sessionExpiry: 999_999_999, v311Cap: 999_999_999 },
  { name: '[MQTT-3.1.2-23] Session Expiry Interval 0xFFFFFFFF (never expires)', sessionExpiry: FOREVER, v311Cap: FOREVER },
  {
    name: '[MQTT-3.3.2-5] [MQTT-3.3.2-6] Message Expiry Interval 3,456,000 s (40 days) under a 30-day session',
    sessionExpiry: DAYS_30,
    messageExpiry: 3_456_000,
  },
];

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

void describe('long expiry intervals through real clients (issue 12)', () => {
  /** Brokers by maxSessionExpiryInterval (FOREVER = the default, no cap). */
  const subjects = new Map<number, Subject>();
  const peers = new Peers();
  const clients = new Set<MqttClient>();
  const subject = (cap = FOREVER): Subject => subjects.get(INTEROP_BROKER === 'mosquitto' ? FOREVER : cap)!;

  before(async () => {
    const caps = INTEROP_BROKER === 'mosquitto' ? [FOREVER] : [FOREVER, DAYS_30, 999_999_999];
    for (const cap of caps) subjects.set(cap, await startSubject(cap === FOREVER ? {} : { mqtt: { maxSessionExpiryInterval: cap } }));
  });
  after(async () => {
    await peers.killAll();
    await endAll(clients);
    for (const s of subjects.values()) await s.close();
  });

  /** Another client publishes one QoS 1 message (with its Message Expiry Interval) and gets the PUBACK. */
  async function publishOne(s: Subject, topic: string, payload: string, c: Case): Promise<void> {
    const pub = await connectClient(s.tcpUrl, { protocolVersion: 5, clientId: unique('pub') });
    clients.add(pub);
    const properties = c.messageExpiry === undefined ? {} : { properties: { messageExpiryInterval: c.messageExpiry } };
    await pub.publishAsync(topic, payload, { qos: 1, ...properties });
    await pub.endAsync();
    clients.delete(pub);
  }

  void describe('Paho Python', gate, () => {
    for (const c of CASES) {
      for (const version of ['5', '311'] as const) {
        if (version === '311' && c.v311Cap === undefined) continue;
        void it(`${c.name}: MQTT ${version === '5' ? '5.0' : '3.1.1'} session resumes with Session Present 1 and the queued message`, async () => {
          const s = version === '5' ? subject() : subject(c.v311Cap);
          const clientId = unique('paho-long');
          const topic = unique('long');
          const run = async (phase: 'subscribe' | 'resume'): Promise<PahoEvent[]> => {
            const paho = peers.spawn(PYTHON, [SCRIPT, version, String(s.port), clientId, topic, phase, String(c.sessionExpiry), '1']);
            const { code } = await paho.exited();
            const all = events(paho.stdout());
            assert.equal(code, 0, `paho ${phase} exited ${code}\n${paho.stdout()}\n${paho.stderr()}`);
            return all;
          };
          const first = await run('subscribe');
          assert.deepEqual(first.find((e) => e.event === 'subscribed')?.granted, [1]);
          await publishOne(s, topic, 'queued while away', c);
          const resumed = await run('resume');
          assert.equal(resumed.find((e) => e.event === 'connected')?.session_present, true, 'Session Present 1');
          const got = resumed.filter((e) => e.event === 'message');
          assert.deepEqual(
            got.map((e) => [e.topic, e.payload, e.qos]),
            [[topic, 'queued while away', 1]],
          );
          if (c.messageExpiry !== undefined) {
            const left = got[0]!.message_expiry as number;
            assert.ok(left <= c.messageExpiry && left > c.messageExpiry - 60, `Message Expiry Interval left: ${left}`);
          }
        });
      }
    }
  });

  void describe('MQTT.js', () => {
    for (const c of CASES) {
      for (const protocolVersion of [5, 4] as const) {
        if (protocolVersion === 4 && c.v311Cap === undefined) continue;
        void it(`${c.name}: MQTT ${protocolVersion === 5 ? '5.0' : '3.1.1'} session resumes with Session Present 1 and the queued message`, async () => {
          const s = protocolVersion === 5 ? subject() : subject(c.v311Cap);
          const clientId = unique('mqttjs-long');
          const topic = unique('long');
          const session = protocolVersion === 5 ? { properties: { sessionExpiryInterval: c.sessionExpiry } } : {};
          const first = await connectClient(s.tcpUrl, { protocolVersion, clientId, clean: protocolVersion === 5, ...session });
          clients.add(first);
          await first.subscribeAsync(topic, { qos: 1 });
          await first.endAsync();
          clients.delete(first);

          await publishOne(s, topic, 'queued while away', c);

          // mqtt.connect (not connectAsync) so the message handler is in place before CONNACK.
          const again = mqtt.connect(s.tcpUrl, { protocolVersion, clientId, clean: false, reconnectPeriod: 0, connectTimeout: 5000, ...session });
          clients.add(again);
          again.on('error', () => {});
          const inbox = new Inbox(again);
          const connack = await new Promise<mqtt.IConnackPacket>((resolve, reject) => {
            again.once('connect', resolve);
            again.once('close', () => reject(new Error('closed before CONNACK')));
          });
          assert.equal(connack.sessionPresent, true, 'Session Present 1');
          const [m] = await inbox.take(1);
          assert.deepEqual([m!.topic, m!.payload, m!.packet.qos], [topic, 'queued while away', 1]);
          if (c.messageExpiry !== undefined) {
            const left = m!.packet.properties?.messageExpiryInterval ?? 0;
            assert.ok(left <= c.messageExpiry && left > c.messageExpiry - 60, `Message Expiry Interval left: ${left}`);
          }
          await again.endAsync();
          clients.delete(again);
        });
      }
    }
  });
});
