/** MQTT over plain TCP. */
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { SocketInfo } from './socket-info.js';
import type { BoundAddress, ConnectionHandler, Listener } from './types.js';

export interface TcpListenerOptions {
  host: string;
  port: number;
  name?: string;
}

export function createTcpListener(options: TcpListenerOptions, onConnection: ConnectionHandler): Listener {
  const name = options.name ?? `tcp:${options.host}:${options.port}`;
  let server: Server | undefined;
  return {
    name,
    transport: 'tcp',
    listen() {
      return new Promise<BoundAddress>((resolve, reject) => {
        const srv = createServer({ noDelay: true }, (socket: Socket) => {
          // The peer's address is read when something asks for it (SocketInfo).
          onConnection(socket, new SocketInfo('tcp', name, socket));
        });
        server = srv;
        srv.once('error', reject);
        srv.listen({ host: options.host, port: options.port }, () => {
          srv.off('error', reject);
          const addr = srv.address() as AddressInfo;
          resolve({ transport: 'tcp', host: addr.address, port: addr.port });
        });
      });
    },
    close() {
      return new Promise<void>((resolve) => {
        if (!server || !server.listening) return resolve();
        server.close(() => resolve());
      });
    },
  };
}
