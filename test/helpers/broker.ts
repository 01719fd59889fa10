/**
 * A Courier broker for tests: the library on 127.0.0.1, free ports, TCP and WebSocket, in-memory
 * store, silent unless COURIER_TEST_LOG=1.
 */
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
