/**
 * The broker's store: the one given in the options; else, on a cluster node, a RedisStore that
 * holds its sessions (where any node can take them over); else the one `persistence.engine`
 * names (memory, redis, or lmdb, the default).
 */
import { defaultPersistence, type BrokerOptions, type PersistenceOptions } from '../options.js';
import type { ClusterOptions } from '../cluster/options.js';
import { RedisStore } from '../cluster/redis-store.js';
import { LmdbStore } from '../store/lmdb.js';
import { MemoryStore } from '../store/memory.js';
import type { Store } from '../store/types.js';

/** The store, and the RedisStore of a cluster node's sessions when that is the one. */
export function brokerStore(options: BrokerOptions, cluster: ClusterOptions | undefined): { store: Store; sessionStore: RedisStore | undefined } {
  const persistence = { ...defaultPersistence, ...options.persistence };
  const sessionStore =
    cluster === undefined || options.store !== undefined
      ? undefined
      : new RedisStore({ redis: cluster.redis, prefix: cluster.prefix, cluster: true, waitForReconnect: true });
  return { store: options.store ?? sessionStore ?? createStore(persistence, options), sessionStore };
}

function createStore(persistence: PersistenceOptions, options: BrokerOptions): Store {
  switch (persistence.engine) {
    case 'memory':
      return new MemoryStore();
    case 'redis':
      if (persistence.redis === undefined) throw new Error('persistence.redis (a Redis URL) is required with engine "redis"');
      return new RedisStore({ redis: persistence.redis });
    default:
      return new LmdbStore({ dataDir: options.dataDir ?? './data', durability: persistence.durability });
  }
}
