/**
 * The script calls of one outbox turn leave in one socket write (src/cluster/calls.ts: single
 * commands, so that ioredis sends unanswered ones again after a reconnect, corked so that they
 * still cost one write, as the pipeline they replaced did). Without the cork each call is its own
 * write. The writes are counted where the socket hands them to the kernel: its `_write` (one
 * chunk) and `_writev` (what was buffered while corked, one writev), wrapped on the node's real
 * connection to a real redis-server and passed through unchanged. Only writes that carry the
 * cluster's scripts (EVAL / EVALSHA) are counted: whatever else ioredis sends is not the turn.
 */
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { newRedis } from '../../../src/cluster/ioredis.js';
import { newClusterCounters } from '../../../src/cluster/options.js';
import { Outbox, type OutboxOwner } from '../../../src/cluster/outbox.js';
import { RouteTable } from '../../../src/cluster/routes.js';
import { defineScripts, keys } from '../../../src/cluster/scripts.js';
import { createMessage } from '../../../src/core/message.js';
import type { Logger } from '../../../src/options.js';
import { redisServerGate, startRedisServer, type RedisServer } from '../../helpers/redis-server.js';
import { requestArgs, respFrames } from '../../helpers/resp.js';

const quiet = { warn() {}, error() {}, info() {}, debug() {} } as unknown as Logger;

type WriteCb = (error?: Error | null) => void;
interface Chunk {
  chunk: Buffer | string;
  encoding: BufferEncoding;
}

/** Records the bytes of each write `socket` makes (one entry per `_write` / `_writev`) until the returned function is called. */
function recordWrites(socket: Socket): { writes: Buffer[]; stop: () => void } {
  const writes: Buffer[] = [];
  const bytes = (c: Chunk): Buffer => (typeof c.chunk === 'string' ? Buffer.from(c.chunk, c.encoding) : c.chunk);
  const own = socket as unknown as {
    _write: (chunk: Buffer | string, encoding: BufferEncoding, cb: WriteCb) => void;
    _writev: (chunks: Chunk[], cb: WriteCb) => void;
  };
  const write = own._write;
  const writev = own._writev;
  own._write = function (chunk, encoding, cb) {
    writes.push(bytes({ chunk, encoding }));
    write.call(this, chunk, encoding, cb);
  };
  own._writev = function (chunks, cb) {
    writes.push(Buffer.concat(chunks.map(bytes)));
    writev.call(this, chunks, cb);
  };
  const stop = (): void => {
    // The instance's own wrappers go; the prototype's methods are seen again.
    delete (own as Partial<typeof own>)._write;
    delete (own as Partial<typeof own>)._writev;
  };
  return { writes, stop };
}

/** The script calls (EVAL / EVALSHA requests) a write carries, by command name. */
const scriptCalls = (write: Buffer): string[] =>
  respFrames(write)
    .map((f) => (requestArgs(f)[0] ?? '').toUpperCase())
    .filter((name) => name === 'EVAL' || name === 'EVALSHA');

void describe("cluster script calls: one outbox turn's calls are one socket write", redisServerGate(), () => {
  let redis: RedisServer;
  let admin: Redis;
  let c: Redis;

  before(async () => {
    redis = await startRedisServer();
    admin = redis.client();
    // The node's client options that matter here (node.ts).
    c = newRedis(redis.url, { maxRetriesPerRequest: null, retryStrategy: () => 20 });
    c.on('error', () => {});
    defineScripts(c);
    await c.ping(); // ready: what ioredis sends on connect is behind us
  });
  after(async () => {
    c?.disconnect();
    await redis?.close();
  });

  // A script's first call on a connection goes as EVAL, later ones as EVALSHA (calls.ts): the
  // routes, the first retained change, the forward and the barrier are first calls in turn 1.
  const sent = {
    1: ['EVAL', 'EVAL', 'EVALSHA', 'EVAL', 'EVAL'],
    2: ['EVALSHA', 'EVALSHA', 'EVALSHA', 'EVALSHA', 'EVALSHA'],
  };
  for (const turn of [1, 2] as const) {
    void it(`turn ${turn}: a route change, two retained changes, a forward and a barrier: five calls, one write, each applied`, async () => {
      const k = keys(`cork${turn}:`);
      const me: OutboxOwner = { nid: 1, joined: true, routes: new RouteTable(), counters: newClusterCounters(), lagging: new Set(), fenced: () => {} };
      // Node 1 holds a lease (ROUTES needs one); node 2 has an inbox and interest in q/#.
      await admin.set(k.node(1), '{}');
      await admin.xadd(k.inbox(2), '*', 'init', '1');
      me.routes.add(2, 'q/#');
      const out = new Outbox(me, c, k, quiet);

      const socket = c.stream as Socket;
      const { writes, stop } = recordWrites(socket);
      try {
        out.route('f/#', true);
        out.retain(createMessage('r/1', Buffer.from('one'), 1, true, undefined, 'a', Date.now()));
        out.retain(createMessage('r/2', Buffer.from('two'), 1, true, undefined, 'a', Date.now()));
        out.forward(createMessage('q/1', Buffer.from('x'), 1, false, undefined, '', Date.now()), undefined);
        out.mark(2, 'b', 'moved', 1);
        await out.commitPoint(out.writes);
      } finally {
        stop();
      }
      assert.equal(c.stream, socket, 'the same connection throughout');

      const turnWrites = writes.map(scriptCalls).filter((calls) => calls.length > 0);
      assert.deepEqual(turnWrites, [sent[turn]], 'one write carries all five calls, in order');
      // Redis applied each: the turn is the outbox's, not something else that happened to be written.
      assert.deepEqual(await admin.smembers(k.routes(1)), ['f/#']);
      assert.equal(await admin.hlen(k.ret), 2);
      assert.deepEqual(
        (await admin.xrange(k.inbox(2), '-', '+')).slice(1).map(([, f]) => f[0]),
        ['f', 'b'],
      );
    });
  }
});
