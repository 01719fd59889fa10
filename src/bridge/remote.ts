/**
 * The bridge's connection to the remote broker, through @courier/client: one Client for as long
 * as it can serve (its own reconnect, backoff and session resume handle losses), a new one only
 * after a refusal that retrying the same cannot fix (bad credentials, client id refused, session
 * taken over). Remote addresses are picked per connection attempt by a transport opener that
 * wraps Node's: in order ('failover', from the first again after a loss) or in turn ('round-robin').
 * Refusals are logged once each with the reason and the delay before the next attempt; the
 * delay doubles up to `maxDelay` and never drops below half of it (no busy loop).
 */
import type { Logger } from '../options.js';
import type { ClientLibrary, RemoteClient, RemoteClientOptions, RemoteOpen, RemoteTransport } from './types.js';

let library: Promise<ClientLibrary> | undefined;

/** Loads the client library: from its source when running from source (tests, tsx), else the installed @courier/client. */
export function loadClientLibrary(): Promise<ClientLibrary> {
  const fromSource = import.meta.url.endsWith('.ts');
  const specifier = fromSource ? new URL('../../packages/client/src/index.ts', import.meta.url).href : '@courier/client';
  return (library ??= import(specifier) as Promise<ClientLibrary>);
}

export interface RemoteEventsHandler {
  /** Connected; `fresh` when this is the first connection of a new Client. */
  up(client: RemoteClient, fresh: boolean, sessionPresent: boolean): void;
  /** The connection is gone (the client reconnects by itself, or a new one is made). */
  down(error: Error | undefined): void;
  /** A new Client exists (not connected yet): its subscriptions are made now. */
  created(client: RemoteClient): void;
}

const REFUSALS: Record<number, string> = {
  0x84: 'unsupported protocol version',
  0x85: 'client identifier not valid',
  0x86: 'bad user name or password',
  0x87: 'not authorized',
  0x88: 'server unavailable',
  0x8a: 'banned',
  0x8c: 'bad authentication method',
  0x8e: 'session taken over by another client with the same client id',
  0x9a: 'retain not supported',
  0x9b: 'QoS not supported',
};

export function describeError(e: unknown): string {
  const err = e as { reasonCode?: unknown; message?: unknown };
  const code = typeof err.reasonCode === 'number' ? err.reasonCode : undefined;
  const message = typeof err.message === 'string' ? err.message : String(e);
  const name = code === undefined ? undefined : REFUSALS[code];
  return name === undefined ? message : `${name} (0x${code!.toString(16)})`;
}

export class RemoteLink {
  readonly #remotes: readonly string[];
  readonly #order: 'failover' | 'round-robin';
  readonly #options: RemoteClientOptions;
  readonly #log: Logger;
  readonly #name: string;
  readonly #handler: RemoteEventsHandler;
  readonly #initialDelay: number;
  readonly #maxDelay: number;
  #client: RemoteClient | undefined;
  #transport: RemoteTransport | undefined;
  #next = 0;
  /** URL of the current (or last tried) remote. */
  current = '';
  #attempt = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #stopped = false;
  lastError = '';
  /** Connection attempts refused or failed before a client was up (bridge-level retries). */
  failures = 0;

  constructor(
    name: string,
    remotes: readonly string[],
    order: 'failover' | 'round-robin',
    options: RemoteClientOptions,
    log: Logger,
    handler: RemoteEventsHandler,
  ) {
    this.#name = name;
    this.#remotes = remotes;
    this.#order = order;
    this.#options = options;
    this.#log = log;
    this.#handler = handler;
    const r = options.reconnect === false ? {} : (options.reconnect ?? {});
    this.#initialDelay = r.initialDelay ?? 1000;
    this.#maxDelay = Math.max(this.#initialDelay, r.maxDelay ?? 60_000);
  }

  get client(): RemoteClient | undefined {
    return this.#client;
  }

  /** Bytes written to the remote's connection and not yet taken by the operating system. */
  buffered(): number {
    return this.#transport?.bufferedAmount?.() ?? 0;
  }

  start(): void {
    void this.#connect();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    const c = this.#client;
    this.#client = undefined;
    if (c !== undefined) await c.close();
  }

  readonly #open: RemoteOpen = async (_url, options, handlers, signal) => {
    const lib = await loadClientLibrary();
    const i = this.#next % this.#remotes.length;
    // Assume this attempt fails: the next one goes to the next address (a success puts it right).
    this.#next = i + 1;
    this.current = this.#remotes[i]!;
    const t = await lib.openNodeTransport(new URL(this.current), options, handlers, signal);
    this.#transport = t;
    return t;
  };

  async #connect(): Promise<void> {
    if (this.#stopped) return;
    let client = this.#client;
    if (client === undefined || client.state === 'closed') {
      const lib = await loadClientLibrary();
      if (this.#stopped) return;
      client = new lib.Client(new URL(this.#remotes[0]!), this.#options, this.#open);
      this.#client = client;
      this.#watch(client);
      this.#handler.created(client);
    }
    try {
      await client.connectOnce();
      this.#attempt = 0;
    } catch (e) {
      if (this.#stopped || this.#client !== client) return;
      this.failures++;
      this.lastError = describeError(e);
      // A refusal the client counts as permanent leaves it usable for connectOnce; only close() ends it.
      this.#retry(`cannot connect to ${this.current}: ${this.lastError}`);
    }
  }

  #retry(why: string): void {
    const cap = Math.min(this.#maxDelay, this.#initialDelay * 2 ** Math.min(this.#attempt, 30));
    this.#attempt++;
    const delay = Math.round(cap / 2 + Math.random() * (cap / 2));
    this.#log.warn(
      { bridge: this.#name, remote: this.current, error: this.lastError, retryInMs: delay },
      `bridge ${this.#name}: ${why}; next attempt in ${(delay / 1000).toFixed(1)} s`,
    );
    this.#timer = setTimeout(() => void this.#connect(), delay);
    this.#timer.unref?.();
  }

  #watch(client: RemoteClient): void {
    let first = true;
    client.on('connect', ({ sessionPresent }) => {
      if (this.#client !== client) return;
      // Failover: the next attempt after a loss starts from the first address again.
      this.#next = this.#order === 'failover' ? 0 : this.#next;
      this.#log.info({ bridge: this.#name, remote: this.current, sessionPresent }, `bridge ${this.#name}: connected to ${this.current}`);
      const fresh = first;
      first = false;
      this.#handler.up(client, fresh, sessionPresent);
    });
    client.on('disconnect', ({ error }) => {
      if (this.#client !== client) return;
      if (error !== undefined) this.lastError = describeError(error);
      this.#log.warn({ bridge: this.#name, remote: this.current, error: this.lastError }, `bridge ${this.#name}: connection to ${this.current} lost`);
      this.#handler.down(error);
    });
    client.on('reconnecting', ({ attempt, delay }) => {
      this.#log.debug({ bridge: this.#name, attempt, delayMs: Math.round(delay) }, `bridge ${this.#name}: reconnecting`);
    });
    client.on('error', (err) => {
      this.#log.warn({ bridge: this.#name, error: err.message }, `bridge ${this.#name}: ${err.message}`);
    });
    client.on('close', ({ error }) => {
      if (this.#client !== client || this.#stopped) return;
      // Closed for good by the client (a refusal retrying cannot fix): a new client, later.
      this.#handler.down(error);
      this.failures++;
      this.lastError = error === undefined ? 'closed' : describeError(error);
      this.#retry(`${this.current} refused the bridge: ${this.lastError}`);
    });
  }
}
