/**
 * A stand-in MQTT server for the client tests that need a server to misbehave or to hold an
 * answer back (no broker does either on demand): a TCP listener on 127.0.0.1 that decodes what
 * the client sends with the broker's codec, answers CONNECT with a CONNACK, and leaves every
 * other packet to the test, which sends whatever it wants with `send`.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { Decoder } from '../../src/protocol/decoder.js';
import { encode } from '../../src/protocol/encoder.js';
import type { ConnackPacket, Packet } from '../../src/protocol/packets.js';

export interface FakeConnection {
  readonly socket: Socket;
  /** Every packet the client sent on this connection, CONNECT first. */
  readonly packets: Packet[];
  /** How many packets of each type the client sent on this connection. */
  readonly counts: Map<Packet['type'], number>;
  /** True once the client's side has closed. */
  closed: boolean;
  send(p: Packet): void;
}

export class FakeServer {
  readonly connections: FakeConnection[] = [];
  #server: Server | undefined;
  #port = 0;
  readonly #waiters = new Set<() => void>();
  /** What CONNECT is answered with (a test may change it between connections). */
  connack: Omit<ConnackPacket, 'type'> = { sessionPresent: false, reasonCode: 0 };
  /** Called with each packet after CONNECT. */
  onPacket: ((p: Packet, c: FakeConnection) => void) | undefined;

  get port(): number {
    return this.#port;
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.#port}`;
  }

  /** The latest connection. */
  get last(): FakeConnection {
    const c = this.connections.at(-1);
    if (c === undefined) throw new Error('no connection yet');
    return c;
  }

  async listen(): Promise<this> {
    this.#server = createServer((socket) => this.#accept(socket));
    await new Promise<void>((resolve) => this.#server!.listen(0, '127.0.0.1', resolve));
    this.#port = (this.#server.address() as { port: number }).port;
    return this;
  }

  #accept(socket: Socket): void {
    let version: 3 | 4 | 5 = 5;
    const conn: FakeConnection = {
      socket,
      packets: [],
      counts: new Map(),
      closed: false,
      send: (p) => {
        if (!socket.destroyed) socket.write(encode(p, version));
      },
    };
    const decoder = new Decoder((p) => {
      conn.packets.push(p);
      conn.counts.set(p.type, (conn.counts.get(p.type) ?? 0) + 1);
      if (p.type === 'connect') {
        version = p.protocolVersion;
        conn.send({ type: 'connack', ...this.connack });
      } else this.onPacket?.(p, conn);
      this.#notify();
    });
    socket.on('data', (chunk) => {
      try {
        decoder.push(chunk);
      } catch {
        socket.destroy();
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      conn.closed = true;
      this.#notify();
    });
    this.connections.push(conn);
    this.#notify();
  }

  #notify(): void {
    for (const w of [...this.#waiters]) w();
  }

  /** Resolves once `check()` holds (checked after every packet and connection event); rejects after `timeoutMs`. */
  until(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
    if (check()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const w = () => {
        if (!check()) return;
        this.#waiters.delete(w);
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(w);
        reject(new Error(`timed out waiting for ${what}`));
      }, timeoutMs);
      this.#waiters.add(w);
    });
  }

  async close(): Promise<void> {
    for (const c of this.connections) c.socket.destroy();
    await new Promise<void>((resolve) => (this.#server === undefined ? resolve() : this.#server.close(() => resolve())));
  }
}
