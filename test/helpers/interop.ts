/**
 * The broker under test for the interop suites (test/integration/): Courier through the library
 * on 127.0.0.1, port 0, TCP and WebSocket.
 *
 * COURIER_INTEROP_BROKER=mosquitto runs the same suites against a spawned Mosquitto instead: a
 * check of the tests themselves (a test that fails against the reference broker is wrong).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type IClientOptions, type MqttClient, type IPublishPacket } from 'mqtt';
import type { BrokerOptions } from '../../src/options.js';
import { Peers, freePort } from './peers.js';

export interface Subject {
  readonly name: string;
  readonly port: number;
  readonly wsPort: number;
  readonly tcpUrl: string;
  readonly wsUrl: string;
  close(): Promise<void>;
}

export const INTEROP_BROKER = process.env.COURIER_INTEROP_BROKER === 'mosquitto' ? 'mosquitto' : 'courier';

export async function startSubject(options: Partial<BrokerOptions> = {}): Promise<Subject> {
  if (INTEROP_BROKER === 'mosquitto') return startMosquitto();
  // Imported on demand so the Mosquitto mode runs without the core.
  const { startBroker } = await import('./broker.js');
  const b = await startBroker(options);
  return {
    name: 'courier',
    port: b.port,
    wsPort: b.wsPort,
    tcpUrl: `mqtt://127.0.0.1:${b.port}`,
    wsUrl: `ws://127.0.0.1:${b.wsPort}/mqtt`,
    close: () => b.close(),
  };
}

/** Mosquitto on free loopback ports, TCP and WebSocket, anonymous; `extra` config lines appended. */
export async function startMosquitto(extra: readonly string[] = []): Promise<Subject> {
  const dir = mkdtempSync(join(tmpdir(), 'courier-mosquitto-'));
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
  const proc = peers.spawn('/usr/sbin/mosquitto', ['-c', conf, '-v']);
  await proc.waitFor(/Opening websockets listen socket on port \d+/, { stream: 'stderr' });
  return {
    name: 'mosquitto',
    port,
    wsPort,
    tcpUrl: `mqtt://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${wsPort}/mqtt`,
    close: async () => {
      await peers.killAll();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

let counter = 0;
/** A unique client id / topic prefix per call, so tests sharing a broker never see each other. */
export function unique(prefix: string): string {
  counter += 1;
  return `${prefix}-${process.pid}-${counter}`;
}

export interface Received {
  topic: string;
  payload: string;
  packet: IPublishPacket;
}

/**
 * Collects a client's messages; `next()` resolves with the next one (already received or yet to
 * come), rejecting after `timeoutMs` so a missing message fails the test instead of hanging it.
 */
export class Inbox {
  private readonly queue: Received[] = [];
  private readonly waiters: Array<(m: Received) => void> = [];
  readonly all: Received[] = [];

  constructor(client: MqttClient) {
    client.on('message', (topic, payload, packet) => {
      const m = { topic, payload: payload.toString('utf8'), packet };
      this.all.push(m);
      const w = this.waiters.shift();
      if (w) w(m);
      else this.queue.push(m);
    });
  }

  next(timeoutMs = 5000): Promise<Received> {
    const ready = this.queue.shift();
    if (ready) return Promise.resolve(ready);
    return new Promise<Received>((resolve, reject) => {
      const waiter = (m: Received) => {
        clearTimeout(timer);
        resolve(m);
      };
      const timer = setTimeout(() => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(new Error(`no message within ${timeoutMs} ms (received so far: ${JSON.stringify(this.all.map((m) => [m.topic, m.payload]))})`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  async take(n: number, timeoutMs = 5000): Promise<Received[]> {
    const out: Received[] = [];
    for (let i = 0; i < n; i++) out.push(await this.next(timeoutMs));
    return out;
  }
}

/** Connects an MQTT.js client; resolves once CONNACK arrived. Never reconnects on its own. */
export async function connectClient(url: string, options: IClientOptions = {}): Promise<MqttClient> {
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 5000, ...options });
  client.on('error', () => {});
  return client;
}

/** Ends clients, forcibly if they do not finish within a second (after() hooks must not hang). */
export async function endAll(clients: Iterable<MqttClient | undefined>): Promise<void> {
  await Promise.all(
    [...clients].map(async (c) => {
      if (!c) return;
      try {
        await Promise.race([c.endAsync(), new Promise((_, reject) => setTimeout(reject, 1000).unref())]);
      } catch {
        c.end(true);
      }
    }),
  );
}
