// aedes-persistence-redis ships no types; what bench/brokers/aedes-cluster.ts uses of it.
declare module 'aedes-persistence-redis' {
  import type { RedisOptions } from 'ioredis';
  /** An Aedes persistence (callback and promise API) on Redis; passed to Aedes as `persistence`. */
  export default function aedesPersistenceRedis(opts?: RedisOptions & { maxSessionDelivery?: number }): unknown;
}
