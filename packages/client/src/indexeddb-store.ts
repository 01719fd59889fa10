/**
 * A SessionStore on IndexedDB (browsers): one database per store name, the pending publishes by
 * key and the inbound QoS 2 identifiers. IndexedDB is asynchronous: each change is a readwrite
 * transaction, run in the order made, committed shortly after the packet it describes left
 * (a page closed in that instant can lose its last change; the file store in Node writes first).
 */
import type { SessionStore, StoredPublish, StoredSession, StoredSubscription } from './store.js';

// The few IndexedDB types used here (the project compiles without the DOM library).
interface IDBRequest<T> {
  result: T;
  error: Error | null;
  onsuccess: (() => void) | null;
  onerror: (() => void) | null;
}
interface IDBObjectStore {
  get(key: number): IDBRequest<unknown>;
  getAll(): IDBRequest<unknown[]>;
  getAllKeys(): IDBRequest<unknown[]>;
  put(value: unknown, key?: number | string): IDBRequest<unknown>;
  delete(key: number | string): IDBRequest<undefined>;
  clear(): IDBRequest<undefined>;
}
interface IDBDatabase {
  readonly objectStoreNames: { contains(name: string): boolean };
  transaction(stores: string[], mode: 'readonly' | 'readwrite'): { objectStore(name: string): IDBObjectStore };
  createObjectStore(name: string, options?: { keyPath: string }): IDBObjectStore;
  close(): void;
}
interface IDBOpenRequest extends IDBRequest<IDBDatabase> {
  onupgradeneeded: (() => void) | null;
}
interface IDBFactory {
  open(name: string, version: number): IDBOpenRequest;
}
const idb = (): IDBFactory => (globalThis as unknown as { indexedDB: IDBFactory }).indexedDB;

const PUBLISHES = 'publishes';
const INBOUND = 'inbound';
const SUBSCRIPTIONS = 'subscriptions';
const ALL = [PUBLISHES, INBOUND, SUBSCRIPTIONS];

function request<T>(r: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error ?? new Error('IndexedDB request failed'));
  });
}

export function indexedDbStore(name = 'courier-client'): SessionStore {
  let db: IDBDatabase | undefined;
  const change = (fn: (publishes: IDBObjectStore, inbound: IDBObjectStore, subscriptions: IDBObjectStore) => void): void => {
    if (db === undefined) return;
    const t = db.transaction(ALL, 'readwrite');
    fn(t.objectStore(PUBLISHES), t.objectStore(INBOUND), t.objectStore(SUBSCRIPTIONS));
  };
  const update = (key: number, edit: (p: StoredPublish) => void): void =>
    change((publishes) => {
      const g = publishes.get(key) as IDBRequest<StoredPublish | undefined>;
      g.onsuccess = () => {
        const p = g.result;
        if (p === undefined) return;
        edit(p);
        publishes.put(p);
      };
    });
  return {
    async load(): Promise<StoredSession> {
      // Version 2 added the subscriptions; a version 1 database gets the store it lacks.
      const open = idb().open(name, 2);
      open.onupgradeneeded = () => {
        const d = open.result;
        if (!d.objectStoreNames.contains(PUBLISHES)) d.createObjectStore(PUBLISHES, { keyPath: 'key' });
        if (!d.objectStoreNames.contains(INBOUND)) d.createObjectStore(INBOUND);
        if (!d.objectStoreNames.contains(SUBSCRIPTIONS)) d.createObjectStore(SUBSCRIPTIONS, { keyPath: 'topicFilter' });
      };
      db = await request(open);
      const t = db.transaction(ALL, 'readonly');
      const [publishes, inbound, subscriptions] = await Promise.all([
        request(t.objectStore(PUBLISHES).getAll() as IDBRequest<StoredPublish[]>),
        request(t.objectStore(INBOUND).getAllKeys()),
        request(t.objectStore(SUBSCRIPTIONS).getAll() as IDBRequest<StoredSubscription[]>),
      ]);
      return { publishes: publishes.sort((a, b) => a.key - b.key), inboundQos2: inbound.map(Number), subscriptions };
    },
    // A copy of the payload's own bytes: a view would clone its whole underlying buffer.
    added: (p) => change((publishes) => publishes.put({ ...p, payload: p.payload.slice() })),
    sent: (key, packetId) =>
      update(key, (p) => {
        p.packetId = packetId;
        p.state = 'publish';
      }),
    released: (key) =>
      update(key, (p) => {
        p.state = 'pubrel';
      }),
    removed: (key) => change((publishes) => publishes.delete(key)),
    inbound: (id, awaiting) => change((_, inbound) => (awaiting ? inbound.put(true, id) : inbound.delete(id))),
    clearInbound: () => change((_, inbound) => inbound.clear()),
    subscribed: (sub) => change((_p, _i, subscriptions) => subscriptions.put({ ...sub })),
    unsubscribed: (topicFilter) => change((_p, _i, subscriptions) => subscriptions.delete(topicFilter)),
    async close(): Promise<void> {
      db?.close();
      db = undefined;
    },
  };
}
