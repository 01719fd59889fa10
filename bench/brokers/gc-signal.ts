/**
 * What the Node launchers share for the idle scenario's memory readings: on SIGUSR2 a full
 * garbage collection (the launchers run with --expose-gc), so that RSS is read with only live
 * objects left. Without --expose-gc the signal is ignored (never the default action, which
 * would end the process).
 */
export function collectGarbageOnSignal(): void {
  process.on('SIGUSR2', () => {
    const gc = (globalThis as { gc?: () => void }).gc;
    gc?.();
  });
}

/** Address the launcher listens on: BENCH_LISTEN_HOST (0.0.0.0 to take every 127.x address), default 127.0.0.1. */
export function listenHost(): string {
  return process.env.BENCH_LISTEN_HOST ?? '127.0.0.1';
}
