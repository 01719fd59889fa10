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
 * of `rr` on Linux, where the kernel spreads the connections evenly enough; elsewhere (macOS,
 * Windows) the kernel's choice is known to pile connections on a few processes. `rr` is the
 * default everywhere for now: with `shared` the workers move test reordered queued messages
 * now and then (not yet traced); `shared` is opt-in.
 */
export type WorkersBalance = 'shared' | 'rr';

/**
 * The balance to use: the config's, else Node's own NODE_CLUSTER_SCHED_POLICY (`rr` or `none`)
 * when set, else `rr` (see the note in the body).
 */
export function workersBalance(configured: WorkersBalance | undefined, env: Record<string, string | undefined>, platform: NodeJS.Platform): WorkersBalance {
  if (configured !== undefined) return configured;
  const node = env.NODE_CLUSTER_SCHED_POLICY;
  if (node === 'rr') return 'rr';
  if (node === 'none') return 'shared';
  // `shared` would be the cheaper default on Linux, but the workers move test reordered queued
  // messages with it (3 in ~130 runs under load, untraced): `rr` until that is understood.
  void platform;
  return 'rr';
}
