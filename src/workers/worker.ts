/**
 * The worker side of `--workers`: the CLI runs a worker as an ordinary broker (a cluster node,
 * see spec.ts) with three differences: its log lines carry `worker: <slot>`, it stops on SIGTERM
 * only (the primary turns SIGINT into SIGTERM for every worker, so a Ctrl-C that reaches the
 * whole process group does not count twice), and it tells the primary when it listens.
 */
export const READY_MESSAGE = 'courier:worker-ready';

export interface ReadyMessage {
  type: typeof READY_MESSAGE;
  listeners: unknown[];
}

/**
 * After the broker stopped: closes the IPC channel so the process can end (it would keep the
 * event loop alive), marked as intended so that node:cluster keeps the exit code.
 */
export async function leavePrimary(): Promise<void> {
  const cluster = (await import('node:cluster')).default;
  cluster.worker?.disconnect();
}

/** Tells the primary (over the node:cluster IPC channel) that this worker listens. */
export function reportReady(listeners: unknown[]): void {
  const message: ReadyMessage = { type: READY_MESSAGE, listeners };
  process.send?.(message);
}

/**
 * Stop signals of a worker: the first SIGTERM; SIGINT and further SIGTERMs are ignored. A signal
 * to the whole process group (Ctrl-C, `timeout`, systemd's control-group kill) reaches a worker
 * both directly and through the primary; only the primary decides to force an exit (SIGKILL).
 */
export function onWorkerStopSignal(handler: (signal: NodeJS.Signals) => void): () => void {
  const ignore = (): void => {};
  let seen = false;
  const once = (signal: NodeJS.Signals): void => {
    if (seen) return;
    seen = true;
    handler(signal);
  };
  process.on('SIGTERM', once);
  process.on('SIGINT', ignore);
  return () => {
    process.off('SIGTERM', once);
    process.off('SIGINT', ignore);
  };
}
