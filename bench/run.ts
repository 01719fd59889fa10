/**
 * Broker benchmark: Courier vs Mosquitto vs Aedes on the same machine, in one run, and the
 * Node floor (bench/brokers/node-floor.ts: the least a Node process does) for idle and latency.
 *
 *   npm run bench -- [--brokers courier,mosquitto,aedes,node-floor] [--scenarios fanin,fanout,qos1,latency,idle,retained]
 *                    [--duration 5] [--warmup 1] [--connections 10000] [--json] ...   (--help for all)
 *
 * Each broker runs pinned to one CPU (taskset -c 0), the load generator (raw MQTT over net
 * sockets in worker threads, bench/loadgen/) pinned to another (taskset -c 1). Every scenario
 * gets a fresh broker process. Broker CPU time comes from /proc/PID/stat, RSS from
 * /proc/PID/status, both read by the generator at the edges of the measured window.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { tailSources } from './tail-sources.js';
import { BROKERS, FLOOR_SCENARIOS, killAll, pinnedSpawn, startBroker, type BrokerName, type RunningBroker } from './brokers/index.js';
import { LATENCY_GENERATOR_ENV } from './loadgen/latency-native.js';
import {
  NATIVE_CONNECT_ENV,
  NATIVE_CONNECT_MISSING_ENV,
  NATIVE_LATENCY_ENV,
  NATIVE_LATENCY_MISSING_ENV,
  buildNative,
  type NativeProgram,
} from './loadgen/native.js';
import { allowedCpus, pinSelf } from './proc.js';
import { median } from './stats.js';
import { PAYLOAD_HEADER } from './loadgen/protocol.js';
import { scenarioTable, targetChecks, targetsTable } from './report.js';
import { SCENARIOS, type GeneratorJob, type ScenarioName, type ScenarioParams, type ScenarioResult } from './types.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const HELP = `Usage: npm run bench -- [options]
  --brokers LIST        comma list of ${BROKERS.join(',')} (default all; node-floor is not a
                        broker but the least a Node process does, run for idle and latency only)
  --scenarios LIST      comma list of ${SCENARIOS.join(',')} (default all);
                        "cluster" alone runs the cluster benchmark (bench/cluster.ts, same as npm run bench:cluster);
                        "workers" alone runs courier --workers vs 1 process vs Mosquitto (bench/workers.ts)
  --duration S          measured window per throughput/latency scenario, seconds (default 5)
  --warmup S            warm-up before the window, seconds (default 1)
  --payload BYTES       payload size, ≥ 16 (default 64)
  --connections N       idle connections (default 100000; a single-process broker gets at most
                        its descriptor limit, ulimit -Hn less 500)
  --connect-window N    CONNECT handshakes in flight while opening them (default 100)
  --idle-steady S       idle: seconds without load before each steady RSS reading, before and after
                        connecting (default 45; long enough for V8 to shrink its young generation)
  --idle-processes N    idle: at least N generator processes (default: as few as their file descriptor
                        limit allows, ulimit -Hn less 200 connections each)
  --idle-dests N        idle: spread connections over N destination addresses 127.0.0.1..N as well as
                        8 source addresses (the brokers then listen on 0.0.0.0; default 1)
  --courier-cli ARGS    add the broker "courier-cli": Courier started through its CLI (bin/courier.js)
                        with these extra arguments, e.g. "--workers auto"; CPU and RSS are summed over
                        the process and its descendants, and it may hold more than one process's
                        descriptor limit of idle connections
  --neighbour           latency: a busy process (a shell loop) shares the broker's CPU in every round
  --retained N          retained topics (default 10000)
  --rate N              latency scenario publish rate, msg/s (default 5000; measured by a native
                        probe, see BENCH_LATENCY_GENERATOR below)
  --latency-warmup S    latency: warm-up before the window, seconds (default 5: V8 compiles Courier's
                        hot path on background threads, on the broker's CPU, for the first ~3 s)
  --latency-rounds N    latency: rounds per broker, brokers taking turns; medians reported (default 3)
  --retained-rounds N   the same for retained fan-out, one short event per round (default 3)
  --fanin N / --fanout N / --pairs N / --window N   scenario sizes (50 / 50 / 25 / 32)
  --fanin-window N      fan-in: messages in flight (sent, not yet received) per publisher (default 100)
  --fanout-window N     fan-out: messages in flight to the slowest subscriber (default 256)
                        (0 = no window, only socket backpressure: the broker may drop QoS 0)
  --batch N             QoS 0 messages per write() (default 64)
  --workers N           generator worker threads (default 2: receivers | senders)
  --mqtt 4|5            protocol level spoken by the generator (default 4 = 3.1.1)
  --broker-cpu C        CPU list for the brokers (default 0)
  --gen-cpu C           CPU list for the generator (default 1)
  --courier-from dist|src   load Courier from dist/ (built first when stale, default) or src/ via tsx
  --json                print the results as JSON instead of Markdown

Environment:
  BENCH_LATENCY_GENERATOR=node|native   who measures the latency scenario. By default the native
                        probe (bench/loadgen/latency.c, built with cc on first use: one C thread
                        publishing one message per slot of an absolute schedule and timing each
                        delivery), so that the Node generator's own GC and timer pauses stay out of
                        the tail; without a C compiler, or with "node", the Node generator (worker.ts);
                        "native" fails instead of falling back
  BENCH_LATENCY_RT=1    the native probe runs SCHED_FIFO (needs root or CAP_SYS_NICE): other work on
                        the generator's CPU then waits for it rather than delaying its reads and sends
  BENCH_LATENCY_DUMP=FILE   latency: append every sample as "send_ns latency_us" (CLOCK_MONOTONIC)
`;

interface Cli {
  brokers: BrokerName[];
  /** Latency: rounds per broker, brokers alternating, the median reported. */
  latencyRounds: number;
  retainedRounds: number;
  scenarios: ScenarioName[];
  params: ScenarioParams;
  brokerCpu: string;
  genCpu: string;
  courierFrom: 'dist' | 'src';
  courierCli: string | undefined;
  neighbour: boolean;
  json: boolean;
}

function list<T extends string>(value: string | undefined, all: readonly T[], what: string): T[] {
  if (value === undefined) return [...all];
  const items = value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  for (const i of items) if (!all.includes(i as T)) throw new Error(`unknown ${what} "${i}" (known: ${all.join(', ')})`);
  return items as T[];
}

function parseCli(argv: string[]): Cli {
  const { values } = parseArgs({
    args: argv,
    options: {
      brokers: { type: 'string' },
      scenarios: { type: 'string' },
      duration: { type: 'string', default: '5' },
      warmup: { type: 'string', default: '1' },
      payload: { type: 'string', default: '64' },
      connections: { type: 'string', default: '100000' },
      'connect-window': { type: 'string', default: '100' },
      'idle-steady': { type: 'string', default: '45' },
      'latency-rounds': { type: 'string', default: '3' },
      'latency-warmup': { type: 'string', default: '5' },
      'retained-rounds': { type: 'string', default: '3' },
      retained: { type: 'string', default: '10000' },
      rate: { type: 'string', default: '5000' },
      fanin: { type: 'string', default: '50' },
      fanout: { type: 'string', default: '50' },
      pairs: { type: 'string', default: '25' },
      window: { type: 'string', default: '32' },
      workers: { type: 'string', default: '2' },
      batch: { type: 'string', default: '64' },
      'fanin-window': { type: 'string', default: '100' },
      'fanout-window': { type: 'string', default: '256' },
      mqtt: { type: 'string', default: '4' },
      'broker-cpu': { type: 'string', default: '0' },
      'gen-cpu': { type: 'string', default: '1' },
      'courier-from': { type: 'string', default: 'dist' },
      'courier-cli': { type: 'string' },
      'idle-processes': { type: 'string', default: '0' },
      'idle-dests': { type: 'string', default: '1' },
      neighbour: { type: 'boolean', default: false },
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
  const mqtt = num('mqtt', values.mqtt, 4);
  if (mqtt !== 4 && mqtt !== 5) throw new Error('--mqtt must be 4 or 5');
  const from = values['courier-from'];
  if (from !== 'dist' && from !== 'src') throw new Error('--courier-from must be dist or src');
  const courierCli = values['courier-cli'];
  // courier-cli is not one of the default brokers: it runs when --courier-cli gives its arguments.
  const listed = list(values.brokers, BROKERS, 'broker');
  const brokers = values.brokers === undefined ? listed.filter((b) => b !== 'courier-cli') : listed;
  if (courierCli !== undefined && !brokers.includes('courier-cli')) brokers.push('courier-cli');
  if (courierCli === undefined && brokers.includes('courier-cli')) throw new Error('the broker courier-cli needs --courier-cli ARGS');
  return {
    brokers,
    latencyRounds: Math.floor(num('latency-rounds', values['latency-rounds'], 1)),
    retainedRounds: Math.floor(num('retained-rounds', values['retained-rounds'], 1)),
    scenarios: list(values.scenarios, SCENARIOS, 'scenario'),
    brokerCpu: values['broker-cpu'],
    genCpu: values['gen-cpu'],
    courierFrom: from,
    courierCli,
    neighbour: values.neighbour,
    json: values.json,
    params: {
      warmupMs: num('warmup', values.warmup, 0) * 1000,
      latencyWarmupMs: num('latency-warmup', values['latency-warmup'], 0) * 1000,
      durationMs: num('duration', values.duration, 0.1) * 1000,
      payloadSize: Math.floor(num('payload', values.payload, PAYLOAD_HEADER)),
      version: mqtt,
      workers: Math.floor(num('workers', values.workers, 1)),
      faninPublishers: Math.floor(num('fanin', values.fanin, 1)),
      fanoutSubscribers: Math.floor(num('fanout', values.fanout, 1)),
      qos1Pairs: Math.floor(num('pairs', values.pairs, 1)),
      qos1Window: Math.floor(num('window', values.window, 1)),
      latencyRate: num('rate', values.rate, 1),
      idleConnections: Math.floor(num('connections', values.connections, 1)),
      connectWindow: Math.floor(num('connect-window', values['connect-window'], 1)),
      idleSettleMs: 2000,
      idleSteadyMs: num('idle-steady', values['idle-steady'], 0) * 1000,
      idleProcesses: Math.floor(num('idle-processes', values['idle-processes'], 0)),
      idleProcessCap: 19_800, // set from ulimit -Hn in main()
      idleDests: Math.floor(num('idle-dests', values['idle-dests'], 1)),
      retainedTopics: Math.floor(num('retained', values.retained, 1)),
      batch: Math.floor(num('batch', values.batch, 1)),
      faninWindow: Math.floor(num('fanin-window', values['fanin-window'], 0)),
      fanoutWindow: Math.floor(num('fanout-window', values['fanout-window'], 0)),
    },
  };
}

function sh(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    return `${e.stdout ?? ''}${e.stderr ?? ''}`.trim();
  }
}

export interface MachineInfo {
  nproc: number;
  cpuModel: string;
  kernel: string;
  node: string;
  mosquitto: string;
  aedes: string;
  nofileSoft: number;
  nofileHard: number;
  loadAverage: number[];
  date: string;
  /** What may take the broker's CPU at a better priority (bench/tail-sources.ts). */
  tailSources: string[];
}

function machineInfo(): MachineInfo {
  const cpuinfo = existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : '';
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? os.cpus()[0]?.model ?? '?';
  const limits = sh('/bin/sh', ['-c', 'ulimit -Sn; ulimit -Hn']).split('\n').map(Number);
  let aedes = '?';
  try {
    aedes = (JSON.parse(readFileSync(path.join(root, 'node_modules/aedes/package.json'), 'utf8')) as { version: string }).version;
  } catch {
    // not installed
  }
  return {
    nproc: os.availableParallelism(),
    cpuModel: model,
    kernel: os.release(),
    node: process.version,
    mosquitto: /mosquitto version (\S+)/.exec(sh('/usr/sbin/mosquitto', ['-h']))?.[1] ?? '?',
    aedes,
    nofileSoft: limits[0] ?? NaN,
    nofileHard: limits[1] ?? NaN,
    loadAverage: os.loadavg().map((l) => Math.round(l * 100) / 100),
    date: new Date().toISOString(),
    tailSources: tailSources(),
  };
}

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestMtime(p));
    else if (entry.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

/** Courier from dist/ (what users run): rebuild when any src file is newer than dist/index.js. */
function prepareCourier(from: 'dist' | 'src'): string {
  if (from === 'src') return 'src (tsx)';
  const dist = path.join(root, 'dist/index.js');
  const stale = !existsSync(dist) || newestMtime(path.join(root, 'src')) > statSync(dist).mtimeMs;
  if (stale) {
    process.stderr.write('bench: building Courier (npm run build)…\n');
    const r = spawnSync('npm', ['run', 'build', '--silent'], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
    if (r.status !== 0 && !existsSync(dist)) throw new Error('npm run build failed and there is no dist/index.js');
    if (r.status !== 0) process.stderr.write('bench: build reported errors; using what tsc emitted in dist/\n');
  }
  return 'dist';
}

function runGenerator(job: GeneratorJob, cpu: string, nofile: number, timeoutMs: number): Promise<ScenarioResult> {
  const main = path.join(root, 'bench/loadgen/main.ts');
  const child = pinnedSpawn(cpu, nofile, process.execPath, ['--import', 'tsx', main, JSON.stringify(job)]);
  let out = '';
  let err = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString('utf8')));
  child.stderr!.on('data', (b: Buffer) => (err = (err + b.toString('utf8')).slice(-4000)));
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      const line = out.split('\n').find((l) => l.startsWith('RESULT '));
      if (line !== undefined) {
        resolve(JSON.parse(line.slice('RESULT '.length)) as ScenarioResult);
        return;
      }
      const why = signal === 'SIGKILL' ? `timed out after ${timeoutMs} ms` : `exited with ${code ?? signal}`;
      resolve({ scenario: job.scenario, broker: job.broker, metrics: {}, notes: [], error: `generator ${why}: ${err.trim().slice(-500)}` });
    });
  });
}

function timeoutFor(s: ScenarioName, p: ScenarioParams): number {
  const base = Math.max(p.warmupMs, p.latencyWarmupMs) + p.durationMs + 60_000;
  if (s === 'idle') return base + 180_000 + 2 * p.idleSteadyMs;
  return s === 'retained' ? base + 180_000 : base;
}

async function runOne(cli: Cli, scenario: ScenarioName, broker: BrokerName, nofile: number): Promise<ScenarioResult> {
  const durable = scenario === 'durable';
  if (durable && broker === 'aedes') {
    return { scenario, broker, metrics: {}, notes: [], skipped: 'Aedes has no durable persistence in this setup (its default store is in memory)' };
  }
  const result = await runOnce(cli, scenario, broker, nofile, durable);
  if (durable && broker === 'courier' && result.error === undefined) {
    // The same workload (persistent subscriber sessions) on Courier's in-memory store: what durability costs.
    const memory = await runOnce(cli, scenario, broker, nofile, false);
    const mem = memory.metrics.delivered_per_s;
    const memCpu = memory.metrics.cpu_us_per_msg;
    const durCpu = result.metrics.cpu_us_per_msg;
    result.metrics.memory_store_delivered_per_s = mem ?? null;
    result.metrics.memory_store_cpu_us_per_msg = memCpu ?? null;
    // By broker CPU per message (the steadiest figure on a shared machine): both runs saturate the broker's core.
    result.metrics.durable_vs_memory_pct = typeof memCpu === 'number' && typeof durCpu === 'number' && durCpu > 0 ? Math.round((memCpu / durCpu) * 100) : null;
    if (memory.error !== undefined) result.notes.push(`in-memory store pass: ERROR ${memory.error}`);
  }
  return result;
}

async function runOnce(cli: Cli, scenario: ScenarioName, broker: BrokerName, nofile: number, durable: boolean): Promise<ScenarioResult> {
  let b: RunningBroker;
  const listenHost = scenario === 'idle' && cli.params.idleDests > 1 ? '0.0.0.0' : '127.0.0.1';
  // One process cannot hold more connections than its descriptor limit: a single-process broker
  // gets what fits (courier-cli, with worker processes, gets them all).
  const single = Math.max(100, nofile - 500);
  const params =
    scenario === 'idle' && broker !== 'courier-cli' && nofile > 0 && cli.params.idleConnections > single
      ? { ...cli.params, idleConnections: single }
      : cli.params;
  try {
    b = await startBroker(broker, { cpu: cli.brokerCpu, nofile, durable, listenHost, cliArgs: cli.courierCli });
  } catch (err) {
    return { scenario, broker, metrics: {}, notes: [], error: `broker did not start: ${(err as Error).message.slice(0, 800)}` };
  }
  try {
    const job: GeneratorJob = { scenario, broker, host: b.host, port: b.port, brokerPid: b.pid, gcSignal: b.gcSignal === true, params };
    const pinned = allowedCpus(b.pid);
    // A busy neighbour on the broker's CPU (latency only): what a shared machine does to the tail.
    const neighbour = cli.neighbour && scenario === 'latency' ? pinnedSpawn(cli.brokerCpu, 0, '/bin/sh', ['-c', 'while :; do :; done']) : undefined;
    const unpin = scenario === 'latency' ? pinSelf(cli.genCpu) : undefined;
    let result: ScenarioResult;
    try {
      result = await runGenerator(job, cli.genCpu, nofile, timeoutFor(scenario, params));
    } finally {
      unpin?.();
      neighbour?.kill('SIGKILL');
    }
    if (neighbour !== undefined) result.notes.push(`busy neighbour (a shell loop, pid ${neighbour.pid}) on CPU ${cli.brokerCpu} during the round`);
    if (params !== cli.params) result.notes.push(`${params.idleConnections} connections: one process holds at most ulimit -Hn (${nofile}) descriptors`);
    result.notes.unshift(`broker pid ${b.pid} on CPUs ${pinned}${b.detail !== '' ? `, ${b.detail}` : ''}`);
    if (result.error !== undefined) result.notes.push(`broker output: ${b.output().trim().slice(-300) || '(none)'}`);
    return result;
  } finally {
    await b.stop();
  }
}

/** One result from several rounds: each metric's median over the rounds that ran. */
function medianOfRounds(rounds: ScenarioResult[]): ScenarioResult {
  const ok = rounds.filter((r) => r.error === undefined && r.skipped === undefined);
  if (rounds.length <= 1 || ok.length === 0) return rounds[0]!;
  const metrics: Record<string, number | null> = {};
  for (const k of Object.keys(ok[0]!.metrics)) {
    const vals = ok.map((r) => r.metrics[k]).filter((v): v is number => typeof v === 'number' && !Number.isNaN(v));
    metrics[k] = vals.length === 0 ? null : median(vals);
  }
  // Each round's headline figure, so the spread behind the median is visible.
  const key = 'p50_us' in ok[0]!.metrics ? 'p50_us' : 'retained_ms' in ok[0]!.metrics ? 'retained_ms' : undefined;
  const label = key === 'p50_us' ? 'p50 µs' : 'SUBSCRIBE → last retained ms';
  const perRound = (k: string): string[] => ok.map((r) => r.metrics[k]).map((v) => (typeof v === 'number' ? String(Math.round(v * 10) / 10) : '–'));
  const per = key === undefined ? [] : perRound(key);
  // The latency tail's spread too: one slow round moves a median of three.
  const tails = key === 'p50_us' ? `; p99 µs per round: ${perRound('p99_us').join(', ')}; p99.9 µs per round: ${perRound('p999_us').join(', ')}` : '';
  const notes = [`median of ${ok.length} rounds${per.length > 0 ? `; ${label} per round: ${per.join(', ')}${tails}` : ''}`, ...ok[0]!.notes];
  for (const r of rounds) if (r.error !== undefined) notes.push(`a round failed: ${r.error.split('\n')[0]}`);
  return { scenario: ok[0]!.scenario, broker: ok[0]!.broker, metrics, notes };
}

/** Build a native generator; its path (or why there is none) goes to the generator processes in the environment. */
function prepareNative(name: NativeProgram, pathEnv: string, missingEnv: string, user: string): void {
  const native = buildNative(path.join(root, 'node_modules/.cache/courier-bench'), name);
  if ('bin' in native) {
    process.env[pathEnv] = native.bin;
    delete process.env[missingEnv];
  } else {
    delete process.env[pathEnv];
    process.env[missingEnv] = native.error;
    process.stderr.write(`bench: ${native.error}; ${user} falls back to the Node generator\n`);
  }
}

async function main(): Promise<void> {
  const cli = parseCli(process.argv.slice(2));
  const machine = machineInfo();
  const nofile = Number.isFinite(machine.nofileHard) ? machine.nofileHard : 0;
  // Each generator process (connect.c) holds at most its descriptor limit of connections.
  if (nofile > 0) cli.params.idleProcessCap = Math.max(100, nofile - 200);
  if (cli.scenarios.includes('idle') && nofile > 0 && cli.params.idleConnections + 500 > nofile) {
    process.stderr.write(
      `bench: ulimit -Hn is ${nofile}: single-process brokers get ${Math.max(100, nofile - 500)} of the ${cli.params.idleConnections} idle connections` +
        `${cli.brokers.includes('courier-cli') ? ' (courier-cli all of them)' : ''}\n`,
    );
  }
  // The idle scenario opens its connections with a small C program: the Node workers spend
  // more CPU per connection than the brokers do and would measure themselves.
  if (cli.scenarios.includes('idle')) prepareNative('connect', NATIVE_CONNECT_ENV, NATIVE_CONNECT_MISSING_ENV, 'the idle scenario');
  // The latency scenario is measured by another (latency.c): the Node generator's own pauses
  // (GC, timers) landed in the tail percentiles.
  if (cli.scenarios.includes('latency')) {
    if (process.env[LATENCY_GENERATOR_ENV] === 'node') {
      delete process.env[NATIVE_LATENCY_ENV];
      process.env[NATIVE_LATENCY_MISSING_ENV] = `${LATENCY_GENERATOR_ENV}=node`;
    } else prepareNative('latency', NATIVE_LATENCY_ENV, NATIVE_LATENCY_MISSING_ENV, 'the latency scenario');
    if (process.env[LATENCY_GENERATOR_ENV] === 'native' && process.env[NATIVE_LATENCY_ENV] === undefined) {
      throw new Error(`${LATENCY_GENERATOR_ENV}=native, but the latency probe could not be built`);
    }
  }
  let courierFrom = '';
  if (cli.brokers.includes('courier') || cli.brokers.includes('courier-cli')) {
    courierFrom = prepareCourier(cli.courierFrom);
    if (cli.courierFrom === 'src') process.env.COURIER_FROM = 'src';
  }

  const results: ScenarioResult[] = [];
  for (const scenario of cli.scenarios) {
    // The Node floor runs only where it has something to compare (no column elsewhere).
    const brokers = cli.brokers.filter((b) => b !== 'node-floor' || FLOOR_SCENARIOS.includes(scenario));
    // Latency and retained fan-out swing from one window to the next on a shared machine:
    // several short rounds with the brokers taking turns, each broker's median reported, make
    // one run's ratio steadier.
    const rounds = scenario === 'latency' ? cli.latencyRounds : scenario === 'retained' ? cli.retainedRounds : 1;
    const byBroker = new Map<BrokerName, ScenarioResult[]>();
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? brokers : [...brokers].reverse();
      for (const broker of order) {
        process.stderr.write(`bench: ${scenario} × ${broker}${rounds > 1 ? ` (round ${round + 1}/${rounds})` : ''}…`);
        const r = await runOne(cli, scenario, broker, nofile);
        byBroker.set(broker, [...(byBroker.get(broker) ?? []), r]);
        const m = r.metrics;
        const headline = m.p50_us ?? m.delivered_per_s ?? m.connect_per_s ?? m.retained_ms ?? null;
        process.stderr.write(r.error !== undefined ? ` ERROR ${r.error.split('\n')[0]}\n` : r.skipped !== undefined ? ' skipped\n' : ` ${headline ?? ''}\n`);
      }
    }
    for (const broker of brokers) results.push(medianOfRounds(byBroker.get(broker)!));
  }

  const checks = cli.brokers.includes('courier') ? targetChecks(results) : [];
  if (cli.json) {
    process.stdout.write(`${JSON.stringify({ machine, params: cli.params, brokers: cli.brokers, courierFrom, results, targets: checks }, null, 2)}\n`);
    return;
  }
  const out: string[] = [];
  out.push(
    `Machine: ${machine.nproc} CPUs (${machine.cpuModel}), Linux ${machine.kernel}, Node ${machine.node}, Mosquitto ${machine.mosquitto}, Aedes ${machine.aedes}; ` +
      `ulimit -n ${machine.nofileSoft}/${machine.nofileHard}; load average at start ${machine.loadAverage.join(' ')}`,
    `Brokers pinned to CPU ${cli.brokerCpu}, generator to CPU ${cli.genCpu} (${cli.params.workers} worker threads, MQTT level ${cli.params.version}); ` +
      `window ${cli.params.durationMs / 1000} s after ${cli.params.warmupMs / 1000} s warm-up; Courier from ${courierFrom || 'n/a'}`,
    ...(cli.scenarios.includes('latency') && machine.tailSources.length > 0
      ? [`Latency tail sources on this machine (bench/tail-sources.ts): ${machine.tailSources.join('; ')}`]
      : []),
    '',
  );
  for (const s of cli.scenarios)
    out.push(
      scenarioTable(
        s,
        cli.params,
        results.filter((r) => r.scenario === s),
        cli.brokers,
      ),
    );
  if (checks.length > 0) out.push(targetsTable(checks));
  process.stdout.write(out.join('\n'));
}

process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    process.stderr.write(`\nbench: ${sig}, stopping brokers\n`);
    killAll();
    process.exit(130);
  });
}

/**
 * `--scenarios cluster` is the cluster benchmark (bench/cluster.ts: its own Redis and node
 * processes); the other arguments go to it as they are.
 */
function clusterDelegate(argv: string[]): { script: string; args: string[] } | undefined {
  const i = argv.findIndex((a) => a === '--scenarios' || a.startsWith('--scenarios='));
  if (i < 0) return undefined;
  const value = argv[i]!.includes('=') ? argv[i]!.split('=')[1] : argv[i + 1];
  // `--scenarios workers` is bench/workers.ts (courier --workers vs one process vs Mosquitto).
  if (value !== 'cluster' && value !== 'workers') return undefined;
  return { script: `./${value}.ts`, args: argv.filter((_, j) => j !== i && !(j === i + 1 && !argv[i]!.includes('='))) };
}

const delegated = clusterDelegate(process.argv.slice(2));
if (delegated !== undefined) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(new URL(delegated.script, import.meta.url)), ...delegated.args], {
    stdio: 'inherit',
  });
  process.exit(r.status ?? 1);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
  killAll();
  process.exit(1);
});
