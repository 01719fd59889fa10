/**
 * A connection's output: packets leave in order, batched per event-loop turn (one write or
 * `writev` on the next tick), and none before the store has committed the state it
 * acknowledges: while the store has uncommitted writes, output waits for that commit point
 * (PUBACK/PUBREC/PUBCOMP/SUBACK after the commit that holds them; a PUBLISH after its packet id
 * is journaled).
 */
import type { Duplex } from 'node:stream';
import { createTrafficCounters, type TrafficCounters } from './traffic.js';

interface GateSegment {
  readonly point: Promise<void>;
  readonly bufs: Buffer[];
  done: boolean;
}

function uncork(o: Output): void {
  o.flush();
}

/** Who an Output writes for (the connection): no closures per connection. */
export interface OutputOwner {
  /** The store's pending commit, or null when everything written so far is committed. */
  commitPoint(): Promise<void> | null;
  /** The store failed to commit what waiting output acknowledges. */
  storeFailed(err: unknown): void;
}

/** A turn writes at most this much before it sends what it has (and goes on collecting). */
const TURN_CHUNK = 64 * 1024;

/** Counters of outputs created without any (unit tests). */
const UNCOUNTED = createTrafficCounters();

/** Shared by every Output while nothing waits for a commit (the usual, in-memory case). */
const NO_GATE: readonly GateSegment[] = [];

export class Output {
  readonly #stream: Duplex;
  readonly #owner: OutputOwner;
  /** The listener's traffic counters (packets and bytes out). */
  readonly #traffic: TrafficCounters;
  /** The stream is corked (this turn wrote more than one separate buffer). */
  #corked = false;
  /**
   * The newest bytes of this turn, not yet handed to the stream; set from the first write of a
   * turn until its flush (so also: a flush is scheduled). Packets that lie next to each other in
   * memory (the PUBLISH frames of one received chunk forwarded as they came, packets encoded one
   * after the other from Node's buffer pool) grow it instead of becoming separate writes: fewer
   * stream writes, and often one plain write instead of a writev.
   */
  #tail: Buffer | undefined = undefined;
  /** Bytes handed to the corked stream since it was last uncorked. */
  #turnBytes = 0;
  /** Output waiting for store commits, in order (created when first needed). */
  #gate: GateSegment[] | undefined = undefined;
  #onDrained: (() => void) | undefined = undefined;
  /** Output waiting for commits was dropped: nothing waits any more (see abandon). */
  #abandoned = false;

  constructor(stream: Duplex, owner: OutputOwner, traffic: TrafficCounters = UNCOUNTED) {
    this.#stream = stream;
    this.#owner = owner;
    this.#traffic = traffic;
  }

  /** Bytes buffered in the socket or waiting for the end of the turn (backpressure). */
  get buffered(): number {
    return this.#stream.writableLength + (this.#tail?.length ?? 0);
  }

  /** Writes one packet (every caller hands over exactly one encoded packet). */
  write(buf: Buffer): void {
    const s = this.#stream;
    if (s.destroyed || s.writableEnded) return;
    // Counted here, once per packet: plain increments, the type from the first byte.
    const t = this.#traffic;
    const first = buf[0]!;
    t.packetsOut[first >> 4]!++;
    t.bytesOut += buf.length;
    if (first >> 4 === 3) {
      t.publishOut[(first >> 1) & 3]!++;
      t.publishBytesOut += buf.length;
    }
    const point = this.#abandoned ? null : this.#owner.commitPoint();
    const gate = this.#gate ?? NO_GATE;
    if (point === null && gate.length === 0) {
      this.#put(buf);
      return;
    }
    const last = gate[gate.length - 1];
    if (last !== undefined && (point === null || point === last.point)) {
      last.bufs.push(buf);
      return;
    }
    const segment: GateSegment = { point: point!, bufs: [buf], done: false };
    (this.#gate ??= []).push(segment);
    point!.then(
      () => {
        segment.done = true;
        this.#release();
      },
      (err: unknown) => {
        this.#gate = undefined;
        this.#owner.storeFailed(err);
      },
    );
  }

  /**
   * Drops every packet still waiting for a commit, and lets later ones through at once: the
   * broker can no longer make that state durable (a cluster node that fenced itself), so what
   * would acknowledge it must never leave; what follows (the DISCONNECT) must not wait.
   */
  abandon(): void {
    this.#abandoned = true;
    this.#gate = undefined;
  }

  /** Runs `fn` once everything waiting for a commit has been written (at once when nothing waits). */
  whenDrained(fn: () => void): void {
    if (this.#gate === undefined || this.#gate.length === 0) fn();
    else this.#onDrained = fn;
  }

  #release(): void {
    const gate = this.#gate ?? [];
    while (gate.length > 0 && gate[0]!.done) {
      for (const b of gate.shift()!.bufs) this.#put(b);
    }
    if (gate.length === 0) this.#gate = undefined;
    if (gate.length === 0 && this.#onDrained !== undefined) {
      const fn = this.#onDrained;
      this.#onDrained = undefined;
      fn();
    }
  }

  #put(buf: Buffer): void {
    const s = this.#stream;
    if (s.destroyed || s.writableEnded) return;
    const tail = this.#tail;
    if (tail === undefined) {
      this.#tail = buf;
      process.nextTick(uncork, this);
      return;
    }
    if (tail.buffer === buf.buffer && tail.byteOffset + tail.length === buf.byteOffset) {
      this.#tail = Buffer.from(tail.buffer, tail.byteOffset, tail.length + buf.length);
      return;
    }
    if (!this.#corked) {
      this.#corked = true;
      s.cork();
    }
    s.write(tail);
    this.#tail = buf;
    // A turn that writes a lot (retained messages for a wildcard SUBSCRIBE, a resumed session's
    // queue) sends every TURN_CHUNK bytes instead of all at the end: the peer starts reading
    // while the rest is still being encoded.
    this.#turnBytes += tail.length;
    if (this.#turnBytes >= TURN_CHUNK) {
      this.#turnBytes = 0;
      s.uncork();
      s.cork();
    }
  }

  /**
   * Sends everything written in this event-loop turn (one write, or one writev). Call it before
   * ending the stream: bytes still waiting here are not the stream's yet.
   */
  flush(): void {
    const tail = this.#tail;
    if (tail === undefined) return;
    this.#tail = undefined;
    const s = this.#stream;
    if (!s.destroyed && !s.writableEnded) s.write(tail);
    if (this.#corked) {
      this.#corked = false;
      this.#turnBytes = 0;
      s.uncork();
    }
  }
}
