/**
 * The dashboard in real Chromium (Debian `chromium` through playwright-core): log in with the
 * one-time token, watch the message-rate chart move while a publisher runs, find a client and
 * kick it, delete a retained message, publish from the form; any console error, page error or
 * CSP violation fails the test. A screenshot of every page is taken (into docs/images with
 * COURIER_UPDATE_DOCS=1, else into a temporary directory).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { MqttClient } from 'mqtt';
import type { Browser, Page } from 'playwright-core';
import { launchChromium, missingChromium } from '../helpers/chromium.js';
import { startAdminBroker, type AdminBroker } from '../helpers/admin.js';
import { Inbox, connectClient, endAll } from '../helpers/interop.js';
import { peerGate } from '../helpers/peers.js';
import { removeTempDir, tempDir } from '../helpers/processes.js';
import { pollUntil } from '../helpers/wait.js';

const DOCS_IMAGES = fileURLToPath(new URL('../../docs/images/', import.meta.url));

void describe('dashboard in Chromium', peerGate('chromium', missingChromium()), () => {
  let b: AdminBroker;
  let browser: Browser | undefined;
  let page: Page;
  const problems: string[] = [];
  const clients: MqttClient[] = [];
  const shotsDir = process.env.COURIER_UPDATE_DOCS === '1' ? DOCS_IMAGES : tempDir('courier-dashboard-shots');
  let publisher: NodeJS.Timeout | undefined;
  const url = (): string => `mqtt://127.0.0.1:${b.port}`;

  before(async () => {
    b = await startAdminBroker();
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1360, height: 900 }, colorScheme: 'light' });
    page.setDefaultTimeout(30_000);
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`page error: ${String(e)}`));
    page.on('requestfailed', (r) => {
      // The event stream is cut when the page navigates away or closes; anything else is a problem.
      if (!r.url().endsWith('/api/v1/stream')) problems.push(`request failed: ${r.url()} ${r.failure()?.errorText ?? ''}`);
    });
    // Runs in the page (a string: this file is compiled without DOM types).
    await page.addInitScript(
      "document.addEventListener('securitypolicyviolation', (e) => console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI));",
    );
  });

  after(async () => {
    if (publisher !== undefined) clearInterval(publisher);
    await browser?.close();
    await endAll(clients);
    await b?.close();
    if (shotsDir !== DOCS_IMAGES) removeTempDir(shotsDir);
  });

  const shot = (name: string): Promise<Buffer> => page.screenshot({ path: join(shotsDir, `dashboard-${name}.png`), fullPage: false });

  void it('logs in with the one-time token', async () => {
    await page.goto(b.origin);
    await page.getByTestId('login').waitFor();
    await shot('login');
    await page.getByTestId('token').fill(b.token!);
    await page.getByTestId('token-login').click();
    await page.locator('#nav').waitFor();
    await page.getByTestId('stat-connections').waitFor();
    assert.match((await page.locator('#who').textContent()) ?? '', /token \(admin\)/);
  });

  void it('overview: the message rate chart moves while a publisher runs', async () => {
    const sub = await connectClient(url(), { protocolVersion: 5, clientId: 'dash-subscriber' });
    const pub = await connectClient(url(), { protocolVersion: 4, clientId: 'dash-publisher' });
    clients.push(sub, pub);
    await sub.subscribeAsync('dash/live/#', { qos: 0 });
    await sub.subscribeAsync('$share/workers/jobs/+', { qos: 1 });
    let n = 0;
    publisher = setInterval(() => {
      for (let i = 0; i < 20; i++) pub.publish(`dash/live/${n++ % 5}`, `reading ${n}`, { qos: 0 });
    }, 50);
    const chart = page.getByTestId('chart-messages');
    const pointsBefore = Number((await chart.getAttribute('data-points')) ?? '0');
    await pollUntil(async () => Number((await chart.getAttribute('data-last')) ?? '0') > 0, {
      what: 'messages/s above 0 on the chart',
      timeoutMs: 20_000,
      intervalMs: 200,
    });
    await pollUntil(async () => Number((await chart.getAttribute('data-points')) ?? '0') >= pointsBefore + 3, {
      what: 'three new points',
      timeoutMs: 20_000,
      intervalMs: 200,
    });
    await pollUntil(async () => Number((await page.getByTestId('stat-in').textContent()) ?? '0') > 0, { what: 'the in/s card', intervalMs: 200 });
    assert.equal(await page.getByTestId('stat-connections').textContent(), '2');
    // A few more seconds of curve for the screenshot.
    await pollUntil(async () => Number((await chart.getAttribute('data-points')) ?? '0') >= pointsBefore + 8, {
      what: 'eight new points',
      timeoutMs: 30_000,
      intervalMs: 250,
    });
    await shot('overview');
    clearInterval(publisher);
    publisher = undefined;
  });

  void it('clients: find a client and kick it (v5 DISCONNECT 0x98)', async () => {
    const victim = await connectClient(url(), { protocolVersion: 5, clientId: 'dash-victim', username: 'sensor-7', keepalive: 30 });
    clients.push(victim);
    await victim.subscribeAsync(['sensors/7/cmd', 'sensors/all/#'], { qos: 1 });
    const reason = new Promise<number | undefined>((resolve) => victim.on('disconnect', (p) => resolve(p.reasonCode)));
    await page.goto(`${b.origin}/#/clients`);
    await page.getByTestId('client-search').fill('victim');
    await page.getByTestId('client-search-go').click();
    const row = page.getByTestId('client-list').locator('tr[data-key="dash-victim"]');
    await row.waitFor();
    // The list before the search may still be shown for a moment: the search result has one row.
    await pollUntil(async () => (await page.getByTestId('client-list').locator('tbody tr').count()) === 1, { what: 'one search result' });
    await row.click();
    await page.getByTestId('client-detail').getByText('sensors/all/#').waitFor();
    await shot('clients');
    await page.getByTestId('kick').click();
    await page.getByTestId('kick-confirm').click();
    assert.equal(await reason, 0x98);
    await page.getByTestId('client-detail').getByText('Disconnected.').waitFor();
    await pollUntil(() => b.broker.inspector.client('dash-victim') === undefined, { what: 'the victim gone' });
  });

  void it('subscriptions and topics list what clients hold', async () => {
    await page.goto(`${b.origin}/#/subscriptions`);
    await page.getByTestId('subscription-list').getByText('$share/workers/jobs/+').waitFor();
    await shot('subscriptions');
    await page.goto(`${b.origin}/#/topics`);
    await page.getByTestId('topic-list').getByText('dash/live/#').waitFor();
    await shot('topics');
  });

  void it('retained: view a message and delete it', async () => {
    b.broker.publish({ topic: 'dash/retained/config', payload: JSON.stringify({ interval: 5, unit: 's' }), retain: true, qos: 1 });
    b.broker.publish({ topic: 'dash/retained/doomed', payload: 'delete me', retain: true });
    await page.goto(`${b.origin}/#/retained`);
    await page.getByTestId('retained-list').locator('tr[data-key="dash/retained/config"]').click();
    await page.getByTestId('retained-payload').getByText('"interval": 5').waitFor();
    await page.getByTestId('retained-list').locator('tr[data-key="dash/retained/doomed"]').click();
    await page.getByTestId('retained-payload').getByText('delete me').waitFor();
    await shot('retained');
    await page.getByTestId('retained-delete').click();
    await page.getByTestId('retained-view').getByText('Deleted.').waitFor();
    await page.getByTestId('retained-list').locator('tr[data-key="dash/retained/doomed"]').waitFor({ state: 'detached' });
    assert.equal(b.broker.inspector.retainedMessage('dash/retained/doomed'), undefined);
    assert.ok(b.broker.inspector.retainedMessage('dash/retained/config') !== undefined);
  });

  void it('publish: the form publishes as the broker', async () => {
    const sub = await connectClient(url(), { protocolVersion: 5 });
    clients.push(sub);
    const inbox = new Inbox(sub);
    await sub.subscribeAsync('dash/from-form', { qos: 1 });
    await page.goto(`${b.origin}/#/publish`);
    await page.getByTestId('publish-topic').fill('dash/from-form');
    await page.getByTestId('publish-payload').fill('hello from the dashboard');
    await page.getByTestId('publish-go').click();
    await page.getByTestId('publish-result').getByText('Published 24 bytes').waitFor();
    const m = await inbox.next();
    assert.deepEqual([m.topic, m.payload], ['dash/from-form', 'hello from the dashboard']);
    await shot('publish');
  });

  void it('alarms page, and no console error or CSP violation anywhere', async () => {
    await page.goto(`${b.origin}/#/alarms`);
    await page.getByTestId('alarms-active').waitFor();
    await shot('alarms');
    assert.deepEqual(problems, []);
  });
});
