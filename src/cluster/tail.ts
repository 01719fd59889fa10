/**
 * The reading half of a cluster node: two blocking Redis connections tail three streams, one
 * the node's inbox (messages forwarded to it), the other the route log and the retained log, in
 * order, and apply them to the core and the route table. Bootstrap (join, reconnect, gap in a trimmed
 * log) captures the logs' positions first, then reads the full state (route sets, retained
 * hash), then tails from the captured positions: replayed changes are idempotent.
 */
import type { Redis } from 'ioredis';
import type { Logger } from '../options.js';
import { BatchError, decodeRetained } from './wire.js';
import { nextId, type Keys } from './scripts.js';
import type { ClusterOptions } from './options.js';
import { compareIds, field, streamsOf, type Entry, type XReadReply } from './stream-fields.js';
import type { ClusterCore, TailOwner } from './tail-types.js';
import { inboxEntry } from './inbox-entry.js';
import { applySnapshot, readSnapshot } from './tail-bootstrap.js';

export { compareIds, field, handedOverEntries, markOf } from './stream-fields.js';
export type { ClusterCore, TailOwner } from './tail-types.js';

const INBOX_COUNT = 16;
const LOG_COUNT = 256;
/** Longest pause between inbox entries while receivers' queues are full (then delivery goes on and the queue policy applies). */
const PRESSURE_WAIT_MS = 2000;
const BLOCK_MS = 1000;

export class Tail {
  readonly #owner: TailOwner;
  readonly #core: ClusterCore;
  readonly #log: Logger;
  readonly #keys: Keys;
  /** Blocking connections: one for the inbox, one for the route and retained logs. */
  readonly #blk: Redis;
  readonly #logs: Redis;
  #nid = 0;
  #inId = '0-0';
  #routeId = '0-0';
  #retId = '0-0';
  /** Highest retained version applied (ret:ver at bootstrap, then from log entries). */
  #retApplied = 0;
  readonly #waiters: Array<{ ver: number; resolve: () => void }> = [];
  #barrier: Promise<void> | undefined = undefined;
  #gen = 0;
  #running = false;
  #loop: Promise<void> | undefined = undefined;
  /**
   * Settles the reads in flight when the tail stops: ioredis leaves a command pending forever
   * when its connection is disconnected while reconnecting (a node cut off from Redis), and a
   * stop must not wait for it.
   */
  readonly #reading = new Set<() => void>();

  constructor(owner: TailOwner, options: ClusterOptions, core: ClusterCore, log: Logger, keys: Keys) {
    this.#owner = owner;
    this.#core = core;
    this.#log = log;
    this.#keys = keys;
    this.#blk = owner.redis.duplicate({ connectionName: `courier:${options.nodeName}:tail`, lazyConnect: true });
    this.#blk.on('error', () => {});
    this.#logs = owner.redis.duplicate({ connectionName: `courier:${options.nodeName}:logs`, lazyConnect: true });
    this.#logs.on('error', () => {});
  }

  async start(nid: number): Promise<void> {
    await Promise.all([this.#blk.connect(), this.#logs.connect()]);
    this.#nid = nid;
    this.#inId = '0-0';
    await this.#bootstrap();
    this.#running = true;
    this.#loop = Promise.all([this.#run(this.#blk, true), this.#run(this.#logs, false)]).then(() => undefined);
  }

  /** Reloads everything (reconnect, new incarnation); a read in flight with the old positions is discarded. */
  async restart(nid: number): Promise<void> {
    this.#gen++;
    if (nid !== this.#nid) {
      this.#nid = nid;
      this.#inId = '0-0';
    }
    await this.#bootstrap();
  }

  /** Drops the blocking connection for a new one (it may hang on a dead link); positions are kept. */
  reconnect(): void {
    this.#gen++;
    this.#blk.disconnect(true);
    this.#logs.disconnect(true);
  }

  async stop(): Promise<void> {
    this.#running = false;
    this.#gen++;
    for (const cancel of this.#reading) cancel();
    this.#reading.clear();
    this.#blk.disconnect();
    this.#logs.disconnect();
    await this.#loop;
    for (const w of this.#waiters.splice(0)) w.resolve();
  }

  async #bootstrap(): Promise<void> {
    const gen = this.#gen;
    const snap = await readSnapshot(this.#owner.redis, this.#keys, () => this.#nid, this.#log);
    if (gen !== this.#gen) return; // superseded by a newer bootstrap
    applySnapshot(snap, this.#owner.routes, this.#core);
    this.#routeId = snap.routeId;
    this.#retId = snap.retId;
    this.#retApplied = snap.retVer;
    this.#release();
  }

  /** Heartbeat check: a log trimmed past what this node has read means a full resync. */
  async checkGaps(): Promise<void> {
    const redis = this.#owner.redis;
    for (const [key, id] of [
      [this.#keys.rlog, this.#routeId],
      [this.#keys.retLog, this.#retId],
    ] as const) {
      let info: unknown;
      try {
        info = await redis.call('XINFO', 'STREAM', key);
      } catch {
        continue; // no such stream yet
      }
      const flat = info as unknown[];
      const at = flat.indexOf('max-deleted-entry-id');
      const deleted = at >= 0 ? String(flat[at + 1]) : '0-0';
      if (compareIds(deleted, id) > 0) {
        this.#log.warn({ stream: key }, 'cluster: fell behind a trimmed log; resynchronising');
        await this.restart(this.#nid);
        return;
      }
    }
  }

  /**
   * One reading loop on its own blocking connection: the inbox has one, the two logs share
   * another, so an inbox held back by slow receivers never delays route or retained changes.
   */
  async #run(conn: Redis, inbox: boolean): Promise<void> {
    let failures = 0;
    while (this.#running) {
      const gen = this.#gen;
      const k = this.#keys;
      let reply: XReadReply;
      try {
        const streams = inbox ? [k.inbox(this.#nid), this.#inId] : [k.rlog, k.retLog, this.#routeId, this.#retId];
        const read = conn.callBuffer('XREAD', 'COUNT', String(inbox ? INBOX_COUNT : LOG_COUNT), 'BLOCK', String(BLOCK_MS), 'STREAMS', ...streams);
        let cancel!: () => void;
        const settled = new Promise<unknown>((resolve, reject) => {
          cancel = () => resolve(null);
          read.then(resolve, reject);
        });
        this.#reading.add(cancel);
        try {
          reply = streamsOf(await settled);
        } finally {
          this.#reading.delete(cancel);
        }
        failures = 0;
      } catch (err) {
        if (!this.#running) break;
        failures++;
        if (failures === 1) this.#log.warn({ err: String(err) }, 'cluster: stream read failed; retrying');
        await new Promise((r) => setTimeout(r, Math.min(100 * failures, 1000)));
        continue;
      }
      if (reply === null || gen !== this.#gen) continue;
      for (const [keyBuf, entries] of reply) {
        const key = keyBuf.toString();
        try {
          if (key === k.inbox(this.#nid)) await this.#inbox(entries);
          else if (key === k.rlog) this.#routeLog(entries);
          else if (key === k.retLog) this.#retainedLog(entries);
        } catch (err) {
          this.#log.error({ stream: key, err: String(err) }, 'cluster: could not apply stream entries');
        }
      }
    }
  }

  async #inbox(entries: Entry[]): Promise<void> {
    let last = '';
    let n = 0;
    const nid = this.#nid;
    // A session claim in flight: its session is installed before anything more is handled here.
    for (let q = this.#owner.quiet(); q !== undefined; q = this.#owner.quiet()) await q;
    if (!this.#owner.serving()) {
      // Fenced: nothing more is handled here (the inbox waits for its recovery); no busy loop.
      await new Promise((r) => setTimeout(r, 100));
      return;
    }
    this.#owner.handling(true);
    for (const [id, fields] of entries) {
      if (this.#nid !== nid) break; // joined again meanwhile: that inbox is gone
      if (!this.#owner.serving()) break;
      // Back-pressure: what is not read yet waits in Redis, not in a full session queue. What
      // was handled before the wait is committed and trimmed first.
      if (this.#running && this.#core.forwardPressure()) {
        if (last !== '') this.#owner.handled(this.#keys.inbox(this.#nid), nextId(last));
        for (let waited = 0; waited < PRESSURE_WAIT_MS && this.#running && this.#core.forwardPressure(); waited += 5) {
          await new Promise((r) => setTimeout(r, 5));
        }
        this.#owner.handling(true);
      }
      last = id.toString();
      try {
        n += this.entry(fields);
      } catch (err) {
        if (!(err instanceof BatchError)) throw err;
        this.#log.error({ entry: last, err: err.message }, 'cluster: unreadable forward batch skipped');
      }
    }
    if (last === '' || this.#nid !== nid) {
      this.#owner.handling(false);
      return;
    }
    this.#inId = last;
    this.#owner.received(n);
    // Handled: trimmed with the writes it caused (the inbox holds only what this node has not
    // handled, so a survivor replays exactly that when this node dies).
    this.#owner.handled(this.#keys.inbox(this.#nid), nextId(last));
  }

  /** One inbox entry (scripts.ts lists the kinds); returns the messages it carried. */
  entry(fields: Buffer[]): number {
    return inboxEntry(fields, this.#owner, this.#core);
  }

  #routeLog(entries: Entry[]): void {
    const routes = this.#owner.routes;
    for (const [id, fields] of entries) {
      this.#routeId = id.toString();
      const nid = Number(field(fields, 'n')?.toString());
      if (!Number.isFinite(nid) || nid === this.#nid) continue;
      for (let i = 2; i + 1 < fields.length; i += 2) {
        const op = fields[i]!.toString();
        const filter = fields[i + 1]!.toString();
        if (op === '+') routes.add(nid, filter);
        else if (op === '-') routes.remove(nid, filter);
        else if (op === 'drop') routes.dropNode(filter === '' ? nid : Number(filter));
        else if (op === 'reset') routes.dropNode(nid);
      }
    }
  }

  #retainedLog(entries: Entry[]): void {
    for (const [id, fields] of entries) {
      this.#retId = id.toString();
      const ver = Number(field(fields, 'v')?.toString());
      const topic = field(fields, 't')?.toString();
      const value = field(fields, 'm');
      if (topic !== undefined && value !== undefined) {
        if (value.length === 0) this.#core.dropRetained(topic);
        else {
          try {
            this.#core.applyRetained(decodeRetained(value));
          } catch (err) {
            this.#log.warn({ topic, err: String(err) }, 'cluster: unreadable retained change skipped');
          }
        }
      }
      if (ver > this.#retApplied) this.#retApplied = ver;
    }
    this.#release();
  }

  #release(): void {
    const w = this.#waiters;
    if (w.length === 0) return;
    let kept = 0;
    for (const x of w) {
      if (x.ver <= this.#retApplied) x.resolve();
      else w[kept++] = x;
    }
    w.length = kept;
  }

  /**
   * Resolves once every retained change made anywhere before this call is applied here. One
   * read of `ret:ver` serves every SUBSCRIBE of a turn. Without Redis the local index answers.
   */
  retainedBarrier(): Promise<void> | null {
    if (!this.#owner.available) return null;
    if (this.#barrier !== undefined) return this.#barrier;
    const p = this.#owner.redis.get(this.#keys.retVer).then((v) => {
      const target = Number(v ?? 0);
      if (target <= this.#retApplied) return;
      return new Promise<void>((resolve) => this.#waiters.push({ ver: target, resolve }));
    });
    this.#barrier = p;
    process.nextTick(() => {
      this.#barrier = undefined;
    });
    return p;
  }
}
