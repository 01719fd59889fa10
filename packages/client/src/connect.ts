/** `connect(url, options)` for any transport: resolves with a connected Client at the first CONNACK 0. */
import { Client } from './client.js';
import { ClientError } from './errors.js';
import type { OpenTransport } from './transport.js';
import type { ClientOptions } from './types.js';

export function connectWith(open: OpenTransport, url: string | URL, options: ClientOptions = {}): Promise<Client> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return Promise.reject(new ClientError('INVALID', `not a URL: ${String(url)}`));
  }
  const opts: ClientOptions = { ...options };
  if (opts.username === undefined && u.username !== '') opts.username = decodeURIComponent(u.username);
  if (opts.password === undefined && u.password !== '') opts.password = decodeURIComponent(u.password);
  const client = new Client(u, opts, open);
  const restored = opts.store === undefined ? Promise.resolve() : opts.store.load().then((s) => client.restore(s));
  return restored
    .then(() => client.connectOnce())
    .then(
      () => client,
      async (e: unknown) => {
        await client.close();
        throw e;
      },
    );
}
