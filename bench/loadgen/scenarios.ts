/** The benchmark scenarios, run from the generator's main thread against one broker. */
import { setTimeout as sleep } from 'node:timers/promises';
import { readFileSync, rmSync } from 'node:fs';
import { memFile } from '../brokers/gc-signal.js';
import { allowedCpus, cpuMicros, rssKiB, treeSum } from '../proc.js';
import { percentile } from '../stats.js';
import type { GeneratorJob, ScenarioResult } from '../types.js';
import { latencyGenerator, nativeLatency } from './latency-native.js';
import { NATIVE_CONNECT_ENV, NATIVE_CONNECT_MISSING_ENV, NativeConnections } from './native.js';
import type { Pool, Shape, Totals } from './pool.js';
import type { ConnSpec, FromWorker } from './protocol.js';

interface Snapshot {
  t: bigint;
  totals: Totals;
  brokerCpuUs: number;
  gen: NodeJS.CpuUsage;
}

function snapshot(pool: Pool, pid: number): Snapshot {
  return { t: process.hrtime.bigint(), totals: pool.totals(), brokerCpuUs: cpuMicros(pid), gen: process.cpuUsage() };
}

interface Window {
  seconds: number;
  received: number;
  sent: number;
  acked: number;
  lostConnections: number;
  gaps: number;
  stalls: number;
  brokerCpuUs: number;
  genCpuUs: number;
}

function diff(a: Snapshot, b: Snapshot): Window {
  const g = process.cpuUsage(a.gen);
  return {
    seconds: Number(b.t - a.t) / 1e9,
    received: b.totals.received - a.totals.received,
    sent: b.totals.sent - a.totals.sent,
    acked: b.totals.acked - a.totals.acked,
    lostConnections: b.totals.lostConnections,
    gaps: b.totals.gaps - a.totals.gaps,
    stalls: b.totals.stalls - a.totals.stalls,
    brokerCpuUs: b.brokerCpuUs - a.brokerCpuUs,
    genCpuUs: g.user + g.system, // from a to now, which is b within microseconds
  };
}

const pct = (us: number, seconds: number): number => (seconds > 0 ? us / 1e4 / seconds : 0);
const round = (n: number, digits = 1): number => {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
};

/** Worker 0 holds the receiving side, the others the sending side (all of them when only one). */
function roles(pool: Pool): { subs: number[]; pubs: number[] } {
  if (pool.size === 1) return { subs: [0], pubs: [0] };
  return { subs: [0], pubs: Array.from({ length: pool.size - 1 }, (_, i) => i + 1) };
}

function spread<T>(items: T[], workers: number[]): Map<number, T[]> {
  const out = new Map<number, T[]>(workers.map((w) => [w, []]));
  items.forEach((item, i) => out.get(workers[i % workers.length]!)!.push(item));
  return out;
}

async function connect(pool: Pool, byWorker: Map<number, ConnSpec[]>, window: number, timeoutMs = 30_000): Promise<void> {
  const replies = await Promise.all(
    [...byWorker]
      .filter(([, specs]) => specs.length > 0)
      .map(([w, conns]) => pool.request(w, { op: 'connect', conns, window: Math.max(1, Math.ceil(window / byWorker.size)), timeoutMs })),
  );
  for (const r of replies) {
    if (r.op !== 'connected') throw new Error(`connect: ${r.op === 'error' ? r.message : r.op}`);
    if (r.failed > 0) throw new Error(`${r.failed} connection(s) failed: ${r.firstError ?? 'timeout'}`);
  }
}

/** Warm up, then measure one window of steady load; publishers are already connected. */
async function steadyWindow(pool: Pool, job: GeneratorJob, warmupMs = job.params.warmupMs): Promise<{ w: Window; rss: number }> {
  await pool.all({ op: 'start' });
  await sleep(warmupMs);
  const a = snapshot(pool, job.brokerPid);
  pool.setMeasuring(true);
  await sleep(job.params.durationMs);
  pool.setMeasuring(false);
  const b = snapshot(pool, job.brokerPid);
  const rss = rssKiB(job.brokerPid);
  await pool.all({ op: 'stop' });
  return { w: diff(a, b), rss };
}

function throughputMetrics(w: Window, rss: number): Record<string, number | null> {
  return {
    delivered_per_s: Math.round(w.received / w.seconds),
    sent_per_s: Math.round(w.sent / w.seconds),
    loss_pct: w.received + w.gaps > 0 ? round((w.gaps / (w.received + w.gaps)) * 100, 2) : null,
    window_stalls: w.stalls,
    broker_cpu_pct: round(pct(w.brokerCpuUs, w.seconds)),
    cpu_us_per_msg: w.received > 0 ? round(w.brokerCpuUs / w.received, 2) : null,
    broker_rss_mib: round(rss / 1024),
    gen_cpu_pct: round(pct(w.genCpuUs, w.seconds)),
    lost_connections: w.lostConnections,
  };
}

/** A batch never exceeds half the window (the publisher resumes at half). */
function batchFor(batch: number, window: number): number {
  return window > 0 ? Math.max(1, Math.min(batch, Math.floor(window / 2))) : batch;
}

async function fanin(pool: Pool, job: GeneratorJob): Promise<ScenarioResult> {
  const p = job.params;
  const { subs, pubs } = roles(pool);
  await connect(pool, spread([{ clientId: 'fanin-sub', subscribe: [{ topic: 'bench/in/+', qos: 0 }], column: 0 }], subs), 1);
  const publishers: ConnSpec[] = Array.from({ length: p.faninPublishers }, (_, i) => ({
    clientId: `fanin-pub-${i}`,
    publish: {
      mode: 'flood',
      topic: `bench/in/${i}`,
      qos: 0,
      payloadSize: p.payloadSize,
      batch: batchFor(p.batch, p.faninWindow),
      stream: i,
      e2eWindow: p.faninWindow,
      watch: [0],
    },
  }));
  await connect(pool, spread(publishers, pubs), 64);
  const { w, rss } = await steadyWindow(pool, job);
  return { scenario: job.scenario, broker: job.broker, metrics: throughputMetrics(w, rss), notes: [] };
}

async function fanout(pool: Pool, job: GeneratorJob): Promise<ScenarioResult> {
  const p = job.params;
  const { subs, pubs } = roles(pool);
  const subscribers: ConnSpec[] = Array.from({ length: p.fanoutSubscribers }, (_, i) => ({
    clientId: `fanout-sub-${i}`,
    subscribe: [{ topic: 'bench/out', qos: 0 }],
    column: i,
  }));
  await connect(pool, spread(subscribers, subs), 64);
  const publisher: ConnSpec = {
    clientId: 'fanout-pub',
    publish: {
      mode: 'flood',
      topic: 'bench/out',
      qos: 0,
      payloadSize: p.payloadSize,
      batch: batchFor(p.batch, p.fanoutWindow),
      stream: 0,
      e2eWindow: p.fanoutWindow,
      watch: subscribers.map((_, i) => i),
    },
  };
  await connect(pool, spread([publisher], pubs.slice(0, 1)), 1);
  const { w, rss } = await steadyWindow(pool, job);
  return { scenario: job.scenario, broker: job.broker, metrics: throughputMetrics(w, rss), notes: [] };
}

async function qos1(pool: Pool, job: GeneratorJob): Promise<ScenarioResult> {
  const p = job.params;
  const { subs, pubs } = roles(pool);
  // The durable scenario: the same pairs with persistent subscriber sessions (clean session 0),
  // so the broker must store every message until it is acknowledged.
  const persistent = job.scenario === 'durable';
  const subscribers: ConnSpec[] = Array.from({ length: p.qos1Pairs }, (_, i) => ({
    clientId: `pair-sub-${i}`,
    subscribe: [{ topic: `bench/pair/${i}`, qos: 1 }],
    column: i,
    clean: !persistent,
  }));
  await connect(pool, spread(subscribers, subs), 64);
  const publishers: ConnSpec[] = Array.from({ length: p.qos1Pairs }, (_, i) => ({
    clientId: `pair-pub-${i}`,
    publish: { mode: 'flood', topic: `bench/pair/${i}`, qos: 1, payloadSize: p.payloadSize, window: p.qos1Window, stream: i },
  }));
  await connect(pool, spread(publishers, pubs), 64);
  const { w, rss } = await steadyWindow(pool, job);
  const m = throughputMetrics(w, rss);
  delete m.window_stalls;
  m.acked_per_s = Math.round(w.acked / w.seconds);
  return { scenario: job.scenario, broker: job.broker, metrics: m, notes: [] };
}

async function latency(pool: Pool, job: GeneratorJob): Promise<ScenarioResult> {
  const generator = latencyGenerator();
  if ('bin' in generator) return nativeLatency(generator.bin, job);
  const p = job.params;
  // Both ends on one worker: one event loop, no cross-thread wake-up in the measured path.
  await connect(pool, new Map([[0, [{ clientId: 'lat-sub', subscribe: [{ topic: 'bench/lat', qos: 0 }], latency: true, column: 0 }]]]), 1);
  const publisher: ConnSpec = {
    clientId: 'lat-pub',
    publish: { mode: 'rate', topic: 'bench/lat', qos: 0, payloadSize: p.payloadSize, rate: p.latencyRate, stream: 0 },
  };
  await connect(pool, new Map([[0, [publisher]]]), 1);
  const { w, rss } = await steadyWindow(pool, job, p.latencyWarmupMs);
  const reply = await pool.request(0, { op: 'latencies' });
  const samples = reply.op === 'latencies' ? reply.samplesUs.sort() : new Float64Array(0);
  return {
    scenario: job.scenario,
    broker: job.broker,
    metrics: {
      p50_us: round(percentile(samples, 0.5)),
      p90_us: round(percentile(samples, 0.9)),
      p99_us: round(percentile(samples, 0.99)),
      p999_us: round(percentile(samples, 0.999)),
      max_us: round(samples.length > 0 ? samples[samples.length - 1]! : NaN),
      samples: samples.length,
      loss_pct: w.received + w.gaps > 0 ? round((w.gaps / (w.received + w.gaps)) * 100, 2) : null,
      delivered_per_s: Math.round(w.received / w.seconds),
      broker_cpu_pct: round(pct(w.brokerCpuUs, w.seconds)),
      cpu_us_per_msg: w.received > 0 ? round(w.brokerCpuUs / w.received, 2) : null,
      broker_rss_mib: round(rss / 1024),
      gen_cpu_pct: round(pct(w.genCpuUs, w.seconds)),
    },
    notes: [
      `measured by the Node generator (publisher and subscriber in one worker thread, a 1 ms timer sending what is due in one write; native probe not used: ${generator.why})`,
    ],
  };
}

/** RSS after `ms` without load, read every second; the last reading counts (no minimum picked out of noise). */
async function steadyRss(pid: number, ms: number): Promise<number> {
  const end = Date.now() + ms;
  let rss = rssKiB(pid);
  while (Date.now() < end) {
    await sleep(Math.min(1000, end - Date.now()));
    rss = rssKiB(pid);
  }
  return rss;
}

/** What opening one batch of idle connections cost. */
interface Opened {
  seconds: number;
  genCpuUs: number;
  brokerCpuUs: number;
}

/** Answers to one PINGREQ on every open connection. */
interface Pinged {
  pinged: number;
  answered: number;
  seconds: number;
}

/** Opens the idle scenario's connections and later closes them, reporting those the broker dropped. */
interface Opener {
  /** How the connections were opened, for the scenario notes. */
  note: string;
  open(clientIdPrefix: string, count: number, timeoutMs: number): Promise<Opened>;
  /** PINGREQ on every open connection (null: this opener cannot). */
  ping(): Promise<Pinged | null>;
  /** Close what open() opened; returns the connections the broker dropped meanwhile. */
  close(): Promise<number>;
  /** Last resort on failure: nothing may outlive the scenario. */
  kill(): void;
}

/** Broker CPU time: the broker process and its descendants (worker processes of `courier --workers`). */
const brokerCpu = (pid: number): number => treeSum(pid, cpuMicros);
const brokerRss = (pid: number): number => treeSum(pid, rssKiB);

/** The Node worker threads: their CPU use while opening thousands of connections limits the rate. */
function poolOpener(pool: Pool, job: GeneratorJob, why: string): Opener {
  const all = Array.from({ length: pool.size }, (_, i) => i);
  return {
    note: `native connection generator unavailable (${why}); connections opened by the Node worker threads, whose own CPU may limit CONNECT→CONNACK/s`,
    async open(prefix, count, timeoutMs) {
      const specs: ConnSpec[] = Array.from({ length: count }, (_, i) => ({ clientId: `${prefix}${i}` }));
      const a = snapshot(pool, job.brokerPid);
      await connect(pool, spread(specs, all), job.params.connectWindow, timeoutMs);
      const w = diff(a, snapshot(pool, job.brokerPid));
      return { seconds: w.seconds, genCpuUs: w.genCpuUs, brokerCpuUs: w.brokerCpuUs };
    },
    ping: () => Promise.resolve(null),
    async close() {
      const lost = pool.totals().lostConnections;
      await pool.all({ op: 'close' });
      return lost;
    },
    kill() {
      // main.ts closes the pool's connections and terminates its workers.
    },
  };
}

/**
 * bench/loadgen/connect.c: one epoll thread per process, children of this (pinned) process, so
 * on the generator's CPU. One process holds at most `idleProcessCap` connections (its file
 * descriptor limit), so large counts are spread over several, started together.
 */
function nativeOpener(bin: string, job: GeneratorJob): Opener {
  let current: NativeConnections[] = [];
  const p = job.params;
  const opener: Opener = {
    note: '',
    async open(prefix, count, timeoutMs) {
      if (current.length > 0) throw new Error('native connect: previous connections still open');
      const procs = Math.max(p.idleProcesses, Math.ceil(count / Math.max(1, p.idleProcessCap)));
      const counts = Array.from({ length: procs }, (_, k) => Math.floor(count / procs) + (k < count % procs ? 1 : 0)).filter((n) => n > 0);
      const loopback = job.host.startsWith('127.');
      const before = brokerCpu(job.brokerPid);
      const settled = await Promise.allSettled(
        counts.map((n, k) =>
          NativeConnections.open(bin, {
            host: job.host,
            port: job.port,
            count: n,
            window: Math.max(1, Math.ceil(p.connectWindow / counts.length)),
            clientIdPrefix: counts.length > 1 ? `${prefix}${k}-` : prefix,
            version: p.version,
            keepAlive: 600, // as the Node generator's CONNECT
            sources: loopback ? 8 : 1, // see worker.ts: ~28k connections per source address
            dests: loopback ? p.idleDests : 1,
            timeoutMs,
          }),
        ),
      );
      const brokerCpuUs = brokerCpu(job.brokerPid) - before;
      current = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value.conns] : []));
      const failure = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failure !== undefined) throw failure.reason as Error;
      const reports = settled.map((r) => (r as PromiseFulfilledResult<Awaited<ReturnType<typeof NativeConnections.open>>>).value.report);
      const mine = allowedCpus(process.pid);
      for (const c of current) {
        const its = allowedCpus(c.pid);
        if (its !== mine) throw new Error(`native connect pid ${c.pid} runs on CPUs ${its}, the generator on ${mine}`);
      }
      opener.note =
        `connections opened by bench/loadgen/connect.c (native, one epoll thread per process; ${current.length} process(es) of ≤ ${p.idleProcessCap}, ` +
        `pids ${current.map((c) => c.pid).join(' ')} on CPUs ${mine}; ${loopback ? `8 source × ${p.idleDests} destination addresses` : 'one address'})`;
      const failed = reports.reduce((n, r) => n + r.failed, 0);
      if (failed > 0) throw new Error(`${failed} connection(s) failed: ${reports.find((r) => r.error !== undefined)?.error ?? 'timeout'}`);
      return {
        // The processes start together: the burst lasts as long as the slowest.
        seconds: Math.max(...reports.map((r) => r.seconds)),
        genCpuUs: reports.reduce((n, r) => n + r.cpu_user_us + r.cpu_sys_us, 0),
        brokerCpuUs,
      };
    },
    async ping() {
      const all = await Promise.all(current.map((c) => c.ping()));
      return {
        pinged: all.reduce((n, r) => n + r.pinged, 0),
        answered: all.reduce((n, r) => n + r.answered, 0),
        seconds: Math.max(0, ...all.map((r) => r.seconds)),
      };
    },
    async close() {
      const conns = current;
      current = [];
      const lost = await Promise.all(conns.map((c) => c.close()));
      return lost.reduce((a, b) => a + b, 0);
    },
    kill() {
      for (const c of current) c.kill();
      current = [];
    },
  };
  return opener;
}

/**
 * RSS after a forced garbage collection: Node brokers started by the benchmark run with
 * --expose-gc and collect on SIGUSR2 (bench/brokers/gc-signal.ts), then leave their V8 heap in
 * use and external memory in a file; the RSS is read once it has stopped falling (at most 3 s).
 * Without `gcSignal` just the RSS.
 */
async function rssAfterGc(job: GeneratorJob): Promise<{ rss: number; heapKiB: number | null }> {
  if (job.gcSignal !== true) return { rss: brokerRss(job.brokerPid), heapKiB: null };
  // Only the launcher itself: it is the one process known to handle SIGUSR2 (the default action ends a process).
  const file = memFile(job.brokerPid);
  rmSync(file, { force: true });
  process.kill(job.brokerPid, 'SIGUSR2');
  let last = Infinity;
  for (let i = 0; i < 12; i++) {
    await sleep(250);
    const rss = brokerRss(job.brokerPid);
    if (i >= 3 && rss >= last) break;
    last = Math.min(last, rss);
  }
  let heapKiB: number | null = null;
  try {
    const m = JSON.parse(readFileSync(file, 'utf8')) as { heapUsed: number; external: number };
    heapKiB = (m.heapUsed + m.external) / 1024;
    rmSync(file, { force: true });
  } catch {
    // not written (no --expose-gc): RSS only
  }
  return { rss: Math.min(last, brokerRss(job.brokerPid)), heapKiB };
}

async function idle(pool: Pool, job: GeneratorJob): Promise<ScenarioResult> {
  const p = job.params;
  const bin = process.env[NATIVE_CONNECT_ENV];
  const opener =
    bin !== undefined && bin !== ''
      ? nativeOpener(bin, job)
      : poolOpener(pool, job, process.env[NATIVE_CONNECT_MISSING_ENV] ?? 'not built: bench/run.ts builds it');
  try {
    // Warm the broker's connection path (lazy code, first allocations) before the baseline.
    await opener.open('idle-warm-', 100, 30_000);
    await opener.close();
    await sleep(p.idleSettleMs);
    const rssBefore = brokerRss(job.brokerPid);
    // The steady baseline waits as long as the steady reading below: a garbage-collected broker
    // shrinks what start-up and the warm-up grew, and that must not count as freed by connections.
    await steadyRss(job.brokerPid, p.idleSteadyMs);
    const { rss: rssBaseSteady, heapKiB: heapBase } = await rssAfterGc(job);
    const w = await opener.open('idle-', p.idleConnections, Math.max(120_000, p.idleConnections * 2));
    await sleep(p.idleSettleMs);
    const rssAfter = brokerRss(job.brokerPid);
    // Steady state: the connections stay idle; a garbage-collected broker gives back what the
    // connect burst grew (V8 shrinks its young generation once allocation stops, ~30 s here),
    // then a forced collection (Node brokers) leaves only what the connections hold.
    await steadyRss(job.brokerPid, p.idleSteadyMs);
    const { rss: rssSteady, heapKiB: heapSteady } = await rssAfterGc(job);
    // Every connection must still be there and answer.
    const pinged = await opener.ping();
    const lost = await opener.close();
    const notes = [opener.note];
    if (job.gcSignal === true) notes.push('steady RSS read after a forced GC (SIGUSR2 → gc() in the broker process, started with --expose-gc)');
    if (pinged === null) notes.push('PINGREQ check skipped (only the native generator does it)');
    return {
      scenario: job.scenario,
      broker: job.broker,
      metrics: {
        connections: p.idleConnections,
        connect_per_s: Math.round(p.idleConnections / w.seconds),
        connect_cpu_us: round(w.brokerCpuUs / p.idleConnections, 1),
        broker_cpu_pct: round(pct(w.brokerCpuUs, w.seconds)),
        rss_before_mib: round(rssBefore / 1024),
        rss_after_mib: round(rssAfter / 1024),
        rss_per_conn_kib: round((rssAfter - rssBefore) / p.idleConnections, 2),
        rss_base_steady_mib: round(rssBaseSteady / 1024),
        rss_steady_mib: round(rssSteady / 1024),
        rss_steady_per_conn_kib: round((rssSteady - rssBaseSteady) / p.idleConnections, 2),
        heap_per_conn_kib: heapBase === null || heapSteady === null ? null : round((heapSteady - heapBase) / p.idleConnections, 2),
        pingresp_pct: pinged === null ? null : round((pinged.answered / p.idleConnections) * 100, 2),
        ping_ms: pinged === null ? null : round(pinged.seconds * 1000),
        gen_cpu_pct: round(pct(w.genCpuUs, w.seconds)),
        lost_connections: lost,
      },
      notes,
    };
  } finally {
    opener.kill();
  }
}

async function retained(pool: Pool, job: GeneratorJob): Promise<ScenarioResult> {
  const p = job.params;
  const n = p.retainedTopics;
  const seeder: ConnSpec = {
    clientId: 'ret-seed',
    publish: { mode: 'seed', topic: 'bench/ret/', qos: 1, retain: true, payloadSize: p.payloadSize, count: n, window: 100, stream: 0 },
  };
  await connect(pool, new Map([[0, [seeder]]]), 1);
  const t0 = process.hrtime.bigint();
  const seeded = await pool.request(0, { op: 'seed', timeoutMs: 60_000 });
  const seedSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (seeded.op !== 'seeded' || !seeded.ok) {
    throw new Error(`seeding ${n} retained messages failed (${seeded.op === 'seeded' ? `${seeded.acked} acked` : seeded.op})`);
  }
  await pool.request(0, { op: 'close' });
  await sleep(200);
  const sub: ConnSpec = {
    clientId: 'ret-sub',
    subscribe: [{ topic: 'bench/ret/#', qos: 0 }],
    deferSubscribe: true,
    expect: n,
  };
  await connect(pool, new Map([[0, [sub]]]), 1);
  const done = new Promise<Extract<FromWorker, { op: 'done' }> | null>((resolve) => {
    const off = pool.onDone((ev) => {
      off();
      resolve(ev);
    });
    setTimeout(() => {
      off();
      resolve(null);
    }, 60_000).unref();
  });
  const a = snapshot(pool, job.brokerPid);
  const subscribed = await pool.request(0, { op: 'subscribe-now', timeoutMs: 60_000 });
  const ev = await done;
  const b = snapshot(pool, job.brokerPid);
  const w = diff(a, b);
  const start = subscribed.op === 'subscribed' ? BigInt(subscribed.atNs) : a.t;
  const ms = ev === null ? null : Number(BigInt(ev.atNs) - start) / 1e6;
  const received = pool.totals().received;
  return {
    scenario: job.scenario,
    broker: job.broker,
    metrics: {
      topics: n,
      seed_per_s: Math.round(n / seedSeconds),
      retained_ms: ms === null ? null : round(ms),
      retained_per_s: ms === null ? null : Math.round(n / (ms / 1000)),
      received,
      cpu_us_per_msg: received > 0 ? round(w.brokerCpuUs / received, 2) : null,
      broker_rss_mib: round(rssKiB(job.brokerPid) / 1024),
      gen_cpu_pct: round(pct(w.genCpuUs, w.seconds)),
    },
    notes: ev === null ? [`only ${received} of ${n} retained messages arrived within 60 s`] : [],
  };
}

/** Size of the progress table a scenario needs. */
export function shapeOf(job: GeneratorJob): Shape {
  const p = job.params;
  switch (job.scenario) {
    case 'fanin':
      return { streams: p.faninPublishers, columns: 1 };
    case 'fanout':
      return { streams: 1, columns: p.fanoutSubscribers };
    case 'qos1':
    case 'durable':
      return { streams: p.qos1Pairs, columns: p.qos1Pairs };
    default:
      return { streams: 1, columns: 1 };
  }
}

export async function runScenario(pool: Pool, job: GeneratorJob): Promise<ScenarioResult> {
  switch (job.scenario) {
    case 'fanin':
      return fanin(pool, job);
    case 'fanout':
      return fanout(pool, job);
    case 'qos1':
      return qos1(pool, job);
    case 'latency':
      return latency(pool, job);
    case 'idle':
      return idle(pool, job);
    case 'retained':
      return retained(pool, job);
    case 'durable':
      return qos1(pool, job);
  }
}
