/**
 * The broker's listeners: which ones its options ask for, each created with a unique name and
 * its admission policy, and the warnings at open about those reachable from other machines.
 */
import type { Duplex } from 'node:stream';
import type { ListenerPolicy } from '../core/connection.js';
import { isLoopbackHost } from '../security/index.js';
import type { BrokerOptions, ListenerOptions, Logger } from '../options.js';
import { createTcpListener } from '../transport/tcp.js';
import type { ConnectionInfo, Listener } from '../transport/types.js';
import { createWsListener } from '../transport/ws.js';
import { createTlsListener, type TlsListener } from '../transport/tls.js';
import { createWssListener } from '../transport/wss.js';
import type { TlsCertificateSummary } from '../transport/tls-context.js';

/** A listener's admission policy: loopback or not, and its own connection limit (0: none). */
export type ListenerAdmission = ListenerPolicy & { maxConnections: number };

export interface BrokerListeners {
  readonly listeners: Listener[];
  /** The TLS and WSS ones among them (their certificates are reloaded on demand). */
  readonly tlsListeners: TlsListener[];
  /** Policies by listener name. */
  readonly policies: Map<string, ListenerAdmission>;
}

/** Creates the listeners of `options` (not bound yet); each hands its connections to `onConnection`. */
export function createListeners(
  options: BrokerOptions,
  maxPacketSize: number,
  log: Logger,
  onConnection: (stream: Duplex, info: ConnectionInfo) => void,
): BrokerListeners {
  const policies = new Map<string, ListenerAdmission>();
  const tlsListeners: TlsListener[] = [];
  const listeners = listenerSpecs(options).map((spec) => {
    const host = spec.host ?? '127.0.0.1';
    let listener: Listener;
    // Unique names (two port-0 listeners of one type and host would otherwise share one).
    let name = `${spec.type}:${host}:${spec.port}${spec.type === 'ws' || spec.type === 'wss' ? (spec.path ?? '/mqtt') : ''}`;
    if (policies.has(name)) name = `${name}#${policies.size}`;
    if (spec.type === 'ws') {
      listener = createWsListener({ host, port: spec.port, path: spec.path ?? '/mqtt', name, maxPayload: maxPacketSize + 8 }, onConnection);
    } else if (spec.type === 'tls' || spec.type === 'wss') {
      const files = spec.tls ?? options.tls;
      if (files === undefined) throw new Error(`a ${spec.type} listener on port ${spec.port} needs tls.cert and tls.key`);
      const serving = {
        tls: files,
        onTlsError: (err: Error, remote: string | undefined) => log.debug({ err: err.message, remote }, 'TLS handshake failed'),
        onReload: (cert: TlsCertificateSummary) => log.info({ certificate: cert }, 'TLS certificate reloaded'),
        onReloadError: (err: Error) => log.error({ err }, 'TLS certificate not reloaded; keeping the previous one'),
      };
      const l =
        spec.type === 'tls'
          ? createTlsListener({ host, port: spec.port, name, ...serving }, onConnection)
          : createWssListener({ host, port: spec.port, path: spec.path ?? '/mqtt', name, maxPayload: maxPacketSize + 8, ...serving }, onConnection);
      tlsListeners.push(l);
      listener = l;
    } else {
      listener = createTcpListener({ host, port: spec.port, name }, onConnection);
    }
    policies.set(listener.name, { name: listener.name, loopback: isLoopbackHost(host), maxConnections: spec.maxConnections ?? 0 });
    return listener;
  });
  return { listeners, tlsListeners, policies };
}

function listenerSpecs(o: BrokerOptions): ListenerOptions[] {
  if (o.listeners !== undefined) return o.listeners;
  const host = o.host ?? '127.0.0.1';
  const out: ListenerOptions[] = [];
  const port = o.port === undefined ? 1883 : o.port;
  const wsPort = o.wsPort === undefined ? 8083 : o.wsPort;
  if (port !== null) out.push({ type: 'tcp', host, port });
  if (wsPort !== null) out.push({ type: 'ws', host, port: wsPort, path: o.wsPath ?? '/mqtt' });
  if (o.tls !== undefined) {
    const tlsPort = o.tlsPort === undefined ? 8883 : o.tlsPort;
    const wssPort = o.wssPort === undefined ? 8084 : o.wssPort;
    if (tlsPort !== null) out.push({ type: 'tls', host, port: tlsPort });
    if (wssPort !== null) out.push({ type: 'wss', host, port: wssPort, path: o.wsPath ?? '/mqtt' });
  }
  return out;
}

/** Warns of each listener reachable from other machines that accepts anonymous clients, or refuses them with no authentication configured. */
export function warnExposedListeners(policies: Iterable<ListenerPolicy>, o: BrokerOptions, log: Logger): void {
  const sec = o.security ?? {};
  const canAuthenticate =
    o.authenticate !== undefined || sec.passwordFile !== undefined || sec.jwt !== undefined || sec.certificateAuth === true || o.enhancedAuth !== undefined;
  for (const p of policies) {
    if (p.loopback) continue;
    if (sec.allowAnonymous === true) {
      log.warn({ listener: p.name }, 'anonymous clients are allowed on a listener reachable from other machines (security.allowAnonymous: true)');
    } else if (!canAuthenticate) {
      log.warn(
        { listener: p.name },
        'this listener is reachable from other machines and refuses anonymous clients, but no authentication is configured: set security.passwordFile (or jwt, certificateAuth), or security.allowAnonymous',
      );
    }
  }
}
