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

/** RssAnon and RssFile + RssShmem of one process in bytes (the heap; mapped files such as LMDB's). */
export function rssParts(pid: number): { anon: number; file: number } {
  const status = readOr(`/proc/${pid}/status`);
  const kb = (name: string): number => Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) * 1024;
  return { anon: kb('RssAnon'), file: kb('RssFile') + kb('RssShmem') };
}

/** The summed RSS of `pid` and its descendants (and its anonymous part), and how many processes that was. */
export function treeRss(pid: number): { rss: number; anon: number; processes: number } {
  const pids = processTree(pid);
  return { rss: pids.reduce((s, p) => s + rssOf(p), 0), anon: pids.reduce((s, p) => s + rssParts(p).anon, 0), processes: pids.length };
}
