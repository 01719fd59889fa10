/**
 * A node's connection to Redis breaks after Redis answered part of what the node had sent: the
 * node's calls that never reached Redis are sent again after the reconnect and applied once, in
 * order. Before (an ioredis pipeline per turn), ioredis failed the rest of a partly answered
 * pipeline instead of sending it again (src/cluster/calls.ts): a QoS 0 message or a will in it
 * was lost. A FaultProxy between node A and Redis holds back A's requests, lets Redis have them
 * up to a RETAIN call whose FORWARD call of the same turn follows, passes Redis's answers on, and
 * then ends the connection: A has an answer for the RETAIN, Redis never saw the FORWARD.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import mqtt, { type MqttClient } from 'mqtt';
import type { Redis } from 'ioredis';
import { keys } from '../../src/cluster/scripts.js';
import { decodeRetained } from '../../src/cluster/wire.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { redisServerGate, startRedisServer, type RedisServer } from '../helpers/redis-server.js';
import { requestArgs, respFrames } from '../helpers/resp.js';
import { pollUntil } from '../helpers/wait.js';

const PREFIX = 'pa:';
const k = keys(PREFIX);
/** A's connection name: its main Redis connection (the tail's are `courier:pa-a:tail`/`:logs`). */
const NODE = 'pa-a';

void describe('cluster: a connection to Redis broken after a partial answer', redisServerGate(), () => {
  let redis: RedisServer;
  let admin: Redis;
  let proxy: FaultProxy;
  let a: TestBroker;
  let b: TestBroker;
  const clients: MqttClient[] = [];
  /** What B's subscriber got: `topic payload` (r = retained flag). */
  const got: string[] = [];

  before(async () => {
    redis = await startRedisServer();
    admin = redis.client();
    proxy = new FaultProxy({ port: redis.port });
    const cluster = { prefix: PREFIX, leaseMs: 10_000, heartbeatMs: 1000 };
    a = await startBroker({ cluster: { redis: `redis://127.0.0.1:${await proxy.listen()}`, nodeName: NODE, ...cluster } });
    b = await startBroker({ cluster: { redis: redis.url, nodeName: 'pa-b', ...cluster } });
    const sub = await connect(b.port);
    sub.on('message', (t, p, packet) => got.push(`${t} ${p.toString()}${packet.retain ? ' r' : ''}`));
    await sub.subscribeAsync(['p/#', 'w/#'], { qos: 0 });
    await pollUntil(() => a.broker.stats().cluster!.remoteRoutes === 2, { what: "B's routes on A" });
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => {})));
    await Promise.all([a, b].map((n) => n?.close().catch(() => {})));
    await proxy?.close();
    await redis?.close();
  });

  async function connect(port: number, opts: mqtt.IClientOptions = {}): Promise<MqttClient> {
    const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 5000, ...opts });
    clients.push(c);
    return c;
  }

  /**
   * Holds A's requests, runs `trigger`, lets Redis have them up to the first RETAIN call that a
   * FORWARD call follows, waits until Redis answered all of them, and ends A's connection.
   */
  async function answeredInPart(trigger: () => void): Promise<void> {
    assert.equal(
      proxy.holdRequests((head) => head.includes(`\r\ncourier:${NODE}\r\n`)),
      1,
      "A's main connection",
    );
    trigger();
    const isCall = (args: string[], key: string): boolean => args[0]?.toLowerCase().startsWith('eval') === true && args.includes(key);
    const cut = await pollUntil(
      () => {
        const frames = respFrames(proxy.held().requests);
        for (let i = 0; i + 1 < frames.length; i++)
          if (isCall(requestArgs(frames[i]!), k.retLog) && isCall(requestArgs(frames[i + 1]!), k.inboxPrefix)) return { calls: i + 1, end: frames[i]!.end };
        return false;
      },
      { what: 'a RETAIN call and its FORWARD call held' },
    );
    proxy.releaseRequests(cut.end);
    await pollUntil(() => respFrames(proxy.held().replies).length === cut.calls, { what: 'Redis answered what it got' });
    assert.equal(proxy.endHeld(), 1);
  }

  /** Waits for `marker` (published on A after the round, so behind it) and returns what B's subscriber got. */
  async function settled(pub: MqttClient, marker: string): Promise<string[]> {
    await pub.publishAsync('p/end', marker, { qos: 0 });
    await pollUntil(() => got.includes(`p/end ${marker}`), { what: `${marker} on B`, timeoutMs: 15_000 });
    return got.splice(0);
  }

  const retainedLog = async (topic: string): Promise<number> =>
    (await admin.xrange(k.retLog, '-', '+')).filter(([, f]) => f[f.indexOf('t') + 1] === topic).length;

  void test('QoS 0 messages, a retained message and a route change of the turn: each applied once after the reconnect', async () => {
    const pub = await connect(a.port);
    await pub.subscribeAsync('n/#', { qos: 0 });
    const nid = a.broker.stats().cluster!.nodeId;
    await pollUntil(async () => (await admin.sismember(k.routes(nid), 'n/#')) === 1, { what: "A's route in Redis" });
    const version = Number(await admin.get(k.retVer));
    await answeredInPart(() => {
      // One write: the broker reads these in one turn (the route change, the retained message's
      // RETAIN and one FORWARD for all three messages), or in a few. (An UNSUBSCRIBE: a SUBSCRIBE
      // would wait for the retained barrier, a read that the proxy holds back.)
      pub.stream.cork();
      void pub.unsubscribeAsync('n/#');
      pub.publish('p/r', 'kept', { qos: 0, retain: true });
      pub.publish('p/0', 'zero-1', { qos: 0 });
      pub.publish('p/0', 'zero-2', { qos: 0 });
      pub.stream.uncork();
    });
    // Delivered once each, in order, with the marker behind them.
    assert.deepEqual(await settled(pub, 'one'), ['p/r kept', 'p/0 zero-1', 'p/0 zero-2', 'p/end one']);
    assert.ok(a.broker.stats().cluster!.redisDisconnects >= 1, 'the connection did break');
    assert.equal(Number(await admin.get(k.retVer)), version + 1, 'one retained change');
    assert.equal(await retainedLog('p/r'), 1);
    assert.equal(decodeRetained((await admin.hgetBuffer(k.ret, 'p/r'))!).payload.toString(), 'kept');
    assert.deepEqual(await admin.smembers(k.routes(nid)), []);
    const routeLog = (await admin.xrange(k.rlog, '-', '+')).filter(([, f]) => f.includes('n/#')).map(([, f]) => f[f.indexOf('n/#') - 1]);
    assert.deepEqual(routeLog, ['+', '-'], 'the route removed once');
    // B knows the retained message and the route.
    const late = await connect(b.port);
    const lateGot: string[] = [];
    late.on('message', (t, p) => lateGot.push(`${t} ${p.toString()}`));
    await late.subscribeAsync('p/r', { qos: 0 });
    await pollUntil(() => lateGot.length > 0, { what: 'the retained message on B' });
    assert.deepEqual(lateGot, ['p/r kept']);
    await pollUntil(() => b.broker.stats().cluster!.remoteRoutes === 0, { what: "A's route gone on B" });
  });

  void test('a will (retained) published by the broker: delivered once after the reconnect', async () => {
    const pub = await connect(a.port);
    const gone = await connect(a.port, { will: { topic: 'w/gone', payload: Buffer.from('bye'), qos: 0, retain: true } });
    const version = Number(await admin.get(k.retVer));
    await answeredInPart(() => gone.stream.destroy());
    assert.deepEqual(await settled(pub, 'two'), ['w/gone bye', 'p/end two']);
    assert.equal(Number(await admin.get(k.retVer)), version + 1, 'one retained change');
    assert.equal(await retainedLog('w/gone'), 1);
    assert.equal(decodeRetained((await admin.hgetBuffer(k.ret, 'w/gone'))!).payload.toString(), 'bye');
  });
});
