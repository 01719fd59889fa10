/**
 * A SessionStore on IndexedDB (browsers): one database per store name, the pending publishes by
 * key and the inbound QoS 2 identifiers. IndexedDB is asynchronous: each change is a readwrite
 * transaction, run in the order made, committed shortly after the packet it describes left
 * (a page closed in that instant can lose its last change; the file store in Node writes first).
 */
import type { SessionStore, StoredPublish, StoredSession } from './store.js';

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
  put(value: unknown, key?: number): IDBRequest<unknown>;
  delete(key: number): IDBRequest<undefined>;
  clear(): IDBRequest<undefined>;
}
interface IDBDatabase {
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

function request<T>(r: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error ?? new Error('IndexedDB request failed'));
  });
}

export function indexedDbStore(name = 'courier-client'): SessionStore {
  let db: IDBDatabase | undefined;
  const change = (fn: (publishes: IDBObjectStore, inbound: IDBObjectStore) => void): void => {
    if (db === undefined) return;
    const t = db.transaction([PUBLISHES, INBOUND], 'readwrite');
    fn(t.objectStore(PUBLISHES), t.objectStore(INBOUND));
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
      const open = idb().open(name, 1);
      open.onupgradeneeded = () => {
        open.result.createObjectStore(PUBLISHES, { keyPath: 'key' });
        open.result.createObjectStore(INBOUND);
      };
      db = await request(open);
      const t = db.transaction([PUBLISHES, INBOUND], 'readonly');
      const [publishes, inbound] = await Promise.all([
        request(t.objectStore(PUBLISHES).getAll() as IDBRequest<StoredPublish[]>),
        request(t.objectStore(INBOUND).getAllKeys()),
      ]);
      return { publishes: publishes.sort((a, b) => a.key - b.key), inboundQos2: inbound.map(Number) };
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
    async close(): Promise<void> {
      db?.close();
      db = undefined;
    },
  };
}
