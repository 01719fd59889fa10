/**
 * Courier's MQTT client for Node: TCP (`mqtt://`), TLS (`mqtts://`), WebSocket (`ws://`, `wss://`).
 * The browser entry is `web.ts` (native WebSocket only). Both share the broker's codec.
 */
import type { Client } from './client.js';
import { connectWith } from './connect.js';
import { openNodeTransport } from './transport-node.js';
import type { ClientOptions } from './types.js';

export function connect(url: string | URL, options: ClientOptions = {}): Promise<Client> {
  return connectWith(openNodeTransport, url, options);
}

export * from './exports.js';
/** Node's transports, for a custom `OpenTransport` that wraps them (Courier's bridges pick among several servers with one). */
export { openNodeTransport } from './transport-node.js';
export type { OpenTransport, Transport, TransportHandlers } from './transport.js';
export { fileStore } from './file-store.js';
