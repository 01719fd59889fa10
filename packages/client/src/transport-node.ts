/** Node transports: TCP (mqtt:, tcp:), TLS (mqtts:, ssl:, tls:), WebSocket (ws:, wss: through `ws`). */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, DEFAULT_CIPHERS, type ConnectionOptions } from 'node:tls';
import WebSocket from 'ws';
import { ConnectionError } from './errors.js';
import { socksConnect } from './socks.js';
import { DEFAULT_PORTS, type OpenTransport, type Transport, type TransportHandlers } from './transport.js';
import type { ClientOptions } from './types.js';

const one = (v: string | Uint8Array): string | Buffer => (typeof v === 'string' ? v : Buffer.from(v));
const bufferOf = <T extends string | Uint8Array | ReadonlyArray<string | Uint8Array> | undefined>(
  v: T,
): string | Buffer | Array<string | Buffer> | undefined =>
  v === undefined ? undefined : Array.isArray(v) ? (v as ReadonlyArray<string | Uint8Array>).map(one) : one(v as string | Uint8Array);

export const openNodeTransport: OpenTransport = (url, options, handlers, signal) => {
  if (url.protocol === 'ws:' || url.protocol === 'wss:') return openWs(url, options, handlers, signal);
  return openSocket(url, options, handlers, signal);
};

/**
 * --ciphers, and TLS-PSK: the key through `pskCallback`, no certificate to check, and (unless
 * ciphers are given) Node's default list with the PSK suites it leaves out allowed (TLS 1.2; TLS
 * 1.3 suites need no change).
 */
function pskOptions(t: NonNullable<ClientOptions['tls']>): ConnectionOptions {
  const out: ConnectionOptions = {};
  if (t.ciphers !== undefined) out.ciphers = t.ciphers;
  const psk = t.psk;
  if (psk !== undefined) {
    out.ciphers ??= DEFAULT_CIPHERS.replace('!PSK', 'PSK');
    out.pskCallback = () => ({ psk: Buffer.from(psk.key), identity: psk.identity });
    out.checkServerIdentity = () => undefined;
  }
  return out;
}

function hostOf(url: URL): string {
  const h = url.hostname;
  return h.startsWith('[') ? h.slice(1, -1) : h || 'localhost';
}

async function openSocket(url: URL, options: ClientOptions, handlers: TransportHandlers, signal: AbortSignal): Promise<Transport> {
  // unix:///path/to/socket: a Unix domain socket (mosquitto's --unix).
  const unix = url.protocol === 'unix:' ? decodeURIComponent(url.pathname) : undefined;
  const port = unix !== undefined ? 0 : url.port === '' ? DEFAULT_PORTS[url.protocol] : Number(url.port);
  if (port === undefined) throw new ConnectionError(`unsupported URL scheme ${url.protocol}`);
  const secure = url.protocol === 'mqtts:' || url.protocol === 'ssl:' || url.protocol === 'tls:';
  const host = hostOf(url);
  // Through a SOCKS5 proxy: the tunnel first, then MQTT (or TLS) over it.
  const tunnel = options.proxy === undefined || unix !== undefined ? undefined : await socksConnect(new URL(options.proxy), host, port, signal);
  return new Promise<Transport>((resolve, reject) => {
    const t = options.tls ?? {};
    const socket: Socket = secure
      ? tlsConnect({
          ...(tunnel === undefined ? {} : { socket: tunnel }),
          host,
          port,
          ca: bufferOf(t.ca),
          cert: bufferOf(t.cert),
          key: bufferOf(t.key),
          rejectUnauthorized: t.rejectUnauthorized ?? true,
          servername: t.servername ?? (/^[\d.:]+$/.test(host) ? undefined : host),
          ...(t.version === undefined ? {} : { minVersion: t.version, maxVersion: t.version }),
          ...(options.bindAddress === undefined ? {} : { localAddress: options.bindAddress }),
          ...pskOptions(t),
        })
      : (tunnel ??
        (unix !== undefined
          ? netConnect({ path: unix })
          : netConnect({ host, port, ...(options.bindAddress === undefined ? {} : { localAddress: options.bindAddress }) })));
    if (unix === undefined) socket.setNoDelay(true);
    let open = false;
    let closed = false;
    const onAbort = () => socket.destroy(new ConnectionError('connection attempt aborted'));
    signal.addEventListener('abort', onAbort, { once: true });
    let failure: Error | undefined;
    socket.on('error', (err) => {
      failure ??= err;
    });
    const opened = (): void => {
      open = true;
      signal.removeEventListener('abort', onAbort);
      resolve({
        write: (chunks) => {
          if (socket.destroyed) return;
          // One write per turn: small packets joined (cheaper than a writev of many small pieces); large ones corked, not copied.
          if (chunks.length === 1) socket.write(chunks[0]!);
          else if (chunks.length * 256 > 65536 || chunks.some((c) => c.length > 4096)) {
            socket.cork();
            for (const c of chunks) socket.write(c);
            socket.uncork();
          } else socket.write(Buffer.concat(chunks));
        },
        end: () => socket.end(),
        destroy: () => socket.destroy(),
        bufferedAmount: () => socket.writableLength,
      });
    };
    if (tunnel !== undefined && !secure)
      opened(); // the tunnel is up already
    else socket.once(secure ? 'secureConnect' : 'connect', opened);
    socket.on('data', (chunk: Buffer) => handlers.data(chunk));
    socket.once('close', () => {
      if (closed) return;
      closed = true;
      signal.removeEventListener('abort', onAbort);
      if (open) handlers.close(failure);
      else reject(new ConnectionError(`cannot connect to ${unix ?? url.host}: ${failure?.message ?? 'closed'}`, failure));
    });
  });
}

function openWs(url: URL, options: ClientOptions, handlers: TransportHandlers, signal: AbortSignal): Promise<Transport> {
  return new Promise<Transport>((resolve, reject) => {
    const t = options.tls ?? {};
    const ws = new WebSocket(url.href, options.wsProtocols ?? ['mqtt'], {
      ca: bufferOf(t.ca),
      cert: bufferOf(t.cert),
      key: bufferOf(t.key),
      rejectUnauthorized: t.rejectUnauthorized ?? true,
      perMessageDeflate: false,
    });
    let open = false;
    let closed = false;
    let failure: Error | undefined;
    const onAbort = () => ws.terminate();
    signal.addEventListener('abort', onAbort, { once: true });
    ws.on('error', (err) => {
      failure ??= err;
    });
    ws.on('open', () => {
      open = true;
      signal.removeEventListener('abort', onAbort);
      resolve({
        write: (chunks) => {
          if (ws.readyState !== WebSocket.OPEN) return;
          ws.send(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
        },
        end: () => ws.close(1000),
        destroy: () => ws.terminate(),
        bufferedAmount: () => ws.bufferedAmount,
      });
    });
    ws.on('message', (data: Buffer | ArrayBuffer | Buffer[]) => {
      if (Buffer.isBuffer(data)) handlers.data(data);
      else if (Array.isArray(data)) for (const d of data) handlers.data(d);
      else handlers.data(new Uint8Array(data));
    });
    ws.on('close', () => {
      if (closed) return;
      closed = true;
      signal.removeEventListener('abort', onAbort);
      if (open) handlers.close(failure);
      else reject(new ConnectionError(`cannot open WebSocket ${url.href}: ${signal.aborted ? 'aborted' : (failure?.message ?? 'closed')}`, failure));
    });
  });
}
