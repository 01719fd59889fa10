/**
 * The connection lifecycle of one client, across any number of connections: an attempt (open the
 * transport, CONNECT, wait for CONNACK), keep alive, reconnect with backoff after a loss, the
 * bytes out (packets of one turn written together), and the end (DISCONNECT, or a stop for good).
 * What the packets mean is the host's job (client.ts): this module only moves them.
 */
import { Decoder } from '../../../src/protocol/decoder.js';
import { encode } from '../../../src/protocol/encoder.js';
import type { ConnackPacket, ConnectPacket, Packet, Properties } from '../../../src/protocol/packets.js';
import { Backoff } from './backoff.js';
import {
  ClosedError,
  ConnectionError,
  PERMANENT_REFUSALS,
  RefusedError,
  SERVER_MOVED,
  USE_ANOTHER_SERVER,
  abortReason,
  connackReason,
  redirectTarget,
} from './errors.js';
import type { OpenTransport, Transport } from './transport.js';
import type { ClientOptions, ClientState, CloseOptions } from './types.js';

/** What the lifecycle needs from the client. */
export interface LifecycleHost {
  /** The CONNECT of an attempt (`reconnect`: a connection was made before). */
  connectPacket(reconnect: boolean): ConnectPacket;
  /** CONNACK 0 on a new connection; the state is 'connected' already. */
  connected(ack: ConnackPacket, reconnect: boolean): void;
  /** Any packet from the server but CONNACK and PINGRESP. */
  packet(p: Packet): void;
  /** The connection was lost (the client will reconnect or stop). */
  disconnected(error: Error | undefined): void;
  /** The next attempt starts in `delay` ms. */
  reconnecting(attempt: number, delay: number): void;
  /** The client stopped for good: reject everything pending with `err`. */
  stopped(err: ClosedError, cause: Error | undefined): void;
  /** Something went wrong that no promise reports. */
  error(e: Error): void;
}

interface Connection {
  transport: Transport;
  decoder: Decoder<Lifecycle>;
  connack: { resolve(p: ConnackPacket): void; reject(e: Error): void } | undefined;
  /** Called when the transport has closed. */
  onClosed: (() => void) | undefined;
  /** A packet from the server broke the protocol: nothing more is read. */
  failed?: boolean;
}

const RESOLVED = Promise.resolve();

export class Lifecycle {
  state: ClientState = 'connecting';
  /** Counts connection attempts: an asynchronous step that outlived its connection sees a newer number. */
  epoch = 0;
  /** Where attempts go: the URL given, or where a 0x9D redirect sent the client for good. */
  #url: URL;
  /** The next attempt only (a 0x9C redirect, or a DISCONNECT's redirect). */
  #redirect: URL | undefined;
  readonly #options: Readonly<ClientOptions>;
  readonly #version: 3 | 4 | 5;
  readonly #open: OpenTransport;
  readonly #host: LifecycleHost;
  readonly #backoff: Backoff | undefined;
  readonly #waiters = new Set<{ resolve(): void; reject(e: Error): void }>();
  #conn: Connection | undefined;
  #pending: Uint8Array[] = [];
  /** Short acknowledgements of this turn (4 bytes each), written as one chunk in their place among #pending. */
  #acks = new Uint8Array(1024);
  #acksLen = 0;
  #flushQueued = false;
  /** Writes the turn's packets (queued as a microtask once per turn). */
  readonly #flushTurn = (): void => {
    this.#flushQueued = false;
    if (this.#conn !== undefined) this.#flush(this.#conn);
  };
  #connectedAt = 0;
  #keepAlive: ReturnType<typeof setInterval> | undefined;
  #pingOutstanding = false;
  #retry: ReturnType<typeof setTimeout> | undefined;
  #attemptAbort: AbortController | undefined;
  #closed: Promise<void> | undefined;
  #everConnected = false;

  constructor(url: URL, options: Readonly<ClientOptions>, version: 3 | 4 | 5, open: OpenTransport, host: LifecycleHost) {
    this.#url = url;
    this.#options = options;
    this.#version = version;
    this.#open = open;
    this.#host = host;
    this.#current = url;
    this.#backoff = options.reconnect === false ? undefined : new Backoff(options.reconnect);
  }

  /** Timers and waiters alive now (for leak checks). @internal */
  get resources(): { keepAlive: boolean; retry: boolean; waiters: number; connection: boolean } {
    return { keepAlive: this.#keepAlive !== undefined, retry: this.#retry !== undefined, waiters: this.#waiters.size, connection: this.#conn !== undefined };
  }

  /** The server of the current or last connection. */
  get target(): URL {
    return this.#current;
  }

  #current: URL;

  /**
   * Makes one connection attempt; resolves at CONNACK 0, rejects on anything else. With
   * `followRedirects`, a CONNACK 0x9C / 0x9D with a Server Reference sends it on to that server
   * (at most that many hops).
   */
  async connectOnce(): Promise<void> {
    const hops = this.#options.followRedirects === true ? 3 : this.#options.followRedirects || 0;
    for (let hop = 0; ; hop++) {
      try {
        return await this.#attempt();
      } catch (e) {
        if (hop >= hops || !this.#noteRedirect(e)) throw e;
      }
    }
  }

  /** Remembers where a 0x9C / 0x9D refusal points; false when it is not one (or points nowhere usable). */
  #noteRedirect(e: unknown): boolean {
    if (!(e instanceof RefusedError) || e.serverReference === undefined || this.state === 'closed') return false;
    if (e.reasonCode !== USE_ANOTHER_SERVER && e.reasonCode !== SERVER_MOVED) return false;
    const to = redirectTarget(this.#current, e.serverReference);
    if (to === undefined) return false;
    if (e.reasonCode === SERVER_MOVED) this.#url = to;
    else this.#redirect = to;
    return true;
  }

  /** A DISCONNECT 0x9C / 0x9D from the server: with `followRedirects`, the reconnect goes where it points. */
  redirected(e: RefusedError): void {
    if (this.#options.followRedirects) this.#noteRedirect(e);
  }

  async #attempt(): Promise<void> {
    const ac = new AbortController();
    this.#attemptAbort = ac;
    this.epoch++;
    const o = this.#options;
    const url = this.#redirect ?? this.#url;
    this.#redirect = undefined;
    this.#current = url;
    const timeout = setTimeout(() => ac.abort(new ConnectionError('connect timeout')), o.connectTimeout ?? 30_000);
    const onOuterAbort = () => ac.abort(abortReason(o.signal!));
    o.signal?.addEventListener('abort', onOuterAbort, { once: true });
    try {
      if (o.signal?.aborted) throw abortReason(o.signal);
      const conn: Connection = {
        transport: undefined as unknown as Transport,
        decoder: new Decoder<Lifecycle>(onPacket, { protocolVersion: this.#version, maxPacketSize: o.maximumPacketSize }, this),
        connack: undefined,
        onClosed: undefined,
      };
      const connack = new Promise<ConnackPacket>((resolve, reject) => (conn.connack = { resolve, reject }));
      connack.catch(() => undefined);
      conn.transport = await this.#open(url, o, { data: (c) => this.#data(conn, c), close: (e) => this.#lost(conn, e) }, ac.signal);
      this.#conn = conn;
      this.writeNow(this.#host.connectPacket(this.#everConnected));
      const onAbort = () => conn.connack?.reject(abortReason(ac.signal));
      ac.signal.addEventListener('abort', onAbort, { once: true });
      const ack = await connack.finally(() => ac.signal.removeEventListener('abort', onAbort));
      const code = connackReason(ack.reasonCode, this.#version);
      if (code !== 0) throw new RefusedError('CONNECT', code, ack.properties?.reasonString, ack.properties?.serverReference);
      const reconnect = this.#everConnected;
      this.#everConnected = true;
      this.state = 'connected';
      this.#connectedAt = Date.now();
      this.#startKeepAlive(ack.properties?.serverKeepAlive ?? o.keepAlive ?? 60);
      this.#host.connected(ack, reconnect);
      for (const w of [...this.#waiters]) w.resolve();
    } catch (e) {
      const c = this.#conn;
      if (c !== undefined) {
        this.#conn = undefined;
        c.transport.destroy();
      }
      throw e instanceof Error ? e : new Error(String(e));
    } finally {
      clearTimeout(timeout);
      o.signal?.removeEventListener('abort', onOuterAbort);
      this.#attemptAbort = undefined;
    }
  }

  #startKeepAlive(k: number): void {
    this.#pingOutstanding = false;
    if (k <= 0) return;
    this.#keepAlive = setInterval(() => {
      const c = this.#conn;
      if (c === undefined) return;
      if (this.#pingOutstanding) {
        c.transport.destroy(); // no PINGRESP for a whole interval: the connection is dead
        return;
      }
      this.#pingOutstanding = true;
      this.write({ type: 'pingreq' });
    }, k * 1000);
    (this.#keepAlive as { unref?: () => void }).unref?.();
  }

  #stopKeepAlive(): void {
    clearInterval(this.#keepAlive);
    this.#keepAlive = undefined;
  }

  #lost(conn: Connection, error: Error | undefined): void {
    conn.onClosed?.();
    const err = error ?? new ConnectionError('connection closed before CONNACK');
    if (this.#conn !== conn) {
      conn.connack?.reject(err);
      return;
    }
    this.#conn = undefined;
    this.#pending = [];
    this.#acksLen = 0;
    this.#stopKeepAlive();
    conn.connack?.reject(err);
    if (this.state !== 'connected') return; // an attempt in progress reports its own failure
    this.#host.disconnected(error);
    this.#backoff?.connectionEnded(Date.now() - this.#connectedAt);
    this.#scheduleReconnect(error ?? new ConnectionError('connection lost'));
  }

  #scheduleReconnect(cause: Error): void {
    const b = this.#backoff;
    if (b === undefined || b.exhausted) {
      this.shutdown(new ConnectionError(`connection lost: ${cause.message}`, cause));
      return;
    }
    this.state = 'reconnecting';
    const delay = b.next();
    this.#host.reconnecting(b.attempt, delay);
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      this.connectOnce().then(
        () => undefined,
        (e: Error) => {
          if (this.state === 'closed') return;
          if (e instanceof RefusedError && PERMANENT_REFUSALS.has(e.reasonCode ?? 0)) this.shutdown(e);
          else this.#scheduleReconnect(e);
        },
      );
    }, delay);
  }

  /** Tears the current connection down (a reconnect follows unless the client stopped). */
  drop(): void {
    this.#conn?.transport.destroy();
  }

  /** The PINGRESP came. */
  pong(): void {
    this.#pingOutstanding = false;
  }

  /** The client stops for good: everything pending is rejected. */
  shutdown(cause: Error | undefined): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    clearTimeout(this.#retry);
    this.#retry = undefined;
    this.#stopKeepAlive();
    this.#attemptAbort?.abort(new ClosedError(cause));
    const err = new ClosedError(cause);
    for (const w of [...this.#waiters]) w.reject(err);
    this.#host.stopped(err, cause);
  }

  /** Sends DISCONNECT with `reasonCode`, ends the stream and stops for good. */
  close(options: CloseOptions = {}): Promise<void> {
    if (this.#closed !== undefined) return this.#closed;
    const conn = this.#conn;
    this.shutdown(undefined);
    this.#closed = new Promise<void>((resolve) => {
      if (conn === undefined) return resolve();
      this.#conn = undefined;
      const done = () => {
        clearTimeout(guard);
        resolve();
      };
      const guard = setTimeout(() => {
        conn.transport.destroy();
        resolve();
      }, 2000);
      conn.decoder = new Decoder(() => undefined, { protocolVersion: this.#version });
      conn.connack = { resolve: () => undefined, reject: () => undefined };
      const props: Properties = {};
      if (options.reasonString !== undefined) props.reasonString = options.reasonString;
      if (options.userProperties !== undefined) props.userProperties = options.userProperties;
      if (options.sessionExpiry !== undefined) props.sessionExpiryInterval = options.sessionExpiry;
      const properties = Object.keys(props).length === 0 ? undefined : props;
      const packet = this.#version === 5 ? { type: 'disconnect' as const, reasonCode: options.reasonCode ?? 0, properties } : { type: 'disconnect' as const };
      if (this.#acksLen !== 0) this.#takeAcks();
      this.#pending.push(encode(packet, this.#version));
      this.#flush(conn);
      conn.onClosed = done;
      conn.transport.end();
    });
    return this.#closed;
  }

  /** Resolves at the next CONNACK 0 (at once when connected). */
  whenConnected(signal: AbortSignal | undefined): Promise<void> {
    if (this.state === 'connected') return Promise.resolve();
    if (this.state === 'closed') return Promise.reject(new ClosedError());
    return new Promise<void>((resolve, reject) => {
      const w = {
        resolve: () => {
          this.#waiters.delete(w);
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        reject: (e: Error) => {
          this.#waiters.delete(w);
          signal?.removeEventListener('abort', onAbort);
          reject(e);
        },
      };
      const onAbort = () => w.reject(abortReason(signal!));
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiters.add(w);
    });
  }

  // ------------------------------------------------------------------------------------------
  // Bytes in and out

  #data(conn: Connection, chunk: Uint8Array): void {
    if ((this.#conn !== conn && conn.connack === undefined) || conn.failed) return;
    try {
      conn.decoder.push(chunk as Buffer);
    } catch (e) {
      conn.failed = true;
      this.#host.error(e instanceof Error ? e : new Error(String(e)));
      const code = (e as { reasonCode?: unknown }).reasonCode;
      if (this.#version !== 5 || typeof code !== 'number' || code < 0x80 || this.#conn !== conn) return conn.transport.destroy();
      // 5.0: the server is told why (a malformed packet 0x81, a protocol error 0x82, a bad topic alias 0x94, ...) [MQTT-4.13.1-1].
      if (this.#acksLen !== 0) this.#takeAcks();
      this.#pending.push(encode({ type: 'disconnect', reasonCode: code }, 5));
      this.#flush(conn);
      conn.transport.end();
      setTimeout(() => conn.transport.destroy(), 2000).unref?.();
    }
  }

  /** Encodes `packet` for the current connection, sent at the end of this turn. */
  write(packet: Packet): void {
    if (this.#acksLen !== 0) this.#takeAcks();
    this.#pending.push(encode(packet, this.#version));
    this.#queueFlush();
  }

  /**
   * A PUBACK / PUBREC / PUBREL / PUBCOMP with reason code 0 and no properties (the 4-byte short
   * form in 5.0 [MQTT-3.4.2.1], the only form in 3.1.1): appended to the turn's acknowledgement
   * bytes instead of a packet object and a buffer each. `first` is the fixed header's first byte.
   */
  writeAck(first: 0x40 | 0x50 | 0x62 | 0x70, packetId: number): void {
    let b = this.#acks;
    const n = this.#acksLen;
    if (n + 4 > b.length) {
      const grown = new Uint8Array(b.length * 2);
      grown.set(b);
      this.#acks = b = grown;
    }
    b[n] = first;
    b[n + 1] = 2;
    b[n + 2] = packetId >>> 8;
    b[n + 3] = packetId & 0xff;
    this.#acksLen = n + 4;
    this.#queueFlush();
  }

  #takeAcks(): void {
    this.#pending.push(this.#acks.slice(0, this.#acksLen));
    this.#acksLen = 0;
  }

  #queueFlush(): void {
    if (!this.#flushQueued) {
      this.#flushQueued = true;
      // A resolved promise's reaction, not queueMicrotask(): Node wraps each queueMicrotask callback in an AsyncResource.
      void RESOLVED.then(this.#flushTurn);
    }
  }

  /** Encodes and sends `packet` at once (the CONNECT). */
  writeNow(packet: Packet): void {
    this.#pending.push(encode(packet, this.#version));
    this.#flush(this.#conn!);
  }

  #flush(conn: Connection): void {
    if (this.#acksLen !== 0) this.#takeAcks();
    const chunks = this.#pending;
    if (chunks.length === 0) return;
    this.#pending = [];
    conn.transport.write(chunks);
  }

  /** One decoded packet from the server (the decoder's callback). @internal */
  receive(p: Packet): void {
    if (p.type === 'connack') {
      const conn = this.#conn;
      if (conn?.connack !== undefined) {
        const c = conn.connack;
        conn.connack = undefined;
        c.resolve(p);
      }
      return;
    }
    if (p.type === 'pingresp') {
      this.#pingOutstanding = false;
      return;
    }
    this.#host.packet(p);
  }
}

function onPacket(this: Lifecycle, packet: Packet): void {
  this.receive(packet);
}
