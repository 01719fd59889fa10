/**
 * One local subscription: an async iterable of its messages (bounded buffer; past it the oldest
 * is dropped and counted in `dropped`) or a handler called for each. `break` out of a
 * `for await`, `unsubscribe()`, `await using` and the subscribe signal all unsubscribe.
 */
import type { CompiledFilter } from './params.js';
import type { Message, QoS, SubscribeOptions } from './types.js';

export interface Subscription<F extends string = string> extends AsyncIterable<Message<F>>, AsyncDisposable {
  /** The filter as given (named wildcards included). */
  readonly filter: F;
  readonly grantedQoS: QoS;
  /** Messages dropped because the iterator fell `buffer` messages behind. */
  readonly dropped: number;
  /**
   * Stops delivery; sends UNSUBSCRIBE unless another local subscription has the same filter (offline: once reconnected,
   * unless the server kept no session). Resolves when the server acknowledged.
   */
  unsubscribe(): Promise<void>;
}

/** What a subscription needs from its client. */
export interface SubscriptionOwner {
  unsubscribeLocal(sub: SubscriptionImpl): Promise<void>;
  connected(): boolean;
  reportError(err: Error): void;
}

type Waiter = (r: IteratorResult<Message>) => void;

export class SubscriptionImpl<F extends string = string> implements Subscription<F> {
  readonly filter: F;
  readonly compiled: CompiledFilter;
  readonly options: SubscribeOptions<F>;
  readonly key: string;
  grantedQoS: QoS = 0;
  dropped = 0;
  /** False once unsubscribed or the client closed. */
  active = true;
  /** Called once when it ends (removes its signal's listener). */
  onEnd: (() => void) | undefined;
  /** The server granted it (SUBACK), so a resubscribe makes it again. */
  granted = false;
  /** Made from a session store's record, not (yet) by subscribe() in this process. */
  restored = false;
  readonly #owner: SubscriptionOwner;
  readonly #capacity: number;
  readonly #handler: ((m: Message<F>) => void | Promise<void>) | undefined;
  #buffer: Message[] = [];
  #head = 0;
  #waiters: Waiter[] = [];
  #unsubscribing: Promise<void> | undefined;

  constructor(owner: SubscriptionOwner, filter: F, compiled: CompiledFilter, options: SubscribeOptions<F>, key: string) {
    this.#owner = owner;
    this.filter = filter;
    this.compiled = compiled;
    this.options = options;
    this.key = key;
    this.#capacity = Math.max(1, options.buffer ?? 10_000);
    this.#handler = options.handler;
  }

  /** A message for this subscription (called by the client's router). */
  deliver(m: Message): void {
    if (!this.active) return;
    const h = this.#handler;
    if (h !== undefined) {
      try {
        const r = h(m as Message<F>);
        if (r instanceof Promise) r.catch((e: unknown) => this.#owner.reportError(e instanceof Error ? e : new Error(String(e))));
      } catch (e) {
        this.#owner.reportError(e instanceof Error ? e : new Error(String(e)));
      }
      return;
    }
    const w = this.#waiters.shift();
    if (w !== undefined) {
      w({ value: m, done: false });
      return;
    }
    if (this.#buffer.length - this.#head >= this.#capacity) {
      this.#head++;
      this.dropped++;
    }
    this.#buffer.push(m);
  }

  /** A restored subscription gives way to a new one with its filter: the buffered messages go to it, then iteration ends. */
  handOver(to: SubscriptionImpl): void {
    for (let i = this.#head; i < this.#buffer.length; i++) to.deliver(this.#buffer[i]!);
    this.#buffer = [];
    this.#head = 0;
    this.end();
  }

  /** Ends iteration: the buffered messages are still handed out, then `done`. */
  end(): void {
    this.active = false;
    this.onEnd?.();
    this.onEnd = undefined;
    for (const w of this.#waiters.splice(0)) w({ value: undefined, done: true });
  }

  unsubscribe(): Promise<void> {
    if (this.#unsubscribing === undefined) {
      this.#unsubscribing = this.active ? this.#owner.unsubscribeLocal(this) : Promise.resolve();
      this.end();
    }
    return this.#unsubscribing;
  }

  /** `await using` and `break`: unsubscribes, waiting for the UNSUBACK but not for a reconnect (offline, the UNSUBSCRIBE goes when it can). */
  [Symbol.asyncDispose](): Promise<void> {
    const done = this.unsubscribe();
    if (this.#owner.connected()) return done;
    done.catch(() => undefined);
    return Promise.resolve();
  }

  [Symbol.asyncIterator](): AsyncIterator<Message<F>> {
    const next = (): Promise<IteratorResult<Message<F>>> => {
      if (this.#head < this.#buffer.length) {
        const m = this.#buffer[this.#head]!;
        this.#buffer[this.#head++] = undefined as unknown as Message;
        if (this.#head > 1024 && this.#head * 2 > this.#buffer.length) {
          this.#buffer = this.#buffer.slice(this.#head);
          this.#head = 0;
        }
        return Promise.resolve({ value: m as Message<F>, done: false });
      }
      if (!this.active) return Promise.resolve({ value: undefined, done: true });
      return new Promise((resolve) => this.#waiters.push(resolve as Waiter));
    };
    return {
      next,
      return: async (): Promise<IteratorResult<Message<F>>> => {
        await this[Symbol.asyncDispose]().catch(() => undefined);
        return { value: undefined, done: true };
      },
    };
  }
}
