/** Courier's MQTT client for browsers: native WebSocket (`ws://`, `wss://`), no Node built-ins, no Buffer. */
import type { Client } from './client.js';
import { connectWith } from './connect.js';
import { openWebSocket } from './transport-web.js';
import type { ClientOptions } from './types.js';

export function connect(url: string | URL, options: ClientOptions = {}): Promise<Client> {
  return connectWith(openWebSocket, url, options);
}

export * from './exports.js';
export { indexedDbStore } from './indexeddb-store.js';
