/** RSS of a process and all its descendants, from /proc (Linux). */
import { readFileSync, readdirSync } from 'node:fs';

function readOr(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** `pid` and every process below it (children of every thread, recursively). */
export function processTree(pid: number): number[] {
  const out: number[] = [];
  const stack = [pid];
  while (stack.length > 0) {
    const p = stack.pop()!;
    out.push(p);
    let tasks: string[];
    try {
      tasks = readdirSync(`/proc/${p}/task`);
    } catch {
      continue;
    }
    for (const t of tasks) {
      const children = readOr(`/proc/${p}/task/${t}/children`).trim();
      if (children !== '') for (const c of children.split(/\s+/)) stack.push(Number(c));
    }
  }
  return out;
}

/** VmRSS of one process in bytes (0 when it is gone). */
export function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readOr(`/proc/${pid}/status`));
  return m ? Number(m[1]) * 1024 : 0;
}

/** The summed RSS of `pid` and its descendants, and how many processes that was. */
export function treeRss(pid: number): { rss: number; processes: number } {
  const pids = processTree(pid);
  return { rss: pids.reduce((s, p) => s + rssOf(p), 0), processes: pids.length };
}
