/**
 * Cluster II: a session that moved to node 1 holds its direct deliveries until node 0 (where it
 * came from) answers (src/cluster/move-order.ts). If its client reconnects to node 1 meanwhile,
 * the session stays on node 1 (Session Present 1) and so does the hold: the answer, or the hold's
 * timeout, must still end it. Before the fix the reconnect's claim (node 1 claiming from itself)
 * forgot the wait and the session held every later message for as long as it stayed on node 1:
 * the `--workers` move test saw "nothing delivered after the reconnect" when the kernel gave a
 * reconnect the same worker. Messages must reach a connected subscriber [MQTT-4.5.0-1].
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { IClientOptions, MqttClient } from 'mqtt';
import { openClient, startBroker, type TestBroker } from '../helpers/broker.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { redisServerGate, startRedisServer, type RedisServer } from '../helpers/redis-server.js';
import { pollUntil } from '../helpers/wait.js';

async function open(port: number, opts: IClientOptions, setup?: (c: MqttClient) => void): Promise<MqttClient> {
  return (await openClient(port, opts, setup)).c;
}

void describe('cluster: a session resumed on the node it just moved to', redisServerGate(), () => {
  let redis: RedisServer;
  let proxy: FaultProxy | undefined;
  const nodes: TestBroker[] = [];
  const clients: MqttClient[] = [];

  before(async () => {
    redis = await startRedisServer();
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => {})));
    await Promise.all(nodes.map((n) => n.close().catch(() => {})));
    await proxy?.close();
    await redis?.close();
  });

  void test('reconnecting there while the move still holds: the hold ends and later messages arrive', { timeout: 60_000 }, async () => {
    // Node 0 hears of everything late, so its answer to node 1's claim takes a while.
    proxy = new FaultProxy({ port: redis.port });
    const proxyPort = await proxy.listen();
    for (let i = 0; i < 2; i++) {
      const url = i === 0 ? `redis://127.0.0.1:${proxyPort}` : redis.url;
      nodes.push(await startBroker({ cluster: { redis: url, nodeName: `hr${i}`, prefix: 'hold-resume:', leaseMs: 10_000, heartbeatMs: 500 } }));
    }
    await pollUntil(() => nodes.every((n) => n.broker.stats().cluster!.nodes === 2), { what: 'both nodes see each other' });
    const stats = (i: number) => nodes[i]!.broker.stats().cluster!.sessions!;

    const opts: IClientOptions = { protocolVersion: 5, clientId: 'hr-mover', clean: false, properties: { sessionExpiryInterval: 600 } };
    const got: string[] = [];
    const onMessage = (_t: string, p: Buffer): void => void got.push(p.toString());
    let mover = await open(nodes[0]!.port, opts, (c) => c.on('message', onMessage));
    await mover.subscribeAsync('hr/#', { qos: 1 });
    await pollUntil(() => nodes[1]!.broker.stats().cluster!.remoteRoutes >= 1, { what: 'the route reached node 1' });
    await mover.endAsync();

    proxy.latency(400);
    mover = await open(nodes[1]!.port, opts, (c) => c.on('message', onMessage));
    // Node 0's answer needs at least two 400 ms hops: the session holds now.
    assert.equal(stats(1).holding, 1, 'node 1 holds the session until node 0 answers');
    await mover.endAsync();
    const again = await openClient(nodes[1]!.port, opts, (c) => c.on('message', onMessage));
    mover = again.c;
    clients.push(mover);
    assert.equal(again.present, true, 'resumed on node 1 [MQTT-3.2.2-2]');
    assert.equal(stats(1).holding, 1, 'the resume on the same node keeps the wait for node 0');

    // Node 0 hears of the move and drops its route: what node 1 routes now it delivers directly
    // (nothing is left to node 0 to hand back), into the session's hold.
    proxy.latency(0);
    await pollUntil(() => nodes[1]!.broker.stats().cluster!.remoteRoutes === 0, { what: "node 0's route for the session is gone" });
    const pub = await open(nodes[1]!.port, { protocolVersion: 5, clientId: 'hr-pub' });
    clients.push(pub);
    for (let i = 0; i < 3; i++) await pub.publishAsync('hr/x', `m${i}`, { qos: 1 });
    await pollUntil(() => got.length >= 3, { what: `the 3 messages published after the resume (got: ${got.join(' ') || 'none'})`, timeoutMs: 15_000 });
    assert.deepEqual(got, ['m0', 'm1', 'm2']);
    await pollUntil(() => stats(1).holding === 0, { what: 'the hold ended' });
  });
});
