/** The fault proxy between ioredis and a real redis-server: cut, blackhole, heal, refuse, latency. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { FaultProxy } from '../../helpers/fault-proxy.js';
import { redisServerGate, startRedisServer, type RedisServer } from '../../helpers/redis-server.js';

let redis: RedisServer | undefined;
const proxies: FaultProxy[] = [];
const clients: Redis[] = [];

void describe('FaultProxy (ioredis → redis-server)', redisServerGate(), () => {
  before(async () => {
    redis = await startRedisServer();
  });
  after(async () => {
    for (const c of clients) c.disconnect(false);
    await Promise.all(proxies.map((p) => p.close()));
    await redis?.close();
  });

  /** The next 'ready' (events.once would reject on the 'error' a reset emits first). */
  const nextReady = (client: Redis): Promise<void> => new Promise((resolve) => client.once('ready', () => resolve()));

  async function through(): Promise<{ proxy: FaultProxy; client: Redis; ready: () => number }> {
    const proxy = new FaultProxy({ port: redis!.port });
    proxies.push(proxy);
    const port = await proxy.listen();
    const client = new Redis({ host: '127.0.0.1', port, commandTimeout: 1500, connectTimeout: 5000, maxRetriesPerRequest: 3, retryStrategy: () => 20 });
    client.on('error', () => {});
    clients.push(client);
    let readies = 0;
    client.on('ready', () => readies++);
    await nextReady(client);
    assert.equal(await client.ping(), 'PONG');
    return { proxy, client, ready: () => readies };
  }

  void it('cut(): ioredis reconnects on its own and commands work again', { timeout: 30_000 }, async () => {
    const { proxy, client, ready } = await through();
    await client.set('cut', '1');
    const reconnecting = new Promise<void>((resolve) => client.once('reconnecting', () => resolve()));
    assert.equal(proxy.cut(), 1);
    await reconnecting;
    assert.equal(await client.get('cut'), '1');
    assert.equal(ready(), 2);
    assert.equal(proxy.stats().acceptedConnections, 2);
  });

  void it('blackhole(): commands time out; heal(): ioredis reconnects and commands work again', { timeout: 30_000 }, async () => {
    const { proxy, client } = await through();
    proxy.blackhole();
    await assert.rejects(client.ping(), /timed out/i);
    assert.ok(proxy.stats().bytesDropped > 0);
    const reconnected = nextReady(client);
    await proxy.heal();
    await reconnected;
    assert.equal(await client.set('healed', 'yes'), 'OK');
    assert.equal(await redis!.client().get('healed'), 'yes');
  });

  void it('refuse(): a new client cannot connect; heal(): it connects', { timeout: 30_000 }, async () => {
    const { proxy, client } = await through();
    proxy.refuse();
    const late = new Redis({ host: '127.0.0.1', port: proxy.port, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    const refused = new Promise<string | undefined>((resolve) => late.once('error', (e: NodeJS.ErrnoException) => resolve(e.code)));
    clients.push(late);
    await assert.rejects(late.connect());
    assert.equal(await refused, 'ECONNREFUSED');
    assert.equal(await client.ping(), 'PONG', 'the existing connection goes on');
    await proxy.heal();
    const again = new Redis({ host: '127.0.0.1', port: proxy.port, maxRetriesPerRequest: 1 });
    again.on('error', () => {});
    clients.push(again);
    assert.equal(await again.ping(), 'PONG');
  });

  void it('latency(ms) slows every round trip by at least 2 × ms', { timeout: 30_000 }, async () => {
    const { proxy, client } = await through();
    proxy.latency(40);
    const started = Date.now();
    assert.equal(await client.ping(), 'PONG');
    assert.ok(Date.now() - started >= 75, `took ${Date.now() - started} ms`);
    proxy.latency(0);
  });
});
