/**
 * One client connection: bytes → Decoder → packet handlers → BrokerCore, and encoded packets →
 * the stream. Owns what lives exactly as long as the network connection: the decoder, the keep
 * alive deadline, topic aliases, the will, and the write batching (all writes of one event-loop
 * turn leave in one corked flush).
 *
 * This file holds the class, the input loop and the output; connection-end.ts how it ends
 * (errors mapped to the wire, the server's DISCONNECT, the end, the graceful close). dispatch.ts
 * hands each packet to its handler, and the handlers live by family in connect.ts (CONNECT,
 * AUTH, DISCONNECT), publish.ts (PUBLISH and its acknowledgements) and subscribe.ts (SUBSCRIBE,
 * UNSUBSCRIBE), as functions of the connection's internal interface (connection-internals.ts).
 */
import type { Duplex } from 'node:stream';
import { MAX_PACKET_SIZE, ReasonCode, type ProtocolVersion, type QoS } from '../protocol/constants.js';
import { Decoder } from '../protocol/decoder.js';
import { MqttError } from '../protocol/errors.js';
import type { Packet } from '../protocol/packets.js';
import type { ConnectionInfo } from '../transport/types.js';
import type { Logger } from '../options.js';
import { isPromise } from '../security/index.js';
import type { BrokerCore } from './broker-core.js';
import { dispatch } from './dispatch.js';
import { cannotSend, closeGracefully, destroy, disconnectByServer, endConnection, internalError, protocolViolation, redirect } from './connection-end.js';
import { Phase, type AuthExchange, type ConnectionInternals, type OutboundAliases, type PublishRate } from './connection-internals.js';
import type { Message } from './message.js';
import { Output } from './output.js';
import { ack, writePublish } from './publish.js';
import type { Session } from './session.js';
import type { ClientInfo, ConnectionContext, ConnectionObserver } from './connection-types.js';
import { packetCode, type TrafficCounters } from './traffic.js';

export type { ClientInfo, ConnectionContext, ConnectionObserver, LimitCounters, ListenerPolicy } from './connection-types.js';

/**
 * Times held per connection are milliseconds since this module loaded, wrapped to 32 bits
 * (`| 0`): small integers, which V8 keeps in the field itself, where an epoch time (or any
 * result of `Date.now()` arithmetic that is not truncated) is a separate 16-byte heap number per
 * field and connection. Intervals between two such times are `(a - b) | 0`, exact while shorter
 * than 24 days (keep alive is at most 65,535 s × 1.5, the CONNECT timeout seconds).
 */
const EPOCH = Date.now();
function clock(now: number): number {
  return (now - EPOCH) | 0;
}

/** The stream's link back to its connection (read by the shared stream listeners). */
const OWNER = Symbol('courier.connection');
interface OwnedStream extends Duplex {
  [OWNER]?: Connection;
}

export class Connection implements ConnectionInternals {
  version: ProtocolVersion = 4;
  sendQuota = 0;
  readonly info: ConnectionInfo;
  /** Position in the broker's Sweeper (-1 = not registered). */
  sweepIndex = -1;

  // Internal to the connection's modules (connection-internals.ts documents each); the Broker
  // uses only the methods further down.
  readonly ctx: ConnectionContext;
  readonly core: BrokerCore;
  readonly decoder: Decoder<Connection>;
  phase = Phase.Connecting;
  session: Session | undefined = undefined;
  client: ClientInfo | undefined = undefined;
  username: string | undefined = undefined;
  clientMaxPacket = MAX_PACKET_SIZE;
  keepAliveMs = 0;
  auth: AuthExchange | undefined = undefined;
  authMethod: string | undefined = undefined;
  aliases: Map<number, string> | undefined = undefined;
  outAliases: OutboundAliases | undefined = undefined;
  clusterMark = 0;
  rate: PublishRate | undefined = undefined;
  closeReason = 'connection closed by the client';
  readonly output: Output;

  readonly #stream: Duplex;
  /** ctx.traffic, held here: the context object is in dictionary mode (it has getters), so each read of it is a slow lookup. */
  readonly #traffic: TrafficCounters;
  /** Packets held while an asynchronous hook (authentication, authorization) decides; undefined = not paused. */
  #held: Packet[] | undefined = undefined;
  /** Last packet bytes received (see clock()). */
  #lastSeen = clock(Date.now());
  /** The CONNECT deadline while connecting, then the time CONNACK accepted the client (see clock()). */
  #deadline = 0;

  constructor(stream: Duplex, info: ConnectionInfo, ctx: ConnectionContext) {
    const core = ctx.core;
    this.#stream = stream;
    this.info = info;
    this.ctx = ctx;
    this.core = core;
    // No closures per connection: the stream's listeners and the decoder's callback are shared
    // functions that find the connection through the stream (an idle connection costs less).
    this.#traffic = ctx.traffic;
    this.output = new Output(stream, this, ctx.traffic);
    this.decoder = new Decoder<Connection>(Connection.#packetIn, { maxPacketSize: core.mqtt.maxPacketSize }, this);
    (stream as OwnedStream)[OWNER] = this;
    stream.on('data', Connection.#streamData);
    stream.on('error', Connection.#streamError);
    // A stream that ends its own side when the peer's ends (net.Socket, allowHalfOpen false)
    // closes next, and 'close' ends the connection: no 'end' listener, which beside the socket's
    // own would be an array of two per connection. Any other Duplex is ended on 'end'.
    if ((stream as { allowHalfOpen?: boolean }).allowHalfOpen !== false) stream.on('end', Connection.#streamEnd);
    stream.on('close', Connection.#streamClose);
    // [MQTT-3.1.4-1] a client that never completes a CONNECT is closed (checked by the sweep).
    this.#deadline = (this.#lastSeen + ctx.limits.connectTimeoutMs) | 0;
    ctx.sweeper.add(this);
  }

  static #packetIn(this: Connection, p: Packet): void {
    // Counted once, as decoded (held packets come back through #onPacket, not here).
    const traffic = this.#traffic;
    traffic.packetsIn[packetCode(p.type)]!++;
    if (p.type === 'publish') {
      traffic.publishIn[p.qos]!++;
      traffic.publishBytesIn += p.payload.length;
    }
    this.#onPacket(p);
  }

  static #streamData(this: Duplex, chunk: Buffer): void {
    (this as OwnedStream)[OWNER]!.#onData(chunk);
  }

  static #streamError(this: Duplex, err: Error): void {
    const c = (this as OwnedStream)[OWNER]!;
    c.closeReason = `network error: ${err.message}`;
    c.end();
  }

  static #streamEnd(this: Duplex): void {
    const c = (this as OwnedStream)[OWNER]!;
    c.end();
    c.flush();
    // A net.Socket (allowHalfOpen false) has ended its side already; end() again would only
    // build an ERR_STREAM_ALREADY_FINISHED error, which is costly in a disconnect storm.
    if (!this.writableEnded) this.end();
  }

  static #streamClose(this: Duplex): void {
    const c = (this as OwnedStream)[OWNER]!;
    c.end();
    c.observer.released(c);
  }

  // Read through the context (connect and disconnect only): two fields fewer per connection.
  get log(): Logger {
    return this.ctx.log;
  }

  get observer(): ConnectionObserver {
    return this.ctx.observer;
  }

  /** The store's pending commit (Output waits for it before acknowledging). */
  commitPoint(): Promise<void> | null {
    return this.core.commitPoint(this.clusterMark);
  }

  /** The store could not commit what this connection was about to acknowledge. */
  storeFailed(err: unknown): void {
    this.log.error({ err, clientId: this.client?.clientId }, 'store commit failed; closing the connection without acknowledging');
    this.#stream.destroy();
  }

  /** Periodic check of the CONNECT deadline and keep alive (see Sweeper). */
  sweep(now: number): void {
    if (this.phase === Phase.Connecting) {
      if (((clock(now) - this.#deadline) | 0) < 0) return;
      this.closeReason = 'no CONNECT in time';
      this.ctx.counters.connectTimeouts++;
      this.log.warn({ remote: this.remote() }, `closing connection: no CONNECT within ${this.ctx.limits.connectTimeoutMs} ms`);
      destroy(this);
      return;
    }
    // Keep alive: [MQTT-3.1.2-22] (5.0) / [MQTT-3.1.2-24] (3.1.1): 1.5 × keep alive without a packet.
    if (this.phase !== Phase.Connected || this.keepAliveMs === 0) return;
    if (((clock(now) - this.#lastSeen) | 0) >= this.keepAliveMs * 1.5) {
      const s = this.keepAliveMs / 1000;
      this.serverDisconnect(ReasonCode.KeepAliveTimeout, `keep alive timeout (${s} s × 1.5 without a packet)`, true);
    }
  }

  /** Destroys the socket (broker shutdown, after the grace period). */
  destroyStream(): void {
    this.#stream.destroy();
  }

  /** The connection has ended (closed, refused, or its client went away). */
  get ended(): boolean {
    return this.phase === Phase.Closed;
  }

  /** Epoch ms at which the client was accepted (CONNACK); undefined before. Exact for 49 days after it. */
  get connectedAt(): number | undefined {
    if (this.client === undefined) return undefined;
    const now = Date.now();
    return now - ((clock(now) - this.#deadline) >>> 0);
  }

  /** Called by the CONNECT handler as it accepts the client (`now`: epoch ms). */
  accepted(now: number): void {
    this.#deadline = clock(now);
  }

  get clientId(): string | undefined {
    return this.client?.clientId;
  }

  remote(): string {
    return `${this.info.remoteAddress ?? '?'}:${this.info.remotePort ?? '?'}`;
  }

  // ---------------------------------------------------------------------------------------------
  // Input

  #onData(chunk: Buffer): void {
    if (this.phase === Phase.Closed) return;
    this.#traffic.bytesIn += chunk.length;
    this.#lastSeen = clock(Date.now());
    try {
      this.decoder.push(chunk);
    } catch (err) {
      if (err instanceof MqttError) protocolViolation(this, err);
      else internalError(this, err);
    }
  }

  #onPacket(p: Packet): void {
    if (this.phase === Phase.Closed) return;
    if (this.#held !== undefined) {
      this.#held.push(p);
      return;
    }
    dispatch(this, p);
  }

  /**
   * Continues with `then` once `value` is there. Synchronous values continue at once (the fast
   * path); a promise pauses the input: later packets are held, in order, until it settles.
   */
  after<T>(value: T | Promise<T>, then: (v: T) => void): void {
    if (!isPromise(value)) {
      then(value);
      return;
    }
    this.#held = [];
    this.#stream.pause();
    value.then(
      (v) => {
        if (this.phase === Phase.Closed) return;
        this.#guard(() => then(v));
        this.#resume();
      },
      (err: unknown) => internalError(this, err),
    );
  }

  #resume(): void {
    const held = this.#held;
    this.#held = undefined;
    if (held !== undefined) {
      for (let i = 0; i < held.length; i++) {
        if (this.phase === Phase.Closed) return;
        const again = this.#held as Packet[] | undefined;
        if (again !== undefined) {
          // Paused again by a held packet: keep the rest, in order, behind it.
          again.push(...held.slice(i));
          return;
        }
        this.#guard(() => this.#onPacket(held[i]!));
      }
    }
    if (this.phase !== Phase.Closed && this.#held === undefined) this.#stream.resume();
  }

  /** Runs a packet handler outside the decoder's call stack, mapping errors as #onData does. */
  #guard(f: () => void): void {
    try {
      f();
    } catch (err) {
      if (err instanceof MqttError) protocolViolation(this, err);
      else internalError(this, err);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Ending (connection-end.ts)

  /** Server-initiated close of a connected client (5.0: DISCONNECT with a reason code first [MQTT-4.13.1-1]). */
  serverDisconnect(code: number, reason: string, abnormal: boolean): void {
    disconnectByServer(this, code, reason, abnormal);
  }

  /** Another connection took this client id over [MQTT-3.1.4-3]; 5.0 tells the old one with 0x8E. */
  takeover(): void {
    this.serverDisconnect(ReasonCode.SessionTakenOver, 'session taken over by another connection', true);
  }

  /**
   * This node can no longer speak for the session (a cluster node that fenced itself): output
   * still waiting for a commit is dropped (it may never be durable), 5.0 clients get DISCONNECT
   * 0x8B at once, and go elsewhere.
   */
  fence(): void {
    this.output.abandon();
    this.shutdown();
  }

  /** Broker shutdown: 5.0 clients get DISCONNECT 0x8B. */
  shutdown(): void {
    if (this.phase === Phase.Connected) this.serverDisconnect(ReasonCode.ServerShuttingDown, 'server shutting down', true);
    else destroy(this);
  }

  /** Server redirection for a connected client: 5.0 DISCONNECT 0x9C/0x9D with Server Reference. */
  redirectTo(serverReference: string, permanent: boolean): void {
    redirect(this, serverReference, permanent);
  }

  /** Disconnects the client with a reason code (library API). */
  disconnect(code: number, reason: string): void {
    this.serverDisconnect(code, reason, true);
  }

  /** Runs once, when the connection ends for whatever reason; the will still set (if any) goes out. */
  end(): void {
    endConnection(this);
  }

  /**
   * The client sent DISCONNECT: what it sent after it is not processed [MQTT-3.14.4-1] (it must
   * close) and not read either, so a client cannot keep streaming into a finished connection.
   */
  endByClient(): void {
    this.end();
    this.closeGracefully();
  }

  /** The broker has decided to close: send what is owed, end the stream, destroy it after a grace period. */
  closeGracefully(): void {
    this.#stream.removeListener('data', Connection.#streamData);
    closeGracefully(this, this.#stream);
  }

  // ---------------------------------------------------------------------------------------------
  // Output (Outlet)

  /** Bytes waiting to be written to this connection's socket (admin API). */
  outputBytes(): number {
    return this.output.buffered;
  }

  congested(): boolean {
    return this.output.buffered > this.core.limits.maxOutboundBufferBytes;
  }

  sendPublish(m: Message, qos: QoS, retain: boolean, packetId: number, dup: boolean, subscriptionIds: number[] | undefined): boolean {
    return writePublish(this, m, qos, retain, packetId, dup, subscriptionIds);
  }

  sendPubrel(packetId: number): void {
    ack(this, 'pubrel', packetId, 0);
  }

  write(buf: Buffer): void {
    if (this.phase === Phase.Closed) return;
    // [MQTT-3.1.2-24] nothing larger than the client's Maximum Packet Size. What has optional
    // parts is shortened before it gets here, and a PUBLISH that does not fit is discarded
    // [MQTT-3.1.2-25]; any other packet that does not fit cannot be sent, and the session cannot
    // go on without it.
    if (buf.length > this.clientMaxPacket) {
      cannotSend(this, buf);
      return;
    }
    this.output.write(buf);
  }

  /** Sends everything written in this event-loop turn (one writev). */
  flush(): void {
    this.output.flush();
  }
}
