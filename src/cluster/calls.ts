/**
 * How the node's script calls (outbox.ts: FORWARD, ROUTES, RETAIN, MARKS) reach Redis: as
 * single commands, all of one turn in one socket write, never as an ioredis pipeline.
 *
 * What ioredis 6.0.0 does on a broken connection (node_modules/ioredis/built/, read for this):
 * - redis/event_handler.js closeHandler: the commands written and not answered stay in
 *   `commandQueue`, which becomes `prevCommandQueue`; readyHandler sends them again, in order,
 *   on the new connection (`autoResendUnfulfilledCommands`, on by default), and only then the
 *   offline queue (commands issued while reconnecting). With `maxRetriesPerRequest: null` (the
 *   node's client, node.ts) nothing is failed while it reconnects.
 * - Except the rest of a partly answered pipeline: closeHandler first runs
 *   `abortIncompletePipelines`, which rejects ("Command aborted due to connection close") every
 *   queued command whose `pipelineIndex` (Pipeline.js sendCommand) is not the next of its
 *   pipeline, i.e. all the unanswered commands of a pipeline whose first commands were answered.
 *   Redis may never have received them (they are lost), or may have. A pipeline of which no
 *   command was answered is kept and sent again whole. `enableAutoPipelining` batches the
 *   commands of a tick into such a Pipeline (autoPipelining.js), so it fails the same way.
 * - Redis.js sendCommand: a single command on a ready connection is `stream.write()` at once,
 *   one write each (a Pipeline concatenates its commands into one write at exec). Corking the
 *   socket around the turn's calls makes them one write again (net.Socket's writev on uncork).
 * - Script.js: a script's first call on a socket goes as EVAL, later ones as EVALSHA (a WeakSet
 *   per socket), so a call sent again on a new connection never meets NOSCRIPT, even after a
 *   Redis restart. A NOSCRIPT reply (SCRIPT FLUSH under a live connection) is retried as a new
 *   command behind the ones sent since: the one way a call is applied out of order.
 * test/unit/cluster/ioredis-resend.test.ts pins the first two. So single commands are sent again
 * in the order sent; the scripts' call-number guard (scripts.ts) makes one that Redis had applied
 * before the break a no-op answered as the first time, so every call is applied exactly once, in
 * order. Keeping the pipeline and resending its failed calls ourselves would not do: a later
 * pipeline already written and wholly unanswered is sent again by ioredis on reconnect, before
 * our resend, and its higher numbers would make the guard skip the resent calls (waiting for each
 * pipeline's answer before sending the next would cost the throughput of calls in flight).
 */
import type { Redis } from 'ioredis';

/** Runs `send` (which issues commands on `redis`) with the socket corked: one write for them all. */
export function corked<T>(redis: Redis, send: () => T): T {
  // Not ready: the commands go to the offline queue, sent one by one once it is.
  const socket = redis.status === 'ready' ? redis.stream : undefined;
  if (socket === undefined || !socket.writable) return send();
  socket.cork();
  try {
    return send();
  } finally {
    socket.uncork();
  }
}
