/**
 * A TCP front for `broker.handle()`: every connection it accepts on 127.0.0.1 is handed to the
 * broker as if it came from `remoteAddress` through a listener the broker does not own, so
 * policies that depend on the client's address (anonymous clients off loopback, connect rate per
 * IP) can be tested without binding other interfaces.
 */
import { createServer, type Socket } from 'node:net';
import type { Broker } from '../../src/index.js';

export interface ExternalFront {
  readonly port: number;
  readonly url: string;
  close(): Promise<void>;
}

export async function externalFront(broker: Broker, remoteAddress: string, listener = 'external'): Promise<ExternalFront> {
  const sockets = new Set<Socket>();
  let remotePort = 0;
  const server = createServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    remotePort = (remotePort % 65535) + 1;
    broker.handle(socket, { transport: 'tcp', listener, remoteAddress, remotePort });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  return {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
