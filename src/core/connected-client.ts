/**
 * The ClientInfo of an accepted client (events, hooks, `$SYS`). The peer's address is read
 * through the connection's info when asked for, not copied at CONNECT: reading it is a system
 * call the CONNECT path does not pay unless something watches (transport/socket-info.ts).
 */
import type { ProtocolVersion } from '../protocol/constants.js';
import type { ConnectionInfo } from '../transport/types.js';
import type { ClientInfo } from './connection-types.js';

export class ConnectedClient implements ClientInfo {
  readonly clientId: string;
  readonly protocolVersion: ProtocolVersion;
  readonly username: string | undefined;
  readonly #info: ConnectionInfo;

  constructor(clientId: string, protocolVersion: ProtocolVersion, username: string | undefined, info: ConnectionInfo) {
    this.clientId = clientId;
    this.protocolVersion = protocolVersion;
    this.username = username;
    this.#info = info;
  }

  get transport(): ConnectionInfo['transport'] {
    return this.#info.transport;
  }

  get remoteAddress(): string | undefined {
    return this.#info.remoteAddress;
  }

  get remotePort(): number | undefined {
    return this.#info.remotePort;
  }

  /** The same fields as the plain object this used to be (logs, JSON). */
  toJSON(): ClientInfo {
    const { clientId, protocolVersion, username, transport, remoteAddress, remotePort } = this;
    return { clientId, protocolVersion, username, transport, remoteAddress, remotePort };
  }
}
