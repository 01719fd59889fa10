/**
 * The node's script calls (outbox.ts: forwards, route changes, retained changes, barriers and cuts)
 * is applied once even when the node's Redis client sends it again after a reconnect. ioredis
 * resends every command whose answer it had not read when the connection broke; Redis may have
 * applied it already. Before the guard (scripts.ts) a QoS 2 forward was then written to the
 * destination's inbox twice (delivered twice; QoS 2 is delivered onward once: [MQTT-4.3.3-2]), a retained
 * message of this node could overwrite a later one of another node, and the route log got its
 * changes twice. Needs a real redis-server; the broken connection is a FaultProxy cut while
 * Redis's answer is still held by the proxy.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { newRedis } from '../../../src/cluster/ioredis.js';
import { newClusterCounters as counters } from '../../../src/cluster/options.js';
import { Outbox, type OutboxOwner } from '../../../src/cluster/outbox.js';
import { RouteTable } from '../../../src/cluster/routes.js';
import { defineScripts, keys, ROUTE_LOG_MAXLEN, type Keys } from '../../../src/cluster/scripts.js';
import { decodeRetained } from '../../../src/cluster/wire.js';
import { createMessage } from '../../../src/core/message.js';
import type { Logger } from '../../../src/options.js';
import { FaultProxy } from '../../helpers/fault-proxy.js';
import { redisServerGate, startRedisServer, type RedisServer } from '../../helpers/redis-server.js';
import { pollUntil } from '../../helpers/wait.js';

const quiet = { warn() {}, error() {}, info() {}, debug() {} } as unknown as Logger;
const owner = (nid: number): OutboxOwner & { fences: string[] } => {
  const fences: string[] = [];
  return { nid, joined: true, routes: new RouteTable(), counters: counters(), lagging: new Set(), fenced: (why) => void fences.push(why), fences };
};
type Script = (...args: Array<string | Buffer | number>) => Promise<unknown>;
const NAMES = ['courierForward', 'courierRoutes', 'courierRetain', 'courierMarks'] as const;
type Captured = Record<(typeof NAMES)[number], Array<Array<string | Buffer | number>>>;

/** Records the script calls the outbox sends (to send them again by hand). */
function capture(client: Redis): Captured {
  const calls: Captured = { courierForward: [], courierRoutes: [], courierRetain: [], courierMarks: [] };
  const scripted = client as unknown as Record<string, Script>;
  for (const name of NAMES) {
    const fn = scripted[name]!.bind(client);
    scripted[name] = (...args) => {
      calls[name].push(args);
      return fn(...args);
    };
  }
  return calls;
}

void describe('cluster script calls: a call sent again is applied once', redisServerGate(), () => {
  let redis: RedisServer;
  let admin: Redis;
  const clients: Redis[] = [];
  const proxies: FaultProxy[] = [];
  let prefixes = 0;

  const client = (port: number): Redis => {
    const c = newRedis(`redis://127.0.0.1:${port}`, { maxRetriesPerRequest: null, retryStrategy: () => 20 });
    c.on('error', () => {}); // the cut is expected
    defineScripts(c);
    clients.push(c);
    return c;
  };
  const setup = async (port = redis.port): Promise<{ k: Keys; me: ReturnType<typeof owner>; c: Redis; out: Outbox }> => {
    const k = keys(`pc${++prefixes}:`);
    const me = owner(1);
    const c = client(port);
    // Node 1 holds a lease (ROUTES needs one); node 2 has an inbox and interest in q/#.
    await admin.set(k.node(1), '{}');
    await admin.xadd(k.inbox(2), '*', 'init', '1');
    me.routes.add(2, 'q/#');
    return { k, me, c, out: new Outbox(me, c, k, quiet) };
  };

  before(async () => {
    redis = await startRedisServer();
    admin = redis.client();
  });
  after(async () => {
    for (const c of clients) c.disconnect();
    await Promise.all(proxies.map((p) => p.close()));
    await redis?.close();
  });

  void it("a turn's calls Redis applied whose answers were lost in a broken connection: resent by the client, applied once (forward, route change, retained change, barrier)", async () => {
    const proxy = new FaultProxy({ port: redis.port });
    proxies.push(proxy);
    const { k, me, c, out } = await setup(await proxy.listen());
    await c.ping(); // connected (through the proxy) before the fault
    // Another node (5) writes the same retained topic while this node is cut off.
    const other = new Outbox(owner(5), client(redis.port), k, quiet);

    proxy.latency(3000); // the pipeline reaches Redis 3 s late, and Redis's answer would too
    out.route('f/#', true);
    out.retain(createMessage('r/t', Buffer.from('mine'), 1, true, undefined, 'a', Date.now()));
    out.forward(createMessage('q/1', Buffer.from('exactly once'), 2, false, undefined, '', Date.now()), undefined);
    out.mark(2, 'b', 'moved', 7);
    let settled = false;
    const point = out.commitPoint(out.writes)!.then(() => {
      settled = true;
    });
    // Applied by Redis (seen on another connection) while its answer is still in the proxy.
    await pollUntil(async () => (await admin.xlen(k.inbox(2))) === 3, { what: 'the calls applied', timeoutMs: 10_000, intervalMs: 10 });
    assert.equal(settled, false, 'the answer has not reached the client');
    proxy.refuse();
    proxy.latency(0);
    proxy.cut();
    await pollUntil(() => c.status !== 'ready', { what: 'the client sees the broken connection' });
    // Meanwhile another node's retained message for the same topic.
    other.retain(createMessage('r/t', Buffer.from('theirs'), 1, true, undefined, 'b', Date.now()));
    await other.commitPoint(other.writes);
    await proxy.unrefuse();
    await point; // answered on the new connection: the client sent the calls again

    assert.equal(await admin.xlen(k.inbox(2)), 3, 'one forward entry and one barrier besides the init entry');
    const entries = await admin.xrange(k.inbox(2), '-', '+');
    assert.deepEqual(
      entries.slice(1).map(([, f]) => f[0]),
      ['f', 'b'],
    );
    assert.equal(await admin.xlen(k.rlog), 1, 'one route log entry');
    assert.deepEqual(await admin.smembers(k.routes(1)), ['f/#']);
    assert.equal(await admin.get(k.retVer), '2', "two retained changes: this node's once, then the other's");
    const kept = await admin.hgetBuffer(k.ret, 'r/t');
    assert.equal(decodeRetained(kept!).payload.toString(), 'theirs', 'the later retained message stays');
    assert.equal(me.counters.forwardsToGoneNodes, 0);
    assert.deepEqual(me.fences, []);
    assert.ok((await admin.pttl(k.pipe(1))) > 0, 'the guard expires by itself');
  });

  void it('each script: the same call sent again changes nothing and answers as the first time; a new call still goes through', async () => {
    const { k, me, c, out } = await setup();
    // Node 3 is gone (no inbox, nobody adopted it): its forward and its barrier answer 0.
    me.routes.add(3, 'q/#');
    const calls = capture(c);
    const scripts = c as unknown as Record<(typeof NAMES)[number], Script>;
    let gone = 0;
    out.route('g/#', true);
    out.retain(createMessage('r/u', Buffer.from('v1'), 1, true, undefined, 'a', Date.now()));
    out.forward(createMessage('q/2', Buffer.from('x'), 2, false, undefined, '', Date.now()), undefined);
    out.mark(3, 'b', 'moved', 1, undefined, () => gone++);
    out.mark(2, 'c', 'moved', 2);
    await out.commitPoint(out.writes);
    assert.equal(gone, 1);
    assert.equal(me.counters.forwardsToGoneNodes, 1);
    for (const name of NAMES) assert.equal(calls[name].length, 1, name);
    const state = async (): Promise<unknown[]> => [
      await admin.xlen(k.inbox(2)),
      await admin.exists(k.inbox(3)),
      await admin.xlen(k.rlog),
      await admin.get(k.retVer),
      await admin.smembers(k.routes(1)),
    ];
    const first = await state();
    assert.deepEqual(first, [3, 0, 1, '1', ['g/#']]);

    // Node 3's inbox exists now: the repeated calls still write nothing there, and answer as then.
    await admin.xadd(k.inbox(3), '*', 'init', '1');
    assert.deepEqual(await scripts.courierForward(...calls.courierForward[0]!), [1, 0], 'the first answer (node 3 was gone)');
    assert.deepEqual(await scripts.courierMarks(...calls.courierMarks[0]!), [0, 1]);
    assert.equal(await scripts.courierRoutes(...calls.courierRoutes[0]!), '', 'a route change applied before: nothing written');
    assert.equal(await scripts.courierRetain(...calls.courierRetain[0]!), 0);
    assert.deepEqual(await state(), [3, 1, 1, '1', ['g/#']], 'nothing changed');
    assert.equal(await admin.xlen(k.inbox(3)), 1);

    // The guard is per call: the next forward is written (to both nodes now).
    out.forward(createMessage('q/3', Buffer.from('y'), 2, false, undefined, '', Date.now()), undefined);
    await out.commitPoint(out.writes);
    assert.equal(await admin.xlen(k.inbox(2)), 4);
    assert.equal(await admin.xlen(k.inbox(3)), 2);
    // A whole route set announced (join) counts too.
    await out.announce(['g/#', 'h/#']);
    assert.deepEqual((await admin.smembers(k.routes(1))).sort(), ['g/#', 'h/#']);
    assert.equal(await admin.xlen(k.rlog), 2);
  });

  void it("the guard goes with its incarnation: declared dead, the key is deleted and the incarnation's calls sent again are refused without bringing it back", async () => {
    const { k, c, out } = await setup();
    const calls = capture(c);
    out.forward(createMessage('q/4', Buffer.from('z'), 2, false, undefined, '', Date.now()), undefined);
    await out.commitPoint(out.writes);
    assert.ok((await admin.pttl(k.pipe(1))) > 0, 'a TTL while it lives');
    const scripts = c as unknown as Record<'courierDead' | 'courierForward', Script>;
    const dead = await scripts.courierDead(
      k.node(1),
      k.nodes,
      k.dead(1),
      k.routes(1),
      k.rlog,
      k.inbox(1),
      k.stats(1),
      k.orphans,
      k.own(1),
      k.pipe(1),
      1,
      1000,
      '1',
      ROUTE_LOG_MAXLEN,
    );
    assert.equal(dead, 1);
    assert.equal(await admin.exists(k.pipe(1)), 0);
    await assert.rejects(scripts.courierForward(...calls.courierForward[0]!), /FENCED/);
    assert.equal(await admin.exists(k.pipe(1)), 0);
    assert.equal(await admin.xlen(k.inbox(2)), 2, 'written once');
  });
});
