/**
 * What the node's script calls rely on (src/cluster/calls.ts): after a connection that broke
 * once Redis had answered part of what the client sent, ioredis sends the unanswered single
 * commands again, in order, but fails the rest of a partly answered pipeline. Pinned here so that
 * an ioredis upgrade that changes either is noticed. A FaultProxy holds the client's requests,
 * lets Redis have the first ones, passes the answers on and ends the connection.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { corked } from '../../../src/cluster/calls.js';
import { newRedis } from '../../../src/cluster/ioredis.js';
import { FaultProxy } from '../../helpers/fault-proxy.js';
import { redisServerGate, startRedisServer, type RedisServer } from '../../helpers/redis-server.js';
import { respFrames } from '../../helpers/resp.js';
import { pollUntil } from '../../helpers/wait.js';

void describe('ioredis: a connection broken after a partial answer', redisServerGate(), () => {
  let redis: RedisServer;
  let admin: Redis;
  let proxy: FaultProxy;
  let c: Redis;

  before(async () => {
    redis = await startRedisServer();
    admin = redis.client();
    proxy = new FaultProxy({ port: redis.port });
    // The node's client options that matter here (node.ts).
    c = newRedis(`redis://127.0.0.1:${await proxy.listen()}`, { maxRetriesPerRequest: null, retryStrategy: () => 20, connectionName: 'resend-test' });
    c.on('error', () => {});
    await c.ping();
  });
  after(async () => {
    c?.disconnect();
    await proxy?.close();
    await redis?.close();
  });

  /** Holds the client's requests while `send` runs; Redis gets the first `answered` of them, then the connection ends. */
  async function answeredInPart<T>(answered: number, total: number, send: () => T): Promise<T> {
    assert.equal(
      proxy.holdRequests((head) => head.includes('\r\nresend-test\r\n')),
      1,
    );
    const sent = send();
    const frames = await pollUntil(
      () => {
        const f = respFrames(proxy.held().requests);
        return f.length === total && f;
      },
      { what: 'the requests held' },
    );
    proxy.releaseRequests(frames[answered - 1]!.end);
    await pollUntil(() => respFrames(proxy.held().replies).length === answered, { what: 'the answers' });
    assert.equal(proxy.endHeld(), 1);
    return sent;
  }

  void it('single commands: the unanswered ones are sent again after the reconnect, in order, each applied once', async () => {
    const calls = await answeredInPart(1, 4, () => corked(c, () => ['a', 'a', 'b', 'a'].map((key) => c.incr(`single:${key}`))));
    assert.deepEqual(await Promise.all(calls), [1, 2, 1, 3]);
    assert.deepEqual(await admin.mget('single:a', 'single:b'), ['3', '1']);
  });

  void it('a pipeline: the rest of a partly answered one is failed, never sent again', async () => {
    const results = await answeredInPart(1, 3, () => c.pipeline().incr('pipe:a').incr('pipe:b').incr('pipe:a').exec());
    assert.equal(results?.[0]?.[1], 1);
    assert.match(String(results?.[1]?.[0]), /aborted/i);
    assert.match(String(results?.[2]?.[0]), /aborted/i);
    await c.ping(); // reconnected
    assert.deepEqual(await admin.mget('pipe:a', 'pipe:b'), ['1', null], 'lost');
  });
});
