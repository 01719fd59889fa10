/**
 * Transports are thin: each turns accepted connections into a byte `Duplex` and hands it to the
 * broker core with a description of where it came from. The core never sees a socket type.
 */
import type { Duplex } from 'node:stream';

export type TransportKind = 'tcp' | 'tls' | 'ws' | 'wss';

export interface ConnectionInfo {
  transport: TransportKind;
  /** Name of the listener that accepted the connection (e.g. 'tcp:1883'). */
  listener: string;
  remoteAddress: string | undefined;
  remotePort: number | undefined;
  /** TLS client certificate subject fields when mTLS is in use. */
  certificate?: { subjectCN?: string; subjectAltNames?: string[] };
}

/** Called once per accepted connection. The Duplex carries raw MQTT bytes in both directions. */
export type ConnectionHandler = (stream: Duplex, info: ConnectionInfo) => void;

export interface BoundAddress {
  transport: TransportKind;
  host: string;
  port: number;
}

export interface Listener {
  readonly name: string;
  readonly transport: TransportKind;
  /** Starts accepting; resolves once bound (port 0 picks a free port, reported here). */
  listen(): Promise<BoundAddress>;
  /** Stops accepting new connections. Existing connections are closed by the broker. */
  close(): Promise<void>;
}
