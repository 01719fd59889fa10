/**
 * A Courier broker for tests: the library on 127.0.0.1, free ports, TCP and WebSocket, in-memory
 * store, silent unless COURIER_TEST_LOG=1.
 */
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import pino from 'pino';
import { createBroker, type Broker, type BrokerOptions } from '../../src/index.js';

export interface TestBroker {
  broker: Broker;
  port: number;
  wsPort: number;
  close(): Promise<void>;
}

export async function startBroker(options: Partial<BrokerOptions> = {}): Promise<TestBroker> {
  const logger = process.env.COURIER_TEST_LOG === '1' ? pino({ level: 'debug' }, pino.destination(2)) : undefined;
  const broker = await createBroker({
    listeners: [
      { type: 'tcp', host: '127.0.0.1', port: 0 },
      { type: 'ws', host: '127.0.0.1', port: 0, path: '/mqtt' },
    ],
    persistence: { engine: 'memory' },
    ...(logger === undefined ? {} : { logger }),
    ...options,
  });
  const addrs = await broker.listen();
  const tcp = addrs.find((a) => a.transport === 'tcp');
  const ws = addrs.find((a) => a.transport === 'ws');
  return { broker, port: tcp?.port ?? 0, wsPort: ws?.port ?? 0, close: () => broker.close() };
}

export interface OpenedClient {
  c: MqttClient;
  /** The CONNACK's Session Present. */
  present: boolean;
}

/**
 * Connects an MQTT.js client to 127.0.0.1:`port` without reconnecting (`setup` runs before the
 * CONNACK, e.g. to attach a message handler); resolves with the client and its CONNACK's Session
 * Present.
 */
export function openClient(port: number, opts: IClientOptions, setup?: (c: MqttClient) => void): Promise<OpenedClient> {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0, connectTimeout: 10_000, ...opts });
    setup?.(c);
    c.once('connect', (ack) => resolve({ c, present: ack.sessionPresent }));
    c.once('error', (err) => {
      c.end(true);
      reject(err);
    });
  });
}
