/**
 * Aedes cluster node for `npm run bench:cluster`: one process = one Aedes instance.
 *
 *   node --import tsx bench/brokers/aedes-cluster.ts PORT [REDIS_URL ID]
 *
 * With REDIS_URL (redis://HOST:PORT[/DB]): `mqemitter-redis` as the emitter (every PUBLISH goes
 * to Redis Pub/Sub and comes back to every instance, this one included) and
 * `aedes-persistence-redis` as the persistence (subscriptions, retained, QoS 1/2 outgoing and
 * wills in Redis, database DB), the way Aedes's examples/clusters runs N instances on one Redis.
 * Without it: plain Aedes, in-memory emitter and persistence (as bench/brokers/aedes.ts).
 * Listens on 127.0.0.1:PORT (0 = any free port) and prints `READY <port> <detail>`. Exits on
 * SIGTERM/SIGINT or when stdin closes.
 */
import { serveAedes } from './aedes-serve.js';
import { Aedes, type AedesOptions } from 'aedes';
import mqemitterRedis from 'mqemitter-redis';
import aedesPersistenceRedis from 'aedes-persistence-redis';

const port = Number(process.argv[2] ?? 0);
const redisUrl = process.argv[3];
const id = process.argv[4];

const opts: Partial<AedesOptions> = {};
if (id !== undefined) opts.id = id;
if (redisUrl !== undefined && redisUrl !== 'none') {
  const u = new URL(redisUrl);
  const redis = { host: u.hostname, port: Number(u.port || 6379), db: Number(u.pathname.slice(1) || 0) };
  // The options Aedes gives its default in-memory emitter (concurrency 100, [MQTT-4.7.1-3]).
  opts.mq = mqemitterRedis({ ...redis, concurrency: 100, matchEmptyLevels: true });
  opts.persistence = aedesPersistenceRedis(redis);
}
serveAedes(await Aedes.createBroker(opts), port, opts.mq === undefined ? 'memory' : 'redis');
