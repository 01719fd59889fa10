/**
 * Cluster II, in one process: persistent sessions live in Redis and move between nodes. A client
 * reconnecting to another node takes its session over at once (fenced claim; the old connection
 * gets DISCONNECT 0x8E), wills follow [MQTT-3.1.3-9] exactly once, queued messages follow the
 * session, two CONNECTs with one client id on two nodes end with one live connection, a node cut
 * off from Redis fences itself, and a Redis that comes back empty resets every node visibly.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { openClient as open, startBroker, type OpenedClient as Connected, type TestBroker } from '../helpers/broker.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { redisServerGate, startRedisServer, type RedisServer } from '../helpers/redis-server.js';
import { pollUntil } from '../helpers/wait.js';

const LEASE = { leaseMs: 2000, heartbeatMs: 250 };

/** Resolves when the client's connection is closed; with the DISCONNECT reason code it got (undefined: none). */
function closed(c: MqttClient): Promise<number | undefined> {
  return new Promise((resolve) => {
    let code: number | undefined;
    c.on('disconnect', (p) => {
      code = p.reasonCode;
    });
    if (!c.connected && c.disconnected) resolve(code);
    c.once('close', () => resolve(code));
  });
}

void describe('cluster: sessions across nodes', redisServerGate(), () => {
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

  async function cluster(n: number, redisUrl?: (i: number) => string): Promise<TestBroker[]> {
    const prefix = `s${++prefixSeq}:`;
    const made: TestBroker[] = [];
    for (let i = 0; i < n; i++) {
      made.push(await startBroker({ cluster: { redis: redisUrl?.(i) ?? redis.url, nodeName: `n${i}`, prefix, ...LEASE } }));
    }
    nodes.push(...made);
    await pollUntil(() => made.every((m) => m.broker.stats().cluster!.nodes === n), { what: `${n} nodes see each other` });
    return made;
  }

  async function connect(port: number, opts: IClientOptions): Promise<Connected> {
    const r = await open(port, opts);
    clients.push(r.c);
    return r;
  }

  /** Waits until every node sees `filter` routed from the node that owns a subscriber (so a publish anywhere reaches it). */
  async function routed(all: TestBroker[], count: number): Promise<void> {
    await pollUntil(() => all.every((b) => b.broker.stats().cluster!.remoteRoutes >= count), { what: 'routes replicated' });
  }

  void test('takeover matrix across nodes: clean/persistent × 3.1.1/5.0 × no will/will/delayed will, both orderings', { timeout: 120_000 }, async () => {
    const [a, b, w] = await cluster(3);
    const witness = await connect(w!.port, { protocolVersion: 5, clientId: 'witness' });
    const wills: string[] = [];
    witness.c.on('message', (topic, payload) => wills.push(`${topic} ${payload.toString()}`));
    await witness.c.subscribeAsync('will/#', { qos: 1 });
    let n = 0;
    for (const persistent of [false, true])
      for (const version of [4, 5] as const)
        for (const will of ['none', 'now', 'delayed'] as const)
          for (const [first, second] of [
            [a!, b!],
            [b!, a!],
          ] as const) {
            if (version === 4 && will === 'delayed') continue; // 3.1.1 has no will delay
            const name = `c${++n}-${persistent ? 'p' : 'c'}-v${version}-${will}`;
            const base: IClientOptions = { protocolVersion: version, clientId: name, clean: !persistent };
            if (persistent && version === 5) base.properties = { sessionExpiryInterval: 600 };
            const firstOpts: IClientOptions = { ...base };
            if (will !== 'none') {
              firstOpts.will = { topic: `will/${name}`, payload: Buffer.from('gone'), qos: 1, retain: false };
              if (will === 'delayed') firstOpts.will.properties = { willDelayInterval: 30 };
            }
            const one = await connect(first.port, firstOpts);
            assert.equal(one.present, false, `${name}: a new session`);
            if (persistent) await one.c.subscribeAsync(`data/${name}`, { qos: 1 });
            const oneClosed = closed(one.c);
            const two = await connect(second.port, base);
            const code = await oneClosed;
            if (version === 5) assert.equal(code, 0x8e, `${name}: the old connection gets DISCONNECT 0x8E`);
            assert.equal(two.present, persistent, `${name}: Session Present`);
            // The will (if any) was decided by the node that took the session over, before its
            // CONNACK: a sentinel published from that node afterwards arrives after it.
            const sentinel = await connect(second.port, { protocolVersion: 5, clientId: `${name}-s` });
            await sentinel.c.publishAsync(`will/${name}/sentinel`, 'end', { qos: 1 });
            await pollUntil(() => wills.includes(`will/${name}/sentinel end`), { what: `${name}: sentinel` });
            const got = wills.filter((x) => x === `will/${name} gone`).length;
            // [MQTT-3.1.3-9]: published unless a new connection came before a will delay passed;
            // a session that ends (Clean Start, expiry 0) publishes it at once.
            const expected = will === 'none' ? 0 : will === 'now' ? 1 : persistent ? 0 : 1;
            assert.equal(got, expected, `${name}: will published ${expected} time(s), got ${got}`);
            if (persistent) {
              // The subscription came along: a message published on the third node reaches it.
              const recv = new Promise<string>((resolve) => two.c.once('message', (_t, p) => resolve(p.toString())));
              await routed([a!, b!, w!], 1);
              await pollUntil(() => w!.broker.stats().cluster!.remoteRoutes >= 1, { what: 'route' });
              await witness.c.publishAsync(`data/${name}`, 'hello', { qos: 1 });
              assert.equal(await recv, 'hello', `${name}: subscription resumed on the other node`);
            }
            await two.c.endAsync();
            await sentinel.c.endAsync();
          }
  });

  void test('an offline session queued on one node is resumed on another: every queued QoS 1 and 2 message once, in order', { timeout: 120_000 }, async () => {
    const [a, b] = await cluster(2);
    const opts: IClientOptions = { protocolVersion: 5, clientId: 'mover', clean: false, properties: { sessionExpiryInterval: 600 } };
    const sub = await connect(a!.port, opts);
    await sub.c.subscribeAsync('q/#', { qos: 2 });
    await sub.c.endAsync();
    const pub = await connect(b!.port, { protocolVersion: 5, clientId: 'q-pub' });
    await pollUntil(() => b!.broker.stats().cluster!.remoteRoutes >= 1, { what: 'route of the offline session' });
    for (let i = 0; i < 50; i++) await pub.c.publishAsync(`q/${i}`, String(i), { qos: (1 + (i % 2)) as 1 | 2 });
    const got: string[] = [];
    const moved = await new Promise<Connected>((resolve, reject) => {
      const c = mqtt.connect(`mqtt://127.0.0.1:${b!.port}`, { ...opts, reconnectPeriod: 0 });
      clients.push(c);
      c.on('message', (_t, p) => got.push(p.toString()));
      c.once('connect', (ack) => resolve({ c, present: ack.sessionPresent }));
      c.once('error', reject);
    });
    assert.equal(moved.present, true);
    await pollUntil(() => got.length >= 50, { what: '50 queued messages' });
    // MQTT.js hands a QoS 2 message to the application at PUBREL: the order holds per QoS.
    const nums = got.map(Number);
    assert.deepEqual(
      nums.filter((x) => x % 2 === 0),
      Array.from({ length: 25 }, (_, i) => 2 * i),
    );
    assert.deepEqual(
      nums.filter((x) => x % 2 === 1),
      Array.from({ length: 25 }, (_, i) => 2 * i + 1),
    );
    // Moved back: nothing again.
    await moved.c.endAsync();
    const back = await connect(a!.port, opts);
    assert.equal(back.present, true);
    let extra = 0;
    back.c.on('message', () => extra++);
    await pub.c.publishAsync('q/last', 'last', { qos: 1 });
    const last = new Promise<void>((resolve) => back.c.on('message', (_t, p) => p.toString() === 'last' && resolve()));
    await last;
    assert.equal(extra, 1, 'only the new message');
  });

  void test('the same client id on two nodes at the same moment, 200 times: exactly one live connection each time', { timeout: 120_000 }, async () => {
    const [a, b] = await cluster(2);
    const losers = { kicked: 0, refused: 0 };
    for (let i = 0; i < 200; i++) {
      const cid = `race-${i}`;
      const opts: IClientOptions = { protocolVersion: 5, clientId: cid, clean: i % 2 === 0, properties: { sessionExpiryInterval: i % 2 === 0 ? 0 : 60 } };
      const tries = [a!, b!].map((node) =>
        open(node.port, opts).then(
          (r) => r.c,
          () => undefined,
        ),
      );
      const made = (await Promise.all(tries)).filter((c): c is MqttClient => c !== undefined);
      clients.push(...made);
      // Settled: at most one stays connected (the other kicked with 0x8E, or refused at CONNECT).
      await pollUntil(() => made.filter((c) => c.connected).length <= 1, { what: `${cid}: one connection left` });
      const live = made.filter((c) => c.connected);
      assert.equal(live.length, 1, `${cid}: exactly one live connection (made ${made.length})`);
      if (made.length === 2) losers.kicked++;
      else losers.refused++;
      // The survivor is really served: a round trip through the broker.
      await live[0]!.subscribeAsync(`race/${i}`, { qos: 1 });
      for (const c of made) c.end(true);
    }
    assert.equal(losers.kicked + losers.refused, 200);
  });

  void test('a node cut off from Redis longer than its lease fences itself; its client resumes its session on another node', { timeout: 120_000 }, async () => {
    const proxy = new FaultProxy({ port: redis.port });
    const proxyPort = await proxy.listen();
    try {
      const [a, b] = await cluster(2, (i) => (i === 0 ? `redis://127.0.0.1:${proxyPort}` : redis.url));
      const opts: IClientOptions = { protocolVersion: 5, clientId: 'cut-off', clean: false, properties: { sessionExpiryInterval: 600 } };
      const sub = await connect(a!.port, opts);
      await sub.c.subscribeAsync('cut/#', { qos: 1 });
      const gone = closed(sub.c);
      proxy.blackhole();
      const code = await gone;
      assert.equal(code, 0x8b, 'DISCONNECT 0x8B (server shutting down): go elsewhere');
      assert.ok(a!.broker.stats().cluster!.selfFences >= 1);
      // After the lease the survivor adopts the session; the client resumes it there.
      await pollUntil(() => (b!.broker.stats().cluster!.sessions?.recoveries ?? 0) >= 1, { what: 'B recovered the fenced node', timeoutMs: 15_000 });
      const moved = await connect(b!.port, opts);
      assert.equal(moved.present, true, 'the session went along');
      const recv = new Promise<string>((resolve) => moved.c.once('message', (_t, p) => resolve(p.toString())));
      const pub = await connect(b!.port, { protocolVersion: 5, clientId: 'cut-pub' });
      await pub.c.publishAsync('cut/x', 'still here', { qos: 1 });
      assert.equal(await recv, 'still here');
      // Healed: A joins again as a new incarnation.
      await proxy.heal();
      await pollUntil(() => a!.broker.stats().cluster!.available && a!.broker.stats().cluster!.rejoins >= 1, { what: 'A rejoined', timeoutMs: 15_000 });
    } finally {
      // The nodes behind the proxy stop before it does.
      await Promise.all(nodes.splice(-2).map((n) => n.close().catch(() => {})));
      await proxy.close();
    }
  });

  void test(
    "a session claimed from a node before it is declared dead gets that node's unhandled inbox once, from the node that recovers it",
    { timeout: 120_000 },
    async () => {
      const proxy = new FaultProxy({ port: redis.port });
      const proxyPort = await proxy.listen();
      try {
        const [a, b] = await cluster(2, (i) => (i === 0 ? `redis://127.0.0.1:${proxyPort}` : redis.url));
        const opts: IClientOptions = { protocolVersion: 5, clientId: 'claimed-early', clean: false, properties: { sessionExpiryInterval: 600 } };
        const first = await connect(a!.port, opts);
        await first.c.subscribeAsync('early/#', { qos: 2 });
        await routed([b!], 1);
        // A no longer reads its inbox (nor anything else from Redis), but is alive until its lease ends.
        proxy.blackhole();
        const pub = await connect(b!.port, { protocolVersion: 5, clientId: 'early-pub' });
        for (let i = 0; i < 10; i++) await pub.c.publishAsync('early/x', `before-${i}`, { qos: 2 });
        // The client moves to B at once: B claims the session from A (kick in A's inbox) while A still counts as alive.
        const moved = await connect(b!.port, opts);
        assert.equal(moved.present, true);
        const got: string[] = [];
        moved.c.on('message', (_t, p) => got.push(p.toString()));
        // Forwarded to A as well (its routes stand until it is declared dead): B leaves these to A's inbox.
        for (let i = 0; i < 10; i++) await pub.c.publishAsync('early/x', `after-${i}`, { qos: 2 });
        // B declares A dead and replays its inbox to the session it claimed: each message once.
        await pollUntil(() => (b!.broker.stats().cluster!.sessions?.recoveries ?? 0) >= 1, { what: 'B recovered A', timeoutMs: 15_000 });
        const want = [...Array.from({ length: 10 }, (_, i) => `before-${i}`), ...Array.from({ length: 10 }, (_, i) => `after-${i}`)];
        await pollUntil(() => want.every((w) => got.includes(w)), { what: 'every message delivered', timeoutMs: 15_000 });
        // A probe published last comes after anything still on its way.
        const probe = new Promise<void>((resolve) => moved.c.on('message', (_t, p) => p.toString() === 'probe' && resolve()));
        await pub.c.publishAsync('early/x', 'probe', { qos: 2 });
        await probe;
        assert.deepEqual(
          got.filter((g) => g !== 'probe').sort(),
          [...want].sort(),
          'each message of the dead inbox once (QoS 2), none handed over a second time',
        );
      } finally {
        await proxy.heal();
        await Promise.all(nodes.splice(-2).map((n) => n.close().catch(() => {})));
        await proxy.close();
      }
    },
  );

  void test(
    "a node that starts while a dead node still waits for recovery routes to it: what it publishes then is replayed to that node's sessions",
    { timeout: 120_000 },
    async () => {
      const prefix = `s${++prefixSeq}:`;
      const options = (i: number) => ({ cluster: { redis: redis.url, nodeName: `o${i}`, prefix, ...LEASE } });
      const a = await startBroker(options(0));
      nodes.push(a);
      const opts: IClientOptions = { protocolVersion: 5, clientId: 'orphaned', clean: false, properties: { sessionExpiryInterval: 600 } };
      const first = await connect(a.port, opts);
      await first.c.subscribeAsync('orphan/#', { qos: 1 });
      await first.c.endAsync();
      // A leaves while it owns a persistent session: its routes and inbox stay for a survivor.
      await a.close();
      const r = redis.client();
      assert.equal(await r.sismember(`${prefix}orphans`, '1'), 1, 'A waits for recovery');
      r.disconnect();
      // B starts now: it must route to A's inbox until it has switched A's routes to itself (a
      // node waits a lease after connecting before it judges or recovers others).
      const b = await startBroker(options(1));
      nodes.push(b);
      assert.ok(b.broker.stats().cluster!.remoteRoutes >= 1, "B has A's routes");
      const pub = await connect(b.port, { protocolVersion: 5, clientId: 'orphan-pub' });
      await pub.c.publishAsync('orphan/x', 'while orphaned', { qos: 1 });
      await pollUntil(() => (b.broker.stats().cluster!.sessions?.recoveries ?? 0) >= 1, { what: 'B recovered A', timeoutMs: 15_000 });
      // Listening before CONNECT: the queued message may come in the same read as the CONNACK.
      const got: string[] = [];
      const { c: back, present } = await open(b.port, opts, (c) => c.on('message', (_t, p) => got.push(p.toString())));
      clients.push(back);
      assert.equal(present, true);
      const probe = new Promise<void>((resolve) => back.on('message', (_t, p) => p.toString() === 'probe' && resolve()));
      await pub.c.publishAsync('orphan/x', 'probe', { qos: 1 });
      await probe;
      assert.deepEqual(got, ['while orphaned', 'probe']);
    },
  );

  void test(
    'Redis that comes back empty: every node resets visibly (clients disconnected, Session Present 0), no crash loop',
    { timeout: 120_000 },
    async () => {
      const empty = await startRedisServer({ appendonly: false });
      try {
        const prefix = `e${++prefixSeq}:`;
        const made: TestBroker[] = [];
        for (let i = 0; i < 2; i++) made.push(await startBroker({ cluster: { redis: empty.url, nodeName: `e${i}`, prefix, ...LEASE } }));
        nodes.push(...made);
        const opts: IClientOptions = { protocolVersion: 5, clientId: 'amnesia', clean: false, properties: { sessionExpiryInterval: 600 } };
        const sub = await connect(made[0]!.port, opts);
        await sub.c.subscribeAsync('e/#', { qos: 1 });
        const gone = closed(sub.c);
        await empty.restart();
        await gone;
        await pollUntil(() => made.every((m) => m.broker.stats().cluster!.available && m.broker.stats().cluster!.selfFences === 1), {
          what: 'both nodes reset once and serve again',
          timeoutMs: 15_000,
        });
        // A client reconnecting (as clients do: refused while the node rejoins, then accepted).
        const again = await pollUntil(() => open(made[1]!.port, opts), { what: 'reconnected', timeoutMs: 10_000, intervalMs: 100 });
        clients.push(again.c);
        assert.equal(again.present, false, 'the session is gone, and the client is told');
        assert.ok(
          made.every((m) => m.broker.stats().cluster!.selfFences === 1),
          'no reset loop',
        );
      } finally {
        await Promise.all(nodes.splice(-2).map((n) => n.close().catch(() => {})));
        await empty.close();
      }
    },
  );
});
