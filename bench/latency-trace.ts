/**
 * Where a latency tail goes: one latency round of one broker under `perf record` (scheduler
 * switches on every CPU, CLOCK_MONOTONIC), with every sample's send time dumped by the generator
 * (BENCH_LATENCY_DUMP). For each of the worst samples it prints what ran on the broker's CPU
 * between the sample's send and its receipt, and sums that over the worst samples by who ran:
 * the broker's main thread (and whether it was then preempted, R, or went to sleep, S), its other
 * threads (V8's compiler and GC helpers, libuv's pool), the busy neighbour, anything else.
 *
 *   npm run bench:latency-trace -- [--broker courier] [--neighbour] [--top 30] [--keep DIR] [-- bench args]
 *   npx tsx bench/latency-trace.ts ...   (the same; npm, its shell and tsx's wrapper are pinned too)
 *
 * Needs Linux `perf` with access to sched tracepoints (root, or kernel.perf_event_paranoid ≤ -1).
 * perf itself runs on the generator's CPU (1): it disturbs the measuring side, not the broker, so
 * a sample whose time went while the broker slept after forwarding it is the generator's.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { pinSelf } from './proc.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values, positionals } = parseArgs({
  options: {
    broker: { type: 'string', default: 'courier' },
    neighbour: { type: 'boolean', default: false },
    top: { type: 'string', default: '30' },
    keep: { type: 'string' },
    'broker-cpu': { type: 'string', default: '0' },
    'gen-cpu': { type: 'string', default: '1' },
  },
  allowPositionals: true,
});
const top = Number(values.top);
// This process (and perf, and the bench under it) belongs to the measuring side's CPU, and so do
// the launchers that started it (npm, its shell, tsx's wrapper: pinSelf moves them too).
pinSelf(values['gen-cpu']!);
const dir = values.keep ?? mkdtempSync(path.join(tmpdir(), 'courier-latency-trace-'));
mkdirSync(dir, { recursive: true });
const dump = path.join(dir, 'samples.txt');
const data = path.join(dir, 'perf.data');
rmSync(dump, { force: true });

const bench = [
  process.execPath,
  '--import',
  'tsx',
  path.join(root, 'bench/run.ts'),
  '--scenarios',
  'latency',
  '--brokers',
  values.broker!,
  '--latency-rounds',
  '1',
  '--broker-cpu',
  values['broker-cpu']!,
  '--gen-cpu',
  values['gen-cpu']!,
  ...(values.neighbour ? ['--neighbour'] : []),
  ...positionals,
];
const rec = spawnSync(
  'taskset',
  ['-c', values['gen-cpu']!, 'perf', 'record', '-q', '-k', 'CLOCK_MONOTONIC', '-e', 'sched:sched_switch', '-a', '-o', data, '--', ...bench],
  { encoding: 'utf8', env: { ...process.env, BENCH_LATENCY_DUMP: dump }, maxBuffer: 64 << 20 },
);
if (rec.error !== undefined || rec.status !== 0) {
  process.stderr.write(`latency-trace: perf record failed (${rec.error?.message ?? `exit ${rec.status}`}):\n${rec.stderr.slice(-2000)}\n`);
  process.exit(1);
}
const pidMatch = /broker pid (\d+)/.exec(rec.stdout);
if (pidMatch === null) {
  process.stderr.write(`latency-trace: no broker pid in the bench's output:\n${rec.stdout.slice(-2000)}\n`);
  process.exit(1);
}
const brokerPid = pidMatch[1]!;
const headline = rec.stdout.split('\n').filter((l) => /latency p(50|99|99\.9) µs/.test(l));

// One pass: each line leads with the switched-out task's pid/tid (the broker's threads, on any
// CPU: /proc is gone by now), then its CPU, time and the switch.
const script = spawnSync('perf', ['script', '-i', data, '-F', 'pid,tid,cpu,time,trace'], { encoding: 'utf8', maxBuffer: 1 << 30 });
if (script.status !== 0) {
  process.stderr.write(`latency-trace: perf script failed:\n${script.stderr.slice(-2000)}\n`);
  process.exit(1);
}

/** One stretch of a task on the broker's CPU: [start, end) in seconds, and how it left (R, S, D...). */
interface Run {
  start: number;
  end: number;
  tid: string;
  comm: string;
  left: string;
}
const cpuTag = `[${values['broker-cpu']!.padStart(3, '0')}]`;
const runs: Run[] = [];
/** Which threads belong to the broker. */
const threads = new Set<string>([brokerPid]);
let since: number | undefined;
const switchRe = /prev_comm=(.+?) prev_pid=(\d+) .*prev_state=(\S+) ==> next_comm=(.+?) next_pid=(\d+)/;
for (const line of script.stdout.split('\n')) {
  const task = /^\s*(\d+)\/(\d+)/.exec(line);
  if (task !== null && task[1] === brokerPid) threads.add(task[2]!);
  if (!line.includes(cpuTag)) continue;
  const t = /\s([\d]+\.[\d]+):/.exec(line);
  const m = switchRe.exec(line);
  if (t === null || m === null) continue;
  const at = Number(t[1]);
  if (since !== undefined) runs.push({ start: since, end: at, tid: m[2]!, comm: m[1]!, left: m[3]! });
  since = at;
}

const who = (r: Run): string => {
  if (r.tid === brokerPid) return `broker main (${r.left === 'R' || r.left === 'R+' ? 'preempted' : 'slept'})`;
  if (threads.has(r.tid)) return 'broker thread';
  if (r.comm === 'sh') return 'neighbour';
  return `other: ${r.comm}`;
};

const samples = readFileSync(dump, 'utf8')
  .trim()
  .split('\n')
  .map((l) => l.split(' ').map(Number) as [number, number])
  .sort((a, b) => b[1] - a[1])
  .slice(0, top);
const totals = new Map<string, number>();
const lines: string[] = [];
for (const [sentNs, latUs] of samples) {
  const from = sentNs / 1e9;
  const to = from + latUs / 1e6;
  const parts: Array<{ who: string; ms: number }> = [];
  for (const r of runs) {
    if (r.end <= from) continue;
    if (r.start >= to) break;
    const ms = (Math.min(r.end, to) - Math.max(r.start, from)) * 1000;
    const w = who(r);
    totals.set(w, (totals.get(w) ?? 0) + ms);
    // Stretches under 50 µs (a timer's wake-up) are summed, not listed; neighbours of one kind merge.
    if (ms < 0.05) continue;
    const last = parts[parts.length - 1];
    if (last !== undefined && last.who === w) last.ms += ms;
    else parts.push({ who: w, ms });
  }
  lines.push(`${(latUs / 1000).toFixed(2)} ms: ${parts.map((p) => `${p.who} ${p.ms.toFixed(2)}`).join(' | ')}`);
}

process.stdout.write(
  `${headline.join('\n')}\nbroker pid ${brokerPid}; the ${samples.length} worst samples, what ran on CPU ${values['broker-cpu']} while each waited:\n`,
);
for (const l of [...new Set(lines)]) process.stdout.write(`  ${l}\n`);
process.stdout.write('summed over those samples (ms):\n');
for (const [w, ms] of [...totals].sort((a, b) => b[1] - a[1])) process.stdout.write(`  ${w.padEnd(28)} ${ms.toFixed(1)}\n`);
if (values.keep === undefined) rmSync(dir, { recursive: true, force: true });
else process.stdout.write(`perf data and samples kept in ${dir}\n`);
