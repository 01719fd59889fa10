/** The redis-server helper: start, AOF across kill -9 and restart, extra config, stop and cleanup. */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { redisServerGate, startRedisServer, type RedisServer } from '../../helpers/redis-server.js';

const servers: RedisServer[] = [];
after(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

async function start(...args: Parameters<typeof startRedisServer>): Promise<RedisServer> {
  const s = await startRedisServer(...args);
  servers.push(s);
  return s;
}

void describe('redis-server helper', redisServerGate(), () => {
  void it('starts on a free loopback port with its own dir and answers commands', { timeout: 60_000 }, async () => {
    const s = await start();
    assert.ok(s.port > 0);
    assert.equal(s.url, `redis://127.0.0.1:${s.port}`);
    assert.ok(s.pid > 0);
    assert.ok(existsSync(s.dir));
    const c = s.client();
    assert.equal(await c.set('k', 'v'), 'OK');
    assert.equal(await c.get('k'), 'v');
    assert.deepEqual(await c.config('GET', 'bind'), ['bind', '127.0.0.1']);
    assert.deepEqual(await c.config('GET', 'save'), ['save', '']);
    assert.equal(s.running(), true);
  });

  void it('restart() after kill9() reloads the AOF (appendfsync always) on the same port and dir', { timeout: 60_000 }, async () => {
    const s = await start({ appendonly: true, appendfsync: 'always' });
    const c = s.client();
    await c.set('durable', '1');
    await c.rpush('list', 'a', 'b', 'c');
    const { port, dir, pid } = s;
    const exit = await s.kill9();
    assert.equal(exit.signal, 'SIGKILL');
    assert.equal(s.running(), false);
    await s.restart();
    assert.equal(s.port, port);
    assert.equal(s.dir, dir);
    assert.notEqual(s.pid, pid);
    // The same client reconnects on its own (retryStrategy) to the restarted server.
    assert.equal(await c.get('durable'), '1');
    assert.deepEqual(await c.lrange('list', 0, -1), ['a', 'b', 'c']);
  });

  void it('without AOF a restart starts empty', { timeout: 60_000 }, async () => {
    const s = await start({ appendonly: false });
    const c = s.client();
    await c.set('volatile', '1');
    await s.kill9();
    await s.restart();
    assert.equal(await c.get('volatile'), null);
  });

  void it('passes extra config args through', { timeout: 60_000 }, async () => {
    const s = await start({ extraArgs: ['--maxmemory', '12mb', '--maxmemory-policy', 'noeviction'] });
    const c = s.client();
    assert.deepEqual(await c.config('GET', 'maxmemory'), ['maxmemory', String(12 * 1024 * 1024)]);
    assert.deepEqual(await c.config('GET', 'appendonly'), ['appendonly', 'no']);
  });

  void it('freeze() makes commands time out; thaw() brings answers back', { timeout: 60_000 }, async () => {
    const s = await start();
    const c = s.client({ commandTimeout: 300 });
    assert.equal(await c.ping(), 'PONG');
    s.freeze();
    await assert.rejects(c.ping(), /timed out/i);
    s.thaw();
    // A fresh connection is answered again.
    const d = s.client({ commandTimeout: 2000 });
    assert.equal(await d.ping(), 'PONG');
  });

  void it('stop() exits cleanly; close() removes the dir and is idempotent', { timeout: 60_000 }, async () => {
    const s = await start({ appendonly: true });
    const exit = await s.stop();
    assert.equal(exit.code, 0);
    await s.close();
    await s.close();
    assert.equal(existsSync(s.dir), false);
    await assert.rejects(s.restart(), /closed/);
  });
});
