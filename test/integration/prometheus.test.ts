/**
 * `/metrics` against real Prometheus tooling: `promtool check metrics` (Debian `prometheus`)
 * lints the exposition after known traffic, and a real Prometheus server scrapes Courier every
 * second (with Basic credentials, as a viewer) and answers a query about that traffic.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { metricNames } from '../../src/observability/metrics.js';
import { basic, http, startAdminBroker, type AdminBroker } from '../helpers/admin.js';
import { Inbox, connectClient, endAll } from '../helpers/interop.js';
import { missingExecutable, peerGate } from '../helpers/peers.js';
import { ProcessGroup, freePorts, removeTempDir, tempDir } from '../helpers/processes.js';
import { pollUntil } from '../helpers/wait.js';

const PROMTOOL = '/usr/bin/promtool';
const PROMETHEUS = '/usr/bin/prometheus';

function promtool(text: string): { status: number | null; output: string } {
  const r = spawnSync(PROMTOOL, ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

/** Sends `n` QoS 1 messages from one client to another and waits until all arrived. */
async function traffic(b: AdminBroker, n: number, clients: MqttClient[]): Promise<void> {
  const url = `mqtt://127.0.0.1:${b.port}`;
  const sub = await connectClient(url, { protocolVersion: 5, clientId: 'prom-secret-client-id' });
  const pub = await connectClient(url, { protocolVersion: 4 });
  clients.push(sub, pub);
  const inbox = new Inbox(sub);
  await sub.subscribeAsync('prom/#', { qos: 1 });
  for (let i = 0; i < n; i++) await pub.publishAsync(`prom/topic-secret/${i}`, `m${i}`, { qos: 1 });
  await inbox.take(n);
}

void describe('/metrics and promtool', peerGate('promtool', missingExecutable(PROMTOOL)), () => {
  let b: AdminBroker;
  const clients: MqttClient[] = [];
  before(async () => {
    b = await startAdminBroker();
    await traffic(b, 25, clients);
  });
  after(async () => {
    await endAll(clients);
    await b.close();
  });

  void it('passes `promtool check metrics` (exit 0, no lint) after traffic', async () => {
    const r = await http(b.adminPort, 'GET', '/metrics');
    assert.equal(r.status, 200);
    assert.match(String(r.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    const lint = promtool(r.text);
    assert.equal(lint.status, 0, lint.output);
    assert.equal(lint.output.trim(), '');
  });

  void it('a broken exposition makes promtool fail (the check is real)', async () => {
    const r = await http(b.adminPort, 'GET', '/metrics');
    assert.notEqual(promtool(`${r.text}courier_broken{ 1\n`).status, 0);
    assert.notEqual(promtool('# TYPE courier_bad counter\ncourier_bad 1\n').status, 0, 'a counter without _total is a lint error');
  });

  void it('exposes every Courier metric with HELP and TYPE, every labelled series from zero, and never a client id or topic', async () => {
    const text = (await http(b.adminPort, 'GET', '/metrics')).text;
    for (const m of metricNames(false)) {
      const family = m.type === 'counter' ? m.name.replace(/_total$/, '') : m.name;
      assert.ok(text.includes(`# HELP ${m.name} `) || text.includes(`# HELP ${family} `), `HELP of ${m.name}`);
      assert.ok(text.includes(`# TYPE ${m.name} ${m.type}`) || text.includes(`# TYPE ${family} ${m.type}`), `TYPE of ${m.name}`);
    }
    for (const reason of ['qos0_backpressure', 'queue_full', 'expired', 'too_large', 'queue_budget']) {
      assert.match(text, new RegExp(`^courier_messages_dropped_total\\{reason="${reason}"\\} 0$`, 'm'));
    }
    assert.match(text, /^courier_messages_received_total\{qos="1"\} 25$/m);
    assert.match(text, /^courier_packets_received_total\{type="connect"\} 2$/m);
    assert.match(text, /^courier_connections\{listener="tcp:127\.0\.0\.1:0"\} 2$/m);
    assert.match(text, /^nodejs_heap_size_used_bytes \d+/m);
    assert.match(text, /^process_cpu_seconds_total /m);
    assert.ok(!text.includes('prom-secret-client-id'), 'no client id');
    assert.ok(!text.includes('topic-secret'), 'no topic');
  });
});

void describe('a real Prometheus scrapes Courier', peerGate('prometheus', missingExecutable(PROMETHEUS)), () => {
  let b: AdminBroker;
  const group = new ProcessGroup();
  const clients: MqttClient[] = [];
  let dir: string;

  before(async () => {
    // Credentials required (publicMetrics false), as on a non-loopback listener: a viewer scrapes.
    b = await startAdminBroker({ users: [['scraper', 'viewer', 'scrape-pw']], admin: { publicMetrics: false } });
    dir = tempDir('courier-prometheus');
  });
  after(async () => {
    await endAll(clients);
    await group.killAll();
    await b.close();
    removeTempDir(dir);
  });

  void it('scrapes /metrics every second with Basic credentials and answers a query about the traffic', async () => {
    assert.equal((await http(b.adminPort, 'GET', '/metrics')).status, 401, 'no credentials, no metrics');
    assert.equal((await http(b.adminPort, 'GET', '/metrics', { headers: basic('scraper', 'scrape-pw') })).status, 200);
    const [promPort] = await freePorts(1);
    writeFileSync(
      join(dir, 'prometheus.yml'),
      [
        'global:',
        '  scrape_interval: 1s',
        '  evaluation_interval: 1s',
        'scrape_configs:',
        '  - job_name: courier',
        '    basic_auth:',
        '      username: scraper',
        '      password: scrape-pw',
        '    static_configs:',
        `      - targets: ['127.0.0.1:${b.adminPort}']`,
        '',
      ].join('\n'),
    );
    const prom = group.spawn(PROMETHEUS, [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--web.listen-address=127.0.0.1:${promPort}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      '--log.level=warn',
    ]);
    await traffic(b, 40, clients);
    const query = async (q: string): Promise<number | undefined> => {
      const r = await fetch(`http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent(q)}`);
      if (!r.ok) return undefined;
      const body = (await r.json()) as { data: { result: Array<{ value: [number, string] }> } };
      const v = body.data.result[0]?.value[1];
      return v === undefined ? undefined : Number(v);
    };
    try {
      await pollUntil(async () => (await query('up{job="courier"}')) === 1, { what: 'up{job="courier"} == 1', timeoutMs: 40_000, intervalMs: 250 });
      const received = await pollUntil(
        async () => {
          const v = await query('sum(courier_messages_received_total{job="courier"})');
          return v === 40 ? v : undefined;
        },
        { what: 'courier_messages_received_total == 40 in Prometheus', timeoutMs: 20_000, intervalMs: 250 },
      );
      assert.equal(received, 40);
      assert.equal(await query('courier_messages_received_total{job="courier",qos="1"}'), 40);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${prom.describe()}`, { cause: err });
    }
  });
});
