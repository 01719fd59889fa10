/**
 * Chaos run for the Redis cluster (issue 14): real processes, random faults, then invariants.
 *
 *   npx tsx scripts/chaos-cluster.ts [--minutes 5] [--seed N] [--subscribers 30] [--rate 40]
 *   npm run chaos:cluster -- --minutes 5 --seed 7
 *
 * Starts a redis-server (127.0.0.1, free port, `--appendonly yes --appendfsync always`) and 3
 * courier nodes (c0, c1, c2; dist/ through bin/courier.js when it is up to date, else the source
 * through tsx: test/helpers/courier-process.ts decides) with a 2000 ms lease and 250 ms heartbeats.
 * Load: persistent MQTT 5 subscribers (client ids, session expiry 1 h, a will on will/<cid>),
 * spread over the nodes, each with the three nodes as a failover `servers` list (MQTT.js); QoS 1
 * and QoS 2 publishers (persistent sessions, failover list) whose payloads are `<publisher>:<seq>`,
 * paced to --rate messages/s each; a witness on will/#. Every few seconds one random fault:
 *   kill     SIGKILL a node, restart it under the same name after 0.5–3 s
 *   stop     SIGSTOP a node for lease + 1–3 s, then SIGCONT (it must fence itself)
 *   redis    SIGKILL redis-server, restart it on the same port and dir (AOF reloaded) after 0.2–1.5 s
 *   term     SIGTERM a node (graceful), restart it
 * The fault loop stops after --minutes; then the run drains and checks:
 *   (a) every acknowledged QoS 1/2 message reached every subscriber of its topic at least once;
 *   (b) no QoS 2 message (QoS 2 publisher, QoS 2 subscription) reached the application twice;
 *   (d) routes: the `nodes` ZSET holds exactly the 3 live incarnations, each live node's `r:<nid>`
 *       set equals the filters of the clients connected to it, and a probe published on each
 *       node to each topic reaches every subscriber of that topic (every node's in-memory table);
 *   (c) no leaked keys: every session is ended (each client id reconnects with clean start and
 *       session expiry 0, then disconnects), dead nodes recovered; what is left under the prefix
 *       must be the fixed keys (node:seq, nodes, node:<live>, name:c*, stats:*, r:<live>, r:log,
 *       in:<live>, ret, ret:ver, ret:log, epoch, fence:seq, dead:*, moved:* and done:* with a TTL,
 *       pipe:<live> with a TTL).
 * Also reported, not fatal: nodes that exited on their own, persistent reconnects with Session
 * Present 0, QoS 1 duplicates, wills, error/fatal log lines of the nodes, recovery times.
 * Exit code 1 on any violation. Only processes it started are signalled (by PID); they are all
 * SIGKILLed at exit (test/helpers/processes.ts), and a hard timer ends the run if it hangs.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { Redis } from 'ioredis';
import { ProcessGroup } from '../test/helpers/processes.js';
import { startCourier, type CourierProcess, type LogLine } from '../test/helpers/courier-process.js';
import { startRedisServer, type RedisServer } from '../test/helpers/redis-server.js';
import { pollUntil } from '../test/helpers/wait.js';
import { percentile as percentileOf, sortedNumbers } from '../bench/stats.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '5' },
    seed: { type: 'string' },
    subscribers: { type: 'string', default: '30' },
    rate: { type: 'string', default: '40' },
    topics: { type: 'string', default: '6' },
  },
});
const MINUTES = Number(values.minutes);
const SEED = values.seed !== undefined ? Number(values.seed) : Math.floor(Math.random() * 2 ** 31);
const SUBSCRIBERS = Number(values.subscribers);
const RATE = Number(values.rate);
const TOPICS = Number(values.topics);
const LEASE_MS = 2000;
const HEARTBEAT_MS = 250;
const PREFIX = 'chaos:';
const NAMES = ['c0', 'c1', 'c2'] as const;
const FAULTS = ['kill', 'stop', 'redis', 'term'] as const;
type Fault = (typeof FAULTS)[number];

// Whatever happens, the run ends: minutes + 6 min of drain and checks at most.
const hardStop = setTimeout(
  () => {
    console.error('chaos: hard time limit reached, giving up');
    saveLogs();
    process.exit(2);
  },
  (MINUTES + 6) * 60_000,
);
hardStop.unref();

/** mulberry32: the faults, their targets and their timing follow from the seed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const random = rng(SEED);
const between = (lo: number, hi: number): number => lo + Math.floor(random() * (hi - lo));
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const t0 = Date.now();
const stamp = (): string => `[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)} s]`;
const log = (msg: string): void => console.log(`${stamp()} ${msg}`);

interface Client {
  cid: string;
  c: MqttClient;
  /** Filters it subscribed to, with their QoS. */
  subs: Map<string, 1 | 2>;
  /** Payloads received per topic. */
  got: Map<string, string[]>;
  /** Receive times (ms since start) of QoS 2 payloads, for the duplicate analysis. */
  times: Map<string, number[]>;
  /** Reconnects whose CONNACK had Session Present 0 (a persistent session lost). */
  lostSessions: number;
  connects: number;
}

interface Acked {
  topic: string;
  payload: string;
  qos: 1 | 2;
  /** PUBACK/PUBCOMP received, ms since start. */
  at: number;
}

interface FaultRecord {
  at: number;
  kind: Fault;
  node?: string;
  /** Fault start → every client connected again. */
  reconnectMs?: number;
  /** SIGKILL/SIGSTOP → the old incarnation declared dead and recovered (not in `orphans`). */
  recoveredMs?: number;
  note?: string;
}

const LOG_DIR = join(tmpdir(), `chaos-cluster-${SEED}-${process.pid}`);
const violations: string[] = [];
const anomalies: string[] = [];
const group = new ProcessGroup();
let redis!: RedisServer;
let admin!: Redis;
const nodes: CourierProcess[] = [];
/** Every process of every node, for its logs. */
const allProcs: Array<{ name: string; proc: CourierProcess }> = [];
/** Processes we expect to have exited (signalled by us). */
const expectedExit = new Set<CourierProcess>();
const clients: Client[] = [];
const acked: Acked[] = [];
const faults: FaultRecord[] = [];
const wills = new Map<string, number>();
let published = 0;

function env(): Record<string, string> {
  return { COURIER_CLUSTER__LEASE_MS: String(LEASE_MS), COURIER_CLUSTER__HEARTBEAT_MS: String(HEARTBEAT_MS), COURIER_CLUSTER__PREFIX: PREFIX };
}

async function startNode(i: number): Promise<CourierProcess> {
  const prev = nodes[i];
  const proc =
    prev === undefined
      ? await startCourier(group, { args: ['--cluster-redis', redis.url, '--node-name', NAMES[i]!], env: env(), wsPort: 'off' })
      : await prev.restart();
  nodes[i] = proc;
  allProcs.push({ name: NAMES[i]!, proc });
  return proc;
}

/** Starts node i again until it is ready (a start can be refused while Redis restarts). */
async function restartNode(i: number): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await startNode(i);
      return;
    } catch (err) {
      if (attempt >= 5) throw err;
      log(`restart of ${NAMES[i]} failed (attempt ${attempt}): ${(err as Error).message.split('\n')[0]}`);
      await sleep(1000);
    }
  }
}

function ports(home: number): Array<{ host: string; port: number }> {
  return [0, 1, 2].map((k) => ({ host: '127.0.0.1', port: nodes[(home + k) % 3]!.port }));
}

function connect(cid: string, home: number, opts: IClientOptions): Promise<Client> {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect({
      servers: ports(home),
      protocolVersion: 5,
      clientId: cid,
      reconnectPeriod: 200,
      connectTimeout: 5000,
      keepalive: 5,
      // A node refuses CONNECT with 0x88 while it cannot reach Redis; MQTT.js gives up after a
      // refused CONNACK unless told otherwise.
      reconnectOnConnackError: true,
      ...opts,
    });
    const client: Client = { cid, c, subs: new Map(), got: new Map(), times: new Map(), lostSessions: 0, connects: 0 };
    c.on('connect', (ack) => {
      client.connects++;
      if (client.connects > 1 && opts.clean === false && !ack.sessionPresent) {
        client.lostSessions++;
        anomalies.push(`${stamp()} ${cid}: reconnected with Session Present 0 (persistent session lost) on port ${portOf(c)}`);
      }
    });
    c.on('message', (topic, payload) => {
      let list = client.got.get(topic);
      if (list === undefined) client.got.set(topic, (list = []));
      const text = payload.toString();
      list.push(text);
      if (text.startsWith('pub-q2')) {
        let ts = client.times.get(text);
        if (ts === undefined) client.times.set(text, (ts = []));
        ts.push(Date.now() - t0);
      }
    });
    c.on('error', () => {});
    c.once('connect', () => resolve(client));
    setTimeout(() => reject(new Error(`${cid}: no first CONNACK within 20 s`)), 20_000).unref();
  });
}

function portOf(c: MqttClient): number | undefined {
  const stream = (c as unknown as { stream?: { remotePort?: number } }).stream;
  return stream?.remotePort;
}

const allConnected = (): boolean => clients.every((cl) => cl.c.connected);

async function nidOf(name: string): Promise<number | undefined> {
  const v = await admin.get(`${PREFIX}name:${name}`);
  return v === null ? undefined : Number(v);
}

/** Reports (and restarts) a node that exited without being told to. */
async function checkCrashes(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    const n = nodes[i]!;
    const exit = n.exit();
    if (exit !== undefined && !expectedExit.has(n)) {
      const tail = n
        .logs()
        .slice(-5)
        .map((l) => JSON.stringify(l))
        .join('\n    ');
      violations.push(
        `node ${NAMES[i]} (pid ${n.pid}) exited on its own: ${exit.code ?? exit.signal}\n    ${tail}\n    ${n.otherOutput().slice(-5).join('\n    ')}`,
      );
      expectedExit.add(n);
      await restartNode(i);
    }
  }
}

async function waitRecovered(nid: number | undefined, rec: FaultRecord, start: number): Promise<void> {
  if (nid === undefined) return;
  try {
    await pollUntil(async () => (await admin.exists(`${PREFIX}dead:${nid}`)) === 1 && (await admin.sismember(`${PREFIX}orphans`, String(nid))) === 0, {
      what: `incarnation ${nid} recovered`,
      timeoutMs: 30_000,
      intervalMs: 50,
    });
    rec.recoveredMs = Date.now() - start;
  } catch (err) {
    rec.note = (err as Error).message;
  }
}

async function inject(kind: Fault): Promise<void> {
  const i = between(0, 3);
  const rec: FaultRecord = { at: Date.now() - t0, kind };
  faults.push(rec);
  const start = Date.now();
  if (kind === 'redis') {
    const down = between(200, 1500);
    log(`fault: kill -9 redis-server (pid ${redis.pid}), down ${down} ms`);
    await redis.kill9();
    await sleep(down);
    await redis.restart();
    log(`redis-server back (pid ${redis.pid})`);
  } else {
    const name = NAMES[i]!;
    rec.node = name;
    const n = nodes[i]!;
    const nid = await nidOf(name).catch(() => undefined);
    if (kind === 'kill') {
      const down = between(500, 3000);
      log(`fault: kill -9 ${name} (pid ${n.pid}, nid ${nid}), restart after ${down} ms`);
      expectedExit.add(n);
      await n.sigkill();
      const recovered = waitRecovered(nid, rec, start);
      await sleep(down);
      await restartNode(i);
      await recovered;
    } else if (kind === 'stop') {
      const pause = LEASE_MS + between(1000, 3000);
      log(`fault: SIGSTOP ${name} (pid ${n.pid}, nid ${nid}) for ${pause} ms`);
      n.sigstop();
      const recovered = waitRecovered(nid, rec, start);
      await sleep(pause);
      n.sigcont();
      await recovered;
    } else {
      log(`fault: SIGTERM ${name} (pid ${n.pid}, nid ${nid}) and restart`);
      expectedExit.add(n);
      await restartNode(i);
    }
  }
  try {
    await pollUntil(allConnected, { what: 'every client connected again', timeoutMs: 30_000, intervalMs: 50 });
    rec.reconnectMs = Date.now() - start;
  } catch {
    const missing = clients.filter((cl) => !cl.c.connected).map((cl) => cl.cid);
    rec.note = `${rec.note ?? ''} not all clients back within 30 s: ${missing.join(', ')}`.trim();
    anomalies.push(
      `${stamp()} after ${kind}${rec.node ? ` ${rec.node}` : ''}: ${missing.length} clients not reconnected within 30 s (${missing.slice(0, 5).join(', ')})`,
    );
  }
  log(`  recovered: clients back ${rec.reconnectMs ?? '-'} ms, incarnation recovered ${rec.recoveredMs ?? '-'} ms${rec.note ? ` (${rec.note})` : ''}`);
}

/** A publisher loop: paced, at most `window` unacknowledged; stops when `running()` is false. */
async function publishLoop(p: Client, qos: 1 | 2, running: () => boolean): Promise<void> {
  const window = 8;
  let inflight = 0;
  let seq = 0;
  const pending = new Set<Promise<void>>();
  const interval = 1000 / RATE;
  let next = Date.now();
  while (running()) {
    if (inflight >= window) {
      await Promise.race([...pending, sleep(1000)]);
      continue;
    }
    const wait = next - Date.now();
    if (wait > 0) await sleep(wait);
    next += interval;
    if (Date.now() - next > 2000) next = Date.now(); // do not burst after a stall
    const topic = `chaos/t/${seq % TOPICS}`;
    const payload = `${p.cid}:${seq++}`;
    inflight++;
    published++;
    const pr: Promise<void> = p.c.publishAsync(topic, payload, { qos }).then(
      () => {
        acked.push({ topic, payload, qos, at: Date.now() - t0 });
      },
      () => {},
    );
    const tracked = pr.finally(() => {
      inflight--;
      pending.delete(tracked);
    });
    pending.add(tracked);
  }
  // Drain: wait (bounded) for what is still in flight.
  await Promise.race([Promise.all(pending), sleep(30_000)]);
}

function deliveryStats(): { expected: number; delivered: number; lost: Array<{ cid: string; topic: string; payload: string }>; dup2: number; dup1: number } {
  let expected = 0;
  let delivered = 0;
  let dup2 = 0;
  let dup1 = 0;
  const lost: Array<{ cid: string; topic: string; payload: string }> = [];
  const byTopic = new Map<string, Acked[]>();
  for (const a of acked) {
    let list = byTopic.get(a.topic);
    if (list === undefined) byTopic.set(a.topic, (list = []));
    list.push(a);
  }
  for (const cl of clients) {
    for (const [topic, subQos] of cl.subs) {
      if (!topic.startsWith('chaos/t/')) continue;
      const got = cl.got.get(topic) ?? [];
      const gotSet = new Set(got);
      delivered += got.length;
      for (const a of byTopic.get(topic) ?? []) {
        expected++;
        if (!gotSet.has(a.payload)) lost.push({ cid: cl.cid, topic, payload: a.payload });
      }
      const counts = new Map<string, number>();
      for (const p of got) counts.set(p, (counts.get(p) ?? 0) + 1);
      for (const [p, n] of counts) {
        if (n < 2) continue;
        const q2 = p.startsWith('pub-q2') && subQos === 2;
        if (q2) dup2 += n - 1;
        else dup1 += n - 1;
      }
    }
  }
  return { expected, delivered, lost, dup2, dup1 };
}

/**
 * Where QoS 2 duplicates come from: a payload that every QoS 2 subscriber of its topic got twice
 * was routed twice (publisher side); one that only some got twice was delivered twice to those
 * sessions (delivery side). Each is shown with the fault just before its second receipt.
 */
function analyseDuplicates(): void {
  const q2subs = new Map<string, Client[]>();
  for (const cl of clients)
    for (const [topic, q] of cl.subs)
      if (q === 2 && topic.startsWith('chaos/t/')) {
        const list = q2subs.get(topic) ?? [];
        list.push(cl);
        q2subs.set(topic, list);
      }
  const topicOf = new Map(acked.map((a) => [a.payload, a.topic]));
  let publisherSide = 0;
  let deliverySide = 0;
  const byFault = new Map<string, number>();
  const examples: string[] = [];
  const seen = new Set<string>();
  for (const cl of clients)
    for (const [payload, ts] of cl.times) {
      if (ts.length < 2 || seen.has(payload) || cl.subs.get(topicOf.get(payload) ?? '') !== 2) continue;
      seen.add(payload);
      const topic = topicOf.get(payload);
      const subs = topic === undefined ? [] : (q2subs.get(topic) ?? []);
      const twice = subs.filter((s) => (s.times.get(payload)?.length ?? 0) >= 2);
      const all = twice.length === subs.length;
      if (all) publisherSide++;
      else deliverySide++;
      const second = ts[1]!;
      const fault = [...faults].reverse().find((f) => f.at <= second);
      const key = `${all ? 'publisher' : 'delivery'} side after ${fault ? `${fault.kind} ${fault.node ?? ''}`.trim() : 'no fault'}`;
      byFault.set(key, (byFault.get(key) ?? 0) + 1);
      if (examples.length < 12)
        examples.push(
          `${payload} (${topic}): ${twice.length}/${subs.length} QoS 2 subscribers got it twice, e.g. ${cl.cid} at ${ts.map((t) => (t / 1000).toFixed(2)).join(' s, ')} s; last fault before: ${fault ? `${fault.kind} ${fault.node ?? ''} at ${(fault.at / 1000).toFixed(1)} s` : '-'}`,
        );
    }
  console.log(
    `QoS 2 duplicates by payload: ${publisherSide} routed twice (every QoS 2 subscriber got them twice), ${deliverySide} delivered twice to some sessions only`,
  );
  for (const [k, v] of [...byFault].sort((a, b) => b[1] - a[1])) console.log(`  ${v} payloads: ${k}`);
  for (const e of examples) console.log(`  ${e}`);
}

async function checkRoutes(): Promise<void> {
  const live = (await admin.zrange(`${PREFIX}nodes`, '0', '-1')).map(Number).sort((a, b) => a - b);
  const byName = new Map<string, number>();
  for (const name of NAMES) byName.set(name, (await nidOf(name)) ?? -1);
  const liveByName = [...byName.values()].sort((a, b) => a - b);
  if (JSON.stringify(live) !== JSON.stringify(liveByName)) {
    violations.push(`routes: the nodes ZSET holds ${JSON.stringify(live)}, the live incarnations (name:c*) are ${JSON.stringify(liveByName)}`);
  }
  // Expected: the filters of the clients connected to each node.
  const portToNid = new Map<number, number>();
  NAMES.forEach((name, i) => portToNid.set(nodes[i]!.port, byName.get(name)!));
  const expected = new Map<number, Set<string>>();
  for (const nid of liveByName) expected.set(nid, new Set());
  for (const cl of clients) {
    const port = portOf(cl.c);
    const nid = port === undefined ? undefined : portToNid.get(port);
    if (nid === undefined) {
      violations.push(`routes: ${cl.cid} is not connected to a known node (port ${port})`);
      continue;
    }
    for (const f of cl.subs.keys()) expected.get(nid)!.add(f);
  }
  for (const nid of liveByName) {
    const actual = new Set(await admin.smembers(`${PREFIX}r:${nid}`));
    const want = expected.get(nid)!;
    const missing = [...want].filter((f) => !actual.has(f));
    const extra = [...actual].filter((f) => !want.has(f));
    log(`routes r:${nid}: ${actual.size} filters (expected ${want.size})`);
    if (missing.length > 0 || extra.length > 0) {
      violations.push(`routes: r:${nid} differs from its clients' interest: missing ${JSON.stringify(missing)}, extra ${JSON.stringify(extra)}`);
    }
  }
  // Every node's in-memory table: a probe published on each node reaches every subscriber of its topic.
  const probers: Client[] = [];
  for (let i = 0; i < 3; i++) {
    // A node that the last fault made rejoin answers CONNACK 0x88 for a moment: try again.
    const deadline = Date.now() + 15_000;
    for (;;) {
      const c = mqtt.connect(`mqtt://127.0.0.1:${nodes[i]!.port}`, { protocolVersion: 5, clientId: `probe-${i}`, reconnectPeriod: 0 });
      c.on('error', () => {});
      const ok = await new Promise<boolean>((resolve, reject) => {
        c.once('connect', () => resolve(true));
        c.once('error', (err) => ((err as { code?: number }).code === 136 && Date.now() < deadline ? resolve(false) : reject(err)));
        setTimeout(() => reject(new Error(`probe-${i}: no CONNACK from ${NAMES[i]} within 10 s`)), 10_000).unref();
      });
      if (ok) {
        probers.push({ cid: `probe-${i}`, c, subs: new Map(), got: new Map(), times: new Map(), lostSessions: 0, connects: 1 });
        break;
      }
      c.end(true);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  for (let i = 0; i < 3; i++) {
    for (let t = 0; t < TOPICS; t++) await probers[i]!.c.publishAsync(`chaos/t/${t}`, `probe-${i}-${t}`, { qos: 1 });
  }
  const missingProbe = (): string[] => {
    const out: string[] = [];
    for (const cl of clients)
      for (const topic of cl.subs.keys()) {
        if (!topic.startsWith('chaos/t/')) continue;
        const t = topic.slice('chaos/t/'.length);
        const got = new Set(cl.got.get(topic) ?? []);
        for (let i = 0; i < 3; i++) if (!got.has(`probe-${i}-${t}`)) out.push(`${cl.cid} <- ${NAMES[i]} ${topic}`);
      }
    return out;
  };
  await pollUntil(() => missingProbe().length === 0, { what: 'probes delivered', timeoutMs: 10_000 }).catch(() => undefined);
  const miss = missingProbe();
  log(`probes: ${3 * TOPICS} published (one per node and topic), ${miss.length} deliveries missing`);
  if (miss.length > 0)
    violations.push(
      `routes: probes not delivered (a node's table lacks a route): ${miss.slice(0, 20).join('; ')}${miss.length > 20 ? ` … (${miss.length})` : ''}`,
    );
  await Promise.all(probers.map((p) => p.c.endAsync()));
}

async function endSessions(): Promise<void> {
  // Disconnect normally (no will), then end every persistent session: clean start, expiry 0.
  const ids = clients.map((cl) => cl.cid);
  await Promise.all(clients.map((cl) => cl.c.endAsync().catch(() => {})));
  for (const [k, cid] of ids.entries()) {
    const port = nodes[k % 3]!.port;
    const c = mqtt.connect(`mqtt://127.0.0.1:${port}`, {
      protocolVersion: 5,
      clientId: cid,
      clean: true,
      properties: { sessionExpiryInterval: 0 },
      reconnectPeriod: 0,
    });
    c.on('error', () => {});
    const ok = await new Promise<boolean>((resolve) => {
      c.once('connect', () => resolve(true));
      c.once('error', () => resolve(false));
      c.once('close', () => resolve(false));
      setTimeout(() => resolve(false), 10_000).unref();
    });
    if (!ok) violations.push(`(c) could not end the session of ${cid} (no CONNACK from ${NAMES[k % 3]} within 10 s)`);
    c.end(true);
  }
}

async function checkKeys(): Promise<void> {
  const live = new Set((await admin.zrange(`${PREFIX}nodes`, '0', '-1')).map(Number));
  const fixed = new Set(['node:seq', 'nodes', 'r:log', 'ret', 'ret:ver', 'ret:log', 'epoch', 'fence:seq']);
  const leaks = async (): Promise<string[]> => {
    const out: string[] = [];
    const all = await admin.keys(`${PREFIX}*`);
    for (const key of all.sort()) {
      const k = key.slice(PREFIX.length);
      if (fixed.has(k)) continue;
      const m = /^(node|r|in|stats|dead|moved|name|own|rec|recover|done|pipe):(.+)$/.exec(k);
      const ttl = await admin.pttl(key);
      if (m !== null) {
        const [, kind, rest] = m;
        const nid = Number(rest);
        if ((kind === 'node' || kind === 'r' || kind === 'in') && live.has(nid)) continue;
        if (kind === 'stats' && (live.has(nid) || ttl > 0)) continue;
        // done:<store id>: a store's record of its commit calls (store-scripts.ts COMMIT), expiring by itself.
        if ((kind === 'dead' || kind === 'moved' || kind === 'done') && ttl > 0) continue;
        // pipe:<nid>: a live incarnation's pipeline calls (scripts.ts guard), deleted with it, expiring by itself.
        if (kind === 'pipe' && live.has(nid) && ttl > 0) continue;
        if (kind === 'name' && (NAMES as readonly string[]).includes(rest!)) continue;
      }
      const type = await admin.type(key);
      const size =
        type === 'set'
          ? `${await admin.scard(key)} members`
          : type === 'hash'
            ? `${await admin.hlen(key)} fields`
            : type === 'stream'
              ? `${await admin.xlen(key)} entries`
              : type === 'zset'
                ? `${await admin.zcard(key)} members`
                : type;
      out.push(`${k} (${type}, ${size}, ttl ${ttl})`);
    }
    return out;
  };
  let left: string[] = [];
  await pollUntil(
    async () => {
      left = await leaks();
      return left.length === 0;
    },
    { what: 'no leaked keys', timeoutMs: 15_000, intervalMs: 250 },
  ).catch(() => undefined);
  const total = (await admin.keys(`${PREFIX}*`)).length;
  log(`keys under ${PREFIX}: ${total}, unexpected: ${left.length}`);
  if (left.length > 0) violations.push(`leaked keys (${left.length}): ${left.slice(0, 30).join('; ')}${left.length > 30 ? ' …' : ''}`);
}

const percentile = (xs: number[], p: number): number => percentileOf(sortedNumbers(xs), p / 100);

async function main(): Promise<void> {
  log(`chaos-cluster: seed ${SEED}, ${MINUTES} min, ${SUBSCRIBERS} subscribers, ${TOPICS} topics, 2 QoS 1 + 2 QoS 2 publishers at ${RATE} msg/s each`);
  redis = await startRedisServer({ appendonly: true, appendfsync: 'always' });
  admin = redis.client({ maxRetriesPerRequest: 20, retryStrategy: () => 100 });
  log(`redis-server pid ${redis.pid} on ${redis.url}`);
  for (let i = 0; i < 3; i++) await startNode(i);
  log(`nodes: ${nodes.map((n, i) => `${NAMES[i]} pid ${n.pid} port ${n.port} (${n.entry})`).join(', ')}`);

  const witness = await connect('witness', 0, { clean: true });
  witness.c.on('message', (topic) => {
    if (topic.startsWith('will/')) wills.set(topic, (wills.get(topic) ?? 0) + 1);
  });
  await witness.c.subscribeAsync('will/#', { qos: 1 });
  witness.subs.set('will/#', 1);
  clients.push(witness);
  for (let i = 0; i < SUBSCRIBERS; i++) {
    const cid = `sub-${i}`;
    const cl = await connect(cid, i % 3, {
      clean: false,
      properties: { sessionExpiryInterval: 3600 },
      will: { topic: `will/${cid}`, payload: Buffer.from('gone'), qos: 1, retain: false },
    });
    const qos = (i % 2 === 0 ? 1 : 2) as 1 | 2;
    const topic = `chaos/t/${i % TOPICS}`;
    await cl.c.subscribeAsync(topic, { qos });
    cl.subs.set(topic, qos);
    clients.push(cl);
  }
  const pubs: Array<{ cl: Client; qos: 1 | 2 }> = [];
  for (const [j, qos] of ([1, 1, 2, 2] as const).entries()) {
    const cl = await connect(`pub-q${qos}-${j}`, j % 3, { clean: false, properties: { sessionExpiryInterval: 3600 } });
    clients.push(cl);
    pubs.push({ cl, qos });
  }
  // Every node's routes are in Redis before the load starts.
  const perHome = [new Set<number>(), new Set<number>(), new Set<number>()];
  for (let i = 0; i < SUBSCRIBERS; i++) perHome[i % 3]!.add(i % TOPICS);
  const routeCount = perHome.reduce((n, set) => n + set.size, 0);
  await pollUntil(
    async () => {
      let n = 0;
      for (const key of await admin.keys(`${PREFIX}r:[0-9]*`)) n += (await admin.smembers(key)).filter((f) => f.startsWith('chaos/t/')).length;
      return n >= routeCount;
    },
    { what: 'routes in Redis', timeoutMs: 15_000 },
  );

  let running = true;
  const loops = pubs.map((p) => publishLoop(p.cl, p.qos, () => running));
  const until = Date.now() + MINUTES * 60_000;
  const counts: Record<Fault, number> = { kill: 0, stop: 0, redis: 0, term: 0 };
  while (Date.now() < until) {
    await sleep(between(2000, 6000));
    if (Date.now() >= until) break;
    await checkCrashes();
    const kind = FAULTS[between(0, FAULTS.length)]!;
    counts[kind]++;
    try {
      await inject(kind);
    } catch (err) {
      violations.push(`fault ${kind} could not be carried out: ${(err as Error).message.split('\n').slice(0, 3).join(' | ')}`);
      log(`fault ${kind} failed: ${(err as Error).message.split('\n')[0]}`);
    }
    log(`published ${published}, acknowledged ${acked.length}`);
  }
  await checkCrashes();
  log('fault loop over: publishers stop, draining');
  running = false;
  await Promise.all(loops);
  await pollUntil(allConnected, { what: 'every client connected', timeoutMs: 30_000 }).catch(() => undefined);
  const drainStart = Date.now();
  await pollUntil(() => deliveryStats().lost.length === 0, { what: 'deliveries settled', timeoutMs: 60_000, intervalMs: 250 }).catch(() => undefined);
  // Let late duplicates show up too.
  await sleep(2000);
  const d = deliveryStats();
  log(`drained in ${Date.now() - drainStart} ms`);

  // (a), (b)
  if (d.lost.length > 0) {
    const byClient = new Map<string, number>();
    for (const l of d.lost) byClient.set(l.cid, (byClient.get(l.cid) ?? 0) + 1);
    violations.push(
      `(a) ${d.lost.length} acknowledged deliveries lost, per client: ${JSON.stringify(Object.fromEntries(byClient))}; first: ${d.lost
        .slice(0, 10)
        .map((l) => `${l.cid} ${l.topic} ${l.payload}`)
        .join(', ')}`,
    );
    const atOf = new Map(acked.map((a) => [a.payload, a.at]));
    const perTopic = new Map<string, number[]>();
    for (const l of d.lost) perTopic.set(l.topic, [...(perTopic.get(l.topic) ?? []), atOf.get(l.payload) ?? -1]);
    // Per subscriber, the acknowledgement times of what it lost, in runs (wall clock too, to match the nodes' logs).
    const perClient = new Map<string, number[]>();
    for (const l of d.lost) perClient.set(l.cid, [...(perClient.get(l.cid) ?? []), atOf.get(l.payload) ?? -1]);
    for (const [cid, ats] of perClient) {
      const sorted = [...ats].sort((x, y) => x - y);
      const runs: Array<[number, number, number]> = [];
      for (const at of sorted) {
        const last = runs[runs.length - 1];
        if (last !== undefined && at - last[1] < 500) {
          last[1] = at;
          last[2]++;
        } else runs.push([at, at, 1]);
      }
      const wall = (ms: number): string => new Date(t0 + ms).toISOString().slice(11, 23);
      console.log(
        `lost by ${cid}: ${runs.map(([lo, hi, n]) => `${n} acked ${(lo / 1000).toFixed(2)}–${(hi / 1000).toFixed(2)} s (${wall(lo)}–${wall(hi)} UTC)`).join('; ')}`,
      );
    }
    for (const [topic, ats] of perTopic) {
      const lo = Math.min(...ats) / 1000;
      const hi = Math.max(...ats) / 1000;
      const fault = [...faults].reverse().find((f) => f.at <= lo * 1000);
      console.log(
        `lost on ${topic}: ${ats.length} deliveries, acknowledged between ${lo.toFixed(2)} s and ${hi.toFixed(2)} s; last fault before: ${fault ? `${fault.kind} ${fault.node ?? ''} at ${(fault.at / 1000).toFixed(1)} s` : '-'}`,
      );
    }
  }
  if (d.dup2 > 0) {
    violations.push(`(b) ${d.dup2} duplicate QoS 2 deliveries`);
    analyseDuplicates();
  }

  // (d) routes, then (c) keys.
  await checkRoutes();
  await endSessions();
  await pollUntil(async () => (await admin.scard(`${PREFIX}orphans`)) === 0, { what: 'orphans recovered', timeoutMs: 20_000 }).catch(() => undefined);
  await checkKeys();

  // Log lines of the nodes at level error/fatal (pino levels as strings or numbers).
  const bad = new Map<string, number>();
  for (const { name, proc } of allProcs) {
    for (const l of proc.logs() as readonly LogLine[]) {
      const lvl = String(l.level);
      if (lvl === 'error' || lvl === 'fatal' || lvl === '50' || lvl === '60') {
        const key = `${name} ${lvl}: ${l.msg}${typeof l.err === 'object' && l.err !== null ? ` (${String((l.err as { message?: unknown }).message)})` : ''}`;
        bad.set(key, (bad.get(key) ?? 0) + 1);
      }
    }
    for (const line of proc.otherOutput())
      if (/Error|error/.test(line)) bad.set(`${name} ${line.slice(0, 200)}`, (bad.get(`${name} ${line.slice(0, 200)}`) ?? 0) + 1);
  }

  // Report.
  const perSub = clients.filter((c) => c.cid.startsWith('sub-'));
  const recov = faults.filter((f) => f.recoveredMs !== undefined).map((f) => f.recoveredMs!);
  const back = (kind: Fault): number[] => faults.filter((f) => f.kind === kind && f.reconnectMs !== undefined).map((f) => f.reconnectMs!);
  console.log('\n===== chaos-cluster report =====');
  console.log(`seed ${SEED}, ${MINUTES} min of faults, lease ${LEASE_MS} ms, heartbeat ${HEARTBEAT_MS} ms, redis appendfsync always`);
  console.log(
    `faults injected: ${faults.length} (${Object.entries(counts)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')})`,
  );
  console.log(
    `messages published ${published}, acknowledged ${acked.length} (QoS 1 ${acked.filter((a) => a.qos === 1).length}, QoS 2 ${acked.filter((a) => a.qos === 2).length})`,
  );
  console.log(
    `deliveries expected ${d.expected}, received ${d.delivered}, lost ${d.lost.length}, QoS 2 duplicates ${d.dup2}, QoS 1 duplicates ${d.dup1} (allowed)`,
  );
  console.log(
    `subscriber reconnects ${perSub.reduce((s, c) => s + c.connects - 1, 0)}, with Session Present 0: ${perSub.reduce((s, c) => s + c.lostSessions, 0)}`,
  );
  console.log(`wills received ${[...wills.values()].reduce((s, n) => s + n, 0)} (for ${wills.size} client ids)`);
  for (const kind of FAULTS) {
    const xs = back(kind);
    if (xs.length > 0) console.log(`clients all back after ${kind}: n=${xs.length} p50 ${percentile(xs, 50)} ms, max ${Math.max(...xs)} ms`);
  }
  if (recov.length > 0)
    console.log(`dead incarnation recovered (kill/stop → recovered): n=${recov.length} p50 ${percentile(recov, 50)} ms, max ${Math.max(...recov)} ms`);
  if (bad.size > 0) {
    console.log('node log lines at error/fatal (count):');
    for (const [k, v] of [...bad].sort((a, b) => b[1] - a[1]).slice(0, 25)) console.log(`  ${v}× ${k}`);
  }
  if (anomalies.length > 0) {
    console.log(`anomalies (${anomalies.length}, not invariants):`);
    for (const a of anomalies.slice(0, 30)) console.log(`  ${a}`);
  }
  console.log('faults:');
  for (const f of faults)
    console.log(
      `  ${(f.at / 1000).toFixed(1).padStart(6)} s ${f.kind.padEnd(5)} ${(f.node ?? '').padEnd(3)} back ${f.reconnectMs ?? '-'} ms, recovered ${f.recoveredMs ?? '-'} ms${f.note ? `  ${f.note}` : ''}`,
    );
  if (violations.length === 0) console.log('RESULT: OK, no invariant violated');
  else {
    console.log(`RESULT: ${violations.length} VIOLATION(S)`);
    for (const v of violations) console.log(`  - ${v}`);
  }
}

function saveLogs(): void {
  mkdirSync(LOG_DIR, { recursive: true });
  for (const { name, proc } of allProcs) {
    const lines = [...proc.logs().map((l) => JSON.stringify(l)), ...proc.otherOutput()];
    writeFileSync(join(LOG_DIR, `${name}-${proc.pid}.log`), lines.join('\n') + '\n');
  }
  if (redis !== undefined) writeFileSync(join(LOG_DIR, `redis-${redis.pid}.log`), redis.process.stdout());
  console.log(`node logs: ${LOG_DIR}`);
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    console.error(`chaos: ${sig}, stopping`);
    saveLogs();
    process.exit(130); // the exit hook of test/helpers/processes.ts SIGKILLs what we started
  });
}

let failed = false;
try {
  await main();
} catch (err) {
  console.error('chaos-cluster failed:', err);
  failed = true;
} finally {
  for (const cl of clients) cl.c.end(true);
  admin?.disconnect();
  await group.killAll().catch(() => {});
  saveLogs();
  await redis?.close().catch(() => {});
}
process.exit(failed ? 2 : violations.length === 0 ? 0 : 1);
