/**
 * RedisStore's commit pipeline: the writes issued in one event-loop turn are collected in a
 * Batch (store-batch.ts) and sent as one atomic COMMIT call (store-scripts.ts), split into
 * several calls in order at `maxOps` writes or `maxBytes` bytes, except while held or inside an
 * atomic unit. Each call is chained to the unanswered one before it: its commit point resolves
 * only once every call before it is applied too. A call's reply names the clients it fenced
 * (reported through `onFenced` before the commit point resolves) and the appends whose stream was gone.
 */
import { randomUUID } from 'node:crypto';
import { Batch } from './store-batch.js';
import type { Scripted } from './store-connection.js';
import type { StoreKeys } from './store-scripts.js';
import type { FencedBy, FencedHandler, RedisStoreStats } from './store-types.js';

export interface CommitPipelineOptions {
  scripts: Scripted;
  keys: StoreKeys;
  cluster: boolean;
  maxOps: number;
  maxBytes: number;
  /** Counted in place. */
  stats: RedisStoreStats;
  /** Called before each commit call is sent (the releases asked for before it go first). */
  beforeSend: () => void;
  /** The handler of the store's fencing reports, as it is now (see RedisStore.onFenced). */
  onFenced: () => FencedHandler | undefined;
}

export class CommitPipeline {
  /** The batch collecting this turn's writes. */
  #open: Batch | undefined;
  /** The last batch sent and not yet settled. */
  #inflight: Batch | undefined;
  #flushScheduled = false;
  #held = false;
  /** This store's id and its commit calls so far (the id of each call, see COMMIT). */
  readonly #id = randomUUID();
  #calls = 0;
  /** Atomic units open (see atomic). */
  #units = 0;
  /** The client whose packet the open unit carries (see atomic): its entries for others are scoped to it. */
  #unitScope: string | undefined = undefined;

  constructor(private readonly o: CommitPipelineOptions) {}

  /** The client whose packet the open atomic unit carries, if any. */
  get unitScope(): string | undefined {
    return this.#unitScope;
  }

  /** The key that guards this store's calls against being applied twice, once every call sent is answered; undefined while one is not (or none was sent). */
  answeredDoneKey(): string | undefined {
    return this.#calls > 0 && this.#inflight === undefined ? this.o.keys.done(this.#id) : undefined;
  }

  /** Sends the open batch if it holds writes of `clientId` (before that client's token changes). */
  sealIfHolds(clientId: string): void {
    if (this.#open?.clients.has(clientId) === true) this.seal();
  }

  /** See RedisStore.hold. */
  hold(on: boolean): void {
    this.#held = on;
  }

  /** Store.atomic: while on (nesting), the open batch is not split at the size caps either. */
  atomic(on: boolean, scope?: string): void {
    if (on && this.#units === 0) this.#unitScope = scope;
    this.#units = on ? this.#units + 1 : Math.max(0, this.#units - 1);
    if (this.#units === 0) this.#unitScope = undefined;
  }

  /** Trims a node's inbox up to (not including) `minid` in the same atomic call as the writes issued so far; ends a hold. */
  trim(key: string, minid: string): void {
    const b = this.batch(0);
    b.writes--;
    b.trim = [key, minid];
    this.#held = false;
  }

  /** The open batch, counting one more write of `bytes` (a new one when the open one is full). */
  batch(bytes: number): Batch {
    let b = this.#open;
    if (b !== undefined && !this.#held && this.#units === 0 && (b.writes >= this.o.maxOps || (b.bytes + bytes > this.o.maxBytes && b.writes > 0))) {
      this.seal();
      b = undefined;
    }
    if (b === undefined) {
      b = this.#open = new Batch();
      if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        setImmediate(() => {
          this.#flushScheduled = false;
          if (this.#open !== undefined) this.seal();
        });
      }
    }
    b.writes++;
    b.bytes += bytes;
    return b;
  }

  commitPoint(): Promise<void> | null {
    return (this.#open ?? this.#inflight)?.done ?? null;
  }

  /** Resolves once every write issued so far is applied; rejects when a call still unanswered now fails. */
  async flush(): Promise<void> {
    if (this.#open !== undefined) this.seal();
    const last = this.#inflight;
    if (last !== undefined) await last.done;
  }

  /** Sends the open batch: one atomic call, chained to the unsettled one before it. */
  seal(): void {
    const b = this.#open;
    if (b === undefined) return;
    this.#open = undefined;
    // Chained to the call before it while that one is unanswered (a call that failed before this
    // one was sent does not hold it back: its own commit points rejected).
    const prev = this.#inflight !== undefined && !this.#inflight.settled ? this.#inflight.done : undefined;
    this.#inflight = b;
    const { keys: k, cluster, stats } = this.o;
    stats.calls++;
    stats.writes += b.writes;
    const { keys, argv } = b.args(k, cluster ? k.inboxPrefix : '', cluster ? k.movedPrefix : '');
    // The call's id: a call sent again after a broken connection is applied once (see COMMIT).
    keys.push(k.done(this.#id));
    argv.push(++this.#calls);
    this.o.beforeSend();
    const reply = this.o.scripts.courierStoreCommit(keys.length, ...keys, ...argv);
    const settle = (err: unknown): void => {
      b.settled = true;
      if (this.#inflight === b) this.#inflight = undefined;
      if (err === undefined) b.resolve();
      else {
        stats.failedCalls++;
        b.reject(err);
      }
    };
    reply.then(
      ([fenced, gone]) => {
        if (fenced.length > 0) this.#fenced(b, fenced);
        for (const x of gone) b.appends[x - 1]?.gone?.();
        // Applied; it counts once every call before it that was still unanswered is applied too.
        if (prev === undefined) settle(undefined);
        else prev.then(() => settle(undefined), settle);
      },
      (err: unknown) => settle(err),
    );
  }

  /** `reply`: flat triples of the fenced clients' index, the token that fenced them, '1' for a Clean Start claim (see COMMIT). */
  #fenced(b: Batch, reply: Array<number | string>): void {
    const byIndex = b.clientIds();
    const ids: string[] = [];
    const takers: FencedBy[] = [];
    for (let i = 0; i + 2 < reply.length; i += 3) {
      ids.push(byIndex[Number(reply[i]) - 1]!);
      takers.push({ token: String(reply[i + 1]), clean: String(reply[i + 2]) === '1' });
    }
    for (const id of ids) this.o.stats.fencedWrites += b.writesOf(id);
    this.o.stats.fencedReports++;
    this.o.onFenced()?.(
      ids,
      ids.map((id) => b.tokenOf(id)),
      takers,
    );
  }
}
