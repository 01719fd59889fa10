/** A tiny typed event emitter (no `events` module in browsers). `on` returns its own `off`. */
type Listener = (arg: never) => void;

export class Emitter<E extends { [K in keyof E]: (arg: never) => void }> {
  readonly #listeners = new Map<keyof E, Set<Listener>>();

  on<K extends keyof E>(event: K, fn: E[K]): () => void {
    let set = this.#listeners.get(event);
    if (set === undefined) this.#listeners.set(event, (set = new Set()));
    set.add(fn as Listener);
    return () => set.delete(fn as Listener);
  }

  emit<K extends keyof E>(event: K, arg: Parameters<E[K]>[0]): void {
    const set = this.#listeners.get(event);
    if (set === undefined) return;
    for (const fn of [...set]) (fn as (a: Parameters<E[K]>[0]) => void)(arg);
  }
}
