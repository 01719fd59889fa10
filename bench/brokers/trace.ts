/**
 * BENCH_TRACE=FILE: a Node launcher records, while it runs, every garbage collection (kind and
 * pause, from perf_hooks) and the event loop's delay (monitorEventLoopDelay, 1 ms resolution
 * sampling is too coarse for a 5k msg/s tail, so 100 µs), and writes a summary to FILE as one
 * JSON line when it stops: where a tail of latency may come from.
 */
import { appendFileSync } from 'node:fs';
import { PerformanceObserver, constants, monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';

const KINDS: Record<number, string> = {
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'scavenge',
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'mark-sweep',
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weak-callbacks',
};

interface GcStats {
  count: number;
  totalMs: number;
  maxMs: number;
  over1ms: number;
}

export function traceIfAsked(label: string): void {
  const file = process.env.BENCH_TRACE;
  if (file === undefined || file === '') return;
  const gc = new Map<string, GcStats>();
  /** Every collection: [ms since start, kind, pause ms] (the first 10,000). */
  const events: [number, string, number][] = [];
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = KINDS[(e as { detail?: { kind?: number } }).detail?.kind ?? -1] ?? 'other';
      const s = gc.get(kind) ?? { count: 0, totalMs: 0, maxMs: 0, over1ms: 0 };
      s.count++;
      s.totalMs += e.duration;
      s.maxMs = Math.max(s.maxMs, e.duration);
      if (e.duration >= 1) s.over1ms++;
      if (events.length < 10_000) events.push([Math.round(e.startTime), kind, Math.round(e.duration * 1000) / 1000]);
      gc.set(kind, s);
    }
  });
  obs.observe({ entryTypes: ['gc'] });
  const loop: IntervalHistogram = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  const started = Date.now();
  process.once('exit', () => {
    loop.disable();
    const us = (ns: number): number => Math.round(ns / 100) / 10;
    const summary = {
      label,
      pid: process.pid,
      seconds: (Date.now() - started) / 1000,
      gc: Object.fromEntries([...gc].map(([k, s]) => [k, { ...s, totalMs: Math.round(s.totalMs * 100) / 100, maxMs: Math.round(s.maxMs * 100) / 100 }])),
      events,
      loopDelayUs: { p50: us(loop.percentile(50)), p99: us(loop.percentile(99)), p999: us(loop.percentile(99.9)), max: us(loop.max) },
    };
    appendFileSync(file, `${JSON.stringify(summary)}\n`);
  });
}
