/** Reading another process's CPU time and memory from /proc (Linux only). */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

let clockTicks: number | null = null;

/** USER_HZ: the unit of utime/stime in /proc/PID/stat. */
export function clkTck(): number {
  if (clockTicks === null) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/**
 * The fields of a /proc/PID/stat line after the command name: [0] is field 3 (state), so field N
 * is [N - 3]. The command name (field 2) may contain spaces and parentheses: split after the last ')'.
 */
export function statFields(stat: string): string[] {
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** utime + stime of the whole process (all threads), in microseconds. */
export function cpuMicros(pid: number): number {
  const fields = statFields(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  // utime is field 14, stime field 15.
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return ((utime + stime) * 1e6) / clkTck();
}

/** Resident set size in KiB (VmRSS). */
export function rssKiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  return m === null ? NaN : Number(m[1]);
}

/** The CPUs a process may run on, as reported by the kernel (e.g. "0" or "0-1"). */
export function allowedCpus(pid: number): string {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^Cpus_allowed_list:\s+(\S+)/m.exec(status);
  return m === null ? '?' : m[1]!;
}

/**
 * Move every thread of this process, and of the launchers above it, to `cpus` (taskset -a);
 * returns what puts them back. The orchestrator is part of the measuring side: during a latency
 * round it must not take the broker's CPU (unpinned, the scheduler put it there, a 4 ms run at
 * the window's end in a trace). Neither must what started it: `npm run` (npm, its `sh -c`) and
 * tsx's CLI (a `node` that waits for the real one and relays signals) each showed up on the
 * broker's CPU in traces, up to ~4 ms at a time.
 */
export function pinSelf(cpus: string): () => void {
  const pids = [process.pid, ...launchers(process.ppid)];
  const before = pids.map((pid) => {
    try {
      return allowedCpus(pid);
    } catch {
      return '?'; // gone already
    }
  });
  const set = (pid: number, list: string): void => {
    const r = spawnSync('taskset', ['-a', '-p', '-c', list, String(pid)], { stdio: 'ignore' });
    if (r.status !== 0)
      process.stderr.write(`bench: taskset -a -p -c ${list} ${pid} failed; ${pid === process.pid ? 'the orchestrator' : 'its launcher'} is not pinned\n`);
  };
  for (const pid of pids) set(pid, cpus);
  return () => pids.forEach((pid, i) => before[i] !== '?' && set(pid, before[i]!));
}

/** Names of the processes that start a bench on its way: npm, its `sh -c`, tsx's `node`. */
const LAUNCHERS = new Set(['node', 'npm', 'npx', 'sh', 'tsx']);

/**
 * The chain of launcher processes from `pid` upwards (stops at the first other process, e.g. the
 * user's shell, and at init), at most 5.
 */
export function launchers(pid: number): number[] {
  const out: number[] = [];
  while (pid > 1 && out.length < 5) {
    let comm: string;
    let ppid: number;
    try {
      comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
      ppid = Number(statFields(readFileSync(`/proc/${pid}/stat`, 'utf8'))[1]); // field 4
    } catch {
      break;
    }
    // npm names its process "npm exec ..." / "npm run ..." (comm is cut to 15 characters).
    if (!LAUNCHERS.has(comm) && !comm.startsWith('npm ')) break;
    out.push(pid);
    pid = ppid;
  }
  return out;
}

export function threadCount(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^Threads:\s+(\d+)/m.exec(status);
  return m === null ? NaN : Number(m[1]);
}

/** `pid` and all its descendants (from /proc/PID/task/TID/children), parents first. */
export function processTree(pid: number): number[] {
  const out: number[] = [];
  const todo = [pid];
  while (todo.length > 0) {
    const p = todo.shift()!;
    out.push(p);
    let tids: string[];
    try {
      tids = readdirSync(`/proc/${p}/task`);
    } catch {
      continue; // gone meanwhile
    }
    for (const tid of tids) {
      try {
        for (const c of readFileSync(`/proc/${p}/task/${tid}/children`, 'utf8').split(' ')) if (c.trim() !== '') todo.push(Number(c));
      } catch {
        // thread gone
      }
    }
  }
  return out;
}

/** Sum of `f` over a process and its descendants (a broker running worker processes); processes that vanish count 0. */
export function treeSum(pid: number, f: (pid: number) => number): number {
  let sum = 0;
  for (const p of processTree(pid)) {
    try {
      const v = f(p);
      if (Number.isFinite(v)) sum += v;
    } catch {
      // exited between the listing and the read
    }
  }
  return sum;
}
