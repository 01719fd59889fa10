/**
 * Cluster I with real processes: `courier --cluster-redis ... --node-name ...` nodes on a real
 * redis-server, stopped by PID. A node killed with SIGKILL loses its routes after the lease and
 * nobody else stops; a restart under the same name cleans its previous incarnation at once; Redis
 * killed and restarted (AOF, appendfsync always): nodes refuse CONNECT meanwhile, recover by
 * themselves, and no acknowledged QoS 1 message is lost.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import mqtt, { type MqttClient } from 'mqtt';
import { ProcessGroup, removeTempDir, tempDir, type TrackedProcess } from '../helpers/processes.js';
import { missingExecutable } from '../helpers/peers.js';
import { redisServerGate, startRedisServer, type RedisServer } from '../helpers/redis-server.js';
import { pollUntil } from '../helpers/wait.js';

const BIN = fileURLToPath(new URL('../../bin/courier.js', import.meta.url));
const LEASE_MS = 2000;

interface Node {
  proc: TrackedProcess;
  port: number;
  name: string;
}

void describe('cluster: node processes', redisServerGate(), () => {
  let redis: RedisServer;
  const group = new ProcessGroup();
  const dirs: string[] = [];
  const clients: MqttClient[] = [];

  void before(async () => {
    redis = await startRedisServer({ appendonly: true, appendfsync: 'always' });
  });
  void after(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => {})));
    await group.killAll();
    await redis?.close();
    for (const d of dirs) removeTempDir(d);
  });

  async function start(name: string, prefix: string, extraEnv: Record<string, string> = {}, redisUrl?: string): Promise<Node> {
    const dir = tempDir(`courier-node-${name}`);
    dirs.push(dir);
    const proc = group.spawn(
      process.execPath,
      [
        BIN,
        '--port',
        '0',
        '--ws-port',
        'off',
        '--admin-port',
        'off',
        '--data-dir',
        dir,
        '--cluster-redis',
        redisUrl ?? redis.url,
        '--node-name',
        name,
        '--log-level',
        'info',
      ],
      {
        env: {
          ...process.env,
          COURIER_CLUSTER__LEASE_MS: String(LEASE_MS),
          COURIER_CLUSTER__HEARTBEAT_MS: '250',
          COURIER_CLUSTER__PREFIX: prefix,
          ...extraEnv,
        },
      },
    );
    const line = await proc.waitForLine((l) => l.includes('listening on'), 15_000, `${name} listening`);
    const port = Number(/"port":(\d+)/.exec(line)?.[1]);
    assert.ok(port > 0, `port in ${line}`);
    return { proc, port, name };
  }

  async function connect(port: number, opts: mqtt.IClientOptions = {}): Promise<MqttClient> {
    const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { protocolVersion: 5, reconnectPeriod: 0, ...opts });
    clients.push(c);
    return c;
  }

  /** A node's view of the cluster, read from Redis: the route sets of the live nodes. */
  async function liveRouteSets(prefix: string): Promise<Map<string, string[]>> {
    const r = redis.client();
    const ids = await r.zrange(`${prefix}nodes`, '0', '-1');
    const out = new Map<string, string[]>();
    for (const id of ids) out.set(id, (await r.smembers(`${prefix}r:${id}`)).sort());
    r.disconnect();
    return out;
  }

  void test('kill -9 of a node: its routes go after the lease, the others keep delivering; a restart under its name cleans up at once', async () => {
    const prefix = 'p1:';
    const a = await start('a', prefix);
    const b = await start('b', prefix);
    const c = await start('c', prefix);
    const onB = await connect(b.port);
    await onB.subscribeAsync('k/#', { qos: 1 });
    const onC = await connect(c.port);
    const gotC: string[] = [];
    onC.on('message', (_t, p) => gotC.push(p.toString()));
    await onC.subscribeAsync('k/#', { qos: 1 });
    await pollUntil(async () => (await liveRouteSets(prefix)).size === 3, { what: '3 live nodes' });
    b.proc.signal('SIGKILL');
    await b.proc.exited();
    // The janitor (any survivor) declares B dead once its lease lapsed by Redis time.
    await pollUntil(async () => (await liveRouteSets(prefix)).size === 2, { what: 'B declared dead', timeoutMs: LEASE_MS * 4 + 5000 });
    await a.proc.waitForLine((l) => l.includes('node declared dead') || l.includes('"nodeId"'), 5000).catch(() => '');
    const pub = await connect(a.port);
    await pub.publishAsync('k/1', 'after-kill', { qos: 1 });
    await pollUntil(() => gotC.includes('after-kill'), { what: 'C still gets messages from A' });
    // B restarted under the same name: its previous incarnation is cleaned before it joins.
    const b2 = await start('b', prefix);
    await b2.proc.waitForLine((l) => l.includes('cluster: joined'), 5000);
    const sets = await liveRouteSets(prefix);
    assert.equal(sets.size, 3, 'a, c and the new b');
    // A duplicate name while the holder lives is refused with a clear message.
    const dupDir = tempDir('courier-node-dup');
    dirs.push(dupDir);
    const dup = group.spawn(
      process.execPath,
      [BIN, '--port', '0', '--ws-port', 'off', '--admin-port', 'off', '--data-dir', dupDir, '--cluster-redis', redis.url, '--node-name', 'a'],
      {
        env: { ...process.env, COURIER_CLUSTER__PREFIX: prefix },
      },
    );
    const exit = await dup.exited(15_000);
    assert.notEqual(exit.code, 0);
    assert.match(dup.stdout() + dup.stderr(), /node name "a" is in use by a live node/);
  });

  void test(
    'mosquitto_pub on one node, mosquitto_sub on two others (3.1.1 and 5.0): every message once at QoS 1, retained across nodes',
    { skip: missingExecutable('/usr/bin/mosquitto_sub') ?? missingExecutable('/usr/bin/mosquitto_pub') ?? false },
    async () => {
      const prefix = 'p3:';
      const a = await start('ma', prefix);
      const b = await start('mb', prefix);
      const c = await start('mc', prefix);
      const subs = [
        { node: b, v: 'mqttv311' },
        { node: c, v: 'mqttv5' },
      ].map(({ node, v }) =>
        group.spawn('/usr/bin/stdbuf', [
          '-oL',
          '/usr/bin/mosquitto_sub',
          '-h',
          '127.0.0.1',
          '-p',
          String(node.port),
          '-V',
          v,
          '-q',
          '1',
          '-t',
          'mq/#',
          '-v',
          '-C',
          '6',
          '-W',
          '20',
        ]),
      );
      // Both subscriptions are in Redis (and so replicated to A) once the route sets hold them.
      await pollUntil(async () => [...(await liveRouteSets(prefix)).values()].filter((f) => f.includes('mq/#')).length === 2, {
        what: 'routes of both subscribers',
      });
      for (let i = 0; i < 5; i++) {
        const pub = group.spawn('/usr/bin/mosquitto_pub', ['-h', '127.0.0.1', '-p', String(a.port), '-V', 'mqttv5', '-q', '1', '-t', `mq/${i}`, '-m', `m${i}`]);
        assert.equal((await pub.exited(10_000)).code, 0);
      }
      const ret = group.spawn('/usr/bin/mosquitto_pub', ['-h', '127.0.0.1', '-p', String(a.port), '-q', '1', '-r', '-t', 'mq/retained', '-m', 'kept']);
      assert.equal((await ret.exited(10_000)).code, 0);
      for (const s of subs) {
        assert.equal((await s.exited(20_000)).code, 0, s.describe());
        assert.deepEqual(s.lines('stdout'), ['mq/0 m0', 'mq/1 m1', 'mq/2 m2', 'mq/3 m3', 'mq/4 m4', 'mq/retained kept']);
      }
      // A later subscriber on another node gets the retained message published on A.
      const late = group.spawn('/usr/bin/mosquitto_sub', ['-h', '127.0.0.1', '-p', String(b.port), '-t', 'mq/retained', '-C', '1', '-W', '10']);
      assert.equal((await late.exited(15_000)).code, 0);
      assert.deepEqual(late.lines('stdout'), ['kept']);
    },
  );

  void test('a node paused (SIGSTOP) falls behind on its inbox: past the soft limit the others stop sending it QoS 0 (counted) but keep QoS 1; resumed, it gets every QoS 1 message', async () => {
    const prefix = 'p4:';
    // A lease long enough that the paused node is not declared dead meanwhile.
    const env = { COURIER_CLUSTER__INBOX_SOFT_LIMIT: '5', COURIER_CLUSTER__LEASE_MS: '20000' };
    const a = await start('la', prefix, env);
    const b = await start('lb', prefix, env);
    const sub = await connect(b.port);
    const got: string[] = [];
    sub.on('message', (_t, p) => got.push(p.toString()));
    await sub.subscribeAsync('lag/#', { qos: 1 });
    await pollUntil(async () => [...(await liveRouteSets(prefix)).values()].some((f) => f.includes('lag/#')), { what: "B's route" });
    const pub = await connect(a.port);
    await pub.publishAsync('lag/warm', 'w', { qos: 1 });
    await pollUntil(() => got.includes('w'), { what: 'B delivers before the pause' });
    b.proc.signal('SIGSTOP');
    try {
      // One QoS 1 message per turn: each is one inbox entry that B does not read.
      for (let i = 0; i < 20; i++) await pub.publishAsync('lag/q1', `q1-${i}`, { qos: 1 });
      // A notices at its next heartbeat that B's inbox is past the limit.
      await a.proc.waitForLine((l) => l.includes('node is behind on its inbox'), 10_000, 'A marks B as lagging');
      for (let i = 0; i < 5; i++) await pub.publishAsync('lag/q0', `q0-${i}`, { qos: 0 });
      await pub.publishAsync('lag/q1', 'q1-last', { qos: 1 });
    } finally {
      b.proc.signal('SIGCONT');
    }
    await pollUntil(() => got.includes('q1-last'), { what: 'B catches up', timeoutMs: 15_000 });
    for (let i = 0; i < 20; i++) assert.ok(got.includes(`q1-${i}`), `q1-${i} delivered`);
    assert.deepEqual(
      got.filter((x) => x.startsWith('q0-')),
      [],
      'QoS 0 to a lagging node is dropped',
    );
  });

  void test('Redis killed and restarted (appendfsync always): CONNECT refused meanwhile, nodes recover, no acknowledged QoS 1 message lost', async () => {
    const prefix = 'p2:';
    // Redis is back well within the lease: nobody is disconnected (past it, nodes fence themselves).
    const longer = { COURIER_CLUSTER__LEASE_MS: '15000' };
    const a = await start('ra', prefix, longer);
    const b = await start('rb', prefix, longer);
    const sub = await connect(b.port, { reconnectPeriod: 0 });
    const got = new Set<number>();
    sub.on('message', (_t, p) => got.add(Number(p.toString())));
    await sub.subscribeAsync('q/#', { qos: 1 });
    await pollUntil(async () => (await liveRouteSets(prefix)).get(String(2))?.length === 1 || (await liveRouteSets(prefix)).size === 2, {
      what: 'routes in Redis',
    });
    const pub = await connect(a.port, { reconnectPeriod: 0 });
    const acked: number[] = [];
    let running = true;
    const publishing = (async () => {
      for (let i = 0; running; i++) {
        try {
          await pub.publishAsync('q/1', String(i), { qos: 1 });
          acked.push(i);
        } catch {
          break;
        }
      }
    })();
    await pollUntil(() => acked.length >= 200, { what: '200 acknowledged before the crash' });
    await redis.kill9();
    // While Redis is away a new client is refused: v5 CONNACK 0x88 (server unavailable).
    await a.proc.waitForLine((l) => l.includes('Redis connection lost'), 10_000);
    const refused = await mqtt
      .connectAsync(`mqtt://127.0.0.1:${a.port}`, { protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 5000 })
      .then((c) => {
        clients.push(c);
        return 'connected';
      })
      .catch((err: Error) => err.message);
    assert.notEqual(refused, 'connected');
    await a.proc.waitForLine((l) => l.includes('"reasonCode":136') && l.includes('cluster (Redis) is unreachable'), 5000, 'CONNACK 0x88 logged');
    const before = acked.length;
    await redis.restart();
    await a.proc.waitForLine((l) => l.includes('Redis connection restored'), 15_000);
    await pollUntil(() => acked.length >= before + 200, { what: 'publishing resumed', timeoutMs: 20_000 });
    running = false;
    await publishing;
    // Every acknowledged message reached the subscriber on the other node.
    await pollUntil(() => acked.every((i) => got.has(i)), { what: 'every acknowledged message delivered', timeoutMs: 20_000 }).catch(() => undefined);
    const lost = acked.filter((i) => !got.has(i));
    assert.deepEqual(lost.slice(0, 10), [], `${lost.length} of ${acked.length} acknowledged messages lost`);
  });
  void test(
    'Redis killed and restarted with appendfsync everysec: what is lost is within the last seconds of acknowledgements',
    { timeout: 120_000 },
    async (t) => {
      const r2 = await startRedisServer({ appendonly: true, appendfsync: 'everysec' });
      try {
        const prefix = 'p3:';
        const longer = { COURIER_CLUSTER__LEASE_MS: '15000' };
        const a = await start('ea', prefix, longer, r2.url);
        const b = await start('eb', prefix, longer, r2.url);
        // A persistent subscriber, offline: what is published for it is queued in its session in Redis.
        const opts: mqtt.IClientOptions = { clientId: 'keeper', clean: false, properties: { sessionExpiryInterval: 600 } };
        const sub = await connect(b.port, opts);
        await sub.subscribeAsync('ev/#', { qos: 1 });
        await sub.endAsync();
        const rc = r2.client();
        await pollUntil(async () => (await rc.keys(`${prefix}r:[0-9]*`)).length === 1, { what: 'route in Redis' });
        rc.disconnect();
        const pub = await connect(a.port, { reconnectPeriod: 0 });
        const acked: Array<{ i: number; at: number }> = [];
        let running = true;
        const publishing = (async () => {
          for (let i = 0; running; i++) {
            try {
              await pub.publishAsync('ev/1', String(i), { qos: 1 });
              acked.push({ i, at: Date.now() });
            } catch {
              return;
            }
          }
        })();
        // Below the session's queue limit (1,000 by default): every loss is Redis's.
        await pollUntil(() => acked.length >= 800, { what: '800 acknowledged', timeoutMs: 60_000 });
        const killedAt = Date.now();
        await r2.kill9();
        running = false;
        await r2.restart();
        await a.proc.waitForLine((l) => l.includes('Redis connection restored'), 15_000);
        await publishing;
        // The session moves to A, which reads its queue from Redis; a sentinel queued behind it marks the end.
        const got = new Set<number>();
        let done!: () => void;
        const end = new Promise<void>((resolve) => (done = resolve));
        const back = mqtt.connect(`mqtt://127.0.0.1:${a.port}`, { protocolVersion: 5, reconnectPeriod: 0, ...opts });
        clients.push(back);
        back.on('message', (_t, p) => {
          const s = p.toString();
          if (s === 'end') done();
          else got.add(Number(s));
        });
        await new Promise<void>((resolve, reject) => {
          back.once('connect', () => resolve());
          back.once('error', reject);
        });
        const pub2 = await connect(b.port);
        await pub2.publishAsync('ev/end', 'end', { qos: 1 });
        await end;
        const lost = acked.filter((x) => !got.has(x.i));
        const oldest = lost.length === 0 ? 0 : killedAt - Math.min(...lost.map((x) => x.at));
        t.diagnostic(`everysec: ${lost.length} of ${acked.length} acknowledged messages lost; the oldest ${oldest} ms before the kill`);
        // Redis's own bound for everysec: about one second of writes, two in the worst case.
        assert.ok(
          lost.every((x) => x.at >= killedAt - 2000),
          `lost messages older than 2 s before the kill: ${lost.filter((x) => x.at < killedAt - 2000).length}`,
        );
      } finally {
        await r2.close();
      }
    },
  );
});
