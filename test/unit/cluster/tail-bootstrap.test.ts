/**
 * The tail's bootstrap (src/cluster/tail-bootstrap.ts): readSnapshot against a real redis-server
 * (live and orphaned nodes' route sets without this node's, the retained hash over several HSCAN
 * pages with an unreadable value skipped and logged, the logs' last ids and `ret:ver`; an empty
 * Redis), and applySnapshot into a real RouteTable and a typed fake of the core.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import type { SessionFilter } from '../../../src/core/broker-core.js';
import { createMessage, type Message } from '../../../src/core/message.js';
import type { Logger } from '../../../src/options.js';
import { RouteTable } from '../../../src/cluster/routes.js';
import { keys } from '../../../src/cluster/scripts.js';
import { applySnapshot, readSnapshot, type Snapshot } from '../../../src/cluster/tail-bootstrap.js';
import type { ClusterCore } from '../../../src/cluster/tail-types.js';
import { encodeRetained } from '../../../src/cluster/wire.js';
import { redisServerGate, startRedisServer, type RedisServer } from '../../helpers/redis-server.js';

function recordingLog(): { log: Logger; warnings: Array<[object, string | undefined]> } {
  const warnings: Array<[object, string | undefined]> = [];
  const log: Logger = {
    info() {},
    error() {},
    debug() {},
    warn(obj, msg) {
      warnings.push([obj, msg]);
    },
  };
  return { log, warnings };
}

const retainedMsg = (topic: string, payload: string): Message => createMessage(topic, Buffer.from(payload), 1, true, undefined, 'pub', 1000);

class FakeCore implements ClusterCore {
  readonly retained = new Map<string, Message>();
  readonly calls: string[] = [];
  publishForwarded(_m: Message, _plain: boolean, _groups: readonly string[] | undefined, _sessions?: SessionFilter): number {
    throw new Error('applySnapshot must not publish');
  }
  forwardPressure(): boolean {
    return false;
  }
  applyRetained(m: Message): void {
    this.calls.push(`apply ${m.topic} ${m.payload.toString()}`);
    this.retained.set(m.topic, m);
  }
  dropRetained(topic: string): void {
    this.calls.push(`drop ${topic}`);
    this.retained.delete(topic);
  }
}

void describe('readSnapshot on a real redis-server', redisServerGate(), () => {
  let server: RedisServer;
  let redis: Redis;

  before(async () => {
    server = await startRedisServer();
    redis = server.client();
  });

  after(async () => {
    await server?.close();
  });

  void it('reads the other live and orphaned nodes with their route sets, the retained hash and the logs positions', async () => {
    const k = keys('t1:');
    await redis.zadd(k.nodes, 100, '1', 200, '2', 300, '3');
    await redis.sadd(k.orphans, '3', '4', '2');
    await redis.sadd(k.routes(1), 'a/b', '$share/g/x/+');
    await redis.sadd(k.routes(2), 'mine/#');
    await redis.sadd(k.routes(3), 'c/#');
    await redis.sadd(k.routes(4), 'd');
    await redis.xadd(k.rlog, '*', 'n', '1', '+', 'a/b');
    const lastRoute = await redis.xadd(k.rlog, '*', 'n', '3', '+', 'c/#');
    const lastRet = await redis.xadd(k.retLog, '*', 'v', '5', 't', 'r/1', 'm', '');
    await redis.set(k.retVer, '5');
    // Over 1000 fields: HSCAN takes several pages (COUNT 1000 each).
    const many = 2500;
    const fields: Array<string | Buffer> = [];
    for (let i = 0; i < many; i++) fields.push(`r/${i}`, encodeRetained(retainedMsg(`r/${i}`, `v${i}`)));
    fields.push('bad/one', Buffer.from([0xff, 0x01]));
    await redis.hset(k.ret, ...fields);

    const { log, warnings } = recordingLog();
    let asked = 0;
    const snap = await readSnapshot(
      redis,
      k,
      () => {
        asked++;
        return 2;
      },
      log,
    );
    assert.equal(asked, 1);
    assert.deepEqual(snap.live, [1, 3, 4], 'the nodes by heartbeat order, then orphans not among them; never this node');
    assert.deepEqual(
      snap.sets.map((s) => [...s].sort()),
      [['$share/g/x/+', 'a/b'], ['c/#'], ['d']],
    );
    assert.equal(snap.routeId, lastRoute);
    assert.equal(snap.retId, lastRet);
    assert.equal(snap.retVer, 5);
    assert.equal(snap.retained.size, many, 'every readable retained message, across HSCAN pages');
    assert.equal(snap.retained.get('r/0')?.payload.toString(), 'v0');
    assert.equal(snap.retained.get(`r/${many - 1}`)?.payload.toString(), `v${many - 1}`);
    assert.equal(snap.retained.get('r/7')?.retain, true);
    assert.equal(snap.retained.has('bad/one'), false);
    assert.equal(warnings.length, 1);
    assert.equal((warnings[0]![0] as { topic?: string }).topic, 'bad/one');
  });

  void it("an empty Redis is no nodes, no retained messages, positions '0-0' and version 0", async () => {
    const { log, warnings } = recordingLog();
    const snap = await readSnapshot(redis, keys('t2:'), () => 1, log);
    assert.deepEqual(snap.live, []);
    assert.deepEqual(snap.sets, []);
    assert.equal(snap.retained.size, 0);
    assert.equal(snap.routeId, '0-0');
    assert.equal(snap.retId, '0-0');
    assert.equal(snap.retVer, 0);
    assert.deepEqual(warnings, []);
  });
});

void describe('applySnapshot', () => {
  void it("replaces the route table's nodes and the core's retained messages by the snapshot's", () => {
    const routes = new RouteTable();
    routes.add(1, 'old/1');
    routes.add(1, 'both/1');
    routes.add(9, 'gone/9');
    const core = new FakeCore();
    core.retained.set('old', retainedMsg('old', 'o'));
    core.retained.set('kept', retainedMsg('kept', 'before'));
    const snap: Snapshot = {
      live: [1, 3],
      sets: [['both/1', 'new/1'], ['$share/g/c/#']],
      retained: new Map([
        ['kept', retainedMsg('kept', 'after')],
        ['new', retainedMsg('new', 'n')],
      ]),
      routeId: '1-0',
      retId: '2-0',
      retVer: 4,
    };
    applySnapshot(snap, routes, core);

    assert.deepEqual(routes.nodes().sort(), [1, 3], 'a node not in the snapshot is dropped');
    assert.deepEqual(routes.filtersOf(1).sort(), ['both/1', 'new/1']);
    assert.deepEqual(routes.filtersOf(3), ['$share/g/c/#']);
    assert.equal(routes.size, 3);
    assert.deepEqual([...routes.match('gone/9').plain], []);
    assert.deepEqual([...routes.match('new/1').plain], [1]);
    assert.deepEqual([...(routes.match('c/x').groups.get('g/c/#') ?? [])], [3]);

    assert.deepEqual(core.calls, ['drop old', 'apply kept after', 'apply new n']);
    assert.deepEqual([...core.retained.keys()].sort(), ['kept', 'new']);
  });

  void it('an empty snapshot empties both', () => {
    const routes = new RouteTable();
    routes.add(2, 'x');
    const core = new FakeCore();
    core.retained.set('t', retainedMsg('t', 'v'));
    applySnapshot({ live: [], sets: [], retained: new Map(), routeId: '0-0', retId: '0-0', retVer: 0 }, routes, core);
    assert.equal(routes.size, 0);
    assert.deepEqual(routes.nodes(), []);
    assert.deepEqual(core.calls, ['drop t']);
  });
});
