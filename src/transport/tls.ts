/**
 * MQTT over TLS (`tls`, conventionally port 8883). Each verified TLS connection becomes a Duplex
 * for the broker core; with mutual TLS the verified client certificate's identity travels in
 * ConnectionInfo.certificate. Certificates are reloaded without a restart (file watch or
 * `reload()`); connections already open keep the certificate they were made with.
 */
import type { AddressInfo, Socket } from 'node:net';
import { createServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import { TlsContextSource, certificateIdentity, type TlsCertificateSummary, type TlsFileError, type TlsFiles } from './tls-context.js';
import type { BoundAddress, ConnectionHandler, ConnectionInfo, Listener, TransportKind } from './types.js';

/** Options shared by the `tls` and `wss` listeners. */
export interface TlsServingOptions {
  /** PEM files and TLS policy, or a TlsContextSource shared with other listeners (its owner watches it). */
  tls: TlsFiles | TlsContextSource;
  /** A TLS handshake failed (bad or missing client certificate, plain TCP on a TLS port, timeout…): once per connection. */
  onTlsError?: (err: Error, remoteAddress: string | undefined) => void;
  /** New certificate files were installed. */
  onReload?: (certificate: TlsCertificateSummary) => void;
  /** New certificate files were unusable; the previous ones stay in use. */
  onReloadError?: (err: TlsFileError) => void;
  /** Watch the files and reload on change while listening (default true; ignored for a given TlsContextSource). */
  watch?: boolean;
  /** Abort handshakes that take longer (default 10 000 ms). */
  handshakeTimeoutMs?: number;
}

export interface TlsListenerOptions extends TlsServingOptions {
  host: string;
  port: number;
  name?: string;
}

export interface TlsListener extends Listener {
  /** Rereads the certificate files now (e.g. on SIGHUP); false (old files kept) when they are bad. */
  reload(): boolean;
  /** The TLS material this listener serves. */
  readonly tlsSource: TlsContextSource;
}

/**
 * The TLS side of a `tls`/`wss` server: the context source, handshake-error reporting and
 * reload wiring. `attach` is called once the server exists, returns the detacher.
 */
export interface TlsServing {
  readonly source: TlsContextSource;
  attach(server: TlsServer): () => void;
  /** The ConnectionInfo of an accepted, handshaken TLS socket. */
  info(transport: TransportKind, listener: string, socket: TLSSocket): ConnectionInfo;
  handshakeTimeout: number;
}

export function tlsServing(options: TlsServingOptions): TlsServing {
  const owned = !(options.tls instanceof TlsContextSource);
  // Throws a TlsFileError naming the file when the files are unusable.
  const source = options.tls instanceof TlsContextSource ? options.tls : new TlsContextSource(options.tls);
  return {
    source,
    handshakeTimeout: options.handshakeTimeoutMs ?? 10_000,
    attach(server) {
      const reported = new WeakSet<TLSSocket>();
      // A TLSSocket refused for its certificate is destroyed before 'tlsClientError' and no longer
      // knows its peer: remember the address of each raw connection while it is alive.
      const peers = new WeakMap<object, string | undefined>();
      server.on('connection', (raw: Socket) => peers.set(raw, raw.remoteAddress));
      server.on('tlsClientError', (err, socket) => {
        if (reported.has(socket)) return;
        reported.add(socket);
        options.onTlsError?.(handshakeError(err, socket), socket.remoteAddress ?? peers.get(rawSocketOf(socket)));
      });
      const offReload = source.onReload((summary) => {
        // New handshakes use the new files; open connections keep theirs.
        server.setSecureContext(source.serverOptions());
        options.onReload?.(summary);
      });
      const offError = source.onError((err) => options.onReloadError?.(err));
      const watching = owned && (options.watch ?? true);
      if (watching) source.watch();
      return () => {
        offReload();
        offError();
        if (watching) source.unwatch();
      };
    },
    info(transport, listener, socket) {
      const info: ConnectionInfo = {
        transport,
        listener,
        remoteAddress: socket.remoteAddress,
        remotePort: socket.remotePort,
      };
      const certificate = certificateIdentity(socket);
      if (certificate !== undefined) info.certificate = certificate;
      return info;
    },
  };
}

/**
 * Node refuses an unverified client certificate by closing the socket, so the error it reports is
 * a bare 'socket hang up'; the reason is in `authorizationError` (an OpenSSL verify code).
 */
function handshakeError(err: Error, socket: TLSSocket): Error {
  const reason: unknown = socket.authorizationError;
  if (reason === null || reason === undefined || String(reason) === '') return err;
  const e: NodeJS.ErrnoException = new Error(`client certificate refused: ${String(reason)}`, { cause: err });
  e.code = String(reason);
  return e;
}

/** The net.Socket a server-side TLSSocket wraps (Node keeps it as `_parent`; not public API). */
function rawSocketOf(socket: TLSSocket): object {
  const parent = (socket as unknown as { _parent?: unknown })._parent;
  return typeof parent === 'object' && parent !== null ? parent : socket;
}

export function createTlsListener(options: TlsListenerOptions, onConnection: ConnectionHandler): TlsListener {
  const name = options.name ?? `tls:${options.host}:${options.port}`;
  const serving = tlsServing(options);
  let server: TlsServer | undefined;
  let detach: (() => void) | undefined;
  return {
    name,
    transport: 'tls',
    tlsSource: serving.source,
    reload: () => serving.source.reload(),
    listen() {
      return new Promise<BoundAddress>((resolve, reject) => {
        const srv = createServer({ ...serving.source.serverOptions(), handshakeTimeout: serving.handshakeTimeout, noDelay: true }, (socket: TLSSocket) =>
          onConnection(socket, serving.info('tls', name, socket)),
        );
        server = srv;
        detach = serving.attach(srv);
        const failed = (err: Error): void => {
          detach?.();
          detach = undefined;
          reject(err);
        };
        srv.once('error', failed);
        srv.listen({ host: options.host, port: options.port }, () => {
          srv.off('error', failed);
          const addr = srv.address() as AddressInfo;
          resolve({ transport: 'tls', host: addr.address, port: addr.port });
        });
      });
    },
    close() {
      detach?.();
      detach = undefined;
      return new Promise<void>((resolve) => {
        if (!server || !server.listening) return resolve();
        server.close(() => resolve());
      });
    },
  };
}
