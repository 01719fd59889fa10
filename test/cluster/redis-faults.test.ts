/**
 * Cluster I, a node cut off from Redis by a fault proxy (blackhole: an open connection that
 * answers nothing, which no socket error reveals). The node notices within three heartbeats,
 * refuses new CONNECTs (v5 0x88), holds the acknowledgements it cannot make durable, and once the
 * link heals it recovers by itself with nothing acknowledged lost. Local QoS 0 keeps flowing.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import mqtt, { type MqttClient } from 'mqtt';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { redisServerGate, startRedisServer, type RedisServer } from '../helpers/redis-server.js';
import { pollUntil } from '../helpers/wait.js';

void describe('cluster: Redis unreachable', redisServerGate(), () => {
  let redis: RedisServer;
  let proxy: FaultProxy;
  let proxyPort = 0;
  const brokers: TestBroker[] = [];
  const clients: MqttClient[] = [];

  before(async () => {
    redis = await startRedisServer({ appendonly: true, appendfsync: 'always' });
    proxy = new FaultProxy({ port: redis.port });
    proxyPort = await proxy.listen();
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => {})));
    await Promise.all(brokers.map((b) => b.close().catch(() => {})));
    await proxy?.close();
    await redis?.close();
  });

  async function connect(port: number): Promise<MqttClient> {
    const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 5000 });
    clients.push(c);
    return c;
  }

  void test('blackholed link: CONNECT refused with 0x88, acknowledgements held, local QoS 0 served, recovery without loss', async () => {
    const cluster = { prefix: 'bh:', leaseMs: 10_000, heartbeatMs: 200 };
    const a = await startBroker({ cluster: { redis: `redis://127.0.0.1:${proxyPort}`, nodeName: 'a', ...cluster } });
    brokers.push(a);
    const b = await startBroker({ cluster: { redis: redis.url, nodeName: 'b', ...cluster } });
    brokers.push(b);
    const remote = await connect(b.port);
    const remoteGot = new Set<number>();
    remote.on('message', (_t, p) => remoteGot.add(Number(p.toString())));
    await remote.subscribeAsync('bh/#', { qos: 1 });
    const local = await connect(a.port);
    const localGot: string[] = [];
    local.on('message', (t) => localGot.push(t));
    await local.subscribeAsync('local/#', { qos: 0 });
    await pollUntil(() => a.broker.stats().cluster!.remoteRoutes === 1, { what: "B's route on A" });
    const pub = await connect(a.port);
    const acked: number[] = [];
    for (let i = 0; i < 50; i++) {
      await pub.publishAsync('bh/x', String(i), { qos: 1 });
      acked.push(i);
    }

    proxy.blackhole();
    await pollUntil(() => !a.broker.stats().cluster!.available, { what: 'A notices Redis is not answering', timeoutMs: 5000 });
    // A new client is refused while the cluster is unreachable.
    const refused = await mqtt
      .connectAsync(`mqtt://127.0.0.1:${a.port}`, { protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 5000 })
      .then((c) => {
        clients.push(c);
        return 0;
      })
      .catch((err: { code?: number }) => err.code ?? -1);
    assert.equal(refused, 0x88, 'CONNACK 0x88 server unavailable');
    // QoS 1 to a remote subscriber cannot be made durable: its PUBACK is held...
    let heldAcked = false;
    const held = pub.publishAsync('bh/x', '50', { qos: 1 }).then(() => {
      heldAcked = true;
    });
    // ...while local QoS 0 traffic goes on.
    await pub.publishAsync('local/1', 'q0', { qos: 0 });
    await pollUntil(() => localGot.length === 1, { what: 'local QoS 0 delivered during the outage' });
    assert.equal(heldAcked, false, 'no PUBACK for a forward Redis has not accepted');

    await proxy.heal();
    await pollUntil(() => a.broker.stats().cluster!.available, { what: 'A back', timeoutMs: 15_000 });
    await held;
    acked.push(50);
    await pollUntil(() => acked.every((i) => remoteGot.has(i)), { what: 'every acknowledged message delivered on B', timeoutMs: 15_000 });
    const late = await connect(a.port);
    assert.ok(late.connected, 'CONNECT accepted again');
    assert.ok(a.broker.stats().cluster!.redisDisconnects >= 1);
  });

  void test('a Redis that may evict keys is refused at start with a clear reason; one without appendonly is used with a warning', async () => {
    const evicting = await startRedisServer({ extraArgs: ['--maxmemory', '100mb', '--maxmemory-policy', 'allkeys-lru'] });
    try {
      await assert.rejects(
        startBroker({ cluster: { redis: evicting.url, nodeName: 'e', prefix: 'ev:' } }),
        /maxmemory-policy is "allkeys-lru": the cluster needs "noeviction"/,
      );
    } finally {
      await evicting.close();
    }
    const volatile = await startRedisServer({ appendonly: false });
    const warnings: string[] = [];
    const logger = {
      info() {},
      debug() {},
      error() {},
      warn(_o: object, msg?: string) {
        if (msg !== undefined) warnings.push(msg);
      },
    };
    try {
      const n = await startBroker({ cluster: { redis: volatile.url, nodeName: 'v', prefix: 'vo:' }, logger });
      brokers.push(n);
      assert.ok(
        warnings.some((w) => w.includes('appendonly off')),
        warnings.join('; '),
      );
      assert.equal(n.broker.stats().cluster!.available, true);
      await n.close();
    } finally {
      await volatile.close();
    }
  });
});
