/**
 * MQTT over WebSocket (`ws`): binary frames, subprotocol `mqtt` (MQTT 5.0 §6), one MQTT byte
 * stream across frames. Each connection becomes a Duplex for the broker core.
 *
 * The upgrade/stream plumbing (`attachMqttWebSocket`, `closeWebSocketServer`) is shared with the
 * `wss` listener, which runs the same thing on an HTTPS server.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { WebSocketServer } from 'ws';
import { lazyRequire } from '../lazy-require.js';
import type { BoundAddress, ConnectionHandler, Listener } from './types.js';

/** ws, required when a WebSocket listener starts, not when Courier is imported. */
const ws = lazyRequire<typeof import('ws')>('ws');

export interface WsListenerOptions {
  host: string;
  port: number;
  path: string;
  name?: string;
  /** Largest WebSocket message accepted (bytes). */
  maxPayload?: number;
}

/** Answers plain HTTP requests on a WebSocket listener: 426 Upgrade Required. */
export function upgradeRequired(_req: IncomingMessage, res: ServerResponse): void {
  res.writeHead(426, { 'content-type': 'text/plain' });
  res.end('MQTT over WebSocket: connect with the "mqtt" subprotocol\n');
}

/**
 * Accepts MQTT WebSocket upgrades on `server` (HTTP or HTTPS) at `path` and hands each connection
 * to `onStream` as a byte Duplex, with the upgrade request (for addresses and the TLS socket).
 */
export function attachMqttWebSocket(
  server: Server | HttpsServer,
  options: { path: string; maxPayload?: number },
  onStream: (stream: Duplex, req: IncomingMessage) => void,
): WebSocketServer {
  const wss = new (ws().WebSocketServer)({
    server,
    path: options.path,
    maxPayload: options.maxPayload ?? 256 * 1024 * 1024,
    perMessageDeflate: false,
    // [MQTT-6.0.0-3]/[MQTT-6.0.0-4]: the client offers "mqtt"; echo it back when present.
    handleProtocols: (protocols) => (protocols.has('mqtt') ? 'mqtt' : protocols.has('mqttv3.1') ? 'mqttv3.1' : false),
  });
  wss.on('connection', (socket, req) => {
    socket.binaryType = 'nodebuffer';
    const stream = ws().createWebSocketStream(socket);
    // Errors surface on the stream; the broker listens there. Avoid unhandled 'error' on the socket.
    socket.on('error', () => {});
    onStream(stream, req);
  });
  return wss;
}

/** Binds `server`; resolves with the bound address. */
export function listenServer(server: Server | HttpsServer, host: string, port: number): Promise<AddressInfo> {
  return new Promise<AddressInfo>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port }, () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
}

/** Drops every WebSocket client, stops the WebSocket server and closes the HTTP(S) server. */
export function closeWebSocketServer(wss: WebSocketServer | undefined, server: Server | HttpsServer | undefined): Promise<void> {
  return new Promise<void>((resolve) => {
    for (const client of wss?.clients ?? []) client.terminate();
    wss?.close();
    if (!server || !server.listening) return resolve();
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

export function createWsListener(options: WsListenerOptions, onConnection: ConnectionHandler): Listener {
  const name = options.name ?? `ws:${options.host}:${options.port}${options.path}`;
  let http: Server | undefined;
  let wss: WebSocketServer | undefined;
  return {
    name,
    transport: 'ws',
    async listen(): Promise<BoundAddress> {
      const server = createServer(upgradeRequired);
      http = server;
      wss = attachMqttWebSocket(server, options, (stream, req) => {
        onConnection(stream, {
          transport: 'ws',
          listener: name,
          remoteAddress: req.socket.remoteAddress,
          remotePort: req.socket.remotePort,
        });
      });
      const addr = await listenServer(server, options.host, options.port);
      return { transport: 'ws', host: addr.address, port: addr.port };
    },
    close() {
      return closeWebSocketServer(wss, http);
    },
  };
}
