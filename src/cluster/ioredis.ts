/**
 * ioredis, loaded on first use instead of at import. Importing ioredis alone (its Commander
 * defines some 480 command methods on a prototype at load) made the broker's hot path 20-30 %
 * slower in V8 even in a broker that never uses Redis (fan-in and QoS 1 bench, alternating
 * runs: see the commit that added this file). So only a cluster node or a RedisStore that opens
 * its own client pays for it, and only from the moment it is constructed.
 */
import type { Redis, RedisOptions } from 'ioredis';
import { lazyRequire } from '../lazy-require.js';

const ioredis = lazyRequire<typeof import('ioredis')>('ioredis');

/** `new Redis(url, options)`, ioredis being required on the first call (it is CommonJS). */
export function newRedis(url: string, options: RedisOptions): Redis {
  return new (ioredis().Redis)(url, options);
}
