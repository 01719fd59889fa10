/**
 * Shared helpers of the spec tests (test/spec/): raw clients that are tracked so a failed test
 * cannot leave one holding a broker open, subscription options, broker events. Each test file
 * runs in its own process, so the tracking state here is per file.
 */
import assert from 'node:assert/strict';
import type { Broker, BrokerEvents } from '../../src/broker.js';
import type { ProtocolVersion, QoS } from '../../src/protocol/constants.js';
import type { ConnackPacket, ConnectPacket, Packet, Properties, PublishPacket, Subscription, Will } from '../../src/protocol/packets.js';
import { startBroker, type TestBroker } from './broker.js';
import { RawClient, WAIT_MS } from './raw-client.js';

const open: RawClient[] = [];
let seq = 0;

/** Tracks a client opened elsewhere, so `destroyAll` ends it. */
export function track(c: RawClient): RawClient {
  open.push(c);
  return c;
}

/** Connects with a unique client id (`prefix-version-n`) and checks the CONNACK accepted it. */
export async function connectFull(
  port: number,
  version: ProtocolVersion,
  prefix: string,
  extra: Partial<ConnectPacket> = {},
): Promise<{ client: RawClient; connack: ConnackPacket }> {
  const r = await RawClient.connect(port, { protocolVersion: version, clientId: `${prefix}-${version}-${++seq}`, ...extra });
  track(r.client);
  assert.equal(r.connack.reasonCode, 0, `CONNACK for ${prefix}`);
  return r;
}

export async function connect(port: number, version: ProtocolVersion, prefix: string, extra: Partial<ConnectPacket> = {}): Promise<RawClient> {
  return (await connectFull(port, version, prefix, extra)).client;
}

/** Ends every tracked client that is still open. */
export function destroyAll(): void {
  for (const c of open.splice(0)) if (!c.isClosed) c.destroy();
}

/** Runs `fn` against a broker of its own, then ends its clients and the broker. */
export async function withBroker(options: Parameters<typeof startBroker>[0], fn: (tb: TestBroker) => Promise<void>): Promise<void> {
  const tb = await startBroker(options);
  try {
    await fn(tb);
  } finally {
    destroyAll();
    await tb.close();
  }
}

/** A subscription with default options. */
export function so(topicFilter: string, qos: QoS, o: Partial<Subscription> = {}): Subscription {
  return { topicFilter, qos, noLocal: false, retainAsPublished: false, retainHandling: 0, ...o };
}

export function publishesIn(packets: Packet[]): PublishPacket[] {
  return packets.filter((p): p is PublishPacket => p.type === 'publish');
}

/** Resolves with the arguments of the first `event` that `match` accepts. */
export function brokerEvent<K extends keyof BrokerEvents>(
  broker: Broker,
  event: K,
  match: (...args: BrokerEvents[K]) => boolean = () => true,
  timeoutMs = WAIT_MS,
): Promise<BrokerEvents[K]> {
  return new Promise((resolve, reject) => {
    const listener = (...args: BrokerEvents[K]): void => {
      if (!match(...args)) return;
      clearTimeout(timer);
      broker.off(event, listener as never);
      resolve(args);
    };
    const timer = setTimeout(() => {
      broker.off(event, listener as never);
      reject(new Error(`no matching ${String(event)} event within ${timeoutMs} ms`));
    }, timeoutMs);
    broker.on(event, listener as never);
  });
}

/** Subscribes to one filter and checks the broker granted the requested QoS. */
export async function subscribe(c: RawClient, topicFilter: string, qos: QoS = 0, packetId = 1): Promise<void> {
  c.send({ type: 'subscribe', packetId, subscriptions: [so(topicFilter, qos)] });
  const ack = await c.next('suback');
  assert.deepEqual(ack.reasonCodes, [qos]);
}

/** CONNECT fields asking for a session that outlives the connection. */
export function persistent(v: ProtocolVersion, expiry = 300): Partial<ConnectPacket> {
  return v === 5 ? { clean: false, properties: { sessionExpiryInterval: expiry } } : { clean: false };
}

export function will(topic: string, payload: string, qos: QoS = 0, retain = false, properties?: Properties): Will {
  const w: Will = { topic, payload: Buffer.from(payload), qos, retain };
  if (properties !== undefined) w.properties = properties;
  return w;
}
