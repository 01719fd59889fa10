/**
 * Connection deadlines (CONNECT timeout, keep alive) checked by one shared timer instead of a
 * timer per connection: an idle connection then holds no Timeout object and no closure, which
 * is most of what a Node timer costs per connection. Every `intervalMs` each registered item is
 * asked whether its deadline has passed; a check is a comparison, so 100k connections cost well
 * under a millisecond per sweep. Deadlines fire up to one interval late, which the spec allows
 * (keep alive: "within one and a half times the Keep Alive time period" is a lower bound for
 * the server to wait [MQTT-3.1.2-22], [MQTT-3.1.2-24]).
 */

export interface Sweepable {
  /** Position in the sweeper (maintained by the sweeper; -1 = not registered). */
  sweepIndex: number;
  /** Called once per sweep while registered; `now` is Date.now(). */
  sweep(now: number): void;
}

export class Sweeper {
  readonly #items: Sweepable[] = [];
  readonly #intervalMs: number;
  #timer: NodeJS.Timeout | undefined = undefined;

  constructor(intervalMs: number) {
    this.#intervalMs = Math.max(1, Math.floor(intervalMs));
  }

  get size(): number {
    return this.#items.length;
  }

  add(item: Sweepable): void {
    if (item.sweepIndex >= 0) return;
    item.sweepIndex = this.#items.length;
    this.#items.push(item);
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => this.#run(), this.#intervalMs);
      this.#timer.unref();
    }
  }

  remove(item: Sweepable): void {
    const i = item.sweepIndex;
    if (i < 0) return;
    item.sweepIndex = -1;
    const items = this.#items;
    const last = items.pop()!;
    if (last !== item) {
      items[i] = last;
      last.sweepIndex = i;
    }
    if (items.length === 0) this.stop();
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #run(): void {
    const now = Date.now();
    const items = this.#items;
    // Backwards: an item that removes itself swaps in the last one, which was already checked.
    for (let i = items.length - 1; i >= 0; i--) {
      const item = items[i];
      if (item !== undefined) item.sweep(now);
    }
  }
}
