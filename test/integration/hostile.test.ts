/**
 * Hostile clients against one broker, while a well-behaved pair (MQTT.js, one 5.0 and one 3.1.1
 * client) keeps exchanging QoS 1 messages in the background the whole time. After every attack
 * the pair must still answer: no exchange failed or took longer than its bound, exchanges went on
 * during the attack, and one more round trip completes.
 *
 * Attacks: malformed packets, oversize Remaining Lengths, slowloris CONNECTs, a CONNECT flood,
 * a subscribe storm, a topic bomb, QoS 2 packet-id exhaustion and a subscriber that never reads.
 * The resident set size is sampled throughout; its high-water mark is printed and bounded.
 */
import assert from 'node:assert/strict';
import { connect as netConnect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { MqttClient } from 'mqtt';
import type { ProtocolVersion } from '../../src/protocol/constants.js';
import { Decoder } from '../../src/protocol/decoder.js';
import { encode } from '../../src/protocol/encoder.js';
import type { ConnectPacket, Packet, PublishPacket, SubscribePacket } from '../../src/protocol/packets.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { connectClient, endAll } from '../helpers/interop.js';
import { withTimeout } from '../helpers/peers.js';

const MiB = 1024 * 1024;
const RSS_LIMIT = 400 * MiB;
const TEST = { timeout: 20_000 };
const CONNECT_TIMEOUT_MS = 500;
const MAX_QUEUED = 1000;
const MAX_OUTBOUND = 1 * MiB;
/** The pair's cadence: one exchange every PACE_MS (a load pattern, not a wait for anything). */
const PACE_MS = 10;
/** No exchange of the pair may take longer than this, attack or not. */
const EXCHANGE_BOUND_MS = 5_000;

// -------------------------------------------------------------------------------------------------
// A raw client that counts what it gets, can acknowledge automatically, and can stop reading.

class Raw {
  readonly socket: Socket;
  readonly version: ProtocolVersion;
  readonly packets: Packet[] = [];
  readonly counts = new Map<string, number>();
  /** Answer PUBLISH QoS 1 with PUBACK and QoS 2 with PUBREC (and PUBREL with PUBCOMP). */
  autoAck = false;
  /** Keep packets in `packets` (off for floods that only count). */
  keep = true;
  isClosed = false;
  readonly #decoder: Decoder;
  #changed = new Set<() => void>();

  private constructor(socket: Socket, version: ProtocolVersion) {
    this.socket = socket;
    this.version = version;
    this.#decoder = new Decoder((p) => this.#onPacket(p), { protocolVersion: version });
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      try {
        this.#decoder.push(chunk);
      } catch {
        socket.destroy();
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      this.isClosed = true;
      this.#notify();
    });
  }

  static open(port: number, version: ProtocolVersion): Promise<Raw> {
    return new Promise((resolve, reject) => {
      const s = netConnect({ host: '127.0.0.1', port }, () => {
        s.off('error', reject);
        resolve(new Raw(s, version));
      });
      s.once('error', reject);
    });
  }

  static async connect(port: number, version: ProtocolVersion, connect: Partial<ConnectPacket> = {}): Promise<Raw> {
    const c = await Raw.open(port, version);
    c.send(connectPacket(version, connect));
    await c.until(() => c.count('connack') > 0, 'CONNACK');
    const ack = c.packets.find((p) => p.type === 'connack');
    assert.equal(ack?.type === 'connack' ? ack.reasonCode : undefined, 0, 'CONNACK code');
    return c;
  }

  #onPacket(p: Packet): void {
    this.counts.set(p.type, this.count(p.type) + 1);
    if (this.keep) this.packets.push(p);
    if (this.autoAck) {
      if (p.type === 'publish' && p.qos === 1) this.send({ type: 'puback', packetId: p.packetId! });
      else if (p.type === 'publish' && p.qos === 2) this.send({ type: 'pubrec', packetId: p.packetId! });
      else if (p.type === 'pubrel') this.send({ type: 'pubcomp', packetId: p.packetId });
    }
    this.#notify();
  }

  #notify(): void {
    for (const f of [...this.#changed]) f();
  }

  count(type: Packet['type']): number {
    return this.counts.get(type) ?? 0;
  }

  send(p: Packet): void {
    if (!this.socket.destroyed) this.socket.write(encode(p, this.version));
  }

  sendRaw(bytes: Buffer | string): void {
    if (!this.socket.destroyed) this.socket.write(typeof bytes === 'string' ? Buffer.from(bytes.replace(/\s+/g, ''), 'hex') : bytes);
  }

  /** Resolves once `check()` holds (checked after every packet and at close); rejects after a bound. */
  until(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const done = (f: () => void): void => {
        clearTimeout(timer);
        this.#changed.delete(poll);
        f();
      };
      const poll = (): void => {
        if (check()) done(resolve);
        else if (this.isClosed) done(() => reject(new Error(`${what}: connection closed first (got ${JSON.stringify([...this.counts])})`)));
      };
      const timer = setTimeout(() => done(() => reject(new Error(`${what}: not within ${timeoutMs} ms (got ${JSON.stringify([...this.counts])})`))), timeoutMs);
      this.#changed.add(poll);
      poll();
    });
  }

  closed(timeoutMs = 5_000): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.isClosed) return resolve();
      const on = (): void => {
        if (!this.isClosed) return;
        clearTimeout(timer);
        this.#changed.delete(on);
        resolve();
      };
      const timer = setTimeout(() => {
        this.#changed.delete(on);
        reject(new Error(`connection still open after ${timeoutMs} ms`));
      }, timeoutMs);
      this.#changed.add(on);
    });
  }

  destroy(): void {
    this.socket.destroy();
  }
}

function connectPacket(version: ProtocolVersion, extra: Partial<ConnectPacket> = {}): ConnectPacket {
  return { type: 'connect', protocolName: 'MQTT', protocolVersion: version, clean: true, keepAlive: 0, clientId: '', ...extra };
}

function publish(topic: string, payload: Buffer | string, qos: 0 | 1 | 2 = 0, packetId?: number): PublishPacket {
  const p: PublishPacket = { type: 'publish', topic, payload: Buffer.from(payload), qos, retain: false, dup: false };
  if (qos > 0) p.packetId = packetId ?? 1;
  return p;
}

function subscribe(packetId: number, filters: string[], qos: 0 | 1 | 2 = 0): SubscribePacket {
  return {
    type: 'subscribe',
    packetId,
    subscriptions: filters.map((topicFilter) => ({ topicFilter, qos, noLocal: false, retainAsPublished: false, retainHandling: 0 as const })),
  };
}

function encodeAll(packets: Packet[], version: ProtocolVersion): Buffer {
  return Buffer.concat(packets.map((p) => encode(p, version)));
}

// -------------------------------------------------------------------------------------------------
// The well-behaved pair: "ping" (5.0) publishes QoS 1 on pair/ping, "pong" (3.1.1) answers each
// with a QoS 1 publish on pair/pong. Exchanges run in the background at a steady cadence.

class Pair {
  exchanges = 0;
  maxLatencyMs = 0;
  failure: unknown = undefined;
  readonly #ping: MqttClient;
  readonly #pong: MqttClient;
  readonly #waiting = new Map<string, () => void>();
  readonly #onExchange = new Set<() => void>();
  #seq = 0;
  #running = true;
  #loop: Promise<void> | undefined;

  private constructor(ping: MqttClient, pong: MqttClient) {
    this.#ping = ping;
    this.#pong = pong;
  }

  static async start(url: string): Promise<Pair> {
    const ping = await connectClient(url, { protocolVersion: 5, clientId: 'pair-ping', keepalive: 0 });
    const pong = await connectClient(url, { protocolVersion: 4, clientId: 'pair-pong', keepalive: 0 });
    const pair = new Pair(ping, pong);
    pong.on('message', (_t, payload) => pong.publish('pair/pong', payload, { qos: 1 }));
    ping.on('message', (_t, payload) => {
      const key = payload.toString();
      pair.#waiting.get(key)?.();
      pair.#waiting.delete(key);
    });
    await pong.subscribeAsync('pair/ping', { qos: 1 });
    await ping.subscribeAsync('pair/pong', { qos: 1 });
    pair.#loop = pair.#background();
    return pair;
  }

  /** One exchange; resolves with its latency. */
  async exchange(): Promise<number> {
    const key = `x${++this.#seq}`;
    const start = Date.now();
    const answered = new Promise<void>((resolve) => this.#waiting.set(key, resolve));
    await this.#ping.publishAsync('pair/ping', key, { qos: 1 });
    await withTimeout(answered, EXCHANGE_BOUND_MS, `pair exchange ${key}`);
    const ms = Date.now() - start;
    this.exchanges++;
    if (ms > this.maxLatencyMs) this.maxLatencyMs = ms;
    for (const f of [...this.#onExchange]) f();
    return ms;
  }

  async #background(): Promise<void> {
    while (this.#running) {
      try {
        await this.exchange();
      } catch (err) {
        this.failure ??= err;
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, PACE_MS));
    }
  }

  /** The pair is fine: no background failure, exchanges went on since `since`, and one more completes in time. */
  async check(since: number): Promise<void> {
    assert.equal(this.failure, undefined, `the pair failed: ${String(this.failure)}`);
    assert.ok(this.#ping.connected && this.#pong.connected, 'both clients of the pair are connected');
    const ms = await this.exchange();
    // Besides that one, the background went on too (it may need one more turn after a short attack).
    await withTimeout(
      new Promise<void>((resolve) => {
        const on = (): void => {
          if (this.exchanges < since + 2) return;
          this.#onExchange.delete(on);
          resolve();
        };
        this.#onExchange.add(on);
        on();
      }),
      EXCHANGE_BOUND_MS,
      'a background exchange',
    );
    assert.equal(this.failure, undefined, `the pair failed: ${String(this.failure)}`);
    assert.ok(ms < EXCHANGE_BOUND_MS && this.maxLatencyMs < EXCHANGE_BOUND_MS, `slowest exchange ${this.maxLatencyMs} ms`);
  }

  async stop(): Promise<void> {
    this.#running = false;
    await this.#loop;
    await endAll([this.#ping, this.#pong]);
  }
}

// -------------------------------------------------------------------------------------------------

void describe('hostile clients against one broker, while a well-behaved pair keeps exchanging QoS 1 messages', () => {
  let b: TestBroker;
  let pair: Pair;
  let baseline = 0;
  let rssHigh = 0;
  let rssStart = 0;
  let sampler: NodeJS.Timeout | undefined;
  const sample = (): void => {
    const rss = process.memoryUsage().rss;
    if (rss > rssHigh) rssHigh = rss;
  };

  before(async () => {
    rssStart = process.memoryUsage().rss;
    sample();
    sampler = setInterval(sample, 20);
    b = await startBroker({
      limits: { connectTimeoutMs: CONNECT_TIMEOUT_MS },
      sessions: { maxQueuedMessages: MAX_QUEUED, maxOutboundBufferBytes: MAX_OUTBOUND },
    });
    pair = await Pair.start(`mqtt://127.0.0.1:${b.port}`);
    baseline = b.broker.stats().connections;
  });
  after(async () => {
    clearInterval(sampler);
    await pair?.stop();
    await b?.close();
  });

  /** Every attack: run it, then the pair must still be fine and only the pair stays connected. */
  async function attack(run: () => Promise<void>): Promise<void> {
    const since = pair.exchanges;
    await run();
    sample();
    await pair.check(since);
    assert.equal(b.broker.stats().connections, baseline, 'only the pair is left connected');
  }

  /** Resolves when the broker has seen `n` more client disconnects (connected clients that went away). */
  function disconnects(n: number): Promise<void> {
    let seen = 0;
    return withTimeout(
      new Promise<void>((resolve) => {
        const on = (): void => {
          if (++seen < n) return;
          b.broker.off('clientDisconnect', on);
          resolve();
        };
        b.broker.on('clientDisconnect', on);
      }),
      10_000,
      `${n} disconnects`,
    );
  }

  void it(
    '[MQTT-4.13.1-1] malformed packets, before and after CONNECT, close only the sender (5.0: DISCONNECT 0x81/0x82 first, never anything else)',
    TEST,
    async () => {
      await attack(async () => {
        const beforeConnect = [
          Buffer.from('GET /mqtt HTTP/1.1\r\nHost: x\r\n\r\n'), // not MQTT at all
          Buffer.from('c000', 'hex'), // PINGREQ before CONNECT [MQTT-3.1.0-1]
          Buffer.from('100c00044d5154580400000000000000', 'hex'), // protocol name "MQTX"
          Buffer.from('1003000461', 'hex'), // CONNECT whose protocol name runs past the packet
        ];
        const afterConnect = (v5: boolean): Buffer[] =>
          [
            `36 ${v5 ? '07' : '06'} 0001 7a 0001 ${v5 ? '00' : ''} 70`, // QoS 3 [MQTT-3.3.1-4]
            '00 00', // packet type 0
            `30 ${v5 ? '06' : '05'} 0002 c328 ${v5 ? '00' : ''} 70`, // topic not UTF-8
            'c1 00', // PINGREQ with flags [MQTT-2.1.3-1]
            '30 03 00ff 61', // topic length beyond the packet
            `82 ${v5 ? '03' : '02'} 0001 ${v5 ? '00' : ''}`, // SUBSCRIBE without filters [MQTT-3.8.3-3]
            '30 ff ff ff ff 01', // a Remaining Length of five bytes
          ].map((h) => Buffer.from(h.replace(/\s+/g, ''), 'hex'));
        const victims: Array<Promise<void>> = [];
        for (let round = 0; round < 10; round++) {
          for (const bytes of beforeConnect) {
            victims.push(
              (async () => {
                const c = await Raw.open(b.port, 4);
                c.sendRaw(bytes);
                await c.closed();
                assert.deepEqual(c.packets, [], 'no answer to a broken first packet');
              })(),
            );
          }
          for (const version of [4, 5] as const) {
            for (const bytes of afterConnect(version === 5)) {
              victims.push(
                (async () => {
                  const c = await Raw.connect(b.port, version);
                  c.sendRaw(bytes);
                  await c.closed();
                  const after = c.packets.slice(1).map((p) => (p.type === 'disconnect' ? `disconnect ${p.reasonCode ?? 0}` : p.type));
                  if (version === 5) assert.ok(after.length === 1 && /^disconnect 1(29|30)$/.test(after[0]!), JSON.stringify(after));
                  else assert.deepEqual(after, []);
                })(),
              );
            }
          }
        }
        await Promise.all(victims);
      });
    },
  );

  void it(
    '[MQTT-3.2.2-15] an oversize Remaining Length (268 MB claimed, or maximum packet size + 1) closes the connection before any body arrives (5.0: DISCONNECT 0x95), without allocating it',
    TEST,
    async () => {
      await attack(async () => {
        const rssBefore = process.memoryUsage().rss;
        const oversize = Buffer.from('30ffffff7f', 'hex');
        // 1 byte of type, 3 of Remaining Length, then the body: one byte over mqtt.maxPacketSize (1 MiB).
        const justOver = Buffer.concat([Buffer.from([0x30]), varint(MiB + 1 - 4)]);
        const victims: Array<Promise<void>> = [];
        for (let i = 0; i < 100; i++) {
          victims.push(
            (async () => {
              const c = await Raw.open(b.port, 4);
              c.sendRaw('10ffffff7f'); // a CONNECT claiming 268 MB
              await c.closed();
              assert.deepEqual(c.packets, []);
            })(),
          );
          for (const version of [4, 5] as const) {
            victims.push(
              (async () => {
                const c = await Raw.connect(b.port, version);
                c.sendRaw(i % 2 === 0 ? oversize : justOver);
                await c.closed();
                const after = c.packets.slice(1);
                if (version === 5)
                  assert.deepEqual(
                    after.map((p) => (p.type === 'disconnect' ? p.reasonCode : p.type)),
                    [0x95],
                  );
                else assert.deepEqual(after, []);
              })(),
            );
          }
        }
        await Promise.all(victims);
        const grew = process.memoryUsage().rss - rssBefore;
        assert.ok(grew < 64 * MiB, `rss grew by ${(grew / MiB).toFixed(1)} MiB for 300 connections claiming ${(100 * 268 + 200 * 1).toFixed(0)} MB`);
      });
    },
  );

  void it(
    `slowloris: 50 connections trickling their CONNECT a byte at a time are closed ${CONNECT_TIMEOUT_MS} ms after they opened (limits.connectTimeoutMs), trickle or not`,
    TEST,
    async () => {
      await attack(async () => {
        const start = Date.now();
        const victims = await Promise.all(
          Array.from({ length: 50 }, async (_, i) => {
            const version = i % 2 === 0 ? 4 : 5;
            const bytes = encode(connectPacket(version, { clientId: `slow-${i}-`.padEnd(200, 'z') }), version);
            const c = await Raw.open(b.port, version);
            let sent = 0;
            // The attacker's own cadence: one byte every 40 ms, so the CONNECT would take 8 s.
            const trickle = setInterval(() => {
              if (sent < bytes.length) c.sendRaw(bytes.subarray(sent, ++sent));
            }, 40);
            c.socket.once('close', () => clearInterval(trickle));
            return { c, sentBytes: () => sent, total: bytes.length };
          }),
        );
        await Promise.all(victims.map((v) => v.c.closed(5_000)));
        const elapsed = Date.now() - start;
        assert.ok(elapsed >= CONNECT_TIMEOUT_MS - 50, `closed after ${elapsed} ms`);
        for (const v of victims) {
          assert.ok(v.sentBytes() < v.total, 'the CONNECT never completed');
          assert.deepEqual(v.c.packets, [], 'no CONNACK');
        }
      });
    },
  );

  void it('CONNECT flood: 500 connections at once all get CONNACK 0 and the broker is back to the pair once they drop', TEST, async () => {
    await attack(async () => {
      const N = 500;
      const flood = await Promise.all(Array.from({ length: N }, (_, i) => Raw.connect(b.port, i % 2 === 0 ? 4 : 5, { clientId: `flood-${i}` })));
      assert.equal(b.broker.stats().connections, baseline + N);
      const gone = disconnects(N);
      for (const c of flood) c.destroy();
      await gone;
    });
  });

  void it(
    'subscribe storm: one client subscribes to 5,000 filters in 50 back-to-back SUBSCRIBEs; all are granted, routing still works, and they go with its session',
    TEST,
    async () => {
      await attack(async () => {
        const subsBefore = b.broker.stats().subscriptions;
        const c = await Raw.connect(b.port, 5, { clientId: 'storm' });
        const packets: Packet[] = [];
        for (let i = 0; i < 50; i++) {
          packets.push(
            subscribe(
              i + 1,
              Array.from({ length: 100 }, (_, j) => (j % 2 === 0 ? `storm/${i}/${j}/+/leaf` : `storm/${i}/${j}/#`)),
              1,
            ),
          );
        }
        c.sendRaw(encodeAll(packets, 5));
        await c.until(() => c.count('suback') === 50, '50 SUBACKs');
        for (const p of c.packets) if (p.type === 'suback') assert.deepEqual(p.reasonCodes, Array<number>(100).fill(1), `SUBACK ${p.packetId}`);
        assert.equal(b.broker.stats().subscriptions, subsBefore + 5000);
        c.autoAck = true;
        c.send(publish('storm/49/98/x/leaf', 'hit', 1, 1));
        c.send(publish('storm/49/99/deep/down', 'hit too', 1, 2));
        await c.until(() => c.count('publish') === 2, 'both messages');
        const gone = disconnects(1);
        c.destroy();
        await gone;
        assert.equal(b.broker.stats().subscriptions, subsBefore);
      });
    },
  );

  void it(
    'topic bomb: 10 "#" and 10 deep "+/…/#" subscribers get 1,000 publishes to 128-level topics (limits.maxTopicLevels); a 129-level topic is refused with DISCONNECT 0x90',
    TEST,
    async () => {
      await attack(async () => {
        const LEVELS = 128;
        const N = 1000;
        const deep = `${Array<string>(LEVELS - 1)
          .fill('+')
          .join('/')}/#`;
        const subs = await Promise.all(
          Array.from({ length: 20 }, async (_, i) => {
            const c = await Raw.connect(b.port, i % 2 === 0 ? 4 : 5, { clientId: `bomb-sub-${i}` });
            c.keep = false;
            c.send(subscribe(1, [i < 10 ? '#' : deep]));
            await c.until(() => c.count('suback') === 1, 'SUBACK');
            return c;
          }),
        );
        const bombs = (c: Raw): number => c.count('publish');
        const pub = await Raw.connect(b.port, 5, { clientId: 'bomber' });
        const packets: Packet[] = [];
        for (let i = 0; i < N; i++)
          packets.push(
            publish(
              `bomb/${i}/${Array<string>(LEVELS - 2)
                .fill('x')
                .join('/')}`,
              'boom',
            ),
          );
        pub.sendRaw(encodeAll(packets, 5));
        // The pair's own messages reach the "#" subscribers too: count at least N.
        await Promise.all(subs.map((s) => s.until(() => bombs(s) >= N, `${N} bombs`, 15_000)));
        pub.send(publish(`bomb/${Array<string>(LEVELS).fill('y').join('/')}`, 'too deep'));
        await pub.until(() => pub.count('disconnect') === 1, 'DISCONNECT');
        const d = pub.packets.find((p) => p.type === 'disconnect');
        assert.equal(d?.type === 'disconnect' ? d.reasonCode : undefined, 0x90);
        await pub.closed();
        const gone = disconnects(subs.length);
        for (const s of subs) s.destroy();
        await gone;
      });
    },
  );

  void it(
    '[MQTT-3.3.4-7] QoS 2 packet-id exhaustion: 65,535 unreleased QoS 2 publishes are all received (PUBREC); a re-sent one is acknowledged again [MQTT-4.3.3-9]; one more publish exceeds the Receive Maximum: DISCONNECT 0x93',
    TEST,
    async () => {
      await attack(async () => {
        const IDS = 65_535;
        const c = await Raw.connect(b.port, 5, { clientId: 'exhaust' });
        c.keep = false;
        for (let start = 1; start <= IDS; start += 8192) {
          const batch: Packet[] = [];
          for (let id = start; id < Math.min(start + 8192, IDS + 1); id++) batch.push(publish('exhaust/x', 'q', 2, id));
          c.sendRaw(encodeAll(batch, 5));
        }
        await c.until(() => c.count('pubrec') === IDS, `${IDS} PUBRECs`, 15_000);
        c.keep = true;
        c.packets.length = 0;
        c.send({ ...publish('exhaust/x', 'q', 2, 4242), dup: true });
        await c.until(() => c.count('pubrec') === IDS + 1, 'PUBREC for the re-sent id');
        // Every packet id is taken by a QoS 2 awaiting PUBREL, so whatever comes next is one too many.
        c.send(publish('exhaust/x', 'one too many', 1, 7));
        await c.until(() => c.count('disconnect') === 1, 'DISCONNECT');
        const kinds = c.packets.map((p) => (p.type === 'disconnect' ? `disconnect ${p.reasonCode ?? 0}` : p.type));
        assert.deepEqual(kinds, ['pubrec', 'disconnect 147']);
        await c.closed();
      });
    },
  );

  void it(
    `a subscriber that never reads nor acknowledges: QoS 1 stays at the in-flight window plus sessions.maxQueuedMessages (${MAX_QUEUED}), QoS 0 is dropped past sessions.maxOutboundBufferBytes, and all of it is freed when it goes`,
    TEST,
    async () => {
      await attack(async () => {
        const PAYLOAD = 1024;
        const TOPIC = 'sink/q1';
        const sink = await Raw.connect(b.port, 5, { clientId: 'sink' });
        sink.keep = false;
        sink.send(subscribe(1, ['sink/#'], 1));
        await sink.until(() => sink.count('suback') === 1, 'SUBACK');
        sink.socket.pause();

        const pub = await Raw.connect(b.port, 5, { clientId: 'sink-feeder' });
        pub.keep = false;
        const N1 = 5000;
        for (let start = 1; start <= N1; start += 500) {
          pub.sendRaw(
            encodeAll(
              Array.from({ length: 500 }, (_, i) => publish(TOPIC, Buffer.alloc(PAYLOAD, 0x61), 1, start + i)),
              5,
            ),
          );
          await pub.until(() => pub.count('puback') === start + 499, 'PUBACKs');
          assert.ok(b.broker.stats().queuedBytesTotal <= MAX_QUEUED * (PAYLOAD + TOPIC.length));
        }
        assert.equal(b.broker.stats().queuedBytesTotal, MAX_QUEUED * (PAYLOAD + TOPIC.length), 'the sink queue holds exactly maxQueuedMessages');

        // QoS 0: 40 MiB at a socket that is not read.
        const N0 = 4000;
        const big = Buffer.alloc(10 * 1024, 0x62);
        for (let i = 0; i < N0; i += 200) {
          pub.sendRaw(encodeAll([...Array.from({ length: 200 }, () => publish('sink/q0', big)), publish('feeder/sync', 'x', 1, 1)], 5));
          const acks = pub.count('puback');
          await pub.until(() => pub.count('puback') === acks + 1, 'sync PUBACK');
        }
        sample();

        // Now read and acknowledge: exactly the window (64) plus the queue arrive, in order.
        const q1 = (): number => sink.packets.filter((p) => p.type === 'publish' && p.qos === 1).length;
        sink.keep = true;
        sink.packets.length = 0;
        sink.autoAck = true;
        sink.socket.resume();
        const expected = 64 + MAX_QUEUED;
        await sink.until(() => q1() >= expected, `${expected} QoS 1 messages`, 15_000);
        sink.send({ type: 'pingreq' });
        await sink.until(() => sink.count('pingresp') === 1, 'PINGRESP');
        assert.equal(q1(), expected, 'nothing beyond the window and the queue was kept');
        const q0 = sink.packets.filter((p) => p.type === 'publish' && p.qos === 0).length;
        assert.ok(q0 < N0, `QoS 0 messages were dropped (${q0} of ${N0} arrived)`);
        console.log(`never-reading subscriber: ${q1()} QoS 1 kept of ${N1}, ${q0} QoS 0 of ${N0} arrived`);
        assert.equal(b.broker.stats().queuedBytesTotal, 0);
        const gone = disconnects(2);
        sink.destroy();
        pub.destroy();
        await gone;
      });
    },
  );

  void it(`the resident set size stayed below ${RSS_LIMIT / MiB} MiB through every attack`, () => {
    sample();
    console.log(
      `rss high-water mark: ${(rssHigh / MiB).toFixed(1)} MiB (at start ${(rssStart / MiB).toFixed(1)} MiB); pair: ${pair.exchanges} exchanges, slowest ${pair.maxLatencyMs} ms`,
    );
    assert.ok(rssHigh < RSS_LIMIT, `rss high-water mark ${(rssHigh / MiB).toFixed(1)} MiB`);
  });
});

/** MQTT variable byte integer. */
function varint(n: number): Buffer {
  const out: number[] = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    out.push(byte);
  } while (n > 0);
  return Buffer.from(out);
}
