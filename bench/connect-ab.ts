/**
 * Connection CPU, A/B in alternating rounds (issue 19: "CPU per connection ≤ 1.2× the Node
 * floor"). One bench run cannot resolve 20 µs per connection on a shared 2-core machine; this
 * repeats the same measurement in rounds, each round every variant back to back, and reports
 * each variant's CPU per connection over the Node floor's of the same round, and the median.
 *
 *   npm run bench:connect-ab -- [--rounds 7] [--connections 10000] [--window 100]
 *                               [--other PATH [--other-label NAME]] [--json]
 *
 * Variants: `courier` (this checkout's dist/, as `npm run bench` runs it), `node-floor` (the
 * bench's bare node:net server that answers CONNACK), and, with --other, Courier from another
 * built checkout (e.g. the commit before a change: `git worktree add /tmp/base <commit> && cd
 * /tmp/base && npm ci && npm run build`), started with that checkout's own launcher.
 *
 * Per measurement: a fresh broker on CPU 0 (--broker-cpu), the native opener (loadgen/connect.c)
 * on CPU 1 (--gen-cpu) opening 500 connections to warm up and closing them, then opening
 * --connections (MQTT 3.1.1, clean, keep alive 60 s, --window handshakes in flight); broker CPU (utime + stime
 * from /proc) from just before the first connect() to the last CONNACK.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { killAll, pinnedSpawn } from './brokers/index.js';
import { buildNativeConnect } from './loadgen/native.js';
import { cpuMicros } from './proc.js';
import { median } from './stats.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '7' },
    connections: { type: 'string', default: '10000' },
    window: { type: 'string', default: '100' },
    other: { type: 'string' },
    'other-label': { type: 'string', default: 'other' },
    'broker-cpu': { type: 'string', default: '0' },
    'gen-cpu': { type: 'string', default: '1' },
    json: { type: 'boolean', default: false },
  },
});
const rounds = Number(values.rounds);
const connections = Number(values.connections);
const window = Number(values.window);

interface Variant {
  label: string;
  /** The launcher to run with `node --import tsx` (its checkout's dist/ is what it loads). */
  script: string;
  args: string[];
}
const variants: Variant[] = [
  { label: 'courier', script: path.join(root, 'bench/brokers/courier.ts'), args: ['0', 'memory'] },
  { label: 'node-floor', script: path.join(root, 'bench/brokers/node-floor.ts'), args: ['0'] },
];
if (values.other !== undefined) {
  const other = path.resolve(values.other);
  const script = path.join(other, 'bench/brokers/courier.ts');
  if (!existsSync(script) || !existsSync(path.join(other, 'dist/index.js')))
    throw new Error(`${other}: no bench/brokers/courier.ts or dist/index.js (npm ci && npm run build there)`);
  variants.push({ label: values['other-label'], script, args: ['0', 'memory'] });
}
if (!existsSync(path.join(root, 'dist/index.js'))) throw new Error('no dist/index.js: npm run build first');

const native = buildNativeConnect(path.join(tmpdir(), 'courier-bench-native'));
if ('error' in native) throw new Error(`connect.c: ${native.error}`);
const connectBin = native.bin;

function readLine(child: ChildProcess, re: RegExp, ms: number): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${re}`)), ms);
    const onData = (b: Buffer): void => {
      buf += b.toString('utf8');
      const m = re.exec(buf);
      if (m !== null) {
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        resolve(m);
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited (${code}) before ${re}: ${buf.slice(-500)}`));
    });
  });
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** Opens `count` connections, returns the opener (still holding them) and its report. */
async function open(port: number, count: number, prefix: string): Promise<{ child: ChildProcess; report: { connected: number; failed: number } }> {
  const child = pinnedSpawn(values['gen-cpu'], count + 1000, connectBin, [
    '127.0.0.1',
    String(port),
    String(count),
    String(window),
    prefix,
    '4',
    '60',
    '1',
    '120',
  ]);
  const m = await readLine(child, /(\{"connected".*\})\n/, 130_000);
  return { child, report: JSON.parse(m[1]!) as { connected: number; failed: number } };
}

async function close(child: ChildProcess): Promise<void> {
  child.stdin!.end('close\n');
  await exited(child);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function measure(v: Variant): Promise<number> {
  const broker = pinnedSpawn(values['broker-cpu'], connections + 1000, process.execPath, ['--import', 'tsx', v.script, ...v.args], {
    ...process.env,
    BENCH_LISTEN_HOST: '127.0.0.1',
  });
  try {
    const port = Number((await readLine(broker, /READY (\d+)/, 30_000))[1]);
    const warm = await open(port, 500, 'warm-');
    await close(warm.child);
    await sleep(500);
    const before = cpuMicros(broker.pid!);
    const run = await open(port, connections, 'ab-');
    const after = cpuMicros(broker.pid!);
    await close(run.child);
    if (run.report.connected !== connections) throw new Error(`${v.label}: ${run.report.connected} of ${connections} connected (${run.report.failed} failed)`);
    return (after - before) / connections;
  } finally {
    broker.kill('SIGTERM');
    await Promise.race([exited(broker), sleep(3000)]);
    if (broker.exitCode === null && broker.signalCode === null) broker.kill('SIGKILL');
  }
}

process.on('exit', killAll);

const perRound: Array<Record<string, number>> = [];
for (let r = 0; r < rounds; r++) {
  const row: Record<string, number> = {};
  for (const v of variants) row[v.label] = await measure(v);
  perRound.push(row);
  const floor = row['node-floor']!;
  const parts = variants.map((v) => `${v.label} ${row[v.label]!.toFixed(1)} µs${v.label === 'node-floor' ? '' : ` (${(row[v.label]! / floor).toFixed(2)}×)`}`);
  process.stderr.write(`round ${r + 1}/${rounds}: ${parts.join(', ')}\n`);
}

const others = variants.filter((v) => v.label !== 'node-floor');
const summary = others.map((v) => {
  const ratios = perRound.map((row) => row[v.label]! / row['node-floor']!);
  return { label: v.label, median: median(ratios), min: Math.min(...ratios), max: Math.max(...ratios), ratios };
});
if (values.json) {
  process.stdout.write(`${JSON.stringify({ connections, window, rounds: perRound, summary }, null, 2)}\n`);
} else {
  process.stdout.write(`\nBroker CPU µs per connection (${connections} connections, ${window} in flight), ${rounds} alternating rounds:\n\n`);
  process.stdout.write(`| round | ${variants.map((v) => v.label).join(' | ')} | ${others.map((v) => `${v.label}/floor`).join(' | ')} |\n`);
  process.stdout.write(`|---|${variants.map(() => '---:').join('|')}|${others.map(() => '---:').join('|')}|\n`);
  perRound.forEach((row, i) => {
    const cells = variants.map((v) => row[v.label]!.toFixed(1));
    const ratios = others.map((v) => `${(row[v.label]! / row['node-floor']!).toFixed(2)}×`);
    process.stdout.write(`| ${i + 1} | ${cells.join(' | ')} | ${ratios.join(' | ')} |\n`);
  });
  process.stdout.write('\n');
  for (const s of summary) {
    process.stdout.write(`${s.label} / node-floor: median ${s.median.toFixed(2)}× (rounds ${s.min.toFixed(2)}–${s.max.toFixed(2)}×)\n`);
  }
}
