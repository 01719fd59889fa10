/**
 * Cluster I, in one process: three Courier brokers as nodes of one cluster on a real
 * redis-server, real MQTT.js clients on different nodes. Cross-node delivery with wildcards and
 * overlapping subscriptions at QoS 0/1/2, subscription identifiers, No Local and Retain As
 * Published re-matched on the receiving node, retained read-your-writes, shared groups with one
 * delivery per group cluster-wide, routes of a node that leaves.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import mqtt, { type MqttClient } from 'mqtt';
import type { Broker } from '../../src/index.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { redisServerGate, startRedisServer, type RedisServer } from '../helpers/redis-server.js';
import { pollUntil } from '../helpers/wait.js';

// Three nodes share this test process: on a loaded machine its event loop can stall for seconds,
// and a short lease would make the nodes fence themselves (tested elsewhere, not here).
const LEASE = { leaseMs: 10_000, heartbeatMs: 1000 };

async function node(redis: RedisServer, name: string, prefix: string): Promise<TestBroker> {
  return startBroker({ cluster: { redis: redis.url, nodeName: name, prefix, ...LEASE } });
}

async function client(port: number, opts: mqtt.IClientOptions = {}): Promise<MqttClient> {
  return mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { protocolVersion: 5, reconnectPeriod: 0, ...opts });
}

/** Waits until every node in `others` holds `routes` route entries of the other nodes. */
async function routesSettled(nodes: Broker[], expected: (b: Broker) => number): Promise<void> {
  await pollUntil(() => nodes.every((b) => b.stats().cluster!.remoteRoutes === expected(b)), { what: 'routes replicated', timeoutMs: 10_000 });
}

void describe('cluster: routing across nodes', redisServerGate(), () => {
  let redis: RedisServer;
  const nodes: TestBroker[] = [];
  const clients: MqttClient[] = [];
  let prefixSeq = 0;

  void before(async () => {
    redis = await startRedisServer({ appendonly: true, appendfsync: 'always' });
  });
  void after(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => {})));
    await Promise.all(nodes.map((n) => n.close().catch(() => {})));
    await redis?.close();
  });

  async function cluster(n: number): Promise<TestBroker[]> {
    const prefix = `t${++prefixSeq}:`;
    const made: TestBroker[] = [];
    for (let i = 0; i < n; i++) made.push(await node(redis, `n${i}`, prefix));
    nodes.push(...made);
    await pollUntil(() => made.every((m) => m.broker.stats().cluster!.nodes === n), { what: `${n} nodes see each other` });
    return made;
  }

  async function connect(port: number, opts: mqtt.IClientOptions = {}): Promise<MqttClient> {
    const c = await client(port, opts);
    clients.push(c);
    return c;
  }

  void test('300 clients, 40 filters, 3 nodes: every match delivered once, in per-publisher order, at QoS 0/1/2', { timeout: 180_000 }, async () => {
    const [a, b, c] = await cluster(3);
    const ports = [a!.port, b!.port, c!.port];
    const filters: string[] = [];
    for (let i = 0; i < 40; i++) {
      const d = i % 10;
      filters.push(i < 10 ? `m/${d}/x` : i < 20 ? `m/${d}/+` : i < 30 ? `m/+/x` : `m/#`);
    }
    // 240 subscribers on the three nodes, each with one filter, some overlapping (QoS varies).
    const subs: Array<{ c: MqttClient; filter: string; qos: 0 | 1 | 2; got: string[] }> = [];
    for (let i = 0; i < 240; i++) {
      const cl = await connect(ports[i % 3]!);
      const filter = filters[i % 40]!;
      const qos = (i % 3) as 0 | 1 | 2;
      const rec = { c: cl, filter, qos, got: [] as string[] };
      cl.on('message', (topic, payload) => rec.got.push(`${topic} ${payload.toString()}`));
      await cl.subscribeAsync(filter, { qos });
      subs.push(rec);
    }
    // Every node holds the other two nodes' distinct filters.
    const distinct = (n: number): number => new Set(subs.filter((_, i) => i % 3 === n).map((s) => s.filter)).size;
    await routesSettled([a!.broker, b!.broker, c!.broker], (self) => {
      const me = [a!.broker, b!.broker, c!.broker].indexOf(self);
      return [0, 1, 2].filter((n) => n !== me).reduce((x, n) => x + distinct(n), 0);
    });
    // 60 publishers, 10 messages each, on all three nodes, topics m/<d>/x.
    const sent: Array<{ topic: string; body: string; qos: 0 | 1 | 2 }> = [];
    const pubs: MqttClient[] = [];
    for (let p = 0; p < 60; p++) pubs.push(await connect(ports[(p + 1) % 3]!));
    await Promise.all(
      pubs.map(async (pc, p) => {
        for (let s = 0; s < 10; s++) {
          const topic = `m/${(p + s) % 10}/x`;
          const qos = ((p + s) % 3) as 0 | 1 | 2;
          const body = `${p}:${s}`;
          sent.push({ topic, body, qos });
          await pc.publishAsync(topic, body, { qos });
        }
      }),
    );
    const matches = (filter: string, topic: string): boolean => {
      const f = filter.split('/');
      const t = topic.split('/');
      for (let i = 0; i < f.length; i++) {
        if (f[i] === '#') return true;
        if (f[i] !== '+' && f[i] !== t[i]) return false;
      }
      return f.length === t.length;
    };
    const expected = subs.map((s) => sent.filter((m) => matches(s.filter, m.topic)).map((m) => `${m.topic} ${m.body}`));
    // QoS 0 is best effort; on loopback nothing is lost, and QoS 1/2 must all arrive: wait for all.
    await pollUntil(() => subs.every((s, i) => s.got.length >= expected[i]!.length), { what: 'every match delivered', timeoutMs: 20_000 });
    for (const [i, s] of subs.entries()) {
      assert.equal(s.got.length, expected[i]!.length, `subscriber ${i} (${s.filter}): no duplicates`);
      assert.deepEqual([...s.got].sort(), [...expected[i]!].sort(), `subscriber ${i} (${s.filter}) got every match`);
      // Per-publisher order per delivered QoS (MQTT.js hands a QoS 2 message to the application
      // only at PUBREL, a round trip later than the QoS 0/1 messages sent after it).
      const last = new Map<string, number>();
      for (const g of s.got) {
        const [p, seq] = g.split(' ')[1]!.split(':').map(Number) as [number, number];
        const delivered = Math.min(s.qos, (p + seq) % 3);
        const key = `${p}/${delivered}`;
        assert.ok((last.get(key) ?? -1) < seq, `subscriber ${i} (${s.filter}, QoS ${s.qos}): publisher ${p} in order at QoS ${delivered}: ${s.got.join(', ')}`);
        last.set(key, seq);
      }
    }
    const out = [a!, b!, c!].reduce((x, n) => x + n.broker.stats().cluster!.forwardedOut, 0);
    const batches = [a!, b!, c!].reduce((x, n) => x + n.broker.stats().cluster!.forwardBatches, 0);
    assert.ok(out > 0 && batches > 0 && batches <= out, `forwards are batched (${out} messages in ${batches} batches)`);
  });

  void test('subscription identifiers, No Local and Retain As Published apply on the receiving node', { timeout: 180_000 }, async () => {
    const [a, b] = await cluster(2);
    const sub = await connect(b!.port, { clientId: 'opts-sub' });
    const got: Array<{ topic: string; retain: boolean; ids: number[] | undefined }> = [];
    sub.on('message', (topic, _p, packet) => {
      const ids = packet.properties?.subscriptionIdentifier;
      got.push({ topic, retain: packet.retain, ids: ids === undefined ? undefined : ([] as number[]).concat(ids).sort() });
    });
    await sub.subscribeAsync('o/+', { qos: 1, properties: { subscriptionIdentifier: 7 } });
    await sub.subscribeAsync('o/#', { qos: 1, rap: true, properties: { subscriptionIdentifier: 9 } });
    // No Local: a client subscribed on A does not get its own message back, forwarded or not.
    const self = await connect(a!.port, { clientId: 'opts-self' });
    const selfGot: string[] = [];
    self.on('message', (t) => selfGot.push(t));
    await self.subscribeAsync('o/#', { qos: 1, nl: true });
    await routesSettled([a!.broker, b!.broker], (x) => (x === a!.broker ? 2 : 1));
    await self.publishAsync('o/1', 'x', { qos: 1, retain: true });
    await pollUntil(() => got.length === 1, { what: 'delivery on B' });
    assert.deepEqual(got[0], { topic: 'o/1', retain: true, ids: [7, 9] }, 'one copy with both identifiers, RETAIN kept by rap on o/#');
    // A round trip through A proves the publisher's own copy would have arrived by now.
    await self.unsubscribeAsync('nothing/here');
    assert.deepEqual(selfGot, [], '[MQTT-3.8.3-3] No Local holds for the publisher');
  });

  void test('retained read-your-writes: SUBSCRIBE on B right after PUBACK on A always gets it (10,000 trials)', { timeout: 180_000 }, async () => {
    const [a, b] = await cluster(2);
    // Ten publisher/subscriber pairs run side by side (1,000 trials each by default). A standing
    // subscriber keeps B's interest in each pair's filter, so a trial's SUBSCRIBE changes no route
    // and nothing but the read-your-writes barrier makes B wait for the retained log.
    const PAIRS = 10;
    const TRIALS = Number(process.env.COURIER_RYW_TRIALS ?? 10_000);
    const standing = await connect(b!.port);
    for (let p = 0; p < PAIRS; p++) await standing.subscribeAsync(`ryw/${p}/#`, { qos: 0 });
    await routesSettled([a!.broker], () => PAIRS);
    let misses = 0;
    await Promise.all(
      Array.from({ length: PAIRS }, async (_, p) => {
        const pub = await connect(a!.port);
        const sub = await connect(b!.port);
        const filter = `ryw/${p}/#`;
        let received = new Set<string>();
        sub.on('message', (topic, payload, packet) => {
          if (packet.retain && payload.length > 0) received.add(topic);
        });
        for (let i = p; i < TRIALS; i += PAIRS) {
          const topic = `ryw/${p}/${i}`;
          await pub.publishAsync(topic, `v${i}`, { qos: 1, retain: true });
          await sub.subscribeAsync(filter, { qos: 0 });
          // Retained messages leave before any later answer on the same connection: by UNSUBACK it is here or missed.
          await sub.unsubscribeAsync(filter);
          if (!received.has(topic)) misses++;
          if (received.size > 1000) received = new Set();
          await pub.publishAsync(topic, '', { qos: 1, retain: true });
        }
      }),
    );
    assert.equal(misses, 0, `${misses} of ${TRIALS} immediate subscriptions missed the retained message`);
  });

  void test('shared group of 6 members on 3 nodes: each message to exactly one member, all nodes share', { timeout: 180_000 }, async () => {
    const [a, b, c] = await cluster(3);
    const ports = [a!.port, b!.port, c!.port];
    const got = new Map<string, number[]>();
    for (let i = 0; i < 6; i++) {
      const m = await connect(ports[i % 3]!);
      const name = `m${i}`;
      got.set(name, []);
      m.on('message', (_t, p) => got.get(name)!.push(Number(p.toString())));
      await m.subscribeAsync('$share/g/jobs/+', { qos: 1 });
    }
    await routesSettled([a!.broker, b!.broker, c!.broker], () => 2);
    const pub = await connect(a!.port);
    const N = 600;
    for (let i = 0; i < N; i++) await pub.publishAsync(`jobs/${i % 7}`, String(i), { qos: 1 });
    await pollUntil(() => [...got.values()].reduce((x, l) => x + l.length, 0) >= N, { what: 'all jobs delivered' });
    const all = [...got.values()].flat().sort((x, y) => x - y);
    assert.deepEqual(
      all,
      Array.from({ length: N }, (_, i) => i),
      'each message exactly once across the group',
    );
    for (const [name, list] of got) assert.ok(list.length > 0, `member ${name} got a share`);
    const perNode = [0, 1, 2].map((n) => [...got.entries()].filter(([name]) => Number(name.slice(1)) % 3 === n).reduce((x, [, l]) => x + l.length, 0));
    for (const [n, count] of perNode.entries()) assert.ok(count >= N / 6, `node ${n} served ${count} of ${N}`);
  });

  void test('a node that leaves takes its routes with it; the others keep working', { timeout: 180_000 }, async () => {
    const [a, b, c] = await cluster(3);
    const onB = await connect(b!.port);
    await onB.subscribeAsync('leave/#', { qos: 1 });
    const onC = await connect(c!.port);
    const gotC: string[] = [];
    onC.on('message', (t) => gotC.push(t));
    await onC.subscribeAsync('leave/#', { qos: 1 });
    await routesSettled([a!.broker], () => 2);
    await onB.endAsync(true);
    await b!.close();
    await pollUntil(() => a!.broker.stats().cluster!.remoteRoutes === 1 && a!.broker.stats().cluster!.nodes === 2, { what: "B's routes gone from A" });
    const pub = await connect(a!.port);
    await pub.publishAsync('leave/1', 'x', { qos: 1 });
    await pollUntil(() => gotC.length === 1, { what: 'C still served' });
    assert.equal(a!.broker.stats().cluster!.forwardsToGoneNodes, 0);
  });
});
