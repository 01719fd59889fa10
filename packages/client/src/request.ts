/**
 * request()/respond() over MQTT 5.0 Response Topic + Correlation Data. One reply subscription per
 * client (under the server's Response Information when it gave one, else `reply/<client id>/<random>`),
 * a random Correlation Data per request, and a map from it to the pending promise.
 */
import { ClientError, ClosedError, abortReason } from './errors.js';
import { randomId } from './packets.js';
import type { Subscription } from './subscription.js';
import type { Message, Payload, PublishOptions, QoS, ServerLimits, SubscribeOptions } from './types.js';

export interface RequestOptions {
  qos?: QoS;
  /** Reject after this many ms (default 30000). */
  timeout?: number;
  signal?: AbortSignal;
  /** Extra PUBLISH properties of the request. */
  properties?: PublishOptions['properties'];
}

/** What the requester needs of its client. */
export interface RequestClient {
  readonly clientId: string;
  readonly server: ServerLimits;
  publish(topic: string, payload: Payload, options?: PublishOptions): Promise<unknown>;
  subscribe<F extends string>(filter: F, options?: SubscribeOptions<F>): Promise<Subscription<F>>;
}

interface Waiting {
  resolve(m: Message): void;
  reject(e: Error): void;
}

export class Requester {
  readonly #client: RequestClient;
  readonly #waiting = new Map<string, Waiting>();
  #topic: string | undefined;
  #ready: Promise<string> | undefined;

  constructor(client: RequestClient) {
    this.#client = client;
  }

  #replyTopic(): Promise<string> {
    this.#ready ??= (async () => {
      const base = this.#client.server.responseInformation ?? `reply/${this.#client.clientId || 'client'}`;
      const topic = `${base.replace(/\/$/, '')}/${randomId()}`;
      await this.#client.subscribe(topic, { qos: 1, persist: false, handler: (m) => this.#reply(m) });
      this.#topic = topic;
      return topic;
    })();
    this.#ready.catch(() => (this.#ready = undefined));
    return this.#ready;
  }

  #reply(m: Message): void {
    const cd = m.properties.correlationData;
    if (cd === undefined) return;
    const key = hex(cd);
    const w = this.#waiting.get(key);
    if (w === undefined) return;
    this.#waiting.delete(key);
    w.resolve(m);
  }

  async request(topic: string, payload: Payload, options: RequestOptions): Promise<Message> {
    const signal = options.signal;
    if (signal?.aborted) throw abortReason(signal);
    const responseTopic = await this.#replyTopic();
    const id = new Uint8Array(16);
    crypto.getRandomValues(id);
    const key = hex(id);
    const timeoutMs = options.timeout ?? 30_000;
    const reply = new Promise<Message>((resolve, reject) => {
      const timer = setTimeout(() => done(new ClientError('TIMEOUT', `no response on ${responseTopic} within ${timeoutMs} ms`)), timeoutMs);
      const onAbort = () => done(abortReason(signal!));
      const done = (e: Error | undefined, m?: Message) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.#waiting.delete(key);
        if (e !== undefined) reject(e);
        else resolve(m!);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiting.set(key, { resolve: (m) => done(undefined, m), reject: (e) => done(e) });
    });
    try {
      await this.#client.publish(topic, payload, { qos: options.qos ?? 1, signal, properties: { ...options.properties, responseTopic, correlationData: id } });
    } catch (e) {
      this.#waiting.get(key)?.reject(e instanceof Error ? e : new Error(String(e)));
    }
    return reply;
  }

  close(err: Error = new ClosedError()): void {
    for (const w of [...this.#waiting.values()]) w.reject(err);
    this.#waiting.clear();
    void this.#topic;
  }
}

function hex(b: Uint8Array): string {
  let s = '';
  for (const x of b) s += x.toString(16).padStart(2, '0');
  return s;
}
