/**
 * Outgoing QoS 1/2 state, without I/O: packet identifiers (one allocator for PUBLISH, SUBSCRIBE
 * and UNSUBSCRIBE, never reusing one in use), the in-flight publishes in the order they were
 * first sent (the resend order after a reconnect [MQTT-4.6.0-1]), and the bounded queue of
 * publishes not yet sent (offline, or over the server's Receive Maximum).
 *
 * Overflow policy: a publish that would take the queue past `maxMessages` or `maxBytes` is
 * refused at once (QueueFullError); what is already queued is kept.
 */
import type { PublishPacket } from '../../../src/protocol/packets.js';
import { QueueFullError } from './errors.js';
import { IdTable } from './id-table.js';
import type { PublishResult } from './types.js';

export interface PendingPublish {
  /** Its key in the session store (send order). */
  key: number;
  packet: PublishPacket;
  /** Topic + payload bytes, counted against the queue's byte bound. */
  size: number;
  state: 'queued' | 'publish' | 'pubrel';
  settled: boolean;
  resolve(r: PublishResult): void;
  reject(e: Error): void;
  /** Removes the abort listener. */
  unlink: (() => void) | undefined;
}

export class Outgoing {
  readonly inflight = new IdTable<PendingPublish>();
  queue: PendingPublish[] = [];
  queuedBytes = 0;
  readonly maxMessages: number;
  readonly maxBytes: number;
  /** 1 where the identifier is in use (a bitmap is cheaper than a Set on every publish). */
  #used = new Uint8Array(0x10000);
  #inUse = 0;
  #next = 1;

  constructor(maxMessages = 1000, maxBytes = 16 * 1024 * 1024) {
    this.maxMessages = maxMessages;
    this.maxBytes = maxBytes;
  }

  /** Packet identifiers in use. */
  get inUse(): number {
    return this.#inUse;
  }

  /** A free packet identifier, or undefined when all 65535 are in use. */
  allocate(): number | undefined {
    if (this.#inUse >= 0xffff) return undefined;
    const used = this.#used;
    let id = this.#next;
    while (used[id] === 1) id = id === 0xffff ? 1 : id + 1;
    this.#next = id === 0xffff ? 1 : id + 1;
    used[id] = 1;
    this.#inUse++;
    return id;
  }

  /** Marks `id` as in use (a resumed session's identifiers). */
  reserve(id: number): void {
    if (this.#used[id] === 1) return;
    this.#used[id] = 1;
    this.#inUse++;
  }

  release(id: number): void {
    if (this.#used[id] !== 1) return;
    this.#used[id] = 0;
    this.#inUse--;
  }

  enqueue(p: PendingPublish): void {
    if (this.queue.length >= this.maxMessages) throw new QueueFullError(`${this.queue.length} messages`);
    if (this.queuedBytes + p.size > this.maxBytes) throw new QueueFullError(`${this.queuedBytes} + ${p.size} bytes > ${this.maxBytes}`);
    this.queue.push(p);
    this.queuedBytes += p.size;
  }

  /** Puts `p` back at the head of the queue (its send could not happen now). */
  requeue(p: PendingPublish): void {
    this.queue.unshift(p);
    this.queuedBytes += p.size;
  }

  dequeue(): PendingPublish | undefined {
    const p = this.queue.shift();
    if (p !== undefined) this.queuedBytes -= p.size;
    return p;
  }

  remove(p: PendingPublish): boolean {
    const i = this.queue.indexOf(p);
    if (i === -1) return false;
    this.queue.splice(i, 1);
    this.queuedBytes -= p.size;
    return true;
  }

  /** The publishes in flight with their identifiers, in the order they were first sent (their keys' order). */
  inflightInOrder(): Array<[number, PendingPublish]> {
    return this.inflight.entries().sort((a, b) => a[1].key - b[1].key);
  }

  /** Everything pending, in-flight first (to settle at close). */
  drainAll(): PendingPublish[] {
    const all = [...this.inflightInOrder().map((e) => e[1]), ...this.queue];
    this.inflight.clear();
    this.queue = [];
    this.queuedBytes = 0;
    this.#used.fill(0);
    this.#inUse = 0;
    return all;
  }
}
