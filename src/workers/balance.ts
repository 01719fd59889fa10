/**
 * How the workers of `--workers` share a listening port (config `workersBalance`):
 *
 * - `shared`: the primary opens the listening socket and every worker accepts from it (node:cluster
 *   SCHED_NONE); the kernel wakes the workers and whichever accepts first takes the connection.
 *   The primary is not on the path of a connection.
 * - `rr`: the primary accepts every connection and passes its handle to the workers in turn
 *   (SCHED_RR): an even spread by construction, for one handle pass per connection (the primary's
 *   accept, JSON and `sendmsg` over IPC, the worker's receipt and acknowledgement).
 *
 * Measured in docs/benchmarks.md ("Workers"): `shared` costs about half the CPU per connection
 * of `rr` on Linux, where the kernel spreads the connections evenly enough, so it is the default
 * there; elsewhere (macOS, Windows) the kernel's choice is known to pile connections on a few
 * processes, so `rr` is. (`shared` was opt-in while the workers move test reordered queued
 * messages with it: two session-move bugs, now fixed; docs/benchmarks.md, "Where a worker's
 * connection goes".)
 */
export type WorkersBalance = 'shared' | 'rr';

/**
 * The balance to use: the config's, else Node's own NODE_CLUSTER_SCHED_POLICY (`rr` or `none`)
 * when set, else `shared` on Linux and `rr` elsewhere.
 */
export function workersBalance(configured: WorkersBalance | undefined, env: Record<string, string | undefined>, platform: NodeJS.Platform): WorkersBalance {
  if (configured !== undefined) return configured;
  const node = env.NODE_CLUSTER_SCHED_POLICY;
  if (node === 'rr') return 'rr';
  if (node === 'none') return 'shared';
  return platform === 'linux' ? 'shared' : 'rr';
}
