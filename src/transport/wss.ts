/**
 * MQTT over secure WebSocket (`wss`): the `ws` transport on an HTTPS server, with the TLS
 * handling of the `tls` transport (mutual TLS identity, handshake-error reporting, reload).
 */
import { createServer, type Server as HttpsServer } from 'node:https';
import type { TLSSocket } from 'node:tls';
import type { WebSocketServer } from 'ws';
import { tlsServing, type TlsListener, type TlsServingOptions } from './tls.js';
import type { BoundAddress, ConnectionHandler } from './types.js';
import { attachMqttWebSocket, closeWebSocketServer, listenServer, upgradeRequired } from './ws.js';

export interface WssListenerOptions extends TlsServingOptions {
  host: string;
  port: number;
  path: string;
  name?: string;
  /** Largest WebSocket message accepted (bytes). */
  maxPayload?: number;
}

export function createWssListener(options: WssListenerOptions, onConnection: ConnectionHandler): TlsListener {
  const name = options.name ?? `wss:${options.host}:${options.port}${options.path}`;
  const serving = tlsServing(options);
  let https: HttpsServer | undefined;
  let wss: WebSocketServer | undefined;
  let detach: (() => void) | undefined;
  return {
    name,
    transport: 'wss',
    tlsSource: serving.source,
    reload: () => serving.source.reload(),
    async listen(): Promise<BoundAddress> {
      const server = createServer({ ...serving.source.serverOptions(), handshakeTimeout: serving.handshakeTimeout, noDelay: true }, upgradeRequired);
      https = server;
      detach = serving.attach(server);
      wss = attachMqttWebSocket(server, options, (stream, req) => {
        onConnection(stream, serving.info('wss', name, req.socket as TLSSocket));
      });
      try {
        const addr = await listenServer(server, options.host, options.port);
        return { transport: 'wss', host: addr.address, port: addr.port };
      } catch (err) {
        detach();
        detach = undefined;
        throw err;
      }
    },
    close() {
      detach?.();
      detach = undefined;
      return closeWebSocketServer(wss, https);
    },
  };
}
