/**
 * Workers benchmark: `courier --workers N` against one Courier process and Mosquitto, in one run.
 *
 *   npm run bench:workers -- [--workers 2] [--connections 5000] [--duration 5] [--warmup 1]
 *                            [--publishers 20] [--subscribers 2] [--payload 64] [--balance shared|rr] [--json]
 *   npm run bench -- --scenarios workers [same options]
 *
 * Two measurements per broker, each on a fresh broker process:
 *   connect  new connections per second: the native opener (bench/loadgen/connect.c, as the idle
 *            scenario of `npm run bench`) opens --connections CONNECT→CONNACK handshakes, 100 in
 *            flight, after 200 to warm up.
 *   fanin    QoS 0 fan-in: --publishers flood bench/in/<i> (≤ 100 in flight each), --subscribers
 *            subscribe to bench/#; delivered messages per second (the generator of `npm run bench`,
 *            bench/loadgen/, 2 worker threads).
 * Brokers: Mosquitto and one Courier process pinned to --broker-cpu (default 0); Courier with
 * --workers N twice: pinned to --broker-cpu (all workers and their Redis on one core: the cost of
 * the machinery) and on --workers-cpu (default every CPU: what N cores give, sharing the
 * generator's CPU on a small machine). The generator (this process) is pinned to --gen-cpu.
 * Courier logs at warn (no line per connection, as Mosquitto's connection_messages false).
 * --balance is the workers' --workers-balance (default: Courier's choice, shared on Linux).
 */
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { runAsMain, startBroker } from './brokers/index.js';
import { children, launchCourier } from './courier-launch.js';
import { NativeConnections, buildNativeConnect } from './loadgen/native.js';
import { Pool } from './loadgen/pool.js';
import type { ConnSpec } from './loadgen/protocol.js';
import { cpuMicros } from './proc.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

interface Cli {
  workers: number;
  connections: number;
  durationMs: number;
  warmupMs: number;
  publishers: number;
  subscribers: number;
  payload: number;
  brokerCpu: string;
  workersCpu: string;
  genCpu: string;
  /** --workers-balance of the workers primary (default: Courier's choice). */
  balance: string | undefined;
  json: boolean;
}

interface Target {
  label: string;
  cpu: string;
  start(): Promise<Running>;
}

interface Running {
  port: number;
  /** Every process of the broker (for CPU time): a workers primary, its workers and its Redis. */
  pids(): number[];
  stop(): Promise<void>;
}

interface Row {
  label: string;
  cpu: string;
  connPerS: number;
  connCpuUs: number;
  msgPerS: number;
  msgCpuPct: number;
  /** Broker CPU per delivered message (all its processes). */
  msgCpuUs: number;
  error?: string;
}

function parseCli(argv: string[]): Cli {
  const { values } = parseArgs({
    args: argv,
    options: {
      workers: { type: 'string', default: '2' },
      connections: { type: 'string', default: '5000' },
      duration: { type: 'string', default: '5' },
      warmup: { type: 'string', default: '1' },
      publishers: { type: 'string', default: '20' },
      subscribers: { type: 'string', default: '2' },
      payload: { type: 'string', default: '64' },
      'broker-cpu': { type: 'string', default: '0' },
      'workers-cpu': { type: 'string', default: `0-${os.cpus().length - 1}` },
      'gen-cpu': { type: 'string', default: String(Math.min(1, os.cpus().length - 1)) },
      balance: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  });
  return {
    workers: Number(values.workers),
    connections: Number(values.connections),
    durationMs: Number(values.duration) * 1000,
    warmupMs: Number(values.warmup) * 1000,
    publishers: Number(values.publishers),
    subscribers: Number(values.subscribers),
    payload: Number(values.payload),
    brokerCpu: values['broker-cpu'],
    workersCpu: values['workers-cpu'],
    genCpu: values['gen-cpu'],
    balance: values.balance,
    json: values.json,
  };
}

/** `bin/courier.js` on a free port, in-memory store, logging at warn; with `workers`, a primary. */
function courier(label: string, cpu: string, workers: number | undefined, balance?: string): Target {
  return {
    label,
    cpu,
    async start() {
      const args: string[] = [];
      if (workers !== undefined) args.push('--workers', String(workers));
      if (workers !== undefined && balance !== undefined) args.push('--workers-balance', balance);
      const c = await launchCourier({ label, root, cpu, args });
      return { port: c.port, pids: () => [c.pid, ...children(c.pid)], stop: c.stop };
    },
  };
}

function mosquitto(cpu: string): Target {
  return {
    label: 'Mosquitto',
    cpu,
    async start() {
      const b = await startBroker('mosquitto', { cpu, nofile: 65536 });
      return { port: b.port, pids: () => [b.pid], stop: () => b.stop() };
    },
  };
}

const cpuOf = (pids: number[]): number =>
  pids.reduce((sum, p) => {
    try {
      return sum + cpuMicros(p);
    } catch {
      return sum;
    }
  }, 0);

async function connectRate(cli: Cli, bin: string, b: Running): Promise<{ perS: number; cpuUsPerConn: number }> {
  const open = async (prefix: string, count: number) =>
    NativeConnections.open(bin, {
      host: '127.0.0.1',
      port: b.port,
      count,
      window: 100,
      clientIdPrefix: prefix,
      version: 4,
      keepAlive: 600,
      sources: 1,
      timeoutMs: 120_000,
    });
  const warm = await open('warm-', 200);
  await warm.conns.close();
  const before = cpuOf(b.pids());
  const { conns, report } = await open('c-', cli.connections);
  const used = cpuOf(b.pids()) - before;
  await conns.close();
  if (report.failed > 0) throw new Error(`${report.failed} connections failed: ${report.error ?? ''}`);
  return { perS: report.connected / report.seconds, cpuUsPerConn: used / report.connected };
}

async function fanin(cli: Cli, pool: Pool, b: Running): Promise<{ perS: number; cpuPct: number; cpuUs: number }> {
  pool.resetProgress();
  const request = async (worker: number, conns: ConnSpec[]): Promise<void> => {
    const r = await pool.request(worker, { op: 'connect', conns, window: 64, timeoutMs: 30_000 });
    if (r.op !== 'connected' || r.failed > 0) throw new Error(`connect failed: ${JSON.stringify(r)}`);
  };
  try {
    const subs: ConnSpec[] = Array.from({ length: cli.subscribers }, (_, i) => ({
      clientId: `sub-${i}`,
      port: b.port,
      subscribe: [{ topic: 'bench/#', qos: 0 }],
      column: i,
    }));
    await request(0, subs);
    // Routes reach the other workers through Redis after SUBACK.
    await sleep(1000);
    const pubs: ConnSpec[] = Array.from({ length: cli.publishers }, (_, i) => ({
      clientId: `pub-${i}`,
      port: b.port,
      publish: {
        mode: 'flood',
        topic: `bench/in/${i}`,
        qos: 0,
        payloadSize: cli.payload,
        batch: 32,
        stream: i,
        e2eWindow: 100,
        watch: subs.map((_, k) => k),
        stamp: true,
      },
    }));
    await request(pool.size > 1 ? 1 : 0, pubs);
    await pool.all({ op: 'start' });
    await sleep(cli.warmupMs);
    const a = { t: process.hrtime.bigint(), received: pool.totals().received, cpu: cpuOf(b.pids()) };
    pool.setMeasuring(true);
    await sleep(cli.durationMs);
    pool.setMeasuring(false);
    const z = { t: process.hrtime.bigint(), received: pool.totals().received, cpu: cpuOf(b.pids()) };
    await pool.all({ op: 'stop' });
    const seconds = Number(z.t - a.t) / 1e9;
    return {
      perS: (z.received - a.received) / seconds,
      cpuPct: (z.cpu - a.cpu) / 1e4 / seconds,
      cpuUs: (z.cpu - a.cpu) / Math.max(1, z.received - a.received),
    };
  } finally {
    await Promise.race([pool.all({ op: 'close' }), sleep(5000)]);
  }
}

function fmt(n: number): string {
  return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '—';
}

function ratio(n: number, base: number): string {
  return Number.isFinite(n) && base > 0 ? `${(n / base).toFixed(2)}×` : '—';
}

export async function main(argv: string[]): Promise<void> {
  const cli = parseCli(argv);
  execFileSync('taskset', ['-a', '-p', '-c', cli.genCpu, String(process.pid)], { stdio: 'ignore' });
  const native = buildNativeConnect(path.join(root, 'node_modules/.cache/courier-bench'));
  if (!('bin' in native)) throw new Error(`the native connection opener is needed: ${native.error}`);
  execFileSync('npm', ['run', 'build', '--silent'], { cwd: root, stdio: 'inherit' });
  const targets = [
    mosquitto(cli.brokerCpu),
    courier('Courier, 1 process', cli.brokerCpu, undefined),
    courier(`Courier --workers ${cli.workers}`, cli.brokerCpu, cli.workers, cli.balance),
    courier(`Courier --workers ${cli.workers}`, cli.workersCpu, cli.workers, cli.balance),
  ];
  const pool = new Pool(2, '127.0.0.1', 1, 4, { streams: cli.publishers, columns: cli.subscribers });
  const rows: Row[] = [];
  try {
    for (const t of targets) {
      const row: Row = { label: t.label, cpu: t.cpu, connPerS: NaN, connCpuUs: NaN, msgPerS: NaN, msgCpuPct: NaN, msgCpuUs: NaN };
      try {
        process.stderr.write(`bench: ${t.label} on CPU ${t.cpu}: connect…`);
        let b = await t.start();
        try {
          const c = await connectRate(cli, native.bin, b);
          row.connPerS = c.perS;
          row.connCpuUs = c.cpuUsPerConn;
        } finally {
          await b.stop();
        }
        process.stderr.write(` ${fmt(row.connPerS)}/s; fan-in…`);
        b = await t.start();
        try {
          const m = await fanin(cli, pool, b);
          row.msgPerS = m.perS;
          row.msgCpuPct = m.cpuPct;
          row.msgCpuUs = m.cpuUs;
        } finally {
          await b.stop();
        }
        process.stderr.write(` ${fmt(row.msgPerS)} msg/s\n`);
      } catch (err) {
        row.error = err instanceof Error ? err.message.split('\n')[0] : String(err);
        process.stderr.write(` ERROR ${row.error}\n`);
      }
      rows.push(row);
    }
  } finally {
    await pool.terminate();
  }
  if (cli.json) {
    process.stdout.write(`${JSON.stringify({ options: cli, nproc: os.cpus().length, loadavg: os.loadavg(), rows }, null, 2)}\n`);
    return;
  }
  const base = rows[0]!;
  const lines = [
    `Machine: ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'}), Node ${process.version}, load average ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')} at the end; generator on CPU ${cli.genCpu}; one run.`,
    '',
    '| broker | CPUs | connections/s | vs Mosquitto | broker CPU µs/conn | fan-in delivered msg/s | vs Mosquitto | broker CPU % | broker CPU µs/msg |',
    '|---|---|---|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.label} | ${r.cpu} | ${fmt(r.connPerS)} | ${ratio(r.connPerS, base.connPerS)} | ${fmt(r.connCpuUs)} | ${fmt(r.msgPerS)} | ${ratio(r.msgPerS, base.msgPerS)} | ${fmt(r.msgCpuPct)} | ${r.msgCpuUs.toFixed(1)} |` +
        (r.error === undefined ? '' : ` error: ${r.error}`),
    ),
    '',
    `connect: ${cli.connections} CONNECT→CONNACK, 100 in flight (bench/loadgen/connect.c). fan-in: ${cli.publishers} QoS 0 publishers, ${cli.subscribers} subscribers on bench/#, ${cli.payload} B, ${cli.durationMs / 1000} s after ${cli.warmupMs / 1000} s. Broker CPU counts every process of the broker (workers primary, workers, private Redis).`,
    '',
  ];
  process.stdout.write(lines.join('\n'));
}

runAsMain(import.meta.url, main);
