/**
 * Where a `--workers` connection's CPU goes, and how the connections spread over the workers:
 * variants of the broker measured in alternating rounds in one run (the shared 2-core machine
 * drifts, so only figures of one run are compared).
 *
 *   npm run bench:workers-connect -- [--workers 2] [--connections 5000] [--rounds 3] [--cpu 0-1]
 *       [--gen-cpu 1] [--window 100] [--variant LABEL=ROOT|ARGS|ENV ...] [--json]
 *
 * A variant is a broker: LABEL=ROOT|ARGS|ENV, with ROOT a Courier checkout with dist/ built
 * (empty: this one; `mosquitto`: Mosquitto), ARGS extra arguments of bin/courier.js separated by
 * spaces (e.g. `--workers 2 --workers-balance rr`) and ENV K=V pairs separated by spaces. Default
 * variants: one process, `--workers N --workers-balance rr`, `--workers N --workers-balance shared`.
 *
 * Per round and variant, on a fresh broker: 200 connections to warm up (closed), then
 * --connections CONNECT→CONNACK (MQTT 3.1.1, clean) from the native opener (bench/loadgen/connect.c),
 * --window in flight. Reported: connections/s; CPU per connection of each kind of process
 * (primary, workers, Redis; /proc/PID/stat before and after); the connections each worker holds
 * (its socket descriptors, less those it had before); then the CPU per connection of closing them
 * all (the opener exits: each worker sees the socket close and releases the session).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { runAsMain, startBroker } from './brokers/index.js';
import { children, launchCourier } from './courier-launch.js';
import { NativeConnections, buildNativeConnect } from './loadgen/native.js';
import { cpuMicros } from './proc.js';
import { median } from './stats.js';

const here = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

interface Variant {
  label: string;
  root: string;
  args: string[];
  env: Record<string, string>;
}

interface Procs {
  primary?: number;
  workers: number[];
  redis?: number;
  /** Mosquitto or a single Courier process. */
  single?: number;
}

interface Sample {
  label: string;
  round: number;
  connPerS: number;
  /** µs of CPU per connection opened: per kind of process and in total. */
  primaryUs: number;
  workersUs: number;
  redisUs: number;
  totalUs: number;
  /** µs of CPU per connection closed (all processes). */
  closeUs: number;
  /** Connections held by each worker (slot order), or [n] for one process. */
  spread: number[];
}

function parseVariant(text: string, workers: number): Variant {
  const eq = text.indexOf('=');
  if (eq <= 0) throw new Error(`--variant ${text}: expected LABEL=ROOT|ARGS|ENV`);
  const [root = '', args = '', env = ''] = text.slice(eq + 1).split('|');
  return {
    label: text.slice(0, eq),
    root: root === '' ? here : root,
    args: args
      .replaceAll('{workers}', String(workers))
      .split(' ')
      .filter((a) => a !== ''),
    env: Object.fromEntries(
      env
        .split(' ')
        .filter((p) => p.includes('='))
        .map((p) => [p.slice(0, p.indexOf('=')), p.slice(p.indexOf('=') + 1)]),
    ),
  };
}

const comm = (pid: number): string => {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
};

/** Socket descriptors of a process. */
function sockets(pid: number): number {
  let n = 0;
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:')) n++;
      } catch {
        // closed meanwhile
      }
    }
  } catch {
    // gone
  }
  return n;
}

/** A worker's slot, from its COURIER_WORKER environment (spec.ts). */
function slotOf(pid: number): number {
  try {
    const env = readFileSync(`/proc/${pid}/environ`, 'utf8');
    const m = /COURIER_WORKER=\{"slot":(\d+)/.exec(env);
    return m === null ? 0 : Number(m[1]);
  } catch {
    return 0;
  }
}

const cpu = (pid: number | undefined): number => {
  if (pid === undefined) return 0;
  try {
    return cpuMicros(pid);
  } catch {
    return 0;
  }
};

async function start(v: Variant, cpuList: string): Promise<{ port: number; procs: () => Procs; stop: () => Promise<void> }> {
  if (v.root === 'mosquitto') {
    const b = await startBroker('mosquitto', { cpu: cpuList, nofile: 65536 });
    return { port: b.port, procs: () => ({ workers: [], single: b.pid }), stop: () => b.stop() };
  }
  const c = await launchCourier({ label: v.label, root: v.root, cpu: cpuList, args: v.args, env: v.env });
  const { pid, workers } = c;
  const procs = (): Procs => {
    if (workers === 0) return { workers: [], single: pid };
    const kids = children(pid);
    return {
      primary: pid,
      redis: kids.find((k) => comm(k).startsWith('redis')),
      workers: kids.filter((k) => !comm(k).startsWith('redis')).sort((a, b) => slotOf(a) - slotOf(b)),
    };
  };
  return { port: c.port, procs, stop: c.stop };
}

function snapshot(p: Procs): { primary: number; workers: number; redis: number; single: number } {
  return { primary: cpu(p.primary), workers: p.workers.reduce((s, w) => s + cpu(w), 0), redis: cpu(p.redis), single: cpu(p.single) };
}

async function measure(v: Variant, round: number, o: { bin: string; connections: number; window: number; cpu: string }): Promise<Sample> {
  const b = await start(v, o.cpu);
  try {
    const open = (prefix: string, count: number) =>
      NativeConnections.open(o.bin, {
        host: '127.0.0.1',
        port: b.port,
        count,
        window: o.window,
        clientIdPrefix: prefix,
        version: 4,
        keepAlive: 600,
        sources: 1,
        timeoutMs: 120_000,
      });
    const warm = await open(`warm-${round}-`, 200);
    await warm.conns.close();
    await sleep(500);
    const p = b.procs();
    const held = (p.single === undefined ? p.workers : [p.single]).map(sockets);
    const a = snapshot(p);
    const { conns, report } = await open(`c-${round}-`, o.connections);
    const z = snapshot(p);
    const spread = (p.single === undefined ? p.workers : [p.single]).map((w, i) => sockets(w) - held[i]!);
    if (report.failed > 0) throw new Error(`${report.failed} connections failed: ${report.error ?? ''}`);
    const n = report.connected;
    await conns.close();
    // Until every worker has seen its sockets close.
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline && (p.single === undefined ? p.workers : [p.single]).some((w, i) => sockets(w) > held[i]! + 2)) await sleep(100);
    await sleep(500);
    const c = snapshot(p);
    const sum = (s: typeof a): number => s.primary + s.workers + s.redis + s.single;
    return {
      label: v.label,
      round,
      connPerS: n / report.seconds,
      primaryUs: (z.primary - a.primary) / n,
      workersUs: (z.workers - a.workers + z.single - a.single) / n,
      redisUs: (z.redis - a.redis) / n,
      totalUs: (sum(z) - sum(a)) / n,
      closeUs: (sum(c) - sum(z)) / n,
      spread,
    };
  } finally {
    await b.stop();
  }
}

const fmt = (n: number): string => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '—');

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      workers: { type: 'string', default: '2' },
      connections: { type: 'string', default: '5000' },
      rounds: { type: 'string', default: '3' },
      window: { type: 'string', default: '100' },
      cpu: { type: 'string', default: `0-${os.cpus().length - 1}` },
      'gen-cpu': { type: 'string', default: String(Math.min(1, os.cpus().length - 1)) },
      variant: { type: 'string', multiple: true },
      json: { type: 'boolean', default: false },
    },
  });
  const workers = Number(values.workers);
  const variants = (
    values.variant ?? ['one process=||', 'rr=|--workers {workers} --workers-balance rr|', 'shared=|--workers {workers} --workers-balance shared|']
  ).map((t) => parseVariant(t, workers));
  execFileSync('taskset', ['-a', '-p', '-c', values['gen-cpu'], String(process.pid)], { stdio: 'ignore' });
  const native = buildNativeConnect(path.join(here, 'node_modules/.cache/courier-bench'));
  if (!('bin' in native)) throw new Error(`the native connection opener is needed: ${native.error}`);
  const o = { bin: native.bin, connections: Number(values.connections), window: Number(values.window), cpu: values.cpu };
  const samples: Sample[] = [];
  const rounds = Number(values.rounds);
  for (let round = 0; round < rounds; round++) {
    // Alternating, and the order reversed every other round.
    const order = round % 2 === 0 ? variants : [...variants].reverse();
    for (const v of order) {
      try {
        const s = await measure(v, round, o);
        samples.push(s);
        process.stderr.write(
          `bench: round ${round} ${v.label}: ${fmt(s.connPerS)}/s, ${fmt(s.totalUs)} µs/conn (primary ${fmt(s.primaryUs)}, workers ${fmt(s.workersUs)}, redis ${fmt(s.redisUs)}), close ${fmt(s.closeUs)} µs, spread ${s.spread.join('/')}\n`,
        );
      } catch (err) {
        process.stderr.write(`bench: round ${round} ${v.label}: ERROR ${err instanceof Error ? err.message : String(err)}\n`);
      }
    }
  }
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ options: values, loadavg: os.loadavg(), samples }, null, 2)}\n`);
    return;
  }
  const lines = [
    `${o.connections} connections per round, ${o.window} in flight, ${rounds} alternating rounds, brokers on CPU ${o.cpu}, opener on CPU ${values['gen-cpu']}; Node ${process.version}; load average ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')} at the end. Medians (min–max) of the rounds.`,
    '',
    '| broker | connections/s | primary µs/conn | workers µs/conn | Redis µs/conn | total µs/conn | close µs/conn | spread over workers (per round) |',
    '|---|---:|---:|---:|---:|---:|---:|---|',
  ];
  const range = (xs: number[]): string => `${fmt(median(xs))} (${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))})`;
  for (const v of variants) {
    const mine = samples.filter((s) => s.label === v.label);
    if (mine.length === 0) continue;
    lines.push(
      `| ${v.label} | ${range(mine.map((s) => s.connPerS))} | ${fmt(median(mine.map((s) => s.primaryUs)))} | ${fmt(median(mine.map((s) => s.workersUs)))} | ${fmt(median(mine.map((s) => s.redisUs)))} | ${range(mine.map((s) => s.totalUs))} | ${fmt(median(mine.map((s) => s.closeUs)))} | ${mine.map((s) => s.spread.join('/')).join(', ')} |`,
    );
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

runAsMain(import.meta.url, main);
