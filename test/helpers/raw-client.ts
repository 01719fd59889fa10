/**
 * A byte-exact MQTT test client over TCP: sends packets (encoded by our codec) or raw bytes,
 * and hands back every packet the broker sends, decoded, in order. Used by the spec tests for
 * what real clients cannot be made to do (protocol violations, exact flags, malformed bytes).
 *
 * No fixed sleeps: `next()` waits for the next packet (failing after a bound), `closed()` for
 * the end of the connection, and `barrier()` proves nothing else is pending by a PINGREQ round
 * trip (the broker answers in order, so anything queued before it arrives first).
 */
import { connect as netConnect, type Socket } from 'node:net';
import { Decoder } from '../../src/protocol/decoder.js';
import { encode } from '../../src/protocol/encoder.js';
import type { ConnackPacket, ConnectPacket, Packet, PacketOfType } from '../../src/protocol/packets.js';
import type { ProtocolVersion } from '../../src/protocol/constants.js';

export const WAIT_MS = 5_000;

export class RawClient {
  readonly socket: Socket;
  version: ProtocolVersion;
  readonly #queue: Packet[] = [];
  #waiters: Array<() => void> = [];
  #closed = false;
  #closeWaiters: Array<() => void> = [];
  #decoder: Decoder;
  decodeError: unknown = undefined;

  /** Every client not yet closed, so a test file can end them all however it opened them. */
  static readonly #live = new Set<RawClient>();

  /** Destroys every client still open. */
  static destroyEvery(): void {
    for (const c of RawClient.#live) c.destroy();
    RawClient.#live.clear();
  }

  private constructor(socket: Socket, version: ProtocolVersion) {
    RawClient.#live.add(this);
    this.socket = socket;
    this.version = version;
    this.#decoder = new Decoder((p) => this.#push(p), { protocolVersion: version });
    socket.on('data', (chunk: Buffer) => {
      try {
        this.#decoder.push(chunk);
      } catch (err) {
        this.decodeError = err;
        socket.destroy();
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      RawClient.#live.delete(this);
      this.#closed = true;
      for (const w of this.#closeWaiters) w();
      this.#closeWaiters = [];
      for (const w of this.#waiters) w();
      this.#waiters = [];
    });
  }

  /** Opens a TCP connection (no CONNECT sent yet). */
  static open(port: number, version: ProtocolVersion = 4): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = netConnect({ host: '127.0.0.1', port, noDelay: true }, () => {
        s.off('error', reject);
        resolve(new RawClient(s, version));
      });
      s.once('error', reject);
    });
  }

  /** Opens a connection and completes a CONNECT; returns the client and the CONNACK. */
  static async connect(
    port: number,
    connect: Partial<ConnectPacket> & { protocolVersion?: ProtocolVersion } = {},
  ): Promise<{ client: RawClient; connack: ConnackPacket }> {
    const version = connect.protocolVersion ?? 4;
    const client = await RawClient.open(port, version);
    const connack = await client.handshake(connect);
    return { client, connack };
  }

  async handshake(connect: Partial<ConnectPacket> = {}): Promise<ConnackPacket> {
    const packet: ConnectPacket = {
      type: 'connect',
      protocolName: this.version === 3 ? 'MQIsdp' : 'MQTT',
      protocolVersion: this.version,
      clean: true,
      keepAlive: 0,
      clientId: '',
      ...connect,
    };
    this.send(packet);
    return this.next('connack');
  }

  #push(p: Packet): void {
    this.#queue.push(p);
    const ws = this.#waiters;
    this.#waiters = [];
    for (const w of ws) w();
  }

  send(packet: Packet): void {
    this.socket.write(encode(packet, this.version));
  }

  sendRaw(bytes: Buffer | string): void {
    this.socket.write(typeof bytes === 'string' ? Buffer.from(bytes.replace(/\s+/g, ''), 'hex') : bytes);
  }

  /** The next packet from the broker (of the given type, failing if another type comes first). */
  async next<T extends Packet['type']>(type?: T, timeoutMs = WAIT_MS): Promise<PacketOfType<T>> {
    const deadline = Date.now() + timeoutMs;
    while (this.#queue.length === 0) {
      if (this.#closed) throw new Error(`connection closed while waiting for ${type ?? 'a packet'}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${type ?? 'packet'} within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    const p = this.#queue.shift()!;
    if (type !== undefined && p.type !== type) throw new Error(`expected ${type}, got ${JSON.stringify(p, replacer)}`);
    return p as PacketOfType<T>;
  }

  /** Packets received so far and not yet taken. */
  get pending(): readonly Packet[] {
    return this.#queue;
  }

  /** PINGREQ → PINGRESP; returns every packet that arrived before the PINGRESP. */
  async barrier(): Promise<Packet[]> {
    this.send({ type: 'pingreq' });
    const before: Packet[] = [];
    for (;;) {
      const p = await this.next();
      if (p.type === 'pingresp') return before;
      before.push(p);
    }
  }

  /** Resolves when the broker closes the connection (failing after a bound). */
  closed(timeoutMs = WAIT_MS): Promise<void> {
    if (this.#closed) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`connection still open after ${timeoutMs} ms`)), timeoutMs);
      this.#closeWaiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  get isClosed(): boolean {
    return this.#closed;
  }

  /** Ends the connection without DISCONNECT (an abnormal end for the broker). */
  destroy(): void {
    this.socket.destroy();
  }

  async disconnect(): Promise<void> {
    this.send({ type: 'disconnect' });
    this.socket.end();
    await this.closed();
  }
}

function replacer(_k: string, v: unknown): unknown {
  if (v && typeof v === 'object' && (v as { type?: string }).type === 'Buffer') return '<buffer>';
  return v;
}
