/**
 * The brokers the client suites run against: Courier in-process, and Mosquitto (Debian's, a
 * broker nobody here wrote) spawned on free loopback ports, TCP and WebSocket. Mosquitto is an
 * optional peer: skipped when missing unless COURIER_REQUIRE_PEERS=1 (test/helpers/peers.ts).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBroker } from '../helpers/broker.js';
import { Peers, freePort, missingExecutable, peerGate } from '../helpers/peers.js';
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
  const dir = mkdtempSync(join(tmpdir(), 'courier-client-mosquitto-'));
  const port = await freePort();
  const wsPort = await freePort();
  const conf = join(dir, 'mosquitto.conf');
  writeFileSync(
    conf,
    [
      'per_listener_settings false',
      'allow_anonymous true',
      `listener ${port} 127.0.0.1`,
      `listener ${wsPort} 127.0.0.1`,
      'protocol websockets',
      ...extra,
      '',
    ].join('\n'),
  );
  const peers = new Peers();
  const proc = peers.spawn(MOSQUITTO, ['-c', conf, '-v']);
  await proc.waitFor(/Opening websockets listen socket on port \d+/, { stream: 'stderr' });
  return {
    name: 'mosquitto',
    port,
    wsPort,
    url: (t) => (t === 'tcp' ? `mqtt://127.0.0.1:${port}` : `ws://127.0.0.1:${wsPort}/mqtt`),
    close: async () => {
      await peers.killAll();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

let counter = 0;
export function unique(prefix: string): string {
  counter += 1;
  return `${prefix}-${process.pid}-${counter}`;
}
