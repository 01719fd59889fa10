/**
 * The brokers the client suites run against: Courier in-process, and Mosquitto (Debian's, a
 * broker nobody here wrote) spawned on free loopback ports, TCP and WebSocket. Mosquitto is an
 * optional peer: skipped when missing unless COURIER_REQUIRE_PEERS=1 (test/helpers/peers.ts).
 */
import { startBroker } from '../helpers/broker.js';
import { startMosquitto as startInteropMosquitto } from '../helpers/interop.js';
import { missingExecutable, peerGate } from '../helpers/peers.js';
import type { BrokerOptions } from '../../src/options.js';

export const MOSQUITTO = '/usr/sbin/mosquitto';

export interface TestServer {
  readonly name: 'courier' | 'mosquitto';
  readonly port: number;
  readonly wsPort: number;
  url(transport: 'tcp' | 'ws'): string;
  close(): Promise<void>;
}

export async function startCourier(options: Partial<BrokerOptions> = {}): Promise<TestServer> {
  const b = await startBroker(options);
  return {
    name: 'courier',
    port: b.port,
    wsPort: b.wsPort,
    url: (t) => (t === 'tcp' ? `mqtt://127.0.0.1:${b.port}` : `ws://127.0.0.1:${b.wsPort}/mqtt`),
    close: () => b.close(),
  };
}

export const mosquittoGate = (): { skip: string | false } => peerGate('mosquitto', missingExecutable(MOSQUITTO));

export async function startMosquitto(extra: string[] = []): Promise<TestServer> {
  const m = await startInteropMosquitto(extra);
  return { name: 'mosquitto', port: m.port, wsPort: m.wsPort, url: (t) => (t === 'tcp' ? m.tcpUrl : m.wsUrl), close: () => m.close() };
}

let counter = 0;
export function unique(prefix: string): string {
  counter += 1;
  return `${prefix}-${process.pid}-${counter}`;
}
