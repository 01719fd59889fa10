/**
 * Abuse limits (`limits` in the broker options, `maxConnections` per listener), each over a live
 * broker for MQTT 3.1.1 and 5.0: the breach is answered with its code (CONNACK, SUBACK or a
 * server DISCONNECT), counted in `broker.stats()`, ends or refuses only the offending client, and
 * a bystander connected before the breach still completes a QoS 1 round trip after it.
 *
 * Byte-exact clients (test/helpers/raw-client.ts) show the exact codes and that the connection
 * is closed; MQTT.js covers the WebSocket listener and the live subscriber of the queue budget.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import type { MqttClient } from 'mqtt';
import type { ProtocolVersion } from '../../src/protocol/constants.js';
import { encode } from '../../src/protocol/encoder.js';
import type { ConnectPacket, Packet, PublishPacket, SubscribePacket } from '../../src/protocol/packets.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { externalFront, type ExternalFront } from '../helpers/external.js';
import { Inbox, connectClient, endAll } from '../helpers/interop.js';
import { RawClient } from '../helpers/raw-client.js';

const VERSIONS = [4, 5] as const;
const NAME: Record<ProtocolVersion, string> = { 3: 'MQTT 3.1', 4: 'MQTT 3.1.1', 5: 'MQTT 5.0' };
/** [MQTT-3.2.2-5] (3.1.1) / [MQTT-3.2.2-7] (5.0): a refusing CONNACK is followed by closing the connection. */
const REFUSED_CLOSES = { 4: '[MQTT-3.2.2-5]', 5: '[MQTT-3.2.2-7]' } as const;

const open: RawClient[] = [];
const mqttClients: MqttClient[] = [];
let seq = 0;

afterEach(async () => {
  for (const c of open.splice(0)) if (!c.isClosed) c.destroy();
  await endAll(mqttClients.splice(0));
});

/** A raw CONNECT attempt; the client is closed after the test. */
async function attempt(port: number, version: ProtocolVersion, extra: Partial<ConnectPacket> = {}): Promise<{ client: RawClient; code: number }> {
  const client = await RawClient.open(port, version);
  open.push(client);
  client.socket.setNoDelay(true);
  const connack = await client.handshake({ clientId: `lim-${version}-${++seq}`, ...extra });
  return { client, code: connack.reasonCode };
}

/** A connected raw client (CONNACK 0 asserted). */
async function connected(port: number, version: ProtocolVersion, extra: Partial<ConnectPacket> = {}): Promise<RawClient> {
  const { client, code } = await attempt(port, version, extra);
  assert.equal(code, 0, 'CONNACK');
  return client;
}

/** The CONNECT is refused with `code`, and the broker then closes the connection. */
async function refused(port: number, version: ProtocolVersion, code: number): Promise<void> {
  const r = await attempt(port, version);
  assert.equal(r.code, code, `CONNACK code for ${NAME[version]}`);
  await r.client.closed();
}

/** The broker ends `c`: 5.0 gets DISCONNECT with `code` first, 3.1.1 just the close [MQTT-4.13.1-1]. */
async function disconnectedWith(c: RawClient, code: number): Promise<void> {
  for (;;) {
    const p = await c.next();
    if (p.type === 'disconnect') {
      assert.equal(c.version, 5, '3.1.1 has no server DISCONNECT');
      assert.equal(p.reasonCode, code, `DISCONNECT reason 0x${(p.reasonCode ?? 0).toString(16)}`);
      break;
    }
    // Acknowledgements of what came before the breach may precede the end.
    assert.ok(p.type === 'puback' || p.type === 'publish', `unexpected ${p.type}`);
  }
  await c.closed();
}

async function closedWithout(c: RawClient): Promise<void> {
  await c.closed();
  assert.ok(
    c.pending.every((p) => p.type === 'puback' || p.type === 'publish'),
    JSON.stringify(c.pending.map((p) => p.type)),
  );
}

function publish(topic: string, payload: Buffer | string, qos: 0 | 1 = 0, packetId?: number): PublishPacket {
  const p: PublishPacket = { type: 'publish', topic, payload: Buffer.from(payload), qos, retain: false, dup: false };
  if (qos > 0) p.packetId = packetId ?? 1;
  return p;
}

function subscribe(packetId: number, filters: string[], qos: 0 | 1 = 1): SubscribePacket {
  return {
    type: 'subscribe',
    packetId,
    subscriptions: filters.map((topicFilter) => ({ topicFilter, qos, noLocal: false, retainAsPublished: false, retainHandling: 0 as const })),
  };
}

/** Several packets in one write, so they reach the broker together. */
function burst(c: RawClient, packets: Packet[]): void {
  c.sendRaw(Buffer.concat(packets.map((p) => encode(p, c.version))));
}

/** A client connected before the breach: it publishes QoS 1 to itself and must get PUBACK and the message. */
class Bystander {
  #rounds = 0;
  #pid = 0;
  readonly client: RawClient;
  readonly topic: string;

  private constructor(client: RawClient, topic: string) {
    this.client = client;
    this.topic = topic;
  }

  static async start(port: number, version: ProtocolVersion = 5): Promise<Bystander> {
    const r = await RawClient.connect(port, { protocolVersion: version, clientId: `bystander-${++seq}` });
    assert.equal(r.connack.reasonCode, 0);
    r.client.socket.setNoDelay(true);
    const topic = `bystander/${seq}`;
    r.client.send(subscribe(1, [topic]));
    assert.deepEqual((await r.client.next('suback')).reasonCodes, [1]);
    return new Bystander(r.client, topic);
  }

  async roundTrip(): Promise<void> {
    const c = this.client;
    assert.equal(c.isClosed, false, 'the bystander is still connected');
    const tag = `round ${++this.#rounds}`;
    const packetId = (this.#pid = (this.#pid % 0xffff) + 1);
    c.send(publish(this.topic, tag, 1, packetId));
    const got = await c.barrier();
    const ack = got.find((p) => p.type === 'puback');
    const echo = got.find((p): p is PublishPacket => p.type === 'publish');
    assert.equal(got.length, 2, JSON.stringify(got.map((p) => p.type)));
    assert.equal(ack?.type === 'puback' ? ack.packetId : undefined, packetId);
    assert.equal(echo?.payload.toString(), tag);
    c.send({ type: 'puback', packetId: echo!.packetId! });
  }

  async close(): Promise<void> {
    if (!this.client.isClosed) await this.client.disconnect();
  }
}

// -------------------------------------------------------------------------------------------------

void describe('limits.maxConnections (all listeners together)', () => {
  const MAX = 4;
  let b: TestBroker;
  let bystander: Bystander;

  before(async () => {
    b = await startBroker({ limits: { maxConnections: MAX } });
    bystander = await Bystander.start(b.port);
  });
  after(async () => {
    await bystander?.close();
    await b?.close();
  });

  void it(`${REFUSED_CLOSES[5]} ${REFUSED_CLOSES[4]} a CONNECT beyond ${MAX} connections gets CONNACK 0x97 Quota exceeded (3.1.1: 3 Server unavailable) and is closed; it is counted; a freed slot can be taken again`, async () => {
    const fillers = [await connected(b.port, 4), await connected(b.port, 5), await connected(b.port, 5)];
    assert.equal(b.broker.stats().connections, MAX);
    const before = b.broker.stats().connectionsRefused;
    await refused(b.port, 5, 0x97);
    await refused(b.port, 4, 3);
    assert.equal(b.broker.stats().connectionsRefused, before + 2);
    // A WebSocket client counts against the same limit.
    await assert.rejects(connectClient(`ws://127.0.0.1:${b.wsPort}/mqtt`, { protocolVersion: 5 }), (err: { code?: number }) => err.code === 0x97);
    await bystander.roundTrip();

    await fillers[0]!.disconnect();
    const again = await connected(b.port, 5);
    await refused(b.port, 4, 3);
    await bystander.roundTrip();
    again.destroy();
  });

  void it('connections the broker closes before a CONNECT (garbage bytes, an unsupported protocol level) give their slot back', async () => {
    for (let i = 0; i < 3 * MAX; i++) {
      const c = await RawClient.open(b.port, 4);
      open.push(c);
      // An HTTP request, or a CONNECT with protocol level 7 (answered with CONNACK 0x84 / 1, then closed).
      if (i % 2 === 0) c.sendRaw(Buffer.from('GET /mqtt HTTP/1.1\r\n\r\n'));
      else c.sendRaw('10 0d 0004 4d515454 07 02 0000 0001 78');
      await c.closed();
    }
    const fillers = [await connected(b.port, 5), await connected(b.port, 4)];
    assert.equal(b.broker.stats().connections, 3, 'the bystander and two fillers');
    await bystander.roundTrip();
    for (const f of fillers) f.destroy();
  });
});

void describe('maxConnections of one listener', () => {
  let b: TestBroker;
  let bystander: Bystander;

  before(async () => {
    b = await startBroker({
      listeners: [
        { type: 'tcp', host: '127.0.0.1', port: 0, maxConnections: 2 },
        { type: 'ws', host: '127.0.0.1', port: 0, path: '/mqtt' },
      ],
    });
    bystander = await Bystander.start(b.port);
  });
  after(async () => {
    await bystander?.close();
    await b?.close();
  });

  void it('the third TCP connection gets CONNACK 0x97 (3.1.1: 3) and is counted, while the WebSocket listener still accepts clients that reach the TCP ones', async () => {
    await connected(b.port, 4);
    const before = b.broker.stats().connectionsRefused;
    await refused(b.port, 5, 0x97);
    await refused(b.port, 4, 3);
    assert.equal(b.broker.stats().connectionsRefused, before + 2);

    const ws = await connectClient(`ws://127.0.0.1:${b.wsPort}/mqtt`, { protocolVersion: 5 });
    mqttClients.push(ws);
    const inbox = new Inbox(ws);
    await ws.subscribeAsync(bystander.topic, { qos: 1 });
    await bystander.roundTrip();
    const m = await inbox.next();
    assert.equal(m.topic, bystander.topic);
  });
});

void describe('limits.connectRatePerIp', () => {
  const RATE = 3;
  let b: TestBroker;
  let bystander: Bystander;
  let front: ExternalFront;
  let other: ExternalFront;

  before(async () => {
    b = await startBroker({ limits: { connectRatePerIp: RATE }, security: { allowAnonymous: true } });
    bystander = await Bystander.start(b.port);
    front = await externalFront(b.broker, '198.51.100.20');
    other = await externalFront(b.broker, '198.51.100.21');
  });
  after(async () => {
    await bystander?.close();
    await front?.close();
    await other?.close();
    await b?.close();
  });

  void it(`CONNECTs beyond ${RATE} per second from one address get CONNACK 0x9F Connection rate exceeded (3.1.1: 3) and are counted; other addresses are not affected`, async () => {
    const start = Date.now();
    for (let i = 0; i < RATE; i++) await connected(front.port, i % 2 === 0 ? 5 : 4);
    const before = b.broker.stats().connectionsRefused;
    await refused(front.port, 5, 0x9f);
    await refused(front.port, 4, 3);
    const elapsed = Date.now() - start;
    assert.ok(elapsed < 1000, `the attempts took ${elapsed} ms, more than the one-second window: the test cannot tell`);
    assert.equal(b.broker.stats().connectionsRefused, before + 2);
    await connected(other.port, 5);
    await connected(b.port, 4);
    await bystander.roundTrip();
  });
});

for (const version of VERSIONS) {
  const v5 = version === 5;

  void describe(`publish rate and bytes per client (${NAME[version]})`, () => {
    const RATE = 20;
    const BYTES = 1000;
    let b: TestBroker;
    let bystander: Bystander;

    before(async () => {
      b = await startBroker({ limits: { publishRatePerClient: RATE, publishBytesPerClient: BYTES } });
      bystander = await Bystander.start(b.port, version);
    });
    after(async () => {
      await bystander?.close();
      await b?.close();
    });

    void it(`limits.publishRatePerClient: ${RATE} publishes in a second are fine; more close the connection${v5 ? ' with DISCONNECT 0x96 Message rate too high' : ''}, counted`, async () => {
      const ok = await connected(b.port, version);
      burst(
        ok,
        Array.from({ length: RATE }, (_, i) => publish('rate/ok', 'x', 1, i + 1)),
      );
      const acks = await ok.barrier();
      assert.deepEqual(
        acks.map((p) => p.type),
        Array<string>(RATE).fill('puback'),
      );

      const before = b.broker.stats().rateLimited;
      const flood = await connected(b.port, version);
      burst(
        flood,
        Array.from({ length: RATE * 3 }, () => publish('rate/flood', 'x')),
      );
      if (v5) await disconnectedWith(flood, 0x96);
      else await closedWithout(flood);
      assert.equal(b.broker.stats().rateLimited, before + 1);
      assert.equal(ok.isClosed, false);
      await bystander.roundTrip();
    });

    void it(`limits.publishBytesPerClient: ${BYTES} payload bytes in a second are fine; more close the connection${v5 ? ' with DISCONNECT 0x96' : ''}, counted`, async () => {
      const ok = await connected(b.port, version);
      burst(ok, [publish('bytes/ok', Buffer.alloc(600), 1, 1), publish('bytes/ok', Buffer.alloc(400), 1, 2)]);
      assert.deepEqual(
        (await ok.barrier()).map((p) => p.type),
        ['puback', 'puback'],
      );

      const before = b.broker.stats().rateLimited;
      const big = await connected(b.port, version);
      burst(big, [publish('bytes/big', Buffer.alloc(600), 1, 1), publish('bytes/big', Buffer.alloc(600), 1, 2)]);
      if (v5) await disconnectedWith(big, 0x96);
      else await closedWithout(big);
      assert.equal(b.broker.stats().rateLimited, before + 1);
      await bystander.roundTrip();
    });
  });

  void describe(`limits.maxTopicLength and limits.maxTopicLevels (${NAME[version]})`, () => {
    const LENGTH = 32;
    const LEVELS = 4;
    let b: TestBroker;
    let bystander: Bystander;

    before(async () => {
      b = await startBroker({ limits: { maxTopicLength: LENGTH, maxTopicLevels: LEVELS } });
      bystander = await Bystander.start(b.port, version);
    });
    after(async () => {
      await bystander?.close();
      await b?.close();
    });

    void it(`a PUBLISH to a topic of ${LENGTH} bytes or ${LEVELS} levels is accepted; one byte or one level more closes the connection${v5 ? ' with DISCONNECT 0x90 Topic Name invalid' : ''}`, async () => {
      const ok = await connected(b.port, version);
      ok.send(publish('t'.repeat(LENGTH), 'x', 1, 1));
      ok.send(publish('a/b/c/d', 'x', 1, 2));
      assert.deepEqual(
        (await ok.barrier()).map((p) => p.type),
        ['puback', 'puback'],
      );
      for (const topic of ['t'.repeat(LENGTH + 1), 'a/b/c/d/e']) {
        const c = await connected(b.port, version);
        c.send(publish(topic, 'x', 1, 1));
        if (v5) await disconnectedWith(c, 0x90);
        else await closedWithout(c);
        assert.deepEqual(c.pending, [], 'no PUBACK for the refused PUBLISH');
        await bystander.roundTrip();
      }
    });

    void it(`a SUBSCRIBE filter longer than ${LENGTH} bytes or deeper than ${LEVELS} levels gets SUBACK ${v5 ? '0x8F Topic Filter invalid' : '0x80'}; the other filters of the packet are granted`, async () => {
      const c = await connected(b.port, version);
      c.send(subscribe(7, ['f'.repeat(LENGTH), 'f'.repeat(LENGTH + 1), 'a/+/c/#', 'a/+/c/d/#', 'a/b/c/d/e']));
      const bad = v5 ? 0x8f : 0x80;
      const suback = await c.next('suback');
      assert.equal(suback.packetId, 7);
      assert.deepEqual(suback.reasonCodes, [1, bad, 1, bad, bad]);
      await bystander.roundTrip();
    });

    void it('a breach of the topic limits is counted in broker.stats().topicLimitExceeded', async () => {
      const c = await connected(b.port, version);
      const before = b.broker.stats().topicLimitExceeded;
      c.send(subscribe(1, ['f'.repeat(LENGTH + 1)]));
      await c.next('suback');
      assert.equal(b.broker.stats().topicLimitExceeded, before + 1);
    });
  });

  void describe(`limits.maxSubscriptionsPerClient (${NAME[version]})`, () => {
    const MAX = 3;
    let b: TestBroker;
    let bystander: Bystander;

    before(async () => {
      b = await startBroker({ limits: { maxSubscriptionsPerClient: MAX } });
      bystander = await Bystander.start(b.port, version);
    });
    after(async () => {
      await bystander?.close();
      await b?.close();
    });

    void it(`filters beyond ${MAX} per session get SUBACK ${v5 ? '0x97 Quota exceeded' : '0x80'} and are counted; replacing a held filter is not a new one; an UNSUBSCRIBE frees a slot`, async () => {
      const c = await connected(b.port, version);
      const before = b.broker.stats().subscriptionQuotaExceeded;
      const bad = v5 ? 0x97 : 0x80;
      c.send(subscribe(1, ['q/1', 'q/2', 'q/3', 'q/4']));
      assert.deepEqual((await c.next('suback')).reasonCodes, [1, 1, 1, bad]);
      c.send(subscribe(2, ['q/1', 'q/5'], 0));
      assert.deepEqual((await c.next('suback')).reasonCodes, [0, bad]);
      assert.equal(b.broker.stats().subscriptionQuotaExceeded, before + 2);
      c.send({ type: 'unsubscribe', packetId: 3, topicFilters: ['q/2'] });
      await c.next('unsuback');
      c.send(subscribe(4, ['q/5']));
      assert.deepEqual((await c.next('suback')).reasonCodes, [1]);
      // The granted filters work.
      bystander.client.send(publish('q/5', 'five', 1, 999));
      const m = await c.next('publish');
      assert.equal(m.topic, 'q/5');
      await bystander.client.next('puback');
      await bystander.roundTrip();
    });
  });
}

void describe('limits.maxQueuedBytesTotal', () => {
  const BUDGET = 2000;
  const TOPIC = 'qb/x';
  /** messageBytes = topic length + payload length: four fit exactly. */
  const SIZE = 500;
  let b: TestBroker;
  let bystander: Bystander;

  before(async () => {
    b = await startBroker({ limits: { maxQueuedBytesTotal: BUDGET } });
    bystander = await Bystander.start(b.port);
  });
  after(async () => {
    await bystander?.close();
    await b?.close();
  });

  void it(`queued QoS 1 messages of offline sessions (3.1.1 and 5.0) stop at ${BUDGET} bytes in all; later ones are dropped for them, a live subscriber gets every message, and the budget frees as the queues drain`, async () => {
    const offline: Record<ProtocolVersion, string> = { 3: '', 4: `qb-v4-${++seq}`, 5: `qb-v5-${++seq}` };
    for (const version of VERSIONS) {
      const extra: Partial<ConnectPacket> = version === 5 ? { clean: false, properties: { sessionExpiryInterval: 300 } } : { clean: false };
      const c = await connected(b.port, version, { clientId: offline[version], ...extra });
      c.send(subscribe(1, [TOPIC]));
      await c.next('suback');
      await c.disconnect();
    }
    const live = await connectClient(`mqtt://127.0.0.1:${b.port}`, { protocolVersion: 5 });
    mqttClients.push(live);
    const liveInbox = new Inbox(live);
    await live.subscribeAsync(TOPIC, { qos: 1 });

    const pub = await connected(b.port, 5);
    const N = 6;
    for (let i = 1; i <= N; i++) {
      pub.send(publish(TOPIC, `${i}`.padEnd(SIZE - TOPIC.length, '.'), 1, i));
      const ack = await pub.next('puback');
      assert.equal(ack.reasonCode ?? 0, 0, 'the publisher is not refused: others got it');
      assert.ok(b.broker.stats().queuedBytesTotal <= BUDGET, `queued ${b.broker.stats().queuedBytesTotal} bytes`);
    }
    assert.equal(b.broker.stats().queuedBytesTotal, BUDGET);
    assert.deepEqual(
      (await liveInbox.take(N)).map((m) => m.payload[0]),
      ['1', '2', '3', '4', '5', '6'],
    );
    await bystander.roundTrip();

    // Each offline session kept the first two messages (2 sessions × 2 × 500 bytes), in order.
    for (const version of VERSIONS) {
      const extra: Partial<ConnectPacket> = version === 5 ? { clean: false, properties: { sessionExpiryInterval: 300 } } : { clean: false };
      const c = await connected(b.port, version, { clientId: offline[version], ...extra });
      const got: string[] = [];
      for (const p of await c.barrier()) {
        assert.equal(p.type, 'publish');
        const m = p as PublishPacket;
        got.push(m.payload.toString()[0]!);
        c.send({ type: 'puback', packetId: m.packetId! });
      }
      assert.deepEqual(got, ['1', '2'], `${NAME[version]} session`);
      await c.barrier();
    }
    assert.equal(b.broker.stats().queuedBytesTotal, 0, 'drained queues free the budget');
  });
});

void describe('limits.connectTimeoutMs', () => {
  const TIMEOUT = 300;
  let b: TestBroker;
  let bystander: Bystander;

  before(async () => {
    b = await startBroker({ limits: { connectTimeoutMs: TIMEOUT } });
    bystander = await Bystander.start(b.port);
  });
  after(async () => {
    await bystander?.close();
    await b?.close();
  });

  for (const version of VERSIONS) {
    void it(`${NAME[version]}: a connection that sends nothing, or only part of its CONNECT, is closed after ${TIMEOUT} ms without a CONNACK`, async () => {
      const partial = encode(
        { type: 'connect', protocolName: 'MQTT', protocolVersion: version, clean: true, keepAlive: 0, clientId: 'slow' },
        version,
      ).subarray(0, 9);
      const start = Date.now();
      const silent = await RawClient.open(b.port, version);
      const half = await RawClient.open(b.port, version);
      open.push(silent, half);
      half.sendRaw(partial);
      await silent.closed(TIMEOUT * 10);
      await half.closed(TIMEOUT * 10);
      const elapsed = Date.now() - start;
      assert.ok(elapsed >= TIMEOUT - 50, `closed after ${elapsed} ms, before the timeout`);
      assert.deepEqual([...silent.pending, ...half.pending], []);
      assert.equal(b.broker.stats().connections, 1, 'only the bystander is left');
      await bystander.roundTrip();
    });
  }
});
