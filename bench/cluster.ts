/**
 * Cluster benchmark: what Courier's Redis cluster mode costs per message, and Aedes on the same
 * Redis (mqemitter-redis + aedes-persistence-redis) under the same load.
 *
 *   npm run bench:cluster -- [--duration 5] [--warmup 1] [--rounds 1] [--local-rounds 2]
 *                            [--publishers 20] [--window 100] [--qos1-window 32] [--payload 64]
 *                            [--brokers courier,aedes] [--time-limit 300]
 *                            [--server-cpu 0] [--gen-cpu 1] [--workers 2] [--json]   (--help)
 *
 * Starts its own redis-server (AOF, fsync every second, no RDB, its own temp dir) and its own
 * Courier nodes (`bin/courier.js`, dist/ rebuilt first when stale, in-memory store, `--port 0`:
 * the port is read from the node's "listening on" log line), all on 127.0.0.1. Every process it
 * starts is stopped by PID at the end, on error and on SIGINT/SIGTERM. The nodes inherit the
 * environment, so COURIER_* variables (e.g. COURIER_CLUSTER__HEARTBEAT_MS) reach them; the store
 * is always the in-memory one. Aedes instances are bench/brokers/aedes-cluster.ts (through tsx),
 * in Redis database 1, flushed before each set. Exit code 1 when a scenario failed (its row says
 * why). No scenario starts after --time-limit; the run is stopped a minute after it.
 *
 * Scenarios (a fresh set of nodes for each, one Redis for the run with a key prefix per cluster):
 *   local  QoS 0 fan-in, publishers and subscriber on one node: a single node (no cluster) vs a
 *          1-node cluster; rounds alternate, medians reported.
 *   cross  QoS 0 fan-in and QoS 1 (window per publisher), publishers on node 1, one subscriber
 *          on each other node (2 and 3 nodes): every delivered message crossed Redis once.
 *   Aedes  the same, instances for nodes: local-only without Redis (in-memory emitter) vs one
 *          instance on Redis, cross-node with 2 and 3 instances on Redis.
 *
 * The load generator is the one of `npm run bench` (bench/loadgen/: raw MQTT over net sockets in
 * worker threads) running in this process, pinned with all its threads to --gen-cpu; redis-server
 * and the nodes are pinned to --server-cpu. CPU time: /proc/PID/stat for the nodes, INFO cpu for
 * Redis, process.cpuUsage() for the generator, all read at the edges of the measured window.
 */
import { execFileSync, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { freePort, killAll, pinnedSpawn } from './brokers/index.js';
import { Pool, type Totals } from './loadgen/pool.js';
import { PAYLOAD_HEADER, type ConnSpec } from './loadgen/protocol.js';
import { allowedCpus, cpuMicros } from './proc.js';
import { median as medianOf, percentile } from './stats.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const REDIS_SERVER = process.env.COURIER_REDIS_SERVER ?? '/usr/bin/redis-server';

const HELP = `Usage: npm run bench:cluster -- [options]
  --duration S        measured window per scenario, seconds (default 5)
  --warmup S          load before the window, seconds (default 1)
  --rounds N          rounds of the cross-node scenarios, medians reported (default 1)
  --local-rounds N    rounds of single node vs 1-node cluster, alternating (default 2)
  --publishers N      publishers, all on node 1 (default 20)
  --window N          QoS 0: messages in flight (sent, not yet received everywhere) per publisher (default 100)
  --qos1-window N     QoS 1: unacknowledged PUBLISH per publisher (default 32)
  --batch N           QoS 0: messages per write(), at most half the window (default 64)
  --payload BYTES     payload size, ≥ ${PAYLOAD_HEADER} (default 64)
  --workers N         generator worker threads (default 2: subscribers | publishers)
  --brokers LIST      courier,aedes (default both): Aedes runs the same scenarios with
                      mqemitter-redis and aedes-persistence-redis on the same redis-server
  --time-limit S      skip the scenarios that would start after S seconds (default 300)
  --server-cpu C      CPU list for redis-server and the nodes (default 0)
  --gen-cpu C         CPU list for this process, the load generator (default 1)
  --json              print the results as JSON instead of Markdown
`;

interface Cli {
  durationMs: number;
  warmupMs: number;
  rounds: number;
  localRounds: number;
  publishers: number;
  window: number;
  qos1Window: number;
  batch: number;
  payload: number;
  workers: number;
  brokers: Broker[];
  timeLimitMs: number;
  serverCpu: string;
  genCpu: string;
  json: boolean;
}

function parseCli(argv: string[]): Cli {
  const { values } = parseArgs({
    args: argv,
    options: {
      duration: { type: 'string', default: '5' },
      warmup: { type: 'string', default: '1' },
      rounds: { type: 'string', default: '1' },
      'local-rounds': { type: 'string', default: '2' },
      publishers: { type: 'string', default: '20' },
      window: { type: 'string', default: '100' },
      'qos1-window': { type: 'string', default: '32' },
      batch: { type: 'string', default: '64' },
      payload: { type: 'string', default: '64' },
      workers: { type: 'string', default: '2' },
      brokers: { type: 'string', default: 'courier,aedes' },
      'time-limit': { type: 'string', default: '300' },
      'server-cpu': { type: 'string', default: '0' },
      'gen-cpu': { type: 'string', default: '1' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    process.exit(0);
  }
  const num = (name: string, v: string, min: number): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < min) throw new Error(`--${name} must be a number ≥ ${min}`);
    return n;
  };
  const int = (name: string, v: string, min: number): number => Math.floor(num(name, v, min));
  const brokers = [
    ...new Set(
      values.brokers
        .split(',')
        .map((x) => x.trim())
        .filter((x) => x !== ''),
    ),
  ];
  for (const x of brokers) if (!(BROKERS as readonly string[]).includes(x)) throw new Error(`--brokers: unknown broker ${x} (${BROKERS.join(', ')})`);
  if (brokers.length === 0) throw new Error('--brokers: none given');
  return {
    durationMs: num('duration', values.duration, 0.1) * 1000,
    warmupMs: num('warmup', values.warmup, 0) * 1000,
    rounds: int('rounds', values.rounds, 1),
    localRounds: int('local-rounds', values['local-rounds'], 1),
    publishers: int('publishers', values.publishers, 1),
    window: int('window', values.window, 2),
    qos1Window: int('qos1-window', values['qos1-window'], 1),
    batch: int('batch', values.batch, 1),
    payload: int('payload', values.payload, PAYLOAD_HEADER),
    workers: int('workers', values.workers, 1),
    brokers: BROKERS.filter((x) => brokers.includes(x)),
    timeLimitMs: num('time-limit', values['time-limit'], 1) * 1000,
    serverCpu: values['server-cpu'],
    genCpu: values['gen-cpu'],
    json: values.json,
  };
}

// -------------------------------------------------------------------------------------------------
// Processes: everything started here is tracked (pinnedSpawn) and stopped by PID.

interface Proc {
  name: string;
  pid: number;
  child: ChildProcess;
  output(): string;
}

/** `keepStdin`: leave the child's stdin open (an Aedes node exits when it closes, e.g. when this process dies). */
function spawnPinned(name: string, cpu: string, cmd: string, args: string[], env?: NodeJS.ProcessEnv, keepStdin = false): Proc {
  const child = pinnedSpawn(cpu, 0, cmd, args, env);
  if (child.pid === undefined) throw new Error(`${name}: spawn failed`);
  let out = '';
  const add = (b: Buffer): void => {
    out = (out + b.toString('utf8')).slice(-8000);
  };
  child.stdout?.on('data', add);
  child.stderr?.on('data', add);
  if (!keepStdin) child.stdin?.end();
  return { name, pid: child.pid, child, output: () => out };
}

const gone = (c: ChildProcess): boolean => c.exitCode !== null || c.signalCode !== null;

function waitExit(c: ChildProcess, ms: number): Promise<boolean> {
  if (gone(c)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    c.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/** SIGTERM (a node leaves the cluster, Redis flushes its AOF), SIGKILL after `ms`. */
async function stopProc(p: Proc, ms = 5000): Promise<void> {
  if (gone(p.child)) return;
  p.child.kill('SIGTERM');
  if (await waitExit(p.child, ms)) return;
  p.child.kill('SIGKILL');
  await waitExit(p.child, 2000);
}

/** Polls `p`'s output until `test` finds what it wants; fails when `p` exits first. */
async function waitOutput<T>(p: Proc, ms: number, test: (out: string) => T | undefined): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const found = test(p.output());
    if (found !== undefined) return found;
    if (gone(p.child)) throw new Error(`${p.name} exited (code ${p.child.exitCode}, signal ${p.child.signalCode}): ${p.output().trim().slice(-600)}`);
    if (Date.now() > deadline) throw new Error(`${p.name} not ready in ${ms} ms: ${p.output().trim().slice(-600)}`);
    await sleep(20);
  }
}

interface RedisProc extends Proc {
  port: number;
  url: string;
  client: Redis;
}

async function startRedis(dir: string, cpu: string): Promise<RedisProc> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes', '--appendfsync', 'everysec', '--dir', dir];
    const p = spawnPinned('redis-server', cpu, REDIS_SERVER, [...args, '--daemonize', 'no', '--logfile', '']);
    try {
      await waitOutput(p, 10_000, (out) => (/Ready to accept connections/.test(out) ? true : undefined));
    } catch (err) {
      await stopProc(p, 1000);
      // The free port was taken between the probe and the bind: try another.
      if (attempt < 3 && /Address already in use/i.test(p.output())) continue;
      throw err;
    }
    const client = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 1 });
    client.on('error', () => {});
    await client.connect();
    // Never measure (or stop) a Redis we did not start.
    const pid = Number(/process_id:(\d+)/.exec(await client.info('server'))?.[1]);
    if (pid !== p.pid) {
      client.disconnect();
      await stopProc(p, 1000);
      throw new Error(`Redis on port ${port} has pid ${pid}, ours is ${p.pid}`);
    }
    return { ...p, port, url: `redis://127.0.0.1:${port}`, client };
  }
}

interface RedisSample {
  cpuUs: number;
  xadds: number;
  /** Every command Redis executed, less the INFO of these samples. */
  commands: number;
  /** Calls by command name (INFO commandstats). */
  calls: Map<string, number>;
}

async function redisSample(r: RedisProc): Promise<RedisSample> {
  const info = await r.client.info('cpu');
  const stats = await r.client.info('commandstats');
  const field = (name: string): number => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? NaN);
  let commands = 0;
  const calls = new Map<string, number>();
  for (const m of stats.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    calls.set(m[1]!, Number(m[2]));
    if (m[1] !== 'info') commands += Number(m[2]);
  }
  return {
    cpuUs: (field('used_cpu_sys') + field('used_cpu_user')) * 1e6,
    xadds: Number(/^cmdstat_xadd:calls=(\d+)/m.exec(stats)?.[1] ?? 0),
    commands,
    calls,
  };
}

interface NodeProc extends Proc {
  port: number;
}

const courierBin = path.join(root, 'bin/courier.js');
const aedesNode = path.join(root, 'bench/brokers/aedes-cluster.ts');
/** The Redis database of the Aedes instances (flushed before each set of them); Courier's keys are in 0. */
const AEDES_DB = 1;

/** A Courier node on a free port (`--port 0`, read back from its "listening on" line). */
async function startCourierNode(name: string, cpu: string, dir: string, cluster: { url: string; prefix: string } | null): Promise<NodeProc> {
  const args = [
    courierBin,
    '--port',
    '0',
    '--host',
    '127.0.0.1',
    '--ws-port',
    'off',
    '--admin-port',
    'off',
    '--data-dir',
    path.join(dir, name),
    '--log-level',
    'info',
  ];
  const env: NodeJS.ProcessEnv = { ...process.env, COURIER_PERSISTENCE__ENGINE: 'memory' };
  if (cluster !== null) {
    args.push('--cluster-redis', cluster.url, '--node-name', name);
    env.COURIER_CLUSTER__PREFIX = cluster.prefix;
  }
  const p = spawnPinned(name, cpu, process.execPath, args, env);
  try {
    const port = await waitOutput(p, 30_000, (out) => {
      for (const line of out.split('\n')) {
        if (!line.includes('listening on')) continue;
        const m = /"transport":"tcp"[^}]*"port":(\d+)/.exec(line) ?? /"port":(\d+)/.exec(line);
        if (m !== null) return Number(m[1]);
      }
      return undefined;
    });
    return { ...p, port };
  } catch (err) {
    await stopProc(p, 2000);
    throw err;
  }
}

/**
 * An Aedes instance (bench/brokers/aedes-cluster.ts) on a free port, read back from its
 * `READY <port>` line: mqemitter-redis and aedes-persistence-redis on `redisUrl`, or with
 * `redisUrl` null plain Aedes (in-memory emitter and persistence).
 */
async function startAedesNode(name: string, cpu: string, redisUrl: string | null): Promise<NodeProc> {
  const args = ['--import', 'tsx', aedesNode, '0', redisUrl ?? 'none', name];
  const p = spawnPinned(name, cpu, process.execPath, args, process.env, true);
  try {
    const port = await waitOutput(p, 30_000, (out) => {
      const m = /^READY (\d+)/m.exec(out);
      return m === null ? undefined : Number(m[1]);
    });
    return { ...p, port };
  } catch (err) {
    await stopProc(p, 2000);
    throw err;
  }
}

// -------------------------------------------------------------------------------------------------
// Build, machine

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestMtime(p));
    else if (entry.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

function prepareDist(): void {
  const main = path.join(root, 'dist/cli/main.js');
  if (existsSync(main) && newestMtime(path.join(root, 'src')) <= statSync(main).mtimeMs) return;
  process.stderr.write('bench: building Courier (npm run build)…\n');
  const r = spawnSync('npm', ['run', 'build', '--silent'], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0 && !existsSync(main)) throw new Error('npm run build failed and there is no dist/cli/main.js');
  if (r.status !== 0) process.stderr.write('bench: build reported errors; using what tsc emitted in dist/\n');
}

interface Machine {
  nproc: number;
  cpuModel: string;
  kernel: string;
  node: string;
  redis: string;
  loadStart: number[];
  loadEnd: number[];
  date: string;
}

function machine(): Machine {
  const cpuinfo = existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : '';
  let redis = '?';
  try {
    redis = /v=(\S+)/.exec(execFileSync(REDIS_SERVER, ['--version'], { encoding: 'utf8' }))?.[1] ?? '?';
  } catch {
    // reported as ?
  }
  return {
    nproc: os.cpus().length,
    cpuModel: /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? os.cpus()[0]?.model ?? '?',
    kernel: os.release(),
    node: process.version,
    redis,
    loadStart: loadAvg(),
    loadEnd: [],
    date: new Date().toISOString(),
  };
}

const loadAvg = (): number[] => os.loadavg().map((l) => Math.round(l * 100) / 100);

// -------------------------------------------------------------------------------------------------
// Scenarios

const BROKERS = ['courier', 'aedes'] as const;
type Broker = (typeof BROKERS)[number];
const brokerName = (b: Broker): string => (b === 'courier' ? 'Courier' : 'Aedes');

interface Case {
  broker: Broker;
  group: 'local' | 'cross';
  label: string;
  /** 0 = a single node without a cluster (Aedes: without Redis). */
  clusterNodes: number;
  qos: 0 | 1;
}

interface Result {
  case: Case;
  round: number;
  seconds: number;
  deliveredPerS: number;
  sentPerS: number;
  lossPct: number;
  stalls: number;
  lostConnections: number;
  p50Ms: number;
  p99Ms: number;
  samples: number;
  /** Per node (node 1 first): CPU µs per delivered message, and % of one core. */
  nodeUsPerMsg: number[];
  nodeCpuPct: number[];
  redisUsPerMsg: number | null;
  redisCpuPct: number | null;
  serverUsPerMsg: number;
  genUsPerMsg: number;
  genCpuPct: number;
  /** Forwarded messages per XADD (one inbox entry per destination node and event-loop turn). */
  msgsPerXadd: number | null;
  /** Redis commands (all kinds, from INFO commandstats) per delivered message. */
  redisCmdsPerMsg: number | null;
  /** The same by command, those above 0.005 per message, most first. */
  redisCmdsByName: Record<string, number>;
  error?: string;
}

interface Snapshot {
  t: bigint;
  totals: Totals;
  nodeUs: number[];
  redis: RedisSample | null;
  gen: NodeJS.CpuUsage;
}

async function snapshot(pool: Pool, nodes: NodeProc[], redis: RedisProc | null): Promise<Snapshot> {
  const t = process.hrtime.bigint();
  const totals = pool.totals();
  const nodeUs = nodes.map((n) => cpuMicros(n.pid));
  const gen = process.cpuUsage();
  return { t, totals, nodeUs, gen, redis: redis === null ? null : await redisSample(redis) };
}

async function connect(pool: Pool, worker: number, conns: ConnSpec[]): Promise<void> {
  if (conns.length === 0) return;
  const r = await pool.request(worker, { op: 'connect', conns, window: 64, timeoutMs: 30_000 });
  if (r.op !== 'connected') throw new Error(`connect: ${r.op === 'error' ? r.message : r.op}`);
  if (r.failed > 0) throw new Error(`${r.failed} connection(s) failed: ${r.firstError ?? 'timeout'}`);
}

let clusterSeq = 0;

/** What every scenario shares: the generator's worker pool, Redis, the temporary directory. */
interface Bench {
  cli: Cli;
  pool: Pool;
  redis: RedisProc;
  dir: string;
  /** When the run started (Date.now()), for --time-limit. */
  started: number;
}

/**
 * Starts a set of nodes (a single node, or a cluster of `clusterNodes`), runs `qos` on it one
 * after the other, stops the nodes. Nodes start on every CPU (start-up is not measured and is
 * slow on one shared core) and are pinned to --server-cpu, every thread, once listening.
 * Aedes: `clusterNodes` instances on Redis (its database flushed first), 0 = one without Redis.
 */
async function runTopology(b: Bench, broker: Broker, group: Case['group'], clusterNodes: number, qos: readonly (0 | 1)[], round: number): Promise<Result[]> {
  const cluster = clusterNodes > 0 ? { url: b.redis.url, prefix: `bench${++clusterSeq}:` } : null;
  const cases: Case[] = qos.map((q) => ({ broker, group, clusterNodes, qos: q, label: label(broker, group, clusterNodes) }));
  if (Date.now() - b.started > b.cli.timeLimitMs) {
    const err = new Error(`skipped: the run passed --time-limit ${b.cli.timeLimitMs / 1000} s`);
    for (const c of cases) process.stderr.write(`bench: ${brokerName(broker)} ${c.label}, QoS ${c.qos}: ${err.message}\n`);
    return cases.map((c) => failed(c, round, err));
  }
  const nodes: NodeProc[] = [];
  const everyCpu = `0-${os.cpus().length - 1}`;
  try {
    if (broker === 'aedes' && cluster !== null) {
      // No key prefix in aedes-persistence-redis: a database of its own, emptied of the previous set.
      await b.redis.client.select(AEDES_DB);
      await b.redis.client.flushdb();
      await b.redis.client.select(0);
    }
    for (let i = 0; i < Math.max(1, clusterNodes); i++) {
      const name = `${broker === 'courier' ? 'n' : 'a'}${i + 1}-${clusterSeq}-${round}`;
      nodes.push(
        broker === 'courier'
          ? await startCourierNode(name, everyCpu, b.dir, cluster)
          : await startAedesNode(name, everyCpu, cluster === null ? null : `${b.redis.url}/${AEDES_DB}`),
      );
    }
    for (const n of nodes) pin(n.pid, b.cli.serverCpu);
  } catch (err) {
    await Promise.all(nodes.map((n) => stopProc(n)));
    return cases.map((c) => failed(c, round, err));
  }
  const results: Result[] = [];
  try {
    for (const c of cases) {
      process.stderr.write(`bench: ${brokerName(broker)} ${c.label}, QoS ${c.qos}…`);
      let r: Result;
      try {
        r = await measure(b, c, round, nodes, cluster === null ? null : b.redis);
      } catch (err) {
        r = failed(c, round, err);
        const dead = nodes.filter((n) => gone(n.child));
        if (dead.length > 0) r.error += `; exited: ${dead.map((n) => `${n.name}: ${n.output().trim().slice(-300)}`).join('; ')}`;
      }
      results.push(r);
      process.stderr.write(r.error !== undefined ? ` ERROR ${r.error}\n` : ` ${thousands(r.deliveredPerS)} msg/s\n`);
    }
  } finally {
    // All at once; before Redis stops (a leaving node writes to Redis).
    await Promise.all(nodes.map((n) => stopProc(n)));
  }
  return results;
}

function label(broker: Broker, group: Case['group'], clusterNodes: number): string {
  if (group === 'local') {
    if (broker === 'aedes') return clusterNodes === 0 ? 'local-only, single instance (no Redis)' : 'local-only, 1 instance on Redis';
    return clusterNodes === 0 ? 'local-only, single node (no cluster)' : 'local-only, 1-node cluster';
  }
  return `cross-node, ${clusterNodes} nodes (pub on n1, sub on ${Array.from({ length: clusterNodes - 1 }, (_, i) => `n${i + 2}`).join(' + ')})`;
}

/** Pins every thread of `pid` to `cpu` (threads created later inherit it). */
function pin(pid: number, cpu: string): void {
  execFileSync('taskset', ['-a', '-p', '-c', cpu, String(pid)], { stdio: 'ignore' });
}

async function measure(b: Bench, c: Case, round: number, nodes: NodeProc[], redis: RedisProc | null): Promise<Result> {
  const { cli, pool } = b;
  const pubNode = nodes[0]!;
  const subNodes = c.group === 'local' ? [pubNode] : nodes.slice(1);
  const subWorker = 0;
  const pubWorkers = pool.size === 1 ? [0] : Array.from({ length: pool.size - 1 }, (_, i) => i + 1);
  pool.resetProgress();
  try {
    const subs: ConnSpec[] = subNodes.map((n, i) => ({
      clientId: `sub-${i}`,
      port: n.port,
      subscribe: [{ topic: 'bench/#', qos: c.qos }],
      column: i,
      latency: true,
    }));
    await connect(pool, subWorker, subs);
    // Let the route reach node 1 (Redis stream → node 1's tail) before anything is published.
    if (redis !== null) await sleep(500);
    const batch = Math.max(1, Math.min(cli.batch, Math.floor(cli.window / 2)));
    const pubs: ConnSpec[] = Array.from({ length: cli.publishers }, (_, i) => ({
      clientId: `pub-${i}`,
      port: pubNode.port,
      publish:
        c.qos === 0
          ? {
              mode: 'flood',
              topic: `bench/in/${i}`,
              qos: 0,
              payloadSize: cli.payload,
              batch,
              stream: i,
              e2eWindow: cli.window,
              watch: subs.map((_, k) => k),
              stamp: true,
            }
          : { mode: 'flood', topic: `bench/in/${i}`, qos: 1, payloadSize: cli.payload, window: cli.qos1Window, stream: i, stamp: true },
    }));
    await Promise.all(
      pubWorkers.map((w, k) =>
        connect(
          pool,
          w,
          pubs.filter((_, i) => i % pubWorkers.length === k),
        ),
      ),
    );
    await pool.all({ op: 'start' });
    await sleep(cli.warmupMs);
    await pool.request(subWorker, { op: 'latencies' }); // drop anything sampled so far
    const a = await snapshot(pool, nodes, redis);
    pool.setMeasuring(true);
    await sleep(cli.durationMs);
    pool.setMeasuring(false);
    const z = await snapshot(pool, nodes, redis);
    await pool.all({ op: 'stop' });
    const lat = await pool.request(subWorker, { op: 'latencies' });
    const samples = lat.op === 'latencies' ? lat.samplesUs.sort() : new Float64Array(0);

    const seconds = Number(z.t - a.t) / 1e9;
    const received = z.totals.received - a.totals.received;
    const gaps = z.totals.gaps - a.totals.gaps;
    const per = (us: number): number => (received > 0 ? us / received : NaN);
    const pct = (us: number): number => us / 1e4 / seconds;
    const nodeUs = nodes.map((_, i) => z.nodeUs[i]! - a.nodeUs[i]!);
    const redisUs = a.redis !== null && z.redis !== null ? z.redis.cpuUs - a.redis.cpuUs : null;
    const xadds = a.redis !== null && z.redis !== null ? z.redis.xadds - a.redis.xadds : 0;
    const commands = a.redis !== null && z.redis !== null ? z.redis.commands - a.redis.commands : null;
    const g = process.cpuUsage(a.gen);
    const genUs = g.user + g.system;
    return {
      case: c,
      round,
      seconds,
      deliveredPerS: received / seconds,
      sentPerS: (z.totals.sent - a.totals.sent) / seconds,
      lossPct: received + gaps > 0 ? (gaps / (received + gaps)) * 100 : 0,
      stalls: z.totals.stalls - a.totals.stalls,
      lostConnections: z.totals.lostConnections - a.totals.lostConnections,
      p50Ms: percentile(samples, 0.5) / 1000,
      p99Ms: percentile(samples, 0.99) / 1000,
      samples: samples.length,
      nodeUsPerMsg: nodeUs.map(per),
      nodeCpuPct: nodeUs.map(pct),
      redisUsPerMsg: redisUs === null ? null : per(redisUs),
      redisCpuPct: redisUs === null ? null : pct(redisUs),
      serverUsPerMsg: per(nodeUs.reduce((sum, x) => sum + x, 0) + (redisUs ?? 0)),
      genUsPerMsg: per(genUs),
      genCpuPct: pct(genUs),
      msgsPerXadd: c.broker === 'courier' && c.group === 'cross' && xadds > 0 ? received / xadds : null,
      redisCmdsPerMsg: commands === null ? null : per(commands),
      redisCmdsByName: byName(a.redis, z.redis, received),
    };
  } finally {
    await Promise.race([pool.all({ op: 'close' }), sleep(5000)]);
  }
}

function byName(a: RedisSample | null, z: RedisSample | null, received: number): Record<string, number> {
  if (a === null || z === null || received === 0) return {};
  const out: [string, number][] = [];
  for (const [name, n] of z.calls) {
    const per = (n - (a.calls.get(name) ?? 0)) / received;
    if (name !== 'info' && per >= 0.005) out.push([name, per]);
  }
  return Object.fromEntries(out.sort((x, y) => y[1] - x[1]));
}

function failed(c: Case, round: number, err: unknown): Result {
  return {
    case: c,
    round,
    seconds: 0,
    deliveredPerS: NaN,
    sentPerS: NaN,
    lossPct: NaN,
    stalls: 0,
    lostConnections: 0,
    p50Ms: NaN,
    p99Ms: NaN,
    samples: 0,
    nodeUsPerMsg: [],
    nodeCpuPct: [],
    redisUsPerMsg: null,
    redisCpuPct: null,
    serverUsPerMsg: NaN,
    genUsPerMsg: NaN,
    genCpuPct: NaN,
    msgsPerXadd: null,
    redisCmdsPerMsg: null,
    redisCmdsByName: {},
    error: (err as Error).message.slice(0, 600),
  };
}

// -------------------------------------------------------------------------------------------------
// Report

/** The median of the finite values (a failed reading is NaN); NaN when there is none. */
const median = (xs: number[]): number => medianOf(xs.filter((x) => Number.isFinite(x)));

/** Medians over the rounds of one case, field by field. */
function combine(rs: Result[]): Result {
  const ok = rs.filter((r) => r.error === undefined);
  if (ok.length === 0) return rs[0]!;
  if (ok.length === 1) return ok[0]!;
  const m = (f: (r: Result) => number | null): number => median(ok.map((r) => f(r) ?? NaN));
  const nullable = (f: (r: Result) => number | null): number | null => (ok.every((r) => f(r) === null) ? null : m(f));
  const first = ok[0]!;
  return {
    ...first,
    round: -1,
    seconds: m((r) => r.seconds),
    deliveredPerS: m((r) => r.deliveredPerS),
    sentPerS: m((r) => r.sentPerS),
    lossPct: m((r) => r.lossPct),
    stalls: ok.reduce((s, r) => s + r.stalls, 0),
    lostConnections: ok.reduce((s, r) => s + r.lostConnections, 0),
    p50Ms: m((r) => r.p50Ms),
    p99Ms: m((r) => r.p99Ms),
    samples: ok.reduce((s, r) => s + r.samples, 0),
    nodeUsPerMsg: first.nodeUsPerMsg.map((_, i) => m((r) => r.nodeUsPerMsg[i] ?? NaN)),
    nodeCpuPct: first.nodeCpuPct.map((_, i) => m((r) => r.nodeCpuPct[i] ?? NaN)),
    redisUsPerMsg: nullable((r) => r.redisUsPerMsg),
    redisCpuPct: nullable((r) => r.redisCpuPct),
    serverUsPerMsg: m((r) => r.serverUsPerMsg),
    genUsPerMsg: m((r) => r.genUsPerMsg),
    genCpuPct: m((r) => r.genCpuPct),
    msgsPerXadd: nullable((r) => r.msgsPerXadd),
    redisCmdsPerMsg: nullable((r) => r.redisCmdsPerMsg),
    redisCmdsByName: Object.fromEntries(
      [...new Set(ok.flatMap((r) => Object.keys(r.redisCmdsByName)))]
        .map((name): [string, number] => [name, median(ok.map((r) => r.redisCmdsByName[name] ?? 0))])
        .sort((x, y) => y[1] - x[1]),
    ),
  };
}

const fmt = (n: number | null, digits = 1): string => (n === null || !Number.isFinite(n) ? '—' : n.toFixed(digits));
const thousands = (n: number): string => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '—');

function table(results: Result[]): string {
  const head = [
    'broker',
    'scenario',
    'QoS',
    'published msg/s',
    'delivered msg/s',
    'lost %',
    'latency p50 / p99 ms',
    'node CPU µs/msg (n1 / n2 / n3)',
    'Redis CPU µs/msg',
    'all servers µs/msg',
    'generator µs/msg',
    'msgs per XADD',
    'Redis cmds/msg',
    'CPU % (n1 / n2 / n3 / Redis / generator)',
  ];
  const rows = results.map((r) => {
    if (r.error !== undefined)
      return [
        brokerName(r.case.broker),
        r.case.label,
        String(r.case.qos),
        `ERROR: ${r.error.replace(/\|/g, '/').replace(/\n/g, ' ')}`,
        ...head.slice(5).map(() => ''),
      ];
    return [
      brokerName(r.case.broker),
      r.case.label,
      String(r.case.qos),
      thousands(r.sentPerS),
      thousands(r.deliveredPerS),
      fmt(r.lossPct, 2) + (r.stalls > 0 ? ` (${r.stalls} stalls)` : '') + (r.lostConnections > 0 ? ` (${r.lostConnections} connections dropped)` : ''),
      `${fmt(r.p50Ms, 2)} / ${fmt(r.p99Ms, 2)}`,
      r.nodeUsPerMsg.map((x) => fmt(x, 2)).join(' / '),
      fmt(r.redisUsPerMsg, 2),
      fmt(r.serverUsPerMsg, 2),
      fmt(r.genUsPerMsg, 2),
      fmt(r.msgsPerXadd, 1),
      fmt(r.redisCmdsPerMsg, 2),
      [...r.nodeCpuPct, r.redisCpuPct, r.genCpuPct].map((x) => fmt(x, 0)).join(' / '),
    ];
  });
  const line = (cells: string[]): string => `| ${cells.join(' | ')} |`;
  return [line(head), line(head.map((_, i) => (i < 3 ? '---' : '---:'))), ...rows.map(line)].join('\n');
}

/** Which Redis commands each scenario used, per delivered message. */
function commandLines(results: Result[]): string[] {
  const rows = results.filter((r) => r.error === undefined && Object.keys(r.redisCmdsByName).length > 0);
  if (rows.length === 0) return [];
  return [
    'Redis commands per delivered message, by command (those ≥ 0.005):',
    '',
    ...rows.map(
      (r) =>
        `- ${brokerName(r.case.broker)}, ${r.case.label}, QoS ${r.case.qos}: ` +
        Object.entries(r.redisCmdsByName)
          .map(([name, n]) => `${name} ${fmt(n, 3)}`)
          .join(', '),
    ),
    '',
  ];
}

/** Courier against Aedes, scenario by scenario, from the same run. */
function versus(results: Result[]): string[] {
  const ok = (broker: Broker, c: Case): Result | undefined =>
    results.find(
      (r) => r.case.broker === broker && r.case.group === c.group && r.case.clusterNodes === c.clusterNodes && r.case.qos === c.qos && r.error === undefined,
    );
  const rows: string[][] = [];
  for (const r of results) {
    if (r.case.broker !== 'courier') continue;
    const c = ok('courier', r.case);
    const a = ok('aedes', r.case);
    if (c === undefined || a === undefined) continue;
    // Courier's local rows send (almost) nothing to Redis: no ratio there.
    const ratio = (x: number | null, y: number | null, floor = 0): string => (x === null || y === null || y <= floor ? '—' : `${fmt(x / y, 2)}×`);
    rows.push([
      r.case.group === 'local'
        ? r.case.clusterNodes === 0
          ? 'local-only, no Redis'
          : 'local-only, 1 node on Redis'
        : `cross-node, ${r.case.clusterNodes} nodes`,
      String(r.case.qos),
      ratio(c.deliveredPerS, a.deliveredPerS),
      ratio(a.serverUsPerMsg, c.serverUsPerMsg),
      ratio(
        a.nodeUsPerMsg.reduce((x, y) => x + y, 0),
        c.nodeUsPerMsg.reduce((x, y) => x + y, 0),
      ),
      ratio(a.redisUsPerMsg, c.redisUsPerMsg, 0.1),
      ratio(a.redisCmdsPerMsg, c.redisCmdsPerMsg, 0.005),
    ]);
  }
  if (rows.length === 0) return [];
  const head = [
    'scenario',
    'QoS',
    'delivered msg/s, Courier / Aedes',
    'all servers µs/msg, Aedes / Courier',
    'nodes µs/msg, Aedes / Courier',
    'Redis µs/msg, Aedes / Courier',
    'Redis cmds/msg, Aedes / Courier',
  ];
  const line = (cells: string[]): string => `| ${cells.join(' | ')} |`;
  return [
    'Courier against Aedes in this run (above 1× = Courier delivers more, or costs less; — where Courier uses next to no Redis):',
    [line(head), line(head.map((_, i) => (i < 2 ? '---' : '---:'))), ...rows.map(line)].join('\n'),
  ];
}

function localCheck(all: Result[]): string[] {
  const results = all.filter((r) => r.case.broker === 'courier');
  if (results.length === 0) return [];
  const single = results.find((r) => r.case.group === 'local' && r.case.clusterNodes === 0 && r.error === undefined);
  const one = results.find((r) => r.case.group === 'local' && r.case.clusterNodes === 1 && r.error === undefined);
  if (single === undefined || one === undefined) return ['Local-only target: not measured (a run failed).'];
  const byRate = (one.deliveredPerS / single.deliveredPerS) * 100;
  const byCpu = (single.nodeUsPerMsg[0]! / one.nodeUsPerMsg[0]!) * 100;
  const verdict = (x: number): string => (x >= 90 ? 'met' : 'NOT met');
  return [
    `Local-only target (1-node cluster ≥ 90 % of a single node): by delivered msg/s ${byRate.toFixed(0)} % (${verdict(byRate)}); ` +
      `by node CPU per message (messages per CPU-second) ${byCpu.toFixed(0)} % (${verdict(byCpu)}).`,
  ];
}

/** What the per-message costs say about N nodes on N cores (nothing here can show it). */
function estimate(all: Result[]): string[] {
  const results = all.filter((r) => r.case.broker === 'courier');
  const local = results.find((r) => r.case.group === 'local' && r.case.clusterNodes === 0 && r.error === undefined);
  const lines: string[] = [];
  for (const qos of [0, 1] as const) {
    const cross = results.find((r) => r.case.group === 'cross' && r.case.clusterNodes === 2 && r.case.qos === qos && r.error === undefined);
    if (cross === undefined || cross.redisUsPerMsg === null) continue;
    const node = (cross.nodeUsPerMsg[0] ?? NaN) + (cross.nodeUsPerMsg[1] ?? NaN);
    const perCore = 1e6 / node;
    const redisMax = 1e6 / cross.redisUsPerMsg;
    lines.push(
      `Estimate, QoS ${qos}, from the 2-node row: a message that crosses nodes costs ${fmt(node, 2)} µs of node CPU (publishing node + ` +
        `delivering node)${qos === 0 && local !== undefined ? ` against ${fmt(local.nodeUsPerMsg[0]!, 2)} µs on a single node` : ''}, so N nodes ` +
        `on N cores with all traffic crossing nodes deliver about N × ${thousands(perCore)} msg/s, until Redis (single-threaded, ` +
        `${fmt(cross.redisUsPerMsg, 2)} µs per forwarded message) saturates its core at about ${thousands(redisMax)} forwarded msg/s` +
        `${qos === 0 && local !== undefined ? `; one node alone would do about ${thousands(1e6 / local.nodeUsPerMsg[0]!)} msg/s on one core` : ''}.`,
    );
  }
  return [...lines, ...estimateAedes(all)];
}

/** Aedes sends every message through Redis Pub/Sub, local ones too: Redis's core is the ceiling. */
function estimateAedes(all: Result[]): string[] {
  const find = (group: Case['group'], n: number, qos: 0 | 1): Result | undefined =>
    all.find((r) => r.case.broker === 'aedes' && r.case.group === group && r.case.clusterNodes === n && r.case.qos === qos && r.error === undefined);
  const local = find('local', 1, 0);
  const lines: string[] = [];
  if (local !== undefined && local.redisUsPerMsg !== null)
    lines.push(
      `Estimate, Aedes: a local-only message on an instance with mqemitter-redis costs ${fmt(local.nodeUsPerMsg[0]!, 2)} µs of node CPU and ` +
        `${fmt(local.redisUsPerMsg, 2)} µs of Redis CPU (${fmt(local.redisCmdsPerMsg, 2)} commands): every message, local or not, goes ` +
        `through the one Redis, which caps the whole cluster at about ${thousands(1e6 / local.redisUsPerMsg)} local msg/s on one core.`,
    );
  for (const qos of [0, 1] as const) {
    const cross = find('cross', 2, qos);
    if (cross === undefined || cross.redisUsPerMsg === null) continue;
    const node = (cross.nodeUsPerMsg[0] ?? NaN) + (cross.nodeUsPerMsg[1] ?? NaN);
    lines.push(
      `Estimate, Aedes, QoS ${qos}, from the 2-node row: ${fmt(node, 2)} µs of node CPU per message that crosses instances, so N instances ` +
        `on N cores deliver about N × ${thousands(1e6 / node)} msg/s until Redis (${fmt(cross.redisUsPerMsg, 2)} µs per message) saturates ` +
        `its core at about ${thousands(1e6 / cross.redisUsPerMsg)} msg/s.`,
    );
  }
  return lines;
}

// -------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const cli = parseCli(process.argv.slice(2));
  if (os.platform() !== 'linux') throw new Error('Linux only (taskset, /proc)');
  if (!existsSync(REDIS_SERVER)) throw new Error(`${REDIS_SERVER} not found (set COURIER_REDIS_SERVER)`);
  prepareDist();
  const mach = machine();
  const started = Date.now();
  // Past --time-limit no scenario starts; a minute later whatever still runs is stopped (exit handler).
  setTimeout(() => {
    process.stderr.write(`bench: still running ${cli.timeLimitMs / 1000 + 60} s after the start, stopping\n`);
    process.exit(1);
  }, cli.timeLimitMs + 60_000).unref();
  // This process is the load generator: pin it, every thread (the workers start later, and inherit it).
  execFileSync('taskset', ['-a', '-p', '-c', cli.genCpu, String(process.pid)], { stdio: 'ignore' });
  const dir = mkdtempSync(path.join(os.tmpdir(), 'courier-bench-cluster-'));
  tempDir = dir;
  let redis: RedisProc | null = null;
  let pool: Pool | null = null;
  const results: Result[] = [];
  try {
    redis = await startRedis(dir, cli.serverCpu);
    // One pool for the run (its worker threads take a while to start on a loaded machine).
    pool = new Pool(cli.workers, '127.0.0.1', redis.port, 4, { streams: cli.publishers, columns: 2 });
    const b: Bench = { cli, pool, redis, dir, started };
    const all: Result[] = [];
    const local = cli.brokers.flatMap((broker) => [0, 1].map((n) => ({ broker, n })));
    for (let r = 0; r < cli.localRounds; r++) {
      // Alternate which goes first, so a drift in the machine's load does not favour one.
      for (const { broker, n } of r % 2 === 0 ? local : [...local].reverse()) all.push(...(await runTopology(b, broker, 'local', n, [0], r)));
    }
    for (let r = 0; r < cli.rounds; r++) {
      const brokers = r % 2 === 0 ? cli.brokers : [...cli.brokers].reverse();
      for (const n of [2, 3]) for (const broker of brokers) all.push(...(await runTopology(b, broker, 'cross', n, [0, 1], r)));
    }
    const key = (c: Case): string => `${c.broker}|${c.label}|${c.qos}`;
    for (const k of new Set(all.map((r) => key(r.case)))) results.push(combine(all.filter((r) => key(r.case) === k)));
  } finally {
    if (pool !== null) await pool.terminate();
    if (redis !== null) {
      redis.client.disconnect();
      await stopProc(redis);
    }
    rmSync(dir, { recursive: true, force: true });
    tempDir = null;
  }
  mach.loadEnd = loadAvg();
  if (results.some((r) => r.error !== undefined)) process.exitCode = 1;

  if (cli.json) {
    process.stdout.write(`${JSON.stringify({ machine: mach, options: cli, results }, null, 2)}\n`);
    return;
  }
  const out = [
    `Machine: ${mach.nproc} CPUs (${mach.cpuModel}), Linux ${mach.kernel}, Node ${mach.node}, Redis ${mach.redis}; ` +
      `load average ${mach.loadStart.join(' ')} at start, ${mach.loadEnd.join(' ')} at end; ${mach.date}`,
    '',
    `redis-server and every node pinned to CPU ${cli.serverCpu}, the load generator (this process, ${cli.workers} worker threads, ` +
      `MQTT 3.1.1) to CPU ${allowedCpus(process.pid)}; ${cli.durationMs / 1000} s measured after ${cli.warmupMs / 1000} s of load; ` +
      `${cli.publishers} publishers on node 1, ${cli.payload} B payload, QoS 0 ≤ ${cli.window} in flight per publisher, ` +
      `QoS 1 window ${cli.qos1Window} per publisher; one subscriber per subscribing node on bench/#; in-memory store; ` +
      `Redis with appendonly yes, appendfsync everysec` +
      (cli.brokers.includes('aedes')
        ? `; Aedes ${pkgVersion('aedes')} with mqemitter-redis ${pkgVersion('mqemitter-redis')} and aedes-persistence-redis ${pkgVersion('aedes-persistence-redis')} (Redis database ${AEDES_DB})`
        : '') +
      `. Medians of ${cli.localRounds} local and ${cli.rounds} cross-node round(s).`,
    '',
    table(results),
    '',
    ...commandLines(results),
    ...[...localCheck(results), ...estimate(results)].flatMap((l) => [l, '']),
    ...versus(results).flatMap((l) => [l, '']),
    `Published msg/s counts the PUBLISH packets the publishers wrote; with 3 nodes every published message is ` +
      `delivered twice. CPU µs/msg is CPU time over the window divided by messages delivered to subscribers; Redis cmds/msg is the commands Redis ` +
      `executed in the window (INFO commandstats, less this benchmark's INFO) per delivered message. In the cross-node rows every delivered ` +
      `message was forwarded through Redis exactly once (one subscriber per remote node), so Redis µs/msg is Redis CPU per ` +
      `forwarded message; with 3 nodes each published message is delivered (and forwarded) twice, so node 1's figure there is per delivered, half its cost per published message. Latency: the send time of the first message of every write, sampled at the subscriber (under full load, ` +
      `so mostly queueing in the windows).`,
    '',
    `All servers share CPU ${cli.serverCpu} (${mach.nproc} CPUs here): msg/s is at most one core divided by "all servers µs/msg" ` +
      `(less when other processes take part of that core: see the CPU % column), so scaling with nodes cannot show here; ` +
      `the per-message costs are what carries over to N nodes on N cores.`,
    '',
  ];
  process.stdout.write(out.join('\n'));
}

function pkgVersion(name: string): string {
  try {
    return (JSON.parse(readFileSync(path.join(root, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return '?';
  }
}

/** The run's temporary directory (Redis AOF, node data dirs), removed on any exit. */
let tempDir: string | null = null;

process.on('exit', () => {
  killAll();
  if (tempDir !== null) rmSync(tempDir, { recursive: true, force: true });
});
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    process.stderr.write(`\nbench: ${sig}, stopping what it started\n`);
    process.exit(130); // the 'exit' handler kills them and removes the temporary directory
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
  killAll();
  process.exitCode = 1;
});
