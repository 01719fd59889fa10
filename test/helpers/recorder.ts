/**
 * A delivery recorder for loss, duplicate and order checks across publishers and subscribers
 * (cluster and crash tests).
 *
 * Publishers send payloads made by encodePayload(publisherId, seq) and call published(id, seq,
 * acked) once the outcome is known (acked: the broker acknowledged it, so it must arrive);
 * subscribers call delivered(subscriberId, payload) for every message. report(pairs) then says,
 * per subscriber, for the (publisher → subscriber) pairs that should flow:
 * - lost: acknowledged messages never delivered (unacknowledged ones may or may not arrive);
 * - duplicated: deliveries beyond the first of the same (publisher, seq);
 * - reordered: first deliveries of a seq lower than one already delivered from that publisher
 *   (1,3,2 → 1; duplicates never count as reordered);
 * - unexpected: deliveries from a publisher not paired with the subscriber, of a seq never
 *   published, or of a payload that is not ours.
 */
export interface Tag {
  publisherId: string;
  seq: number;
}

const MAGIC0 = 0xc0;
const MAGIC1 = 0x72;
const HEADER = 3; // magic (2) + id length (1)

/**
 * Payload: 0xC0 0x72, id length (1 byte), publisher id (UTF-8, at most 255 bytes), seq (uint32
 * big-endian), then zeros up to `size` bytes if given (for load tests with realistic payloads).
 */
export function encodePayload(publisherId: string, seq: number, size = 0): Buffer {
  const id = Buffer.from(publisherId, 'utf8');
  if (id.length > 255) throw new RangeError('publisher id is longer than 255 bytes');
  if (!Number.isInteger(seq) || seq < 0 || seq > 0xffffffff) throw new RangeError(`seq must be a uint32, got ${seq}`);
  const length = Math.max(size, HEADER + id.length + 4);
  const buf = Buffer.alloc(length);
  buf[0] = MAGIC0;
  buf[1] = MAGIC1;
  buf[2] = id.length;
  id.copy(buf, HEADER);
  buf.writeUInt32BE(seq, HEADER + id.length);
  return buf;
}

/** The tag of a payload made by encodePayload(), or undefined if it is not one. */
export function decodePayload(payload: Uint8Array): Tag | undefined {
  const buf = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  if (buf.length < HEADER + 4 || buf[0] !== MAGIC0 || buf[1] !== MAGIC1) return undefined;
  const idLength = buf[2]!;
  if (buf.length < HEADER + idLength + 4) return undefined;
  return { publisherId: buf.toString('utf8', HEADER, HEADER + idLength), seq: buf.readUInt32BE(HEADER + idLength) };
}

export interface SubscriberReport {
  subscriber: string;
  /** Acknowledged messages from the publishers paired with this subscriber. */
  expected: number;
  /** Every delivery, duplicates and unexpected ones included. */
  delivered: number;
  lost: number;
  duplicated: number;
  reordered: number;
  unexpected: number;
  /** Up to 10 examples of each, for failure messages. */
  samples: { lost: Tag[]; duplicated: Tag[]; reordered: Tag[]; unexpected: Array<Tag | 'undecodable'> };
}

export interface DeliveryReport {
  subscribers: SubscriberReport[];
  totals: { expected: number; delivered: number; lost: number; duplicated: number; reordered: number; unexpected: number };
  /** published() calls, and how many of them acknowledged. */
  published: number;
  acked: number;
  /** Nothing lost, duplicated, reordered or unexpected. */
  clean: boolean;
  /** One line per subscriber with its counts and samples. */
  summary(): string;
}

/** What one subscriber got from one publisher. */
interface Stream {
  counts: Map<number, number>;
  maxSeq: number;
  reordered: Tag[];
  deliveries: number;
}

const SAMPLES = 10;

export class DeliveryRecorder {
  /** publisher → seq → acked */
  readonly #published = new Map<string, Map<number, boolean>>();
  /** subscriber → publisher → stream */
  readonly #delivered = new Map<string, Map<string, Stream>>();
  readonly #undecodable = new Map<string, number>();
  readonly #listeners = new Set<() => void>();
  #publishedCount = 0;

  /** Records the outcome of one publish; a later call for the same seq can turn it into acked. */
  published(publisherId: string, seq: number, acked = true): void {
    let seqs = this.#published.get(publisherId);
    if (!seqs) this.#published.set(publisherId, (seqs = new Map()));
    const before = seqs.get(seq);
    if (before === undefined) this.#publishedCount++;
    seqs.set(seq, before === true || acked);
    this.#notify();
  }

  /** Records one delivery: a payload from encodePayload(), or its tag. */
  delivered(subscriberId: string, payload: Uint8Array | Tag): void {
    const tag = payload instanceof Uint8Array ? decodePayload(payload) : payload;
    if (!tag) {
      this.#undecodable.set(subscriberId, (this.#undecodable.get(subscriberId) ?? 0) + 1);
      this.#notify();
      return;
    }
    let streams = this.#delivered.get(subscriberId);
    if (!streams) this.#delivered.set(subscriberId, (streams = new Map()));
    let s = streams.get(tag.publisherId);
    if (!s) streams.set(tag.publisherId, (s = { counts: new Map(), maxSeq: -1, reordered: [], deliveries: 0 }));
    s.deliveries++;
    const count = s.counts.get(tag.seq) ?? 0;
    s.counts.set(tag.seq, count + 1);
    if (count === 0) {
      if (tag.seq < s.maxSeq) s.reordered.push(tag);
      else s.maxSeq = tag.seq;
    }
    this.#notify();
  }

  /** Calls `listener` after every published() and delivered(); returns an unsubscribe function. */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Resolves once `predicate` holds; rejects after `timeoutMs`. Checked now, then once per
   * event-loop turn in which something was recorded (so a costly predicate such as a report()
   * runs once per batch of deliveries, not once per message).
   */
  until(predicate: (recorder: this) => boolean, timeoutMs: number, what = 'recorder condition'): Promise<void> {
    return new Promise((resolve, reject) => {
      let done = false;
      let scheduled: NodeJS.Immediate | undefined;
      const finish = (): void => {
        done = true;
        clearTimeout(timer);
        clearImmediate(scheduled);
        off();
      };
      const check = (): void => {
        scheduled = undefined;
        if (done || !predicate(this)) return;
        finish();
        resolve();
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const off = this.onChange(() => {
        scheduled ??= setImmediate(check);
      });
      check();
    });
  }

  /** Resolves once nothing acknowledged is missing for `pairs`; rejects (with the summary) after `timeoutMs`. */
  async untilComplete(pairs: Iterable<readonly [publisherId: string, subscriberId: string]>, timeoutMs: number): Promise<DeliveryReport> {
    const list = [...pairs];
    try {
      await this.until((r) => r.report(list).totals.lost === 0, timeoutMs, 'every acknowledged message to arrive');
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${this.report(list).summary()}`, { cause: err });
    }
    return this.report(list);
  }

  report(pairs: Iterable<readonly [publisherId: string, subscriberId: string]>): DeliveryReport {
    const expectedFrom = new Map<string, Set<string>>();
    for (const [pub, sub] of pairs) {
      let pubs = expectedFrom.get(sub);
      if (!pubs) expectedFrom.set(sub, (pubs = new Set()));
      pubs.add(pub);
    }
    const subscribers = new Set([...expectedFrom.keys(), ...this.#delivered.keys(), ...this.#undecodable.keys()]);
    const reports = [...subscribers].sort().map((sub) => this.#subscriberReport(sub, expectedFrom.get(sub) ?? new Set()));
    const totals = { expected: 0, delivered: 0, lost: 0, duplicated: 0, reordered: 0, unexpected: 0 };
    for (const r of reports) for (const k of Object.keys(totals) as Array<keyof typeof totals>) totals[k] += r[k];
    let acked = 0;
    for (const seqs of this.#published.values()) for (const a of seqs.values()) if (a) acked++;
    return {
      subscribers: reports,
      totals,
      published: this.#publishedCount,
      acked,
      clean: totals.lost + totals.duplicated + totals.reordered + totals.unexpected === 0,
      summary: () =>
        [
          `published ${this.#publishedCount} (acked ${acked}); ${JSON.stringify(totals)}`,
          ...reports.map((r) => {
            const { samples, subscriber, ...counts } = r;
            return `  ${subscriber}: ${JSON.stringify(counts)} samples ${JSON.stringify(samples)}`;
          }),
        ].join('\n'),
    };
  }

  #subscriberReport(sub: string, pubs: Set<string>): SubscriberReport {
    const streams = this.#delivered.get(sub) ?? new Map<string, Stream>();
    const undecodable = this.#undecodable.get(sub) ?? 0;
    const r: SubscriberReport = {
      subscriber: sub,
      expected: 0,
      delivered: undecodable,
      lost: 0,
      duplicated: 0,
      reordered: 0,
      unexpected: undecodable,
      samples: { lost: [], duplicated: [], reordered: [], unexpected: undecodable > 0 ? ['undecodable'] : [] },
    };
    const sample = <T>(list: T[], item: T): void => {
      if (list.length < SAMPLES) list.push(item);
    };
    for (const [pub, s] of streams) {
      r.delivered += s.deliveries;
      const published = this.#published.get(pub);
      for (const [seq, count] of s.counts) {
        if (!pubs.has(pub) || published?.has(seq) !== true) {
          r.unexpected += count;
          sample(r.samples.unexpected, { publisherId: pub, seq });
        } else if (count > 1) {
          r.duplicated += count - 1;
          sample(r.samples.duplicated, { publisherId: pub, seq });
        }
      }
      if (pubs.has(pub)) {
        const expectedReorders = s.reordered.filter((t) => published?.has(t.seq) === true);
        r.reordered += expectedReorders.length;
        for (const t of expectedReorders) sample(r.samples.reordered, t);
      }
    }
    for (const pub of pubs) {
      const counts = streams.get(pub)?.counts;
      for (const [seq, acked] of this.#published.get(pub) ?? []) {
        if (!acked) continue;
        r.expected++;
        if (!counts?.has(seq)) {
          r.lost++;
          sample(r.samples.lost, { publisherId: pub, seq });
        }
      }
    }
    return r;
  }

  #notify(): void {
    for (const f of [...this.#listeners]) f();
  }
}
