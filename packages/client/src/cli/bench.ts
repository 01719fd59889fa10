/**
 * `courier bench`: publishers and one subscriber in this process, sequence numbers and send
 * times in every payload. Prints progress each second (stderr) and a summary: msgs/s,
 * p50/p95/p99/max latency, lost / duplicated / reordered counts; `--json` for JSON. Exits 1 when
 * QoS ≥ 1 messages were lost. A user's tool: broker claims stay with `npm run bench`.
 */
import { performance } from 'node:perf_hooks';
import type { Client } from '../client.js';
import type { QoS } from '../types.js';
import { has, int, one, parseFlags } from './args.js';
import { CONNECTION_FLAGS, CONNECTION_HELP, EXIT_ERROR, EXIT_OK, connectFrom, qosOf, type ToolIO } from './common.js';

export const BENCH_HELP = `Usage: courier bench [options]
Publishes from -c clients to one subscriber through the broker and reports rate, latency and losses.
  -c N             publishing clients (default 1)       --ramp MS  wait between connects (default 0)
  -n N             messages per publisher (default 10000; ignored with --duration)
  --duration S     publish for S seconds instead of -n
  --rate R         messages/s per publisher (open loop); default: closed loop with --window
  --window W       unacknowledged publishes per publisher (default 100)
  -s BYTES         payload size, ≥ 16 (default 64)      -q QOS  (default 0)
  -t PREFIX        topic prefix (default bench/<random>)
  --json           print the summary as JSON on stdout
${CONNECTION_HELP}Exit: 0, or 1 when QoS ≥ 1 messages were lost (or on error).
`;

const FLAGS = [
  ...CONNECTION_FLAGS.filter((f) => f.long !== 'disable-clean-session'),
  { short: 'c', long: 'clients', values: 1 },
  { short: 'n', long: 'count', values: 1 },
  { short: 's', long: 'size', values: 1 },
  { short: 't', long: 'topic', values: 1 },
  { long: 'duration', values: 1 },
  { long: 'rate', values: 1 },
  { long: 'window', values: 1 },
  { long: 'ramp', values: 1 },
  { long: 'json', values: 0 },
] as const;

export interface BenchSummary {
  qos: QoS;
  publishers: number;
  size: number;
  sent: number;
  received: number;
  lost: number;
  duplicated: number;
  reordered: number;
  seconds: number;
  msgsPerSec: number;
  latencyMs: { p50: number; p95: number; p99: number; max: number };
  errors: number;
}

// Sample floor(q·n), not bench/stats.ts's nearest rank ceil(q·n)-1 (one higher when q·n is whole): kept so printed latencies stay comparable.
export function percentile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

export async function benchMain(argv: readonly string[], io: ToolIO): Promise<number> {
  const p = parseFlags(argv, FLAGS);
  if (has(p, 'help')) {
    io.stdout.write(BENCH_HELP);
    return EXIT_OK;
  }
  const n = int(p, 'clients', 1, 100_000) ?? 1;
  const count = int(p, 'count', 1, 1e9) ?? 10_000;
  const duration = one(p, 'duration') === undefined ? undefined : Number(one(p, 'duration')) * 1000;
  const rate = int(p, 'rate', 1, 1e7);
  const window = int(p, 'window', 1, 65535) ?? 100;
  const size = Math.max(16, int(p, 'size', 16, 1 << 24) ?? 64);
  const ramp = int(p, 'ramp', 0, 60_000) ?? 0;
  const qos = qosOf(p);
  const prefix = one(p, 'topic') ?? `bench/${Math.floor(Math.random() * 1e9).toString(36)}`;

  const sub = await connectFrom(p, 'bench', io, { clientId: '', receiveMaximum: 65535 });
  if (typeof sub === 'number') return sub;
  const pubs: Client[] = [];
  const lastSeq = new Int32Array(n).fill(-1);
  const seen: Array<Uint8Array> = [];
  const latencies: number[] = [];
  let received = 0;
  let duplicated = 0;
  let reordered = 0;
  let errors = 0;
  const sentBy = new Int32Array(n);
  await sub.subscribe(`${prefix}/#`, {
    qos,
    handler: (m) => {
      const dv = new DataView(m.payload.buffer, m.payload.byteOffset, m.payload.byteLength);
      const pub = dv.getUint32(0);
      const seq = dv.getUint32(4);
      const sentAt = dv.getFloat64(8);
      const bits = (seen[pub] ??= new Uint8Array(1024));
      if (seq >> 3 >= bits.length) {
        const grown = new Uint8Array(Math.max(bits.length * 2, (seq >> 3) + 1));
        grown.set(bits);
        seen[pub] = grown;
      }
      const b = seen[pub]!;
      if ((b[seq >> 3]! & (1 << (seq & 7))) !== 0) {
        duplicated++;
        return;
      }
      b[seq >> 3]! |= 1 << (seq & 7);
      if (seq < lastSeq[pub]!) reordered++;
      else lastSeq[pub] = seq;
      received++;
      latencies.push(performance.now() - sentAt);
    },
  });
  try {
    for (let i = 0; i < n; i++) {
      const c = await connectFrom(p, 'bench', io, { clientId: '' });
      if (typeof c === 'number') return c;
      pubs.push(c);
      if (ramp > 0) await new Promise((r) => setTimeout(r, ramp));
    }
    const start = performance.now();
    let lastTick = start;
    let lastReceived = 0;
    const progress = setInterval(() => {
      const now = performance.now();
      const sent = sentBy.reduce((a, b) => a + b, 0);
      io.stderr.write(
        `${((now - start) / 1000).toFixed(0)} s: sent ${sent}, received ${received} (${Math.round(((received - lastReceived) * 1000) / (now - lastTick))}/s)\n`,
      );
      lastTick = now;
      lastReceived = received;
    }, 1000);
    const stopAt = duration === undefined ? Infinity : start + duration;
    const run = async (c: Client, idx: number): Promise<void> => {
      const topic = `${prefix}/${idx}`;
      const inflight = new Set<Promise<unknown>>();
      const interval = rate === undefined ? 0 : 1000 / rate;
      for (let seq = 0; duration !== undefined || seq < count; seq++) {
        const now = performance.now();
        if (now >= stopAt) break;
        if (interval > 0) {
          const due = start + seq * interval;
          if (due > now) await new Promise((r) => setTimeout(r, due - now));
        }
        const payload = new Uint8Array(size);
        const dv = new DataView(payload.buffer);
        dv.setUint32(0, idx);
        dv.setUint32(4, seq);
        dv.setFloat64(8, performance.now());
        const pr = c.publish(topic, payload, { qos }).then(
          () => undefined,
          () => void errors++,
        );
        sentBy[idx]!++;
        if (qos === 0) {
          if (seq % window === window - 1) await new Promise((r) => setImmediate(r));
          continue;
        }
        inflight.add(pr);
        void pr.then(() => inflight.delete(pr));
        if (inflight.size >= window) await Promise.race(inflight);
      }
      await Promise.all(inflight);
    };
    await Promise.all(pubs.map((c, i) => run(c, i)));
    const sent = sentBy.reduce((a, b) => a + b, 0);
    // Wait (at most 5 s without progress) for what is still on its way.
    let idleSince = performance.now();
    let before = received;
    while (received < sent && performance.now() - idleSince < 5000) {
      await new Promise((r) => setTimeout(r, 20));
      if (received !== before) {
        before = received;
        idleSince = performance.now();
      }
    }
    clearInterval(progress);
    const seconds = (performance.now() - start) / 1000;
    const sorted = Float64Array.from(latencies).sort();
    const summary: BenchSummary = {
      qos,
      publishers: n,
      size,
      sent,
      received,
      lost: sent - received,
      duplicated,
      reordered,
      seconds: Number(seconds.toFixed(3)),
      msgsPerSec: Math.round(received / seconds),
      latencyMs: {
        p50: percentile(sorted, 0.5),
        p95: percentile(sorted, 0.95),
        p99: percentile(sorted, 0.99),
        max: sorted.length ? sorted[sorted.length - 1]! : 0,
      },
      errors,
    };
    for (const k of ['p50', 'p95', 'p99', 'max'] as const) summary.latencyMs[k] = Number(summary.latencyMs[k].toFixed(3));
    if (has(p, 'json')) io.stdout.write(`${JSON.stringify(summary)}\n`);
    else {
      const l = summary.latencyMs;
      io.stdout.write(
        `QoS ${qos}, ${n} publisher(s), ${size} B: ${summary.received}/${summary.sent} received in ${summary.seconds} s = ${summary.msgsPerSec} msgs/s\n` +
          `latency ms p50 ${l.p50} p95 ${l.p95} p99 ${l.p99} max ${l.max}\n` +
          `lost ${summary.lost}, duplicated ${summary.duplicated}, reordered ${summary.reordered}, publish errors ${errors}\n`,
      );
    }
    return qos > 0 && (summary.lost > 0 || errors > 0) ? EXIT_ERROR : EXIT_OK;
  } finally {
    await Promise.all([...pubs.map((c) => c.close()), sub.close()]);
  }
}
