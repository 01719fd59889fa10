/**
 * Cluster sessions benchmark (issue 14): what moving persistent sessions between nodes costs.
 *
 *   npm run bench:cluster-sessions -- [--takeovers 200] [--sessions 1000] [--subscribers 100]
 *                                      [--duration 10] [--lease 2000] [--heartbeat 250] [--aof always|everysec]
 *
 * Starts its own redis-server (127.0.0.1, free port, AOF with the given fsync policy, no RDB) and
 * three `courier` nodes A, B, C (test/helpers/courier-process.ts: dist/ via bin/courier.js when
 * it is up to date, else the source via tsx), all on loopback; every process it started is
 * SIGKILLed by PID at the end (and at exit). Nothing is pinned: numbers are as measured on the
 * machine, whatever else runs on it.
 *
 *   takeover   a persistent MQTT 5 client (session expiry 600 s, 5 subscriptions) reconnects N
 *              times: to the same node A (its session stays there), then alternating B/A (the
 *              session moves every time: fenced claim + load from Redis), after a clean
 *              DISCONNECT; then alternating again with the old connection still open (the old
 *              node gets a kick and sends 0x8E). Latency: CONNECT written → CONNACK read
 *              (the socket's connect event, when MQTT.js writes CONNECT, to the packetreceive event of the CONNACK), p50/p95/p99/max.
 *   recovery   K persistent sessions with a will each, connected to C (no failover), a witness
 *              on A subscribed to will/#; SIGKILL C. Reported from the SIGKILL: C declared dead
 *              (`dead:<nid>`), recovered (not in `orphans` any more), first and last will
 *              received; then one of C's client ids connects to B: Session Present 1 expected
 *              (the adopted session resumes), with a QoS 1 message published to it after the
 *              recovery waiting in it.
 *   qos1       a publisher on A (QoS 1, 32 unacknowledged), S persistent subscribers on B (QoS 1
 *              subscriptions to one topic): messages/s published and delivered over the window,
 *              Redis CPU per delivery (INFO cpu used_cpu_sys + used_cpu_user delta), node CPU
 *              (/proc/PID/stat), and this process's CPU (the MQTT.js load generator).
 */
import { parseArgs } from 'node:util';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { Redis } from 'ioredis';
import { ProcessGroup } from '../test/helpers/processes.js';
import { startCourier, type CourierProcess } from '../test/helpers/courier-process.js';
import { startRedisServer, type RedisServer } from '../test/helpers/redis-server.js';
import { pollUntil } from '../test/helpers/wait.js';
import { cpuMicros } from './proc.js';
import { percentile, sortedNumbers } from './stats.js';

const { values } = parseArgs({
  options: {
    takeovers: { type: 'string', default: '200' },
    sessions: { type: 'string', default: '1000' },
    subscribers: { type: 'string', default: '100' },
    duration: { type: 'string', default: '10' },
    lease: { type: 'string', default: '2000' },
    heartbeat: { type: 'string', default: '250' },
    aof: { type: 'string', default: 'always' },
    only: { type: 'string', default: 'takeover,recovery,qos1' },
  },
});
const N = Number(values.takeovers);
const K = Number(values.sessions);
const S = Number(values.subscribers);
const DURATION_MS = Number(values.duration) * 1000;
const LEASE_MS = Number(values.lease);
const HEARTBEAT_MS = Number(values.heartbeat);
const AOF = values.aof === 'everysec' ? 'everysec' : 'always';
const ONLY = new Set(values.only.split(','));
const PREFIX = 'bcs:';

const hardStop = setTimeout(() => {
  console.error('bench: time limit (15 min) reached, giving up');
  process.exit(2);
}, 15 * 60_000);
hardStop.unref();

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const group = new ProcessGroup();
let redis!: RedisServer;
let admin!: Redis;
const nodes: CourierProcess[] = [];
const open = new Set<MqttClient>();

const pct = (xs: number[], p: number): number => percentile(sortedNumbers(xs), p / 100);
const fmt = (ms: number): string => `${ms.toFixed(2)} ms`;
function summary(name: string, xs: number[]): string {
  return `${name.padEnd(46)} n=${xs.length}  p50 ${fmt(pct(xs, 50))}  p95 ${fmt(pct(xs, 95))}  p99 ${fmt(pct(xs, 99))}  max ${fmt(Math.max(...xs))}`;
}

interface Conn {
  c: MqttClient;
  present: boolean;
  /** CONNECT written → CONNACK read. */
  ms: number;
}

function connect(port: number, opts: IClientOptions, onMessage?: (topic: string, payload: Buffer) => void): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect(`mqtt://127.0.0.1:${port}`, { protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 20_000, ...opts });
    if (onMessage) c.on('message', onMessage);
    open.add(c);
    c.once('close', () => open.delete(c));
    // MQTT.js writes CONNECT as soon as the socket connects (it emits no packetsend for it).
    let sent = performance.now();
    (c.stream as unknown as { once(e: string, f: () => void): void }).once('connect', () => (sent = performance.now()));
    c.on('packetreceive', (p) => {
      if (p.cmd === 'connack') {
        const ms = performance.now() - sent;
        if (p.reasonCode !== undefined && p.reasonCode !== 0) reject(new Error(`CONNACK ${p.reasonCode}`));
        else resolve({ c, present: p.sessionPresent, ms });
      }
    });
    c.once('error', reject);
  });
}

function nodeEnv(): Record<string, string> {
  return {
    COURIER_CLUSTER__LEASE_MS: String(LEASE_MS),
    COURIER_CLUSTER__HEARTBEAT_MS: String(HEARTBEAT_MS),
    COURIER_CLUSTER__PREFIX: PREFIX,
  };
}

async function startNode(name: string): Promise<CourierProcess> {
  return startCourier(group, { args: ['--cluster-redis', redis.url, '--node-name', name], env: nodeEnv(), wsPort: 'off', logLevel: 'info' });
}

async function redisCpuMs(): Promise<number> {
  const info = await admin.info('cpu');
  return (Number(/used_cpu_user:([\d.]+)/.exec(info)![1]) + Number(/used_cpu_sys:([\d.]+)/.exec(info)![1])) * 1000;
}

async function nid(name: string): Promise<number> {
  return Number(await admin.get(`${PREFIX}name:${name}`));
}

async function takeover(a: CourierProcess, b: CourierProcess): Promise<void> {
  console.log(`\n## takeover: CONNECT → CONNACK of a persistent client with 5 subscriptions, ${N} reconnects each`);
  const opts: IClientOptions = { clientId: 'mover', clean: false, properties: { sessionExpiryInterval: 600 } };
  const first = await connect(a.port, opts);
  for (let i = 0; i < 5; i++) await first.c.subscribeAsync(`move/${i}/#`, { qos: 1 });
  await first.c.endAsync();
  const same: number[] = [];
  for (let i = 0; i < N; i++) {
    const r = await connect(a.port, opts);
    if (!r.present) throw new Error('same node: Session Present 0');
    same.push(r.ms);
    await r.c.endAsync();
  }
  const cross: number[] = [];
  for (let i = 0; i < N; i++) {
    const r = await connect((i % 2 === 0 ? b : a).port, opts);
    if (!r.present) throw new Error('cross node: Session Present 0');
    cross.push(r.ms);
    await r.c.endAsync();
  }
  // The old connection still open: the claim kicks it (0x8E) on the other node.
  const kick: number[] = [];
  let prev = await connect(a.port, opts);
  for (let i = 0; i < N; i++) {
    const closed = new Promise<void>((resolve) => prev.c.once('close', () => resolve()));
    const r = await connect((i % 2 === 0 ? b : a).port, opts);
    if (!r.present) throw new Error('kick: Session Present 0');
    kick.push(r.ms);
    await Promise.race([closed, sleep(5000)]);
    prev = r;
  }
  await prev.c.endAsync();
  // End the session.
  const end = await connect(a.port, { ...opts, clean: true, properties: { sessionExpiryInterval: 0 } });
  await end.c.endAsync();
  console.log(summary('same node (A → A), after DISCONNECT', same));
  console.log(summary('other node (A ↔ B), after DISCONNECT', cross));
  console.log(summary('other node (A ↔ B), old connection open (kick)', kick));
}

async function recovery(a: CourierProcess, b: CourierProcess, c: CourierProcess): Promise<void> {
  console.log(`\n## recovery: kill -9 of a node holding ${K} persistent sessions with wills (lease ${LEASE_MS} ms, heartbeat ${HEARTBEAT_MS} ms)`);
  const witness = await connect(a.port, { clientId: 'will-witness' });
  const wills = new Set<string>();
  let firstWill = 0;
  let lastWill = 0;
  witness.c.on('message', (topic) => {
    if (!topic.startsWith('will/')) return;
    const now = performance.now();
    if (wills.size === 0) firstWill = now;
    wills.add(topic);
    lastWill = now;
  });
  await witness.c.subscribeAsync('will/#', { qos: 1 });
  const victims: MqttClient[] = [];
  for (let i = 0; i < K; i += 50) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(50, K - i) }, (_, j) =>
        connect(c.port, {
          clientId: `k-${i + j}`,
          clean: false,
          properties: { sessionExpiryInterval: 600 },
          will: { topic: `will/k-${i + j}`, payload: Buffer.from('gone'), qos: 1, retain: false },
        }).then(async (r) => {
          r.c.on('error', () => {});
          await r.c.subscribeAsync(`adopt/${i + j}`, { qos: 1 });
          return r.c;
        }),
      ),
    );
    victims.push(...batch);
  }
  const victimNid = await nid('c');
  console.log(`${K} sessions connected to C (nid ${victimNid}); SIGKILL C`);
  const t0 = performance.now();
  await c.sigkill();
  let deadAt = 0;
  await pollUntil(
    async () => {
      if (deadAt === 0 && (await admin.exists(`${PREFIX}dead:${victimNid}`)) === 1) deadAt = performance.now();
      return deadAt !== 0 && (await admin.sismember(`${PREFIX}orphans`, String(victimNid))) === 0;
    },
    { what: 'C declared dead and recovered', timeoutMs: LEASE_MS + 60_000, intervalMs: 5 },
  );
  const recoveredAt = performance.now();
  await pollUntil(() => wills.size >= K, { what: `${K} wills`, timeoutMs: 60_000, intervalMs: 5 }).catch(() => undefined);
  // An adopted session resumes on B, with what was queued for it after the recovery.
  const pub = await connect(a.port, { clientId: 'adopt-pub' });
  await pub.c.publishAsync('adopt/7', 'queued', { qos: 1 });
  let gotIt: (payload: string) => void = () => {};
  const got = new Promise<string>((resolve) => (gotIt = resolve));
  const resume = await connect(b.port, { clientId: 'k-7', clean: false, properties: { sessionExpiryInterval: 600 } }, (topic, payload) => {
    if (topic === 'adopt/7') gotIt(payload.toString());
  });
  const queued = await Promise.race([got, sleep(5000).then(() => '(nothing within 5 s)')]);
  const resumedAt = performance.now();
  console.log(`lease ${LEASE_MS} ms, heartbeat ${HEARTBEAT_MS} ms; times from the SIGKILL:`);
  console.log(`  declared dead (dead:<nid> seen)        ${fmt(deadAt - t0)}`);
  console.log(`  recovered (sessions adopted, not in orphans) ${fmt(recoveredAt - t0)}`);
  console.log(`  first will received                    ${wills.size > 0 ? fmt(firstWill - t0) : '-'}`);
  console.log(`  all wills received                     ${wills.size >= K ? fmt(lastWill - t0) : `only ${wills.size} of ${K}`}  (${wills.size} distinct)`);
  console.log(
    `  adopted session resumed on B           Session Present ${resume.present ? 1 : 0}, CONNECT→CONNACK ${fmt(resume.ms)}, queued message: ${queued}`,
  );
  console.log(`  (resume done at ${fmt(resumedAt - t0)} after the SIGKILL)`);
  for (const v of victims) v.end(true);
  await Promise.all([resume.c.endAsync(), pub.c.endAsync(), witness.c.endAsync()]);
}

async function qos1(a: CourierProcess, b: CourierProcess): Promise<void> {
  console.log(`\n## qos1: publisher on A (QoS 1, 32 in flight) → ${S} persistent subscribers on B, ${DURATION_MS / 1000} s`);
  const subs: MqttClient[] = [];
  let delivered = 0;
  for (let i = 0; i < S; i++) {
    const r = await connect(b.port, { clientId: `q1-${i}`, clean: false, properties: { sessionExpiryInterval: 600 } });
    r.c.on('message', () => delivered++);
    await r.c.subscribeAsync('q1/load', { qos: 1 });
    subs.push(r.c);
  }
  const pub = await connect(a.port, { clientId: 'q1-pub' });
  await pollUntil(async () => (await admin.smembers(`${PREFIX}r:${await nid('b')}`)).includes('q1/load'), { what: 'route of B' });
  let running = true;
  let acked = 0;
  const payload = Buffer.alloc(64, 0x61);
  const loop = async (): Promise<void> => {
    while (running) {
      await pub.c.publishAsync('q1/load', payload, { qos: 1 });
      acked++;
    }
  };
  const loops = Array.from({ length: 32 }, () => loop());
  await sleep(2000); // warm-up
  const d0 = delivered;
  const a0 = acked;
  const r0 = await redisCpuMs();
  const n0 = nodes.map((n) => (n.exit() === undefined ? cpuMicros(n.pid) : 0));
  const g0 = process.cpuUsage();
  const t0 = performance.now();
  await sleep(DURATION_MS);
  const wall = (performance.now() - t0) / 1000;
  const g = process.cpuUsage(g0);
  const rcpu = (await redisCpuMs()) - r0;
  const ncpu = nodes.map((n, i) => (n.exit() === undefined ? (cpuMicros(n.pid) - n0[i]!) / 1000 : 0));
  const dd = delivered - d0;
  const da = acked - a0;
  running = false;
  await Promise.all(loops);
  console.log(`published (PUBACKed)   ${Math.round(da / wall).toLocaleString('en')} msg/s`);
  console.log(`delivered              ${Math.round(dd / wall).toLocaleString('en')} msg/s (${dd.toLocaleString('en')} deliveries in ${wall.toFixed(1)} s)`);
  console.log(`Redis CPU              ${((rcpu * 1000) / dd).toFixed(2)} µs per delivery (${((rcpu / 1000 / wall) * 100).toFixed(0)} % of a core)`);
  console.log(`node A / B CPU         ${((ncpu[0]! / 1000 / wall) * 100).toFixed(0)} % / ${((ncpu[1]! / 1000 / wall) * 100).toFixed(0)} % of a core`);
  console.log(`load generator CPU     ${(((g.user + g.system) / 1e6 / wall) * 100).toFixed(0)} % of a core (MQTT.js, this process)`);
  if (dd === 0) {
    // Nothing crossed: show where the messages are (diagnostics for a report).
    const nb = await nid('b');
    const na = await nid('a');
    console.log(
      `NOTHING DELIVERED: r:${nb} (B) = ${JSON.stringify(await admin.smembers(`${PREFIX}r:${nb}`))}, XLEN in:${nb} = ${await admin.xlen(`${PREFIX}in:${nb}`)}, ` +
        `stats:${na} (A) = ${await admin.get(`${PREFIX}stats:${na}`)}, stats:${nb} (B) = ${await admin.get(`${PREFIX}stats:${nb}`)}, r:log length ${await admin.xlen(`${PREFIX}r:log`)}`,
    );
    await sleep(5000);
    console.log(`  5 s after the window: ${delivered - d0} delivered in all`);
    for (const [name, n] of [
      ['A', a],
      ['B', b],
    ] as const) {
      for (const l of n.logs()) if (l.level !== 'info' && l.level !== 'debug') console.log(`  ${name}: ${JSON.stringify(l)}`);
    }
  }
  for (const s of subs) s.end(true);
  await pub.c.endAsync();
}

async function main(): Promise<void> {
  redis = await startRedisServer({ appendonly: true, appendfsync: AOF });
  admin = redis.client();
  const a = await startNode('a');
  const b = await startNode('b');
  const c = await startNode('c');
  nodes.push(a, b, c);
  await pollUntil(async () => (await admin.zcard(`${PREFIX}nodes`)) === 3, { what: '3 nodes' });
  console.log(`cluster-sessions: redis-server ${redis.url} (AOF ${AOF}), nodes a ${a.port}, b ${b.port}, c ${c.port} (${a.entry}), lease ${LEASE_MS} ms`);
  if (ONLY.has('takeover')) await takeover(a, b);
  if (ONLY.has('qos1')) await qos1(a, b);
  if (ONLY.has('recovery')) await recovery(a, b, c);
}

let failed = false;
try {
  await main();
} catch (err) {
  console.error('bench failed:', err);
  failed = true;
} finally {
  for (const c of open) c.end(true);
  admin?.disconnect();
  await group.killAll().catch(() => {});
  await redis?.close().catch(() => {});
}
process.exit(failed ? 1 : 0);
