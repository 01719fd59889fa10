/**
 * What on this machine can take the broker's CPU at a better priority than the broker, printed
 * with the latency results so that their tail can be read: processes at a negative nice value or
 * with a real-time policy (a VM's own agent ran at nice −10 on both vCPUs in the sixth round,
 * docs/benchmarks.md), and DAMON's monitoring threads (kdamond wakes every sampling interval and
 * runs in the kernel, which on a preempt=none kernel no broker preempts).
 * Linux only; elsewhere, or where /proc and /sys say nothing, the list is empty.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { statFields } from './proc.js';

const POLICIES: Record<number, string> = { 1: 'SCHED_FIFO', 2: 'SCHED_RR', 6: 'SCHED_DEADLINE' };

function read(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** The entries of `dir` named by a number (PIDs, DAMON context ids), none if it cannot be read. */
function numbered(dir: string): string[] {
  try {
    return readdirSync(dir).filter((d) => /^\d+$/.test(d));
  } catch {
    return [];
  }
}

/** One line per source, e.g. "process_api (pid 1) at nice -10", "DAMON on: kdamond pid 84, ...". */
export function tailSources(procRoot = '/proc', sysRoot = '/sys'): string[] {
  return [...priorityProcesses(procRoot), ...damon(sysRoot)];
}

/** User-space processes (kernel threads have an empty cmdline) at nice < 0 or a real-time policy. */
export function priorityProcesses(procRoot = '/proc'): string[] {
  const out: string[] = [];
  for (const pid of numbered(procRoot).sort((a, b) => Number(a) - Number(b))) {
    const stat = read(path.join(procRoot, pid, 'stat'));
    if (stat === undefined || read(path.join(procRoot, pid, 'cmdline')) === '') continue;
    const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    // nice is field 19, policy field 41.
    const fields = statFields(stat);
    const nice = Number(fields[16]);
    const policy = POLICIES[Number(fields[38])];
    if (policy !== undefined) out.push(`${name} (pid ${pid}) runs ${policy}`);
    else if (nice < 0) out.push(`${name} (pid ${pid}) at nice ${nice}`);
  }
  return out;
}

/** Running DAMON contexts (sysfs interface): their thread, address space and sampling interval. */
export function damon(sysRoot = '/sys'): string[] {
  const dir = path.join(sysRoot, 'kernel/mm/damon/admin/kdamonds');
  const out: string[] = [];
  for (const id of numbered(dir)) {
    const k = path.join(dir, id);
    if (read(path.join(k, 'state')) !== 'on') continue;
    const ctx = path.join(k, 'contexts/0');
    const ops = read(path.join(ctx, 'operations')) ?? '?';
    const sampleUs = Number(read(path.join(ctx, 'monitoring_attrs/intervals/sample_us')));
    const action = read(path.join(ctx, 'schemes/0/action'));
    const every = Number.isFinite(sampleUs) ? `, samples every ${sampleUs / 1000} ms` : '';
    out.push(`DAMON on: kdamond pid ${read(path.join(k, 'pid')) ?? '?'} (${ops}${every}${action === undefined ? '' : `, scheme ${action}`})`);
  }
  return out;
}
