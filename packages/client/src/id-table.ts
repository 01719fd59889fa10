/**
 * Values by packet identifier (1..65535), for the per-message state: the publishes in flight and
 * the inbound QoS 2 identifiers.
 *
 * Not a `Map`: when V8 rehashes a Map or Set it links the old table to the new one (for live
 * iterators). Once a table is in the old generation (any Map that outlived the connection's
 * set-up), that dead table keeps the next one, and every value it held, alive through each
 * young-generation GC, and so on down the chain until a full GC. A client publishing at QoS 1
 * promoted every in-flight record (~400 B a message) that way and spent about a third of its CPU
 * in scavenges. Here: slots indexed by `id & mask`, doubled when two live identifiers would share
 * one (identifiers are handed out in sequence, so the table stays about the size of the window).
 */
const SMALL = 16;

export class IdTable<T> {
  /** The identifier in each slot, 0 for none (0 is never a packet identifier). */
  #ids = new Uint16Array(SMALL);
  #values: Array<T | undefined> = new Array<T | undefined>(SMALL).fill(undefined);
  #mask = SMALL - 1;
  #size = 0;

  get size(): number {
    return this.#size;
  }

  get(id: number): T | undefined {
    const i = id & this.#mask;
    return this.#ids[i] === id ? this.#values[i] : undefined;
  }

  has(id: number): boolean {
    return this.#ids[id & this.#mask] === id;
  }

  set(id: number, value: T): void {
    let i: number;
    while (((i = id & this.#mask), this.#ids[i] !== id && this.#ids[i] !== 0)) this.#grow();
    if (this.#ids[i] !== id) {
      this.#ids[i] = id;
      this.#size++;
    }
    this.#values[i] = value;
  }

  delete(id: number): boolean {
    const i = id & this.#mask;
    if (this.#ids[i] !== id) return false;
    this.#ids[i] = 0;
    this.#values[i] = undefined;
    if (--this.#size === 0 && this.#mask >= 1024) this.clear(); // a long stall grew it: back to small
    return true;
  }

  clear(): void {
    this.#values.fill(undefined);
    this.#ids = new Uint16Array(SMALL);
    this.#values = new Array<T | undefined>(SMALL).fill(undefined);
    this.#mask = SMALL - 1;
    this.#size = 0;
  }

  /** The entries, in no particular order. */
  entries(): Array<[number, T]> {
    const out: Array<[number, T]> = [];
    const ids = this.#ids;
    for (let i = 0; i < ids.length; i++) if (ids[i] !== 0) out.push([ids[i]!, this.#values[i]!]);
    return out;
  }

  /**
   * Doubles the table. Identifiers apart modulo n are apart modulo 2n, so the entries never meet;
   * at 65536 slots every identifier has its own.
   */
  #grow(): void {
    const size = this.#ids.length * 2;
    const mask = size - 1;
    const ids = new Uint16Array(size);
    const values = new Array<T | undefined>(size).fill(undefined);
    this.#ids.forEach((k, i) => {
      if (k !== 0) {
        ids[k & mask] = k;
        values[k & mask] = this.#values[i];
      }
    });
    this.#values.fill(undefined); // an old-generation array would keep its young values through the next scavenge
    this.#ids = ids;
    this.#values = values;
    this.#mask = mask;
  }
}
