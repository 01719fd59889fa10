/**
 * Observability of cluster nodes (two nodes in one process on a real redis-server): each node's
 * $SYS tree has its own `cluster/...` values (never forwarded to the other node), /metrics has
 * the `courier_cluster_*` families and passes promtool, and the API's stats carry the cluster
 * counters and totals.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import type { MqttClient } from 'mqtt';
import { http, startAdminBroker, type AdminBroker, basic } from '../helpers/admin.js';
import { Inbox, connectClient, endAll } from '../helpers/interop.js';
import { missingExecutable } from '../helpers/peers.js';
import { redisServerGate, startRedisServer, type RedisServer } from '../helpers/redis-server.js';
import { pollUntil } from '../helpers/wait.js';

void describe('cluster: $SYS, /metrics and the API on every node', redisServerGate(), () => {
  let redis: RedisServer;
  const nodes: AdminBroker[] = [];
  const clients: MqttClient[] = [];

  before(async () => {
    redis = await startRedisServer();
    for (const name of ['obs-a', 'obs-b']) {
      nodes.push(
        await startAdminBroker({
          users: [['vera', 'viewer', 'pw']],
          cluster: { redis: redis.url, nodeName: name, prefix: 'obs:', leaseMs: 3000, heartbeatMs: 500 },
        }),
      );
    }
    await pollUntil(() => nodes.every((n) => n.broker.stats().cluster?.nodes === 2), { what: 'two nodes' });
  });
  after(async () => {
    await endAll(clients);
    await Promise.all(nodes.map((n) => n.close().catch(() => {})));
    await redis?.close();
  });

  void it('each node publishes its own cluster values under $SYS/broker/cluster/', async () => {
    const [a, b] = nodes as [AdminBroker, AdminBroker];
    // Traffic across nodes: a subscriber on b, a publisher on a.
    const sub = await connectClient(`mqtt://127.0.0.1:${b.port}`, { protocolVersion: 5 });
    const pub = await connectClient(`mqtt://127.0.0.1:${a.port}`, { protocolVersion: 5 });
    clients.push(sub, pub);
    const inbox = new Inbox(sub);
    await sub.subscribeAsync('cross/#', { qos: 1 });
    await pollUntil(() => a.broker.stats().cluster!.remoteRoutes >= 1, { what: 'route on a' });
    for (let i = 0; i < 5; i++) await pub.publishAsync(`cross/${i}`, 'x', { qos: 1 });
    await inbox.take(5);
    for (const [n, name] of [
      [a, 'obs-a'],
      [b, 'obs-b'],
    ] as const) {
      const reader = await connectClient(`mqtt://127.0.0.1:${n.port}`, { protocolVersion: 5 });
      clients.push(reader);
      const seen = new Map<string, string>();
      reader.on('message', (t, p) => seen.set(t, p.toString()));
      await reader.subscribeAsync('$SYS/broker/cluster/#');
      await pollUntil(() => seen.get('$SYS/broker/cluster/node') === name && seen.get('$SYS/broker/cluster/nodes') === '2', {
        what: `${name}'s own cluster values`,
      });
      await pollUntil(() => Number(seen.get('$SYS/broker/cluster/totals/connections') ?? -1) >= 2, { what: 'cluster totals', timeoutMs: 10_000 });
    }
    await pollUntil(() => a.broker.snapshot().cluster!.forwardedOut >= 5, { what: 'a forwarded 5' });
  });

  void it('/metrics has the courier_cluster_* families and stays promtool-clean; the API carries cluster stats', async () => {
    const a = nodes[0]!;
    const text = (await http(a.adminPort, 'GET', '/metrics')).text;
    assert.match(text, /^courier_cluster_nodes 2$/m);
    assert.match(text, /^courier_cluster_available 1$/m);
    assert.match(text, /^courier_cluster_forwarded_sent_total \d+$/m);
    assert.match(text, /^courier_cluster_totals\{stat="connections"\} \d+$/m);
    if (missingExecutable('/usr/bin/promtool') === undefined) {
      const r = spawnSync('/usr/bin/promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
      assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
    }
    const stats = (await http(a.adminPort, 'GET', '/api/v1/stats', { headers: basic('vera', 'pw') })).json<{ cluster: { node: string; nodes: number } }>();
    assert.equal(stats.cluster.node, 'obs-a');
    assert.equal(stats.cluster.nodes, 2);
    const info = (await http(a.adminPort, 'GET', '/api/v1/broker', { headers: basic('vera', 'pw') })).json<{ node: string; cluster: boolean }>();
    assert.deepEqual([info.node, info.cluster], ['obs-a', true]);
  });
});
