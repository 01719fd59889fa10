/**
 * The writes of one RedisStore commit call, collected during a turn and netted per key: the
 * call is atomic, so only the order of writes to the same key (field) matters, and the last
 * write of a field wins (a put then a delete of one outbound entry is a delete; a delete of a
 * session drops its earlier writes in the batch). What is left becomes one HSET / HDEL / SADD /
 * SREM per key, instead of one command per write: several times less Redis CPU per write.
 *
 * Arguments of the COMMIT script (store-scripts.ts):
 *   KEYS: retained hash, then meta/out/in of each client, then the message keys (sets, then deletes);
 *         RedisStore adds the store's done hash last (and the call's number as the last ARGV)
 *   ARGV: inbox prefix ('' outside a cluster), n, then per client: token, client id, 'D' or '',
 *         record or '', #puts, #dels, #in-adds, #in-dels, #scoped, seq/entry pairs, seqs, ids, ids,
 *         seq/client-index pairs (puts made in an atomic unit of another client's packet); then
 *         #message sets, #message deletes, the set values; then #retained puts, #retained
 *         deletes, topic/value pairs, topics; then the inbox to trim and its MINID (or '' ''); then
 *         #appends, the moved-node key prefix, and per append: stream key, the 1-based index of the
 *         client it belongs to (0: none; skipped when that client is fenced), the node whose inbox
 *         it is ('' = no fallback: else a forward to a gone inbox goes to the node that adopted
 *         that node's sessions, as an `x` entry), #fields, fields (XADD NOMKSTREAM).
 */
import type { StoreKeys } from './store-scripts.js';

export type Arg = string | Buffer | number;

class ClientWrites {
  deleted = false;
  record: string | undefined = undefined;
  readonly puts = new Map<number, Buffer>();
  readonly dels = new Set<number>();
  readonly inAdd = new Set<number>();
  readonly inDel = new Set<number>();
  /**
   * Outbound entries put inside an atomic unit that carries another client's packet (a QoS 2
   * PUBLISH): seq → that client. When that client is fenced in the same call, the script hands
   * none of them to a claimant (the publisher sends the message again where it reconnects).
   */
  scoped: Map<number, string> | undefined = undefined;
  /** Writes issued (before netting), for the count of fenced writes. */
  writes = 0;
  constructor(readonly token: string) {}
}

export class Batch {
  readonly clients = new Map<string, ClientWrites>();
  /** Message id → value, or null for a delete. */
  readonly messages = new Map<number, Buffer | null>();
  /** Topic → value, or null for a delete. */
  readonly retained = new Map<string, Buffer | null>();
  /** An inbox trimmed with this batch's writes: [key, minid]. */
  trim: [string, string] | undefined = undefined;
  /**
   * Entries appended to other nodes' inboxes with this batch's writes (hand-overs and answers of
   * Cluster II): their fields are taken when the batch is sent; `gone` runs when the stream no
   * longer exists.
   */
  readonly appends: Array<{ key: string; fields: () => Arg[]; gone: (() => void) | undefined; scope?: string; fallback?: number }> = [];
  /** Writes issued and their value bytes (for the caps). */
  writes = 0;
  bytes = 0;
  readonly done: Promise<void>;
  resolve!: () => void;
  reject!: (err: unknown) => void;
  settled = false;

  constructor() {
    this.done = new Promise<void>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    this.done.catch(() => {}); // observed by whoever asked for the commit point
  }

  client(clientId: string, token: string): ClientWrites {
    let c = this.clients.get(clientId);
    if (c === undefined) this.clients.set(clientId, (c = new ClientWrites(token)));
    c.writes++;
    return c;
  }

  putSession(c: ClientWrites, record: string): void {
    c.record = record;
  }

  deleteSession(c: ClientWrites): void {
    c.deleted = true;
    c.record = undefined;
    c.puts.clear();
    c.dels.clear();
    c.inAdd.clear();
    c.inDel.clear();
    c.scoped = undefined;
  }

  putOutbound(c: ClientWrites, seq: number, value: Buffer, scope?: string): void {
    c.dels.delete(seq);
    c.puts.set(seq, value);
    if (scope !== undefined) (c.scoped ??= new Map()).set(seq, scope);
  }

  deleteOutbound(c: ClientWrites, seq: number): void {
    c.puts.delete(seq);
    c.scoped?.delete(seq);
    // After a deleteSession in this batch the entry can only come from this batch: nothing to delete.
    if (!c.deleted) c.dels.add(seq);
  }

  putInbound(c: ClientWrites, id: number): void {
    c.inDel.delete(id);
    c.inAdd.add(id);
  }

  deleteInbound(c: ClientWrites, id: number): void {
    c.inAdd.delete(id);
    if (!c.deleted) c.inDel.add(id);
  }

  /** The client ids in argument order (their 1-based index is what the script reports as fenced). */
  clientIds(): string[] {
    return [...this.clients.keys()];
  }

  writesOf(clientId: string): number {
    return this.clients.get(clientId)?.writes ?? 0;
  }

  tokenOf(clientId: string): string {
    return this.clients.get(clientId)?.token ?? '';
  }

  /** KEYS and ARGV of the COMMIT script (`inboxes`: the inbox key prefix in a cluster, else ''). */
  args(keys: StoreKeys, inboxes = '', moved = ''): { keys: string[]; argv: Arg[] } {
    const k: string[] = [keys.retained];
    const a: Arg[] = [inboxes, this.clients.size];
    const index = new Map<string, number>();
    let n = 0;
    for (const id of this.clients.keys()) index.set(id, ++n);
    const scoped: Arg[] = [];
    for (const [clientId, c] of this.clients) {
      k.push(keys.meta(clientId), keys.out(clientId), keys.in(clientId));
      scoped.length = 0;
      if (c.scoped !== undefined)
        for (const [seq, scope] of c.scoped) {
          const at = index.get(scope);
          if (at !== undefined) scoped.push(seq, at);
        }
      a.push(c.token, clientId, c.deleted ? 'D' : '', c.record ?? '', c.puts.size, c.dels.size, c.inAdd.size, c.inDel.size, scoped.length / 2);
      for (const [seq, v] of c.puts) a.push(seq, v);
      for (const seq of c.dels) a.push(seq);
      for (const id of c.inAdd) a.push(id);
      for (const id of c.inDel) a.push(id);
      a.push(...scoped);
    }
    const sets: Buffer[] = [];
    const dels: string[] = [];
    for (const [id, v] of this.messages) {
      if (v === null) dels.push(keys.message(id));
      else {
        k.push(keys.message(id));
        sets.push(v);
      }
    }
    k.push(...dels);
    a.push(sets.length, dels.length, ...sets);
    let puts = 0;
    const topics: string[] = [];
    const pairs: Arg[] = [];
    for (const [topic, v] of this.retained) {
      if (v === null) topics.push(topic);
      else {
        puts++;
        pairs.push(topic, v);
      }
    }
    a.push(puts, topics.length, ...pairs, ...topics);
    a.push(this.trim?.[0] ?? '', this.trim?.[1] ?? '', this.appends.length, moved);
    for (const x of this.appends) {
      const fields = x.fields();
      a.push(x.key, x.scope === undefined ? 0 : (index.get(x.scope) ?? 0), x.fallback ?? '', fields.length, ...fields);
    }
    return { keys: k, argv: a };
  }
}
