/**
 * RedisStore: the Store interface (src/store/types.ts) on Redis, so that persistent sessions
 * can be taken over by any node of a cluster (Cluster II), or kept in Redis by a single node.
 *
 * Group commit: every write issued in one event-loop turn goes to Redis in one atomic Lua call
 * (store-scripts.ts COMMIT), split into several calls in order when a turn holds more than
 * `maxOpsPerCall` writes or `maxBytesPerCall` bytes. `commitPoint()` is the promise of the call
 * holding the writes so far; it resolves only after Redis has applied that call and every call
 * before it that was still unanswered when it was sent, and rejects when any of them failed (so
 * nothing is acknowledged before it is in Redis; with `appendfsync always` that means on disk).
 *
 * Fencing: `claim(clientId, nid)` takes a session over atomically and gives this store the new
 * token; every write of that client id then carries it, and the commit applies the client's
 * writes only while the session's stored fence is that token. Writes of a client whose session
 * was claimed by someone else are dropped, and reported through `onFenced` (called before the
 * commit point resolves, so the holder can close the client's connection before any
 * acknowledgement leaves). Client ids without a token (single node) are written unconditionally.
 *
 * Key layout: see store-scripts.ts. The parts: store-connection.ts (the client and its scripts),
 * store-commit.ts (collecting a turn's writes and sending them), store-releases.ts (releases of
 * ownership records, a turn's in one call), store-session.ts (decoding a session read by a
 * script), store-types.ts (the public types, exported from here).
 */
import type { Redis } from 'ioredis';
import type { Store, StoredMessage, StoredOutbound, StoredSession, StoreSnapshot } from '../store/types.js';
import { encodeOutbound } from '../store/outbound-codec.js';
import { encodeMessage, encodeSession } from './store-codec.js';
import { scanSnapshot } from './store-load.js';
import type { Arg, Batch } from './store-batch.js';
import { within } from './within.js';
import { storeKeys, type StoreKeys } from './store-scripts.js';
import { defineStoreScripts, openStoreConnection, storeConnection, type Scripted, type StoreConnection } from './store-connection.js';
import { CommitPipeline } from './store-commit.js';
import { ReleaseQueue } from './store-releases.js';
import { parseMessages, parseSession } from './store-session.js';
import type { ClaimResult, FencedHandler, LoadedSession, RedisStoreOptions, RedisStoreStats } from './store-types.js';

export type { ClaimResult, FencedBy, FencedHandler, LoadedSession, RedisStoreOptions, RedisStoreStats } from './store-types.js';

export class RedisStore implements Store {
  readonly keys: StoreKeys;
  onFenced: FencedHandler | undefined;
  readonly #cluster: boolean;
  readonly #waits: boolean;
  readonly #commandTimeout: number;
  readonly #connection: StoreConnection;
  readonly #redis: Redis;
  readonly #scripts: Scripted;
  readonly #fences = new Map<string, string>();
  readonly #commits: CommitPipeline;
  /** The last claim sent for each client id here (a number growing per claim), see release. */
  readonly #claimsSent = new Map<string, number>();
  #claimSeq = 0;
  readonly #releases: ReleaseQueue;
  readonly #stats: RedisStoreStats = { calls: 0, writes: 0, failedCalls: 0, fencedWrites: 0, fencedReports: 0, releases: 0, releaseCalls: 0 };

  constructor(options: RedisStoreOptions) {
    this.keys = storeKeys(options.prefix ?? 'courier:');
    this.onFenced = options.onFenced;
    this.#cluster = options.cluster === true;
    this.#waits = options.waitForReconnect === true && typeof options.redis === 'string';
    this.#commandTimeout = options.commandTimeoutMs ?? 5000;
    this.#connection = storeConnection(options.redis, options.waitForReconnect === true, this.#commandTimeout);
    this.#redis = this.#connection.redis;
    this.#scripts = defineStoreScripts(this.#redis);
    this.#releases = new ReleaseQueue(this.#scripts, this.keys, this.#cluster ? this.keys.ownPrefix : '', this.#stats);
    this.#commits = new CommitPipeline({
      scripts: this.#scripts,
      keys: this.keys,
      cluster: this.#cluster,
      // Lua's unpack() takes at most ~8000 values: a call's HSET of entries stays below.
      maxOps: Math.min(Math.max(1, options.maxOpsPerCall ?? 256), 3000),
      maxBytes: options.maxBytesPerCall ?? 512 * 1024,
      stats: this.#stats,
      beforeSend: () => this.#releases.first(),
      onFenced: () => this.onFenced,
    });
  }

  /** The client this store uses. */
  get redis(): Redis {
    return this.#redis;
  }

  stats(): RedisStoreStats {
    return { ...this.#stats };
  }

  open(): Promise<void> {
    return openStoreConnection(this.#connection);
  }

  async close(): Promise<void> {
    try {
      // Bounded when commands wait for a reconnect: a store that cannot reach Redis still closes.
      this.#releases.first();
      if (this.#waits) await within(this.#commandTimeout, () => this.flush());
      else await this.flush();
      // Every call is answered: the guard against applying one twice (see COMMIT) is no longer needed.
      const done = this.#commits.answeredDoneKey();
      if (done !== undefined && this.#redis.status === 'ready') await this.#redis.del(done).catch(() => undefined);
    } finally {
      if (this.#connection.owned && this.#redis.status !== 'end') await this.#redis.quit().catch(() => this.#redis.disconnect());
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Fencing

  /** Writes of `clientId` carry `token` from now on (undefined: unfenced). Writes already issued keep theirs. */
  setFence(clientId: string, token: string | undefined): void {
    this.#commits.sealIfHolds(clientId);
    if (token === undefined) this.#fences.delete(clientId);
    else this.#fences.set(clientId, token);
  }

  fence(clientId: string): string | undefined {
    return this.#fences.get(clientId);
  }

  /**
   * Takes the session of `clientId` over for node `nid`: a new fence (older tokens are refused
   * from now on), owner = nid; with `clean` the stored session is discarded. In a cluster the
   * previous owner is kicked (store-scripts.ts CLAIM).
   */
  async claim(clientId: string, nid: string | number, options: { clean?: boolean } = {}): Promise<ClaimResult> {
    const k = this.keys;
    const c = this.#cluster;
    this.#releases.first();
    this.#claimsSent.set(clientId, ++this.#claimSeq);
    const [token, prev, present, alive, meta, out, inb] = await this.#scripts.courierStoreClaimBuffer(
      k.meta(clientId),
      k.out(clientId),
      k.in(clientId),
      k.fenceSeq,
      String(nid),
      options.clean === true ? '1' : '0',
      clientId,
      c ? k.ownPrefix : '',
      c ? k.leasePrefix : '',
      c ? k.inboxPrefix : '',
    );
    const t = token.toString();
    this.setFence(clientId, t);
    const previous = prev.toString();
    return {
      token: t,
      previousOwner: previous === '' ? null : previous,
      present: present === 1,
      previousAlive: alive === 1,
      loaded: previous === String(nid) ? undefined : parseSession(meta, out, inb, new Map()),
    };
  }

  /**
   * Takes over a session that node `dead` owned (it died), for node `nid`; null when the dead
   * node no longer owns it (its client reconnected elsewhere). The store writes it with the new token.
   */
  async adopt(clientId: string, dead: string | number, nid: string | number): Promise<(LoadedSession & { token: string }) | null> {
    const k = this.keys;
    this.#releases.first();
    const r = await this.#scripts.courierStoreAdoptBuffer(
      k.meta(clientId),
      k.out(clientId),
      k.in(clientId),
      k.fenceSeq,
      String(dead),
      String(nid),
      clientId,
      k.ownPrefix,
    );
    if (r.length === 0) return null;
    const [token, meta, out, inb] = r;
    const t = token.toString();
    this.setFence(clientId, t);
    return { ...parseSession(meta, out, inb, new Map()), token: t };
  }

  /** Removes the ownership record of a session that has no record left, if this store's token still holds; forgets the token. */
  async release(clientId: string, claimToken?: string): Promise<boolean> {
    const token = this.#fences.get(clientId) ?? '';
    if (claimToken !== undefined && claimToken !== token) return false;
    const claimed = this.#claimsSent.get(clientId);
    await this.flush();
    // A claim made meanwhile (a new connection) keeps the ownership: one by another node took a
    // new token; one here without Clean Start may have kept the same token, so claims sent
    // from here are counted too (else this release would delete the new session's record).
    if (this.#fences.get(clientId) !== token || this.#claimsSent.get(clientId) !== claimed) return false;
    this.#claimsSent.delete(clientId);
    this.setFence(clientId, undefined);
    // The releases asked for in one turn go in one call (see store-releases.ts).
    return this.#releases.release(clientId, token);
  }

  /** Forgets the token of a client id (its session was taken over): its writes go unfenced no more, they are dropped by Redis. */
  forget(clientId: string): void {
    this.#commits.sealIfHolds(clientId);
    this.#fences.delete(clientId);
    this.#claimsSent.delete(clientId);
  }

  /** Forgets every token (the node dropped all its sessions). */
  forgetAll(): void {
    this.#commits.seal();
    this.#fences.clear();
    this.#claimsSent.clear();
  }

  /**
   * Appends an entry to the stream `key` (another node's inbox) in the same atomic call as this
   * turn's writes, after them: its fields are taken when the call is sent. `gone` runs when the
   * stream does not exist.
   */
  append(key: string, fields: () => Arg[], gone?: () => void): void {
    this.#commits.batch(0).appends.push({ key, fields, gone });
  }

  /**
   * Appends a forward entry (`f <from> d <dests> b <batch>`) for node `nid` that belongs to
   * client `clientId`'s writes of this turn: in the same atomic call as them (its inbound QoS 2
   * packet id), dropped with them when the client is fenced, and sent to the node that adopted
   * `nid`'s sessions when `nid`'s inbox is gone. False when the client holds no token (nothing
   * to scope it to): the caller forwards it the usual way.
   */
  appendForward(clientId: string, nid: number, key: string, fields: () => Arg[]): boolean {
    const token = this.#fences.get(clientId);
    if (token === undefined || !this.#cluster) return false;
    const b = this.#commits.batch(0);
    // Present in this call, so the script checks its token.
    if (!b.clients.has(clientId)) b.client(clientId, token).writes--;
    b.appends.push({ key, fields, gone: undefined, scope: clientId, fallback: nid });
    return true;
  }

  /** Trims a node's inbox up to (not including) `minid` in the same atomic call as the writes issued so far. */
  trimInbox(key: string, minid: string): void {
    this.#commits.trim(key, minid);
  }

  /** One session, read atomically (what a node taking it over needs, instead of a load of everything). */
  async loadSession(clientId: string): Promise<LoadedSession> {
    const k = this.keys;
    this.#releases.first();
    const [meta, out, inb, msgs] = await this.#scripts.courierStoreLoadSessionBuffer(
      k.meta(clientId),
      k.out(clientId),
      k.in(clientId),
      k.message(0).slice(0, -1),
    );
    return parseSession(meta, out, inb, parseMessages(msgs));
  }

  // ---------------------------------------------------------------------------------------------
  // Store: reading

  /** Everything under the prefix (SCAN), for a single node that keeps its store in Redis. Not atomic across keys. */
  async load(): Promise<StoreSnapshot> {
    return scanSnapshot(this.#redis, this.keys.prefix);
  }

  // ---------------------------------------------------------------------------------------------
  // Store: writing (collected per turn)

  /**
   * While held, the open batch is not split at the size caps: the writes of one inbox step and
   * its trim go to Redis in one atomic call (a node that dies mid-way must leave either both or
   * neither, or a survivor's replay would deliver what was already queued).
   */
  hold(on: boolean): void {
    this.#commits.hold(on);
  }

  /** Store.atomic: while on (nesting), the open batch is not split at the size caps either. */
  atomic(on: boolean, scope?: string): void {
    this.#commits.atomic(on, scope);
  }

  #client(clientId: string, bytes: number): { b: Batch; c: ReturnType<Batch['client']> } {
    const b = this.#commits.batch(bytes);
    return { b, c: b.client(clientId, this.#fences.get(clientId) ?? '') };
  }

  putRetained(topic: string, message: StoredMessage): void {
    const v = encodeMessage(message);
    this.#commits.batch(v.length + topic.length).retained.set(topic, v);
  }

  deleteRetained(topic: string): void {
    this.#commits.batch(topic.length).retained.set(topic, null);
  }

  putSession(session: StoredSession): void {
    const v = encodeSession(session);
    const { b, c } = this.#client(session.clientId, v.length);
    b.putSession(c, v);
  }

  deleteSession(clientId: string): void {
    const { b, c } = this.#client(clientId, 0);
    b.deleteSession(c);
  }

  putMessage(id: number, message: StoredMessage): void {
    const v = encodeMessage(message);
    this.#commits.batch(v.length).messages.set(id, v);
  }

  deleteMessage(id: number): void {
    this.#commits.batch(0).messages.set(id, null);
  }

  putOutbound(clientId: string, seq: number, entry: StoredOutbound): void {
    const v = encodeOutbound(entry);
    const { b, c } = this.#client(clientId, v.length);
    b.putOutbound(c, seq, v, this.#commits.unitScope);
  }

  deleteOutbound(clientId: string, seq: number): void {
    const { b, c } = this.#client(clientId, 0);
    b.deleteOutbound(c, seq);
  }

  putInbound(clientId: string, packetId: number): void {
    const { b, c } = this.#client(clientId, 0);
    b.putInbound(c, packetId);
  }

  deleteInbound(clientId: string, packetId: number): void {
    const { b, c } = this.#client(clientId, 0);
    b.deleteInbound(c, packetId);
  }

  commitPoint(): Promise<void> | null {
    return this.#commits.commitPoint();
  }

  /** Resolves once every write issued so far is applied; rejects when a call still unanswered now fails (failures already reported to their commit points are not reported again). */
  flush(): Promise<void> {
    return this.#commits.flush();
  }
}
