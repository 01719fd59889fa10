/**
 * MQTT over WebSocket (`ws`): binary frames, subprotocol `mqtt` (MQTT 5.0 §6), one MQTT byte
 * stream across frames. Each connection becomes a Duplex for the broker core.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, createWebSocketStream } from 'ws';
import type { BoundAddress, ConnectionHandler, Listener } from './types.js';

export interface WsListenerOptions {
  host: string;
  port: number;
  path: string;
  name?: string;
  /** Largest WebSocket message accepted (bytes). */
  maxPayload?: number;
}

export function createWsListener(options: WsListenerOptions, onConnection: ConnectionHandler): Listener {
  const name = options.name ?? `ws:${options.host}:${options.port}${options.path}`;
  let http: Server | undefined;
  let wss: WebSocketServer | undefined;
  return {
    name,
    transport: 'ws',
    listen() {
      return new Promise<BoundAddress>((resolve, reject) => {
        const server = createServer((_req, res) => {
          res.writeHead(426, { 'content-type': 'text/plain' });
          res.end('MQTT over WebSocket: connect with the "mqtt" subprotocol\n');
        });
        http = server;
        wss = new WebSocketServer({
          server,
          path: options.path,
          maxPayload: options.maxPayload ?? 256 * 1024 * 1024,
          perMessageDeflate: false,
          // [MQTT-6.0.0-3]/[MQTT-6.0.0-4]: the client offers "mqtt"; echo it back when present.
          handleProtocols: (protocols) => (protocols.has('mqtt') ? 'mqtt' : protocols.has('mqttv3.1') ? 'mqttv3.1' : false),
        });
        wss.on('connection', (socket, req) => {
          socket.binaryType = 'nodebuffer';
          const stream = createWebSocketStream(socket);
          // Errors surface on the stream; the broker listens there. Avoid unhandled 'error' on the socket.
          socket.on('error', () => {});
          onConnection(stream, {
            transport: 'ws',
            listener: name,
            remoteAddress: req.socket.remoteAddress,
            remotePort: req.socket.remotePort,
          });
        });
        server.once('error', reject);
        server.listen({ host: options.host, port: options.port }, () => {
          server.off('error', reject);
          const addr = server.address() as AddressInfo;
          resolve({ transport: 'ws', host: addr.address, port: addr.port });
        });
      });
    },
    close() {
      return new Promise<void>((resolve) => {
        for (const client of wss?.clients ?? []) client.terminate();
        wss?.close();
        if (!http || !http.listening) return resolve();
        http.close(() => resolve());
        http.closeAllConnections();
      });
    },
  };
}
