/**
 * Interop with a real browser: headless Chromium (driven by playwright-core) loads MQTT.js's
 * browser bundle from a local page, connects over WebSocket, subscribes and publishes; MQTT.js in
 * Node is on the other side over TCP.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { MqttClient } from 'mqtt';
import type { Browser, Page } from 'playwright-core';
import { launchChromium, missingChromium } from '../helpers/chromium.js';
import { peerGate } from '../helpers/peers.js';
import { Inbox, connectClient, endAll, startSubject, unique, type Subject } from '../helpers/interop.js';

const require = createRequire(import.meta.url);
const BUNDLE = join(dirname(require.resolve('mqtt/package.json')), 'dist', 'mqtt.min.js');
const gate = peerGate('chromium', missingChromium() ?? (existsSync(BUNDLE) ? undefined : `MQTT.js browser bundle ${BUNDLE} not found`));

/** The page: connects to the broker given in the query string and records what happens on `window`. */
const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>courier browser interop</title>
<script src="/mqtt.min.js"></script>
<script>
  const params = new URLSearchParams(location.search);
  window.state = { connected: false, subscribed: false, received: [], errors: [] };
  const client = mqtt.connect(params.get('broker'), {
    protocolVersion: Number(params.get('v')),
    clientId: params.get('id'),
    reconnectPeriod: 0,
  });
  client.on('connect', () => {
    window.state.connected = true;
    client.subscribe(params.get('topic') + '/to-browser/#', { qos: 1 }, (err, granted) => {
      if (err) window.state.errors.push(String(err));
      else window.state.subscribed = granted.map((g) => g.qos);
    });
  });
  client.on('message', (topic, payload, packet) => {
    window.state.received.push({ topic, payload: new TextDecoder().decode(payload), qos: packet.qos });
    if (window.state.received.length === 2) {
      client.publish(params.get('topic') + '/from-browser', 'hello from chromium', { qos: 1 });
    }
  });
  client.on('error', (e) => window.state.errors.push(String(e)));
</script>`;

void describe('Chromium (MQTT.js browser bundle over WebSocket)', gate, () => {
  let subject: Subject;
  let http: Server;
  let origin: string;
  let browser: Browser | undefined;
  const clients = new Set<MqttClient>();

  before(async () => {
    subject = await startSubject();
    const bundle = readFileSync(BUNDLE);
    http = createServer((req, res) => {
      if (req.url?.startsWith('/mqtt.min.js')) {
        res.writeHead(200, { 'content-type': 'text/javascript' }).end(bundle);
      } else if (req.url?.startsWith('/index.html')) {
        res.writeHead(200, { 'content-type': 'text/html' }).end(PAGE);
      } else {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    origin = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await endAll(clients);
    http?.closeAllConnections();
    await new Promise<void>((resolve) => (http ? http.close(() => resolve()) : resolve()));
    await subject?.close();
  });

  for (const v of [4, 5] as const) {
    void it(`MQTT ${v === 5 ? '5.0' : '3.1.1'}: the page subscribes over ws, receives what Node publishes over TCP, and publishes back`, async () => {
      const topic = unique('browser');
      const node = await connectClient(subject.tcpUrl, { protocolVersion: v, clientId: unique('node') });
      clients.add(node);
      const inbox = new Inbox(node);
      await node.subscribeAsync(`${topic}/from-browser`, { qos: 1 });

      const page: Page = await browser!.newPage();
      try {
        const pageErrors: string[] = [];
        page.on('pageerror', (e) => pageErrors.push(String(e)));
        const query = new URLSearchParams({ broker: subject.wsUrl, v: String(v), id: unique('chromium'), topic });
        await page.goto(`${origin}/index.html?${query.toString()}`);
        await page.waitForFunction(() => (globalThis as unknown as { state: { subscribed: unknown } }).state.subscribed, null, {
          timeout: 30_000,
        });
        const state = () => page.evaluate(() => (globalThis as unknown as { state: unknown }).state);
        assert.deepEqual(((await state()) as { subscribed: number[] }).subscribed, [1]);

        await node.publishAsync(`${topic}/to-browser/a`, 'first', { qos: 0 });
        await node.publishAsync(`${topic}/to-browser/b/c`, 'second', { qos: 1 });
        await page.waitForFunction(() => (globalThis as unknown as { state: { received: unknown[] } }).state.received.length >= 2, null, { timeout: 30_000 });
        const s = (await state()) as { received: unknown[]; errors: string[] };
        assert.deepEqual(s.received, [
          { topic: `${topic}/to-browser/a`, payload: 'first', qos: 0 },
          { topic: `${topic}/to-browser/b/c`, payload: 'second', qos: 1 },
        ]);
        const back = await inbox.next(30_000);
        assert.deepEqual([back.topic, back.payload, back.packet.qos], [`${topic}/from-browser`, 'hello from chromium', 1]);
        assert.deepEqual(s.errors, []);
        assert.deepEqual(pageErrors, []);
      } finally {
        await page.close();
      }
    });
  }
});
