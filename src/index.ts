/** Courier's library entry point: `import { createBroker } from 'courier'`. */
export { createBroker, Broker, type BrokerEvents, type BrokerStats, type PublishedMessage, type SubscriptionReport } from './broker.js';
export type { ClientInfo } from './core/connection.js';
export type { MessageProperties } from './core/message.js';
export type { BridgeOptions, BridgeStats, BridgeTopic, BridgeTls, BridgeDirection, BridgeState } from './bridge/types.js';
export {
  defaultMqttOptions,
  defaultPersistence,
  defaultSessionLimits,
  type BrokerOptions,
  type PersistenceOptions,
  type ListenerOptions,
  type Logger,
  type MqttOptions,
  type SessionLimits,
} from './options.js';
export type { Store, StoredMessage, StoredSession, StoredSubscription, StoredWill } from './store/types.js';
export { MemoryStore } from './store/memory.js';
export { LmdbStore, StoreError, type Durability, type LmdbStoreOptions } from './store/lmdb.js';
export { RedisStore, type RedisStoreOptions, type ClaimResult, type LoadedSession, type RedisStoreStats } from './cluster/redis-store.js';
export type { BoundAddress, ConnectionInfo } from './transport/types.js';
export * as protocol from './protocol/index.js';
