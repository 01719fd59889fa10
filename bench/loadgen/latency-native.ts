/**
 * The latency scenario measured by the native probe (bench/loadgen/latency.c): one C thread
 * publishes on an absolute schedule and times the deliveries, so the Node generator's own pauses
 * (GC, timers) stay out of the tail. The probe is a child of the (pinned) generator process, so it
 * runs on the generator's CPU; the broker's CPU time is read when the probe prints the edges of
 * its window.
 */
import { spawn } from 'node:child_process';
import { allowedCpus, cpuMicros, rssKiB } from '../proc.js';
import type { GeneratorJob, ScenarioResult } from '../types.js';
import { NATIVE_LATENCY_ENV, NATIVE_LATENCY_MISSING_ENV, killChild, killOnExit } from './native.js';

/** `node` forces the Node generator, `native` fails rather than fall back to it. */
export const LATENCY_GENERATOR_ENV = 'BENCH_LATENCY_GENERATOR';

/** The probe's last line (bench/loadgen/latency.c). */
export interface ProbeReport {
  p50_us: number | null;
  p90_us: number | null;
  p99_us: number | null;
  p999_us: number | null;
  max_us: number | null;
  samples: number;
  received: number;
  gaps: number;
  sent: number;
  /** Slots passed over because the probe woke late (never sent in a burst). */
  skipped: number;
  /** Slots dropped because the publisher's socket queue was full. */
  unsent: number;
  /** Samples beyond the probe's preallocated buffer (not in the percentiles). */
  overflow: number;
  window_s: number;
  cpu_user_us: number;
  cpu_sys_us: number;
  /** 1: it ran SCHED_FIFO (BENCH_LATENCY_RT=1). */
  rt: number;
}

/**
 * Which generator measures latency: the probe's path, or why the Node generator does. bench/run.ts
 * decides (it honours LATENCY_GENERATOR_ENV, and fails for `native` without a probe) and passes
 * the decision in the environment.
 */
export function latencyGenerator(): { bin: string } | { why: string } {
  const bin = process.env[NATIVE_LATENCY_ENV];
  if (bin !== undefined && bin !== '') return { bin };
  return { why: process.env[NATIVE_LATENCY_MISSING_ENV] ?? 'not built: bench/run.ts builds it' };
}

interface Edge {
  t: bigint;
  brokerCpuUs: number;
}

const round = (n: number | null, digits = 1): number | null => {
  if (n === null || !Number.isFinite(n)) return null;
  const f = 10 ** digits;
  return Math.round(n * f) / f;
};

/** Run the probe once against the job's broker; the broker's CPU is read at its window's edges. */
export async function nativeLatency(bin: string, job: GeneratorJob): Promise<ScenarioResult> {
  const p = job.params;
  const args = [job.host, job.port, p.version, p.latencyRate, p.payloadSize, p.latencyWarmupMs, p.durationMs].map(String);
  const dump = process.env.BENCH_LATENCY_DUMP;
  if (dump !== undefined && dump !== '') args.push(dump);
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid === undefined) {
    const err = await new Promise<Error>((resolve) => child.once('error', resolve));
    throw new Error(`latency probe did not start: ${err.message}`);
  }
  killOnExit(child);
  const pid = child.pid;
  try {
    const mine = allowedCpus(process.pid);
    let its = '?';
    try {
      its = allowedCpus(pid);
    } catch {
      // already gone: its exit code and stderr say why
    }
    if (its !== '?' && its !== mine) throw new Error(`latency probe pid ${pid} runs on CPUs ${its}, the generator on ${mine}`);
    let start: Edge | undefined;
    let end: Edge | undefined;
    let rss = NaN;
    let report: ProbeReport | undefined;
    let stderr = '';
    let buf = '';
    child.stderr!.on('data', (b: Buffer) => (stderr = (stderr + b.toString('utf8')).slice(-2000)));
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (s: string) => {
      buf += s;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        // The edges first, before parsing anything: the broker's CPU as close to them as this process gets.
        if (line === '{"window":"start"}') start = { t: process.hrtime.bigint(), brokerCpuUs: cpuMicros(job.brokerPid) };
        else if (line === '{"window":"end"}') {
          end = { t: process.hrtime.bigint(), brokerCpuUs: cpuMicros(job.brokerPid) };
          rss = rssKiB(job.brokerPid);
        } else if (line.startsWith('{')) {
          try {
            report = JSON.parse(line) as ProbeReport;
          } catch {
            stderr += `\nunreadable report line: ${line.slice(0, 200)}`;
          }
        }
      }
    });
    const timeoutMs = p.latencyWarmupMs + p.durationMs + 45_000; // the probe gives up at +30 s itself
    const code = await new Promise<number | string>((resolve) => {
      const timer = setTimeout(() => killChild(child), timeoutMs);
      // 'close', not 'exit': only then has all of its stdout been read.
      child.once('close', (c, signal) => {
        clearTimeout(timer);
        resolve(c ?? signal ?? 'unknown');
      });
    });
    const why = stderr.trim().split('\n').slice(-3).join('; ');
    if (code !== 0) throw new Error(`latency probe exited with ${code}: ${why || '(no output)'}`);
    if (report === undefined || start === undefined || end === undefined) throw new Error(`latency probe printed no report: ${why || '(no output)'}`);
    const seconds = Number(end.t - start.t) / 1e9;
    const brokerCpuUs = end.brokerCpuUs - start.brokerCpuUs;
    const r = report;
    const notes = [
      `measured by bench/loadgen/latency.c (native probe, pid ${pid} on CPUs ${its}${r.rt === 1 ? ', SCHED_FIFO' : ''}: one PUBLISH per slot of an absolute ${p.latencyRate} msg/s schedule, ` +
        `stamped just before write(); in the window ${r.sent} sent, ${r.skipped} slots skipped (probe late), ${r.unsent} dropped (socket queue full))`,
    ];
    if (r.overflow > 0) notes.push(`${r.overflow} samples beyond the probe's buffer are not in the percentiles`);
    return {
      scenario: job.scenario,
      broker: job.broker,
      metrics: {
        p50_us: round(r.p50_us),
        p90_us: round(r.p90_us),
        p99_us: round(r.p99_us),
        p999_us: round(r.p999_us),
        max_us: round(r.max_us),
        samples: r.samples,
        loss_pct: r.received + r.gaps > 0 ? round((r.gaps / (r.received + r.gaps)) * 100, 2) : null,
        delivered_per_s: r.window_s > 0 ? Math.round(r.received / r.window_s) : null,
        broker_cpu_pct: seconds > 0 ? round(brokerCpuUs / 1e4 / seconds) : null,
        cpu_us_per_msg: r.received > 0 ? round(brokerCpuUs / r.received, 2) : null,
        broker_rss_mib: round(rss / 1024),
        gen_cpu_pct: r.window_s > 0 ? round((r.cpu_user_us + r.cpu_sys_us) / 1e4 / r.window_s) : null,
      },
      notes,
    };
  } finally {
    killChild(child);
  }
}
