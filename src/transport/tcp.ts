/** MQTT over plain TCP. */
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { readThroughSharedBuffer } from './shared-reads.js';
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
        // Accepted paused: the socket is switched to the shared read buffer (shared-reads.ts)
        // before its first read, and starts reading once the broker listens to it.
        const srv = createServer({ noDelay: true, pauseOnConnect: true }, (socket: Socket) => {
          readThroughSharedBuffer(socket);
          // The peer's address is read when something asks for it (SocketInfo).
          onConnection(socket, new SocketInfo('tcp', name, socket));
          socket.resume();
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
