/**
 * RedisStore's connection: the ioredis client it makes from a URL (failing fast, or waiting for
 * a reconnect), the store's Lua scripts defined on it, and opening it.
 */
import type { Redis } from 'ioredis';
import { newRedis } from './ioredis.js';
import type { Arg } from './store-batch.js';
import { ADOPT, CLAIM, COMMIT, LOAD_SESSION, RELEASE } from './store-scripts.js';

/** Flat replies of a script (fields and values, or ids). */
export type Flat = Buffer[];

/** The store's scripts, as defined on its client by defineStoreScripts. */
export interface Scripted {
  courierStoreCommit(numKeys: number, ...args: Arg[]): Promise<[Array<number | string>, number[]]>;
  courierStoreClaimBuffer(...args: Arg[]): Promise<[Buffer, Buffer, number, number, Flat, Flat, Flat]>;
  courierStoreAdoptBuffer(...args: Arg[]): Promise<[] | [Buffer, Flat, Flat, Flat]>;
  courierStoreRelease(numKeys: number, ...args: Arg[]): Promise<number[]>;
  courierStoreLoadSessionBuffer(...args: Arg[]): Promise<[Buffer[], Buffer[], Buffer[], Buffer[]]>;
}

export interface StoreConnection {
  redis: Redis;
  /** A client of our own (made from a URL): close() quits it. */
  owned: boolean;
  /** The Redis URL for messages, password hidden. */
  where: string;
}

/** The client given, or a client of our own for a URL (not connected yet). */
export function storeConnection(redis: Redis | string, waitForReconnect: boolean, commandTimeoutMs: number): StoreConnection {
  if (typeof redis !== 'string') return { redis, owned: false, where: `${redis.options.host ?? '?'}:${redis.options.port ?? '?'}` };
  const where = redis.replace(/\/\/[^@/]*@/, '//***@');
  const client = newRedis(
    redis,
    waitForReconnect
      ? {
          lazyConnect: true,
          maxRetriesPerRequest: null,
          retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
          connectionName: 'courier:store',
        }
      : {
          lazyConnect: true,
          // A commit must fail, not wait or be replayed later: its acknowledgements stay withheld.
          enableOfflineQueue: false,
          autoResendUnfulfilledCommands: false,
          maxRetriesPerRequest: 0,
          commandTimeout: commandTimeoutMs,
          retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
          connectionName: 'courier:store',
        },
  );
  client.on('error', () => {});
  return { redis: client, owned: true, where };
}

/** Defines the store's scripts (store-scripts.ts) on `r`. */
export function defineStoreScripts(r: Redis): Scripted {
  r.defineCommand('courierStoreCommit', { lua: COMMIT });
  r.defineCommand('courierStoreClaim', { numberOfKeys: 4, lua: CLAIM });
  r.defineCommand('courierStoreAdopt', { numberOfKeys: 4, lua: ADOPT });
  r.defineCommand('courierStoreRelease', { lua: RELEASE });
  r.defineCommand('courierStoreLoadSession', { numberOfKeys: 3, lua: LOAD_SESSION });
  return r as unknown as Scripted;
}

/** Connects a client not connected yet, or waits until it is ready. */
export async function openStoreConnection({ redis: r, owned, where }: StoreConnection): Promise<void> {
  if (r.status === 'wait') {
    try {
      await r.connect();
    } catch (err) {
      // A client of our own must not go on reconnecting in the background after a failed open.
      if (owned) r.disconnect();
      throw new Error(`RedisStore: Redis at ${where} cannot be reached (${(err as Error).message})`, { cause: err });
    }
  } else if (r.status !== 'ready')
    await new Promise<void>((resolve, reject) => {
      const ready = (): void => {
        r.off('end', end);
        resolve();
      };
      const end = (): void => {
        r.off('ready', ready);
        reject(new Error('RedisStore: the Redis connection ended before it was ready'));
      };
      r.once('ready', ready);
      r.once('end', end);
    });
}
