/**
 * The browser build in Chromium (playwright-core): the bundle is made here from source
 * (packages/client/build.ts), checked for Node leftovers and gzip size, served from a local page
 * and driven against Courier over WebSocket — iterator subscribe with named wildcards, QoS 1/2
 * both ways, request/response, and a connection cut by a proxy followed by reconnect and resume.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { Browser, Page } from 'playwright-core';
import { launchChromium, missingChromium } from '../helpers/chromium.js';
import { buildWeb } from '../../packages/client/build.js';
import { connect, type Client } from '../../packages/client/src/index.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { peerGate, withTimeout } from '../helpers/peers.js';
import { startCourier, unique, type TestServer } from './brokers.js';

/** The target for the browser build: at most 20 kB gzip, read as 20,000 bytes (MQTT.js 5.16: 105.5 kB). */
const GZIP_LIMIT = 20_000;

const PAGE = `<!doctype html>
<meta charset="utf-8">
<script type="module">
  import { connect } from '/client.js';
  const q = new URLSearchParams(location.search);
  const s = (window.state = { connected: false, subscribed: false, received: [], acks: [], reply: null, reconnects: 0, resumed: null, errors: [] });
  try {
    const c = await connect(q.get('broker'), { protocolVersion: Number(q.get('v')), clientId: q.get('id'), clean: false, sessionExpiry: 300, reconnect: { initialDelay: 50, maxDelay: 500 } });
    window.client = c;
    s.connected = true;
    c.on('connect', (i) => { s.reconnects++; s.resumed = i.sessionPresent; });
    c.on('error', (e) => s.errors.push(String(e)));
    const topic = q.get('topic');
    const sub = await c.subscribe(topic + '/to-browser/+kind', { qos: 2 });
    s.subscribed = sub.grantedQoS;
    if (q.get('v') === '5') await c.respond(topic + '/svc', (m) => 'browser says ' + m.text(), { qos: 1 });
    for await (const m of sub) {
      s.received.push({ topic: m.topic, kind: m.params.kind, payload: m.text(), qos: m.qos });
      const r = await c.publish(topic + '/from-browser', 'got ' + m.text(), { qos: 2 });
      s.acks.push(r.reasonCode);
    }
  } catch (e) {
    s.errors.push(String(e && e.stack || e));
  }
</script>`;

/** A page whose client keeps its session in IndexedDB; reloading it is a restart. */
const STORE_PAGE = `<!doctype html>
<meta charset="utf-8">
<script type="module">
  import { connect, indexedDbStore } from '/client.js';
  const q = new URLSearchParams(location.search);
  window.state = { connected: false, errors: [] };
  window.countStored = () => new Promise((resolve, reject) => {
    const r = indexedDB.open(q.get('db'));
    r.onerror = () => reject(r.error);
    r.onsuccess = () => {
      const g = r.result.transaction(['publishes'], 'readonly').objectStore('publishes').count();
      g.onsuccess = () => { resolve(g.result); r.result.close(); };
      g.onerror = () => reject(g.error);
    };
  });
  try {
    window.client = await connect(q.get('broker'), { clientId: q.get('id'), clean: false, sessionExpiry: 300, store: indexedDbStore(q.get('db')), reconnect: { initialDelay: 50, maxDelay: 500 } });
    window.state.connected = true;
  } catch (e) {
    window.state.errors.push(String(e && e.stack || e));
  }
</script>`;

interface PageState {
  connected: boolean;
  subscribed: number | false;
  received: Array<{ topic: string; kind: string; payload: string; qos: number }>;
  acks: number[];
  reconnects: number;
  resumed: boolean | null;
  errors: string[];
}

const gate = peerGate('chromium', missingChromium());

void describe('browser build in Chromium against Courier over WebSocket', gate, () => {
  let server: TestServer;
  let http: Server;
  let origin: string;
  let browser: Browser | undefined;
  let bundle: string;
  const dir = mkdtempSync(join(tmpdir(), 'courier-web-'));
  const clients: Client[] = [];

  before(async () => {
    await buildWeb(join(dir, 'web.js'));
    bundle = readFileSync(join(dir, 'web.js'), 'utf8');
    server = await startCourier();
    http = createServer((req, res) => {
      if (req.url?.startsWith('/store.html')) res.writeHead(200, { 'content-type': 'text/html' }).end(STORE_PAGE);
      else if (req.url === '/client.js') res.writeHead(200, { 'content-type': 'text/javascript' }).end(bundle);
      else if (req.url?.startsWith('/index.html')) res.writeHead(200, { 'content-type': 'text/html' }).end(PAGE);
      else res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    origin = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await Promise.all(clients.map((c) => c.close()));
    http?.closeAllConnections();
    await new Promise<void>((resolve) => (http ? http.close(() => resolve()) : resolve()));
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  void it(`the bundle has no Buffer, process or require, and is at most ${GZIP_LIMIT} bytes gzip`, () => {
    assert.doesNotMatch(bundle, /(?<!Array)Buffer\b/);
    assert.doesNotMatch(bundle, /\bprocess\.|\brequire\(|node:/);
    const gz = gzipSync(bundle, { level: 9 }).length;
    assert.ok(gz <= GZIP_LIMIT, `gzip size ${gz} > ${GZIP_LIMIT}`);
  });

  for (const v of [4, 5] as const) {
    void it(`MQTT ${v === 5 ? '5.0' : '3.1.1'}: iterator with named wildcard, QoS 1/2 both ways${v === 5 ? ', request/response' : ''}, resume after the connection is cut`, async () => {
      const topic = unique('web');
      const proxy = new FaultProxy({ port: server.wsPort });
      const proxyPort = await proxy.listen();
      const node = await connect(server.url('tcp'), { protocolVersion: v });
      clients.push(node);
      const back = await node.subscribe(`${topic}/from-browser`, { qos: 2 });
      const backIt = back[Symbol.asyncIterator]();
      const page: Page = await browser!.newPage();
      const pageErrors: string[] = [];
      page.on('pageerror', (e) => pageErrors.push(String(e)));
      const state = async () => (await page.evaluate(() => (globalThis as unknown as { state: PageState }).state)) as PageState;
      const until = (f: string) => page.waitForFunction(f, null, { timeout: 30_000 });
      try {
        const query = new URLSearchParams({ broker: `ws://127.0.0.1:${proxyPort}/mqtt`, v: String(v), id: unique('chromium'), topic });
        await page.goto(`${origin}/index.html?${query.toString()}`);
        await until('window.state.subscribed !== false || window.state.errors.length > 0');
        assert.deepEqual((await state()).errors, []);
        assert.equal((await state()).subscribed, 2);
        await node.publish(`${topic}/to-browser/temp`, 'one', { qos: 1 });
        await until('window.state.acks.length >= 1');
        assert.equal((await backIt.next()).value?.text(), 'got one');
        if (v === 5) {
          const reply = await node.request(`${topic}/svc`, 'hi', { timeout: 10_000 });
          assert.equal(reply.text(), 'browser says hi');
        }
        // Cut the browser's connection: it reconnects with backoff and resumes its session.
        proxy.cut();
        await node.publish(`${topic}/to-browser/humidity`, 'two', { qos: 2 });
        await until('window.state.reconnects >= 1 && window.state.acks.length >= 2');
        const s = await state();
        assert.equal(s.resumed, true);
        assert.deepEqual(
          s.received.map((r) => [r.kind, r.payload, r.qos]),
          [
            ['temp', 'one', 1],
            ['humidity', 'two', 2],
          ],
        );
        assert.deepEqual(s.acks, [0, 0]);
        assert.equal((await backIt.next()).value?.text(), 'got two');
        assert.deepEqual(s.errors, []);
        assert.deepEqual(pageErrors, []);
        await page.evaluate(() => (globalThis as unknown as { client: { close(): Promise<void> } }).client.close());
      } finally {
        await page.close();
        await proxy.close();
      }
    });
  }

  void it('IndexedDB store: QoS 1 publishes made while the connection is blackholed survive leaving the page and are delivered when it is opened again; the page knows its subscription', async () => {
    const topic = unique('idb');
    const proxy = new FaultProxy({ port: server.wsPort });
    const proxyPort = await proxy.listen();
    const node = await connect(server.url('tcp'));
    clients.push(node);
    const seen = new Set<string>();
    let all!: () => void;
    const delivered = new Promise<void>((r) => (all = r));
    await node.subscribe(`${topic}/#`, {
      qos: 1,
      handler: (m) => {
        seen.add(m.text());
        if (seen.size === 20) all();
      },
    });
    const page: Page = await browser!.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    const count = () => page.evaluate(() => (globalThis as unknown as { countStored(): Promise<number> }).countStored());
    const until = async (want: (n: number) => boolean, what: string) => {
      const deadline = Date.now() + 30_000;
      for (let n = await count(); !want(n); n = await count()) if (Date.now() > deadline) throw new Error(`${what}: ${n} stored`);
    };
    try {
      const query = new URLSearchParams({ broker: `ws://127.0.0.1:${proxyPort}/mqtt`, id: unique('idb'), db: unique('db'), topic });
      await page.goto(`${origin}/store.html?${query.toString()}`);
      await page.waitForFunction('window.state.connected || window.state.errors.length > 0', null, { timeout: 30_000 });
      // A subscription, kept in the store too.
      await page.evaluate(
        (t) => (globalThis as unknown as { client: { subscribe(f: string, o: { qos: 1 }): Promise<unknown> } }).client.subscribe(`${t}/sub/+id`, { qos: 1 }),
        topic,
      );
      proxy.blackhole();
      await page.evaluate((t) => {
        const c = (globalThis as unknown as { client: { publish(t: string, p: string, o: { qos: 1 }): Promise<unknown> } }).client;
        for (let i = 0; i < 20; i++) void c.publish(`${t}/x`, String(i), { qos: 1 }).catch(() => undefined);
      }, topic);
      await until((n) => n === 20, 'all 20 publishes stored');
      assert.equal(seen.size, 0);
      // The restart: leave the page (its client dies with it), heal the network, open the page again.
      await page.goto('about:blank');
      await proxy.heal();
      await page.goto(`${origin}/store.html?${query.toString()}`);
      await page.waitForFunction('window.state.connected || window.state.errors.length > 0', null, { timeout: 30_000 });
      assert.deepEqual(await page.evaluate(() => (globalThis as unknown as { state: { errors: string[] } }).state.errors), []);
      assert.deepEqual(
        await page.evaluate(() =>
          (globalThis as unknown as { client: { restoredSubscriptions: Array<{ filter: string }> } }).client.restoredSubscriptions.map((x) => x.filter),
        ),
        [`${topic}/sub/+id`],
        'the reopened page knows its subscription',
      );
      await withTimeout(delivered, 30_000, `all 20 delivered after the reload (have ${seen.size})`);
      await until((n) => n === 0, 'the store emptied once acknowledged');
      assert.deepEqual(pageErrors, []);
      await page.evaluate(() => (globalThis as unknown as { client: { close(): Promise<void> } }).client.close());
    } finally {
      await page.close();
      await proxy.close();
    }
  });
});
