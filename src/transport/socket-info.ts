/**
 * The ConnectionInfo of an accepted socket, with the peer's address read when first asked for.
 *
 * `socket.remoteAddress` is a `getpeername` system call and a `{ address, family, port }` object
 * (~4 µs and ~100 bytes per connection, measured in a connection burst); most connections never
 * need it: a broker without a logger, `$SYS` events, event listeners or authenticators only reads
 * it for the admin API's client list. Node keeps the answer on the socket once read, so the
 * address stays readable after the socket has closed. If it was never read while the socket was
 * open, it is undefined after a reset: the broker reads it at CONNECT whenever anything watching
 * connections is configured (Broker, `wantsAddress`).
 */
import type { Socket } from 'node:net';
import type { ConnectionInfo, TransportKind } from './types.js';

export class SocketInfo implements ConnectionInfo {
  readonly transport: TransportKind;
  readonly listener: string;
  readonly #socket: Socket;

  constructor(transport: TransportKind, listener: string, socket: Socket) {
    this.transport = transport;
    this.listener = listener;
    this.#socket = socket;
  }

  get remoteAddress(): string | undefined {
    return this.#socket.remoteAddress;
  }

  get remotePort(): number | undefined {
    return this.#socket.remotePort;
  }

  /** The same fields as a plain info object (logs, JSON). */
  toJSON(): ConnectionInfo {
    return { transport: this.transport, listener: this.listener, remoteAddress: this.remoteAddress, remotePort: this.remotePort };
  }
}
