/**
 * Durable store on LMDB (the `lmdb` package): a memory-mapped B+tree with MVCC, written by an
 * asynchronous writer that commits every write issued in one event-loop turn as one
 * transaction (group commit). `commitPoint()` hands the core that transaction's promise, so
 * acknowledgements leave only after their state is committed.
 *
 * Durability: `none` (acks do not wait; a crash may lose the last writes), `commit` (acks wait
 * for the commit; data survives a process crash, not a power loss) and `fsync` (acks wait for
 * the commit and its fsync; survives power loss).
 *
 * Space: LMDB reuses freed pages, so under steady load the file stays at the high-water mark of
 * live data instead of growing (no separate compaction pass is needed).
 *
 * Layout: one environment (`<dataDir>/courier.mdb`) with named databases: retained (topic →
 * message), sessions (client id → record), messages (id → message), outbound ([client id, seq]
 * → entry), inbound ([client id, packet id] → true), meta (format version). The directory is
 * locked against a second broker process with `<dataDir>/courier.lock` (holding the PID).
 */
import { closeSync, fstatSync, mkdirSync, openSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Database, RootDatabase } from 'lmdb';
import { lazyRequire } from '../lazy-require.js';
import { decodeOutbound, encodeOutbound } from './outbound-codec.js';
import type { Store, StoredMessage, StoredOutbound, StoredSession, StoreSnapshot } from './types.js';

export type Durability = 'none' | 'commit' | 'fsync';

export interface LmdbStoreOptions {
  dataDir: string;
  durability?: Durability;
}

const FORMAT = 2;

/** lmdb (native), required when a store opens, not when Courier is imported (an in-memory broker never needs it). */
const lmdb = lazyRequire<typeof import('lmdb')>('lmdb');

/** The data directory cannot be used: locked by another process, unreadable or of another format. */
export class StoreError extends Error {
  readonly code: string;
  constructor(code: string, message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'StoreError';
    this.code = code;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class LmdbStore implements Store {
  readonly dataDir: string;
  readonly durability: Durability;
  #env: RootDatabase | undefined;
  #retained!: Database<StoredMessage, string>;
  #sessions!: Database<StoredSession, string>;
  #messages!: Database<StoredMessage, number>;
  #outbound!: Database<Buffer, [string, number]>;
  #inbound!: Database<boolean, [string, number]>;
  #pending: Promise<unknown> | null = null;
  #lockFile: string;
  #locked = false;

  constructor(options: LmdbStoreOptions) {
    this.dataDir = path.resolve(options.dataDir);
    this.durability = options.durability ?? 'commit';
    this.#lockFile = path.join(this.dataDir, 'courier.lock');
  }

  async open(): Promise<void> {
    try {
      mkdirSync(this.dataDir, { recursive: true });
    } catch (err) {
      throw new StoreError('COURIER_STORE_UNUSABLE', `data directory ${this.dataDir} cannot be created: ${(err as Error).message}`, err);
    }
    this.#lock();
    try {
      checkHeader(path.join(this.dataDir, 'courier.mdb'));
      const env = lmdb().open({
        path: path.join(this.dataDir, 'courier.mdb'),
        compression: false,
        noSync: this.durability !== 'fsync',
        maxDbs: 8,
        // Our own lock guards the directory; LMDB's reader table still protects readers.
      });
      this.#env = env;
      this.#retained = env.openDB<StoredMessage, string>({ name: 'retained' });
      this.#sessions = env.openDB<StoredSession, string>({ name: 'sessions' });
      this.#messages = env.openDB<StoredMessage, number>({ name: 'messages' });
      // The hot record: our own binary encoding (outbound-codec.ts) instead of msgpack.
      this.#outbound = env.openDB<Buffer, [string, number]>({ name: 'outbound2', encoding: 'binary' });
      this.#inbound = env.openDB<boolean, [string, number]>({ name: 'inbound' });
      const meta = env.openDB<number, string>({ name: 'meta' });
      const format = meta.get('format');
      if (format === undefined) await meta.put('format', FORMAT);
      else if (format !== FORMAT) {
        throw new StoreError(
          'COURIER_STORE_FORMAT',
          `data directory ${this.dataDir} holds store format ${String(format)}; this Courier reads format ${FORMAT}`,
        );
      }
    } catch (err) {
      await this.#env?.close().catch(() => {});
      this.#env = undefined;
      this.#unlock();
      if (err instanceof StoreError) throw err;
      throw new StoreError(
        'COURIER_STORE_UNREADABLE',
        `store in ${this.dataDir} cannot be opened (${(err as Error).message}); it was left untouched — move it aside to start empty, or restore a backup`,
        err,
      );
    }
  }

  #lock(): void {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        writeFileSync(this.#lockFile, `${process.pid}\n`, { flag: 'wx' });
        this.#locked = true;
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
          throw new StoreError('COURIER_STORE_UNUSABLE', `data directory ${this.dataDir} is not writable: ${(err as Error).message}`, err);
        }
        const pid = Number.parseInt(readFileSync(this.#lockFile, 'utf8'), 10);
        if (Number.isInteger(pid) && pid > 0 && isAlive(pid)) {
          throw new StoreError('COURIER_STORE_LOCKED', `data directory ${this.dataDir} is in use by another broker (pid ${pid}, ${this.#lockFile})`);
        }
        // A stale lock from a process that no longer runs (e.g. killed with SIGKILL).
        rmSync(this.#lockFile, { force: true });
      }
    }
    throw new StoreError('COURIER_STORE_LOCKED', `data directory ${this.dataDir} could not be locked (${this.#lockFile})`);
  }

  #unlock(): void {
    if (!this.#locked) return;
    this.#locked = false;
    rmSync(this.#lockFile, { force: true });
  }

  async close(): Promise<void> {
    if (this.#env === undefined) return;
    await this.flush();
    await this.#env.close();
    this.#env = undefined;
    this.#unlock();
  }

  async load(): Promise<StoreSnapshot> {
    const retained: Array<[string, StoredMessage]> = [];
    for (const { key, value } of this.#retained.getRange()) retained.push([key, revive(value)]);
    const sessions: StoredSession[] = [];
    for (const { value } of this.#sessions.getRange()) {
      if (value.will !== undefined) value.will.message = revive(value.will.message);
      sessions.push(value);
    }
    const messages = new Map<number, StoredMessage>();
    for (const { key, value } of this.#messages.getRange()) messages.set(key, revive(value));
    const outbound = new Map<string, Array<[number, StoredOutbound]>>();
    for (const { key, value } of this.#outbound.getRange()) {
      const [clientId, seq] = key;
      let list = outbound.get(clientId);
      if (list === undefined) outbound.set(clientId, (list = []));
      list.push([seq, decodeOutbound(value)]);
    }
    const inbound = new Map<string, number[]>();
    for (const { key } of this.#inbound.getRange()) {
      const [clientId, id] = key;
      let list = inbound.get(clientId);
      if (list === undefined) inbound.set(clientId, (list = []));
      list.push(id);
    }
    return { retained, sessions, messages, outbound, inbound };
  }

  #track(p: Promise<unknown>): void {
    if (p === this.#pending) return;
    this.#pending = p;
    p.then(
      () => {
        if (this.#pending === p) this.#pending = null;
      },
      () => {},
    );
  }

  putRetained(topic: string, message: StoredMessage): void {
    this.#track(this.#retained.put(topic, message));
  }

  deleteRetained(topic: string): void {
    this.#track(this.#retained.remove(topic));
  }

  putSession(session: StoredSession): void {
    this.#track(this.#sessions.put(session.clientId, session));
  }

  deleteSession(clientId: string): void {
    this.#track(this.#sessions.remove(clientId));
    // Committed entries of the session; entries written in this turn are removed by the core one by one.
    for (const key of this.#outbound.getKeys({ start: [clientId], end: [clientId, Number.MAX_SAFE_INTEGER] })) this.#track(this.#outbound.remove(key));
    for (const key of this.#inbound.getKeys({ start: [clientId], end: [clientId, Number.MAX_SAFE_INTEGER] })) this.#track(this.#inbound.remove(key));
  }

  putMessage(id: number, message: StoredMessage): void {
    this.#track(this.#messages.put(id, message));
  }

  deleteMessage(id: number): void {
    this.#track(this.#messages.remove(id));
  }

  putOutbound(clientId: string, seq: number, entry: StoredOutbound): void {
    this.#track(this.#outbound.put([clientId, seq], encodeOutbound(entry)));
  }

  deleteOutbound(clientId: string, seq: number): void {
    this.#track(this.#outbound.remove([clientId, seq]));
  }

  putInbound(clientId: string, packetId: number): void {
    this.#track(this.#inbound.put([clientId, packetId], true));
  }

  deleteInbound(clientId: string, packetId: number): void {
    this.#track(this.#inbound.remove([clientId, packetId]));
  }

  commitPoint(): Promise<void> | null {
    if (this.durability === 'none') return null;
    return this.#pending as Promise<void> | null;
  }

  async flush(): Promise<void> {
    if (this.#pending !== null) await this.#pending;
    if (this.#env !== undefined) await this.#env.flushed;
  }
}

const LMDB_MAGIC = 0xbeefc0de;
const META_MAGIC_OFFSET = 24;

/**
 * LMDB trusts its file: a file that is not an LMDB environment can crash the process inside the
 * native code instead of failing. Both meta pages must carry LMDB's magic before we open it.
 */
function checkHeader(file: string): void {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  try {
    const size = fstatSync(fd).size;
    if (size === 0) throw new Error(`${file} is empty`);
    const head = Buffer.alloc(8192);
    const n = readSync(fd, head, 0, head.length, 0);
    const magic0 = n >= META_MAGIC_OFFSET + 4 ? head.readUInt32LE(META_MAGIC_OFFSET) : 0;
    const pageSize = 4096;
    const magic1 = n >= pageSize + META_MAGIC_OFFSET + 4 ? head.readUInt32LE(pageSize + META_MAGIC_OFFSET) : 0;
    if (magic0 !== LMDB_MAGIC || magic1 !== LMDB_MAGIC) throw new Error(`${file} is not an LMDB environment (bad meta pages)`);
  } finally {
    closeSync(fd);
  }
}

/** msgpack hands binary back as Uint8Array/Buffer views; the core wants Buffers. */
function revive(m: StoredMessage): StoredMessage {
  if (!Buffer.isBuffer(m.payload)) m.payload = Buffer.from(m.payload as Uint8Array);
  const cd = m.properties?.correlationData;
  if (cd !== undefined && !Buffer.isBuffer(cd)) m.properties!.correlationData = Buffer.from(cd as Uint8Array);
  return m;
}
