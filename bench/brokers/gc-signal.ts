/**
 * What the Node launchers share for the idle scenario's memory readings: on SIGUSR2 a full
 * garbage collection (the launchers run with --expose-gc), so that RSS is read with only live
 * objects left. Without --expose-gc the signal is ignored (never the default action, which
 * would end the process). After it, the launcher writes its heap figures to memFile(pid).
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export function collectGarbageOnSignal(): void {
  process.on('SIGUSR2', () => {
    const gc = (globalThis as { gc?: () => void }).gc;
    if (gc === undefined) return;
    gc();
    // What is left, for the generator: the V8 heap in use and memory outside it held by JS objects.
    const m = process.memoryUsage();
    const file = memFile(process.pid);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(`${file}.tmp`, JSON.stringify({ heapUsed: m.heapUsed, external: m.external, rss: m.rss }));
    renameSync(`${file}.tmp`, file);
  });
}

/**
 * Called by the Node launchers just before they print READY: one full collection, so that what
 * starting up allocated (modules, the broker's own structures) is in the old generation before
 * any load. Without it the second scavenge after start, a few seconds into the first scenario,
 * copies and promotes all of it: a one-time pause of 8–21 ms measured for Courier (2–6 ms for
 * the Node floor, whose start allocates less) that landed in the latency window, whose p99.9 at
 * 5k msg/s is 25 samples. A broker that has run for a while has paid it long ago; the latency
 * scenario measures the steady state. Needs --expose-gc (the launchers have it); a no-op without.
 */
export function settleStartupHeap(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

/** Where a launcher leaves its memory figures after a SIGUSR2 collection. */
export function memFile(pid: number): string {
  return path.join(tmpdir(), 'courier-bench-mem', `${pid}.json`);
}

/** Address the launcher listens on: BENCH_LISTEN_HOST (0.0.0.0 to take every 127.x address), default 127.0.0.1. */
export function listenHost(): string {
  return process.env.BENCH_LISTEN_HOST ?? '127.0.0.1';
}
