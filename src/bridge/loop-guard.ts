/**
 * Loop prevention for remotes without No Local (MQTT 3.1.1): a message the bridge publishes on
 * the remote comes back to it when one of its `in` rules also matches the topic. The bridge
 * notes every such message it sends (remote topic and a hash of the payload, counted) and drops
 * the first matching message that comes back within `ttlMs`; each note is used once, so a
 * message someone else publishes on the remote with the same topic and payload is still taken
 * (only one echo per note is swallowed). Bounded: at most `max` notes, the oldest go first.
 */
export class LoopGuard {
  readonly #notes = new Map<string, { count: number; at: number }>();
  readonly #max: number;
  readonly #ttlMs: number;

  constructor(max = 100_000, ttlMs = 60_000) {
    this.#max = max;
    this.#ttlMs = ttlMs;
  }

  get size(): number {
    return this.#notes.size;
  }

  /** The bridge sent `payload` on the remote's `topic`. */
  sent(topic: string, payload: Uint8Array, now: number): void {
    const key = keyOf(topic, payload);
    const n = this.#notes.get(key);
    if (n !== undefined) {
      n.count++;
      n.at = now;
      // Moved to the end: insertion order stays the order of last use.
      this.#notes.delete(key);
      this.#notes.set(key, n);
    } else this.#notes.set(key, { count: 1, at: now });
    this.#prune(now);
  }

  /** A message arrived from the remote: true when it is the echo of one we sent (the note is used up). */
  echo(topic: string, payload: Uint8Array, now: number): boolean {
    if (this.#notes.size === 0) return false;
    const key = keyOf(topic, payload);
    const n = this.#notes.get(key);
    if (n === undefined || now - n.at > this.#ttlMs) return false;
    if (--n.count === 0) this.#notes.delete(key);
    return true;
  }

  #prune(now: number): void {
    for (const [key, n] of this.#notes) {
      if (this.#notes.size <= this.#max && now - n.at <= this.#ttlMs) return;
      this.#notes.delete(key);
    }
  }
}

/** Topic, length and two 32-bit FNV-1a hashes of the payload (forward and backward). */
function keyOf(topic: string, payload: Uint8Array): string {
  let a = 0x811c9dc5;
  let b = 0x811c9dc5;
  const n = payload.length;
  for (let i = 0; i < n; i++) {
    a = Math.imul(a ^ payload[i]!, 0x01000193);
    b = Math.imul(b ^ payload[n - 1 - i]!, 0x01000193);
  }
  return `${topic}\u0000${n}:${(a >>> 0).toString(36)}:${(b >>> 0).toString(36)}`;
}
