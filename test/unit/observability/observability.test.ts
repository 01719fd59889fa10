/**
 * Pure parts of observability: $SYS values and Mosquitto's load averages, disconnect reason
 * labels, readable log lines, the admin users file, and the docs listing every metric, channel
 * and API route.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createTrafficCounters } from '../../../src/core/traffic.js';
import { SysTree, sysValues } from '../../../src/observability/sys.js';
import { classifyDisconnect, DISCONNECT_REASONS, type Snapshot } from '../../../src/observability/snapshot.js';
import { metricNames } from '../../../src/observability/metrics.js';
import { CHANNEL_NAMES } from '../../../src/observability/channels.js';
import { routeTable } from '../../../src/admin/api.js';
import { readableLine } from '../../../src/log.js';
import { deleteAdminUser, loadAdminUsers, setAdminUser } from '../../../src/admin/users.js';
import { AdminAuth } from '../../../src/admin/auth.js';
import { LATENCY_BUCKETS, LatencySampler } from '../../../src/core/latency.js';
import { removeTempDir, tempDir } from '../../helpers/processes.js';

function snapshot(over: Partial<Snapshot> = {}): Snapshot {
  return {
    time: 1_000_000,
    version: '1.2.3',
    startedAt: 0,
    uptimeSeconds: 1000,
    connections: 3,
    connectionsMax: 5,
    sessionsOnline: 3,
    sessionsOffline: 2,
    subscriptions: 7,
    sharedSubscriptions: 1,
    retained: 4,
    queuedMessages: 6,
    queuedBytes: 600,
    queuedBytesLimit: 1000,
    inflight: 2,
    outboundBufferBytes: 0,
    listeners: [],
    traffic: createTrafficCounters(),
    messagesIn: 0,
    messagesOut: 0,
    messagesUnrouted: 0,
    willsPublished: 0,
    sessionsCreated: 0,
    sessionsResumed: 0,
    sessionsTakenOver: 0,
    sessionsExpired: 0,
    dropped: { qos0_backpressure: 1, queue_full: 2, expired: 0, too_large: 0, queue_budget: 0 },
    refused: {
      limit: 0,
      authentication: 0,
      connect_timeout: 0,
      rate_limited: 0,
      publish_denied: 0,
      subscribe_denied: 0,
      subscription_quota: 0,
      topic_limit: 0,
    },
    disconnects: Object.fromEntries(DISCONNECT_REASONS.map((r) => [r, 0])) as Snapshot['disconnects'],
    eventLoopDelay: { p50: 0, p99: 0, max: 0 },
    deliveryLatency: { counts: [], sum: 0, count: 0 },
    memory: { rss: 0, heapUsed: 100, heapTotal: 200, external: 0 },
    ...over,
  };
}

void describe('$SYS values', () => {
  void it('uses Mosquitto names and formats, and derives totals from one snapshot', () => {
    const v = sysValues(snapshot());
    assert.equal(v.get('version'), 'courier version 1.2.3');
    assert.equal(v.get('uptime'), '1000 seconds');
    assert.equal(v.get('clients/connected'), '3');
    assert.equal(v.get('clients/disconnected'), '2');
    assert.equal(v.get('clients/total'), '5');
    assert.equal(v.get('clients/maximum'), '5');
    assert.equal(v.get('retained messages/count'), '4');
    assert.equal(v.get('publish/messages/dropped'), '3');
    assert.equal(v.get('publish/messages/dropped/queue_full'), '2');
    assert.equal(v.get('cluster/nodes'), undefined, 'no cluster topics on a single broker');
  });

  void it('publishes cluster counters and totals on a cluster node', () => {
    const v = sysValues(
      snapshot({
        cluster: {
          node: 'n1',
          nodeId: 3,
          available: true,
          nodes: 2,
          remoteRoutes: 4,
          totals: { connections: 9 },
          forwardedOut: 1,
          forwardBatches: 1,
          forwardedIn: 2,
          forwardsToGoneNodes: 0,
          forwardsDroppedLagging: 0,
          routeChanges: 5,
          retainedChanges: 0,
          rejoins: 0,
          redisDisconnects: 0,
          selfFences: 0,
        },
      }),
    );
    assert.equal(v.get('cluster/node'), 'n1');
    assert.equal(v.get('cluster/nodes'), '2');
    assert.equal(v.get('cluster/forwarded/received'), '2');
    assert.equal(v.get('cluster/totals/connections'), '9');
  });

  void it('loads are exponential moving averages per minute, as Mosquitto computes them', () => {
    const published: Array<[string, string]> = [];
    let s = snapshot();
    const tree = new SysTree(
      10,
      () => s,
      (topic, payload) => published.push([topic, payload]),
    );
    tree.tick();
    // 600 PUBLISH packets in 10 s = 3600/min; after one 10 s step: 3600 × (1 − e^(−10/60)).
    const traffic = createTrafficCounters();
    traffic.publishIn[1] = 600;
    s = snapshot({ time: 1_010_000, traffic });
    tree.tick();
    const last = (t: string): string | undefined => published.filter(([k]) => k === `$SYS/broker/${t}`).pop()?.[1];
    assert.equal(last('load/publish/received/1min'), (3600 * (1 - Math.exp(-10 / 60))).toFixed(2));
    assert.equal(last('load/publish/received/15min'), (3600 * (1 - Math.exp(-10 / 900))).toFixed(2));
    assert.equal(last('load/publish/sent/1min'), '0.00');
    // Unchanged values are not published again; uptime and time are.
    assert.equal(published.filter(([k]) => k === '$SYS/broker/version').length, 1);
    assert.equal(published.filter(([k]) => k === '$SYS/broker/uptime').length, 2);
  });
});

void describe('sampled delivery latency', () => {
  void it('times one routed message in `every`, at its first delivery, into fixed buckets', () => {
    const l = new LatencySampler(3);
    const ms = [{}, {}, {}, {}, {}, {}];
    for (const m of ms) l.routed(m);
    // The 3rd and 6th were sampled; only the latest is in flight.
    assert.equal(l.message, ms[5]);
    l.delivered();
    assert.equal(l.message, undefined);
    assert.equal(l.count, 1);
    assert.equal(l.counts.length, LATENCY_BUCKETS.length + 1);
    assert.equal(
      [...l.counts].reduce((a, b) => a + b, 0),
      1,
    );
    assert.ok(l.sum >= 0 && l.sum < 1);
  });
});

void describe('labels and log lines', () => {
  void it('maps close reasons to the bounded disconnect labels', () => {
    assert.equal(classifyDisconnect('client disconnected'), 'client');
    assert.equal(classifyDisconnect('client disconnected with reason 0x4'), 'client');
    assert.equal(classifyDisconnect('keep alive timeout (5 s × 1.5 without a packet)'), 'keepalive_timeout');
    assert.equal(classifyDisconnect('protocol violation: bad'), 'protocol_error');
    assert.equal(classifyDisconnect('session taken over by another connection'), 'takeover');
    assert.equal(classifyDisconnect('network error: ECONNRESET'), 'socket_error');
    assert.equal(classifyDisconnect('administrative action: disconnected by an operator'), 'admin');
    assert.equal(classifyDisconnect('server shutting down'), 'shutdown');
    assert.equal(classifyDisconnect('something new'), 'other');
  });

  void it('renders a JSON log line as one readable line', () => {
    const line = readableLine(
      JSON.stringify({ level: 'info', time: '2026-12-05T09:12:01.123Z', pid: 1, name: 'courier', msg: 'client disconnected', clientId: 'a b', n: 3 }),
    );
    assert.equal(line, '09:12:01.123 INFO  client disconnected  clientId="a b" n=3\n');
    assert.equal(readableLine('not json'), 'not json');
  });
});

void describe('admin users file', () => {
  void it('adds, updates, reads and deletes users with roles; one login per password check', async () => {
    const dir = tempDir('courier-admin-users');
    try {
      const file = join(dir, 'users');
      assert.equal(await setAdminUser(file, 'alice', 'admin', 'pw1'), 'added');
      assert.equal(await setAdminUser(file, 'bob', 'viewer', 'pw2'), 'added');
      assert.equal(await setAdminUser(file, 'alice', 'viewer', 'pw3'), 'updated');
      const users = await loadAdminUsers(file);
      assert.deepEqual(
        [...users].map(([u, x]) => [u, x.role]),
        [
          ['alice', 'viewer'],
          ['bob', 'viewer'],
        ],
      );
      const auth = new AdminAuth(file);
      await auth.init();
      assert.equal(auth.token, undefined, 'users exist: no one-time token');
      assert.deepEqual(await auth.checkPassword('alice', 'pw3'), { user: 'alice', role: 'viewer' });
      assert.equal(await auth.checkPassword('alice', 'pw1'), undefined);
      assert.equal(await auth.checkPassword('nobody', 'pw1'), undefined);
      assert.equal(await deleteAdminUser(file, 'bob'), true);
      assert.equal(await deleteAdminUser(file, 'bob'), false);
      assert.deepEqual([...(await loadAdminUsers(file)).keys()], ['alice']);
      assert.deepEqual([...(await loadAdminUsers(join(dir, 'absent'))).keys()], []);
    } finally {
      removeTempDir(dir);
    }
  });

  void it('rejects a malformed line with file and line number', async () => {
    const dir = tempDir('courier-admin-users');
    try {
      const file = join(dir, 'users');
      const { writeFileSync } = await import('node:fs');
      writeFileSync(file, '# comment\nalice:root:$scrypt$x\n');
      await assert.rejects(loadAdminUsers(file), /users:2: expected user:role:hash/);
    } finally {
      removeTempDir(dir);
    }
  });
});

void describe('docs list what the code has', () => {
  const doc = (name: string): string => readFileSync(new URL(`../../../docs/${name}`, import.meta.url), 'utf8');
  void it('docs/observability.md names every metric and every diagnostics channel', () => {
    const text = doc('observability.md');
    for (const m of metricNames(true)) assert.ok(text.includes(`\`${m.name}\``), m.name);
    for (const c of CHANNEL_NAMES) assert.ok(text.includes(`\`${c}\``), c);
  });
  void it('docs/dashboard.md lists every API route', () => {
    const text = doc('dashboard.md');
    for (const r of routeTable()) {
      const path = r.path.replace(/^\^/, '').replace(/\$$/, '').replace(/\\\//g, '/').replace('([^/]+)', ':id').replace('(.+)', ':topic');
      assert.ok(text.includes(`${r.method} ${path}`), `${r.method} ${path}`);
    }
  });
});
