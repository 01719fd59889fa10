/**
 * The Store contract (src/store/types.ts), run against every implementation: what is written
 * is what a fresh load returns, deletes remove, sessions take their entries with them, and
 * commit points resolve.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { RedisStore } from '../../../src/cluster/redis-store.js';
import { LmdbStore, StoreError } from '../../../src/store/lmdb.js';
import { MemoryStore } from '../../../src/store/memory.js';
import type { Store, StoredMessage, StoredOutbound, StoredSession } from '../../../src/store/types.js';
import { redisServerGate, startRedisServer, type RedisServer } from '../../helpers/redis-server.js';

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(path.join(tmpdir(), 'courier-store-'));
  dirs.push(d);
  return d;
}
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

interface Impl {
  name: string;
  /** A store over the same backing data as `reopen` of the previous one. */
  create(): { store: Store; reopen(): Store };
  /** describe() options (a gate on an outside server) and the suite's own setup. */
  options?: () => { skip: string | false };
  before?: () => Promise<void>;
  after?: () => Promise<void>;
}

/** RedisStore runs against a real redis-server; each store gets a prefix of its own. */
let redis: RedisServer | undefined;
let redisPrefixes = 0;

const impls: Impl[] = [
  {
    name: 'MemoryStore',
    create() {
      const store = new MemoryStore();
      return { store, reopen: () => store };
    },
  },
  {
    name: 'LmdbStore',
    create() {
      const dir = tempDir();
      return { store: new LmdbStore({ dataDir: dir }), reopen: () => new LmdbStore({ dataDir: dir }) };
    },
  },
  {
    name: 'RedisStore',
    create() {
      const url = redis!.url;
      const prefix = `conf${++redisPrefixes}:`;
      return { store: new RedisStore({ redis: url, prefix }), reopen: () => new RedisStore({ redis: url, prefix }) };
    },
    options: redisServerGate,
    before: async () => {
      redis = await startRedisServer();
    },
    after: async () => {
      await redis?.close();
    },
  },
];

const msg = (topic: string, payload: string, extra: Partial<StoredMessage> = {}): StoredMessage => ({
  topic,
  payload: Buffer.from(payload),
  qos: 1,
  retain: false,
  expiresAt: 0,
  origin: 'pub',
  ...extra,
});

const session = (clientId: string, extra: Partial<StoredSession> = {}): StoredSession => ({
  clientId,
  expiryInterval: 3600,
  subscriptions: [{ filter: 'a/#', qos: 1, noLocal: false, retainAsPublished: true, retainHandling: 0, subscriptionId: 7 }],
  ...extra,
});

async function cycle(store: Store, reopen: () => Store): Promise<Store> {
  await store.flush();
  if (store instanceof MemoryStore) return store;
  await store.close();
  const next = reopen();
  await next.open();
  return next;
}

/** An outbound entry carrying its message inline, with every field set. */
const INLINE: StoredOutbound = {
  messageId: 0,
  qos: 2,
  retain: true,
  subscriptionIds: [3, 70000],
  packetId: 65535,
  released: true,
  message: msg('a/inline/ü', 'inline', {
    retain: true,
    expiresAt: 1_700_000_000_123,
    properties: {
      contentType: 'text/plain',
      correlationData: Buffer.from([0, 255]),
      userProperties: [
        ['k', 'v'],
        ['k', 'w'],
      ],
      payloadFormatIndicator: 1,
      responseTopic: 'r/t',
    },
  }),
};

for (const impl of impls) {
  void describe(`Store contract: ${impl.name}`, impl.options?.() ?? {}, () => {
    if (impl.before !== undefined) before(impl.before);
    if (impl.after !== undefined) after(impl.after);
    void it('retained messages: put, replace, delete survive a reopen, payload and properties intact', async () => {
      const { store, reopen } = impl.create();
      await store.open();
      store.putRetained('a/b', msg('a/b', 'one'));
      store.putRetained(
        'a/b',
        msg('a/b', 'two', {
          properties: {
            contentType: 'text/plain',
            correlationData: Buffer.from([1, 2]),
            userProperties: [
              ['k', 'v'],
              ['k', 'w'],
            ],
          },
        }),
      );
      store.putRetained('a/c', msg('a/c', 'three'));
      store.deleteRetained('a/c');
      const s2 = await cycle(store, reopen);
      const snap = await s2.load();
      assert.equal(snap.retained.length, 1);
      const [topic, m] = snap.retained[0]!;
      assert.equal(topic, 'a/b');
      assert.ok(Buffer.isBuffer(m.payload));
      assert.equal(m.payload.toString(), 'two');
      assert.ok(Buffer.isBuffer(m.properties?.correlationData));
      assert.deepEqual(m.properties?.userProperties, [
        ['k', 'v'],
        ['k', 'w'],
      ]);
      await s2.close();
    });

    void it('sessions with subscriptions, messages, outbound entries in seq order and inbound ids', async () => {
      const { store, reopen } = impl.create();
      await store.open();
      store.putSession(session('c1'));
      store.putSession(session('c2', { disconnectedAt: 1234, will: { message: msg('w', 'bye'), delaySeconds: 5 }, willPending: true }));
      store.putMessage(1, msg('a/1', 'm1'));
      store.putMessage(2, msg('a/2', 'm2'));
      store.putOutbound('c1', 10, { messageId: 1, qos: 1, retain: false });
      store.putOutbound('c1', 3, { messageId: 2, qos: 2, retain: true, subscriptionIds: [7], packetId: 5, released: true });
      store.putOutbound('c2', 4, { messageId: 1, qos: 1, retain: false });
      store.putOutbound('c2', 6, INLINE);
      // A queue position beside the key (handed back while the session held later messages: Session.hold).
      store.putOutbound('c2', 8, { ...INLINE, order: 5 });
      store.putOutbound('c2', 9, { messageId: 1, qos: 1, retain: false, order: 1 });
      store.putInbound('c1', 42);
      store.putInbound('c1', 43);
      store.deleteInbound('c1', 43);
      const s2 = await cycle(store, reopen);
      const snap = await s2.load();
      assert.deepEqual(snap.sessions.map((s) => s.clientId).sort(), ['c1', 'c2']);
      const c2 = snap.sessions.find((s) => s.clientId === 'c2')!;
      assert.equal(c2.disconnectedAt, 1234);
      assert.equal(c2.will?.message.payload.toString(), 'bye');
      assert.equal(c2.willPending, true);
      assert.deepEqual(snap.sessions.find((s) => s.clientId === 'c1')!.subscriptions[0]!.subscriptionId, 7);
      assert.deepEqual([...snap.messages.keys()].sort(), [1, 2]);
      assert.deepEqual(
        snap.outbound.get('c1')!.map(([seq]) => seq),
        [3, 10],
      );
      assert.deepEqual(snap.outbound.get('c1')![0]![1], { messageId: 2, qos: 2, retain: true, subscriptionIds: [7], packetId: 5, released: true });
      assert.deepEqual(snap.inbound.get('c1'), [42]);
      const inline = snap.outbound.get('c2')!.find(([seq]) => seq === 6)![1];
      assert.ok(Buffer.isBuffer(inline.message?.payload), 'an inline message comes back with a Buffer payload');
      assert.ok(Buffer.isBuffer(inline.message?.properties?.correlationData), 'correlation data comes back as a Buffer');
      assert.deepEqual(inline, INLINE);
      assert.deepEqual(snap.outbound.get('c2')!.find(([seq]) => seq === 8)![1], { ...INLINE, order: 5 });
      assert.deepEqual(snap.outbound.get('c2')!.find(([seq]) => seq === 9)![1], { messageId: 1, qos: 1, retain: false, order: 1 });
      await s2.close();
    });

    void it('session timing comes back exact: the largest intervals and an epoch-ms disconnect time (deadlines resume from them)', async () => {
      const { store, reopen } = impl.create();
      await store.open();
      const at = Date.UTC(2026, 11, 5, 8, 0, 0, 123);
      store.putSession(
        session('max', { expiryInterval: 0xfffffffe, disconnectedAt: at, will: { message: msg('w', 'late'), delaySeconds: 0xffffffff }, willPending: true }),
      );
      store.putSession(session('never', { expiryInterval: 0xffffffff, disconnectedAt: at + 1 }));
      const s2 = await cycle(store, reopen);
      const snap = await s2.load();
      const timing = snap.sessions.map((s) => [s.clientId, s.expiryInterval, s.disconnectedAt, s.will?.delaySeconds]).sort();
      assert.deepEqual(timing, [
        ['max', 0xfffffffe, at, 0xffffffff],
        ['never', 0xffffffff, at + 1, undefined],
      ]);
      await s2.close();
    });

    void it('deleteSession removes the record with its outbound and inbound entries; messages stay until deleted', async () => {
      const { store, reopen } = impl.create();
      await store.open();
      store.putSession(session('gone'));
      store.putSession(session('kept'));
      store.putMessage(1, msg('a', 'x'));
      store.putOutbound('gone', 1, { messageId: 1, qos: 1, retain: false });
      store.putOutbound('kept', 2, { messageId: 1, qos: 1, retain: false });
      store.putInbound('gone', 9);
      let s = await cycle(store, reopen);
      s.deleteSession('gone');
      s = await cycle(s, reopen);
      let snap = await s.load();
      assert.deepEqual(
        snap.sessions.map((x) => x.clientId),
        ['kept'],
      );
      assert.equal(snap.outbound.has('gone'), false);
      assert.equal(snap.inbound.has('gone'), false);
      assert.deepEqual(
        snap.outbound.get('kept')!.map(([seq]) => seq),
        [2],
      );
      s.deleteOutbound('kept', 2);
      s.deleteMessage(1);
      s = await cycle(s, reopen);
      snap = await s.load();
      assert.equal(snap.messages.size, 0);
      assert.equal(snap.outbound.size, 0);
      await s.close();
    });

    void it('commitPoint is null when nothing is outstanding and resolves after writes', async () => {
      const { store } = impl.create();
      await store.open();
      await store.flush();
      assert.equal(store.commitPoint(), null);
      store.putMessage(1, msg('a', 'x'));
      const p = store.commitPoint();
      if (p !== null) await p;
      await store.flush();
      assert.equal(store.commitPoint(), null);
      await store.close();
    });
  });
}

void describe('LmdbStore: the data directory', () => {
  void it('is locked against a second store while open, and free again after close', async () => {
    const dir = tempDir();
    const a = new LmdbStore({ dataDir: dir });
    await a.open();
    const b = new LmdbStore({ dataDir: dir });
    await assert.rejects(
      b.open(),
      (err: unknown) => err instanceof StoreError && err.code === 'COURIER_STORE_LOCKED' && /in use by another broker \(pid \d+/.test(err.message),
    );
    await a.close();
    await b.open();
    await b.close();
  });

  void it('takes over a stale lock left by a process that no longer runs', async () => {
    const dir = tempDir();
    writeFileSync(path.join(dir, 'courier.lock'), '2147483646\n');
    const s = new LmdbStore({ dataDir: dir });
    await s.open();
    await s.close();
  });

  void it('refuses a corrupt store file with a clear error and leaves it untouched', async () => {
    const dir = tempDir();
    const garbage = Buffer.alloc(64 * 1024, 0x5a);
    writeFileSync(path.join(dir, 'courier.mdb'), garbage);
    const s = new LmdbStore({ dataDir: dir });
    await assert.rejects(s.open(), (err: unknown) => err instanceof StoreError && err.code === 'COURIER_STORE_UNREADABLE' && err.message.includes(dir));
    const { readFileSync } = await import('node:fs');
    assert.ok(readFileSync(path.join(dir, 'courier.mdb')).equals(garbage), 'the corrupt file is not modified');
    // The lock is released after a failed open.
    await assert.rejects(s.open());
  });
});
