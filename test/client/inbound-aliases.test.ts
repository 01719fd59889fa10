/**
 * Inbound topic aliases (5.0 §3.3.2.3.4): the client announces a Topic Alias Maximum in CONNECT
 * (`topicAliasMaximum`) and resolves the aliases in the PUBLISH packets the server sends.
 *
 * - Against Courier, which sends outbound aliases to clients that allow them: what arrives on the
 *   wire uses aliases (a tap on the transport decodes it), never above the maximum, and every
 *   message reaches the application with its full topic, across a reconnect.
 * - Against a stand-in server, for what no broker sends on purpose: an alias of 0 or above the
 *   maximum ends the connection with DISCONNECT 0x94 (Topic Alias invalid), an alias never set
 *   on this connection (one set on the previous connection included [MQTT-3.3.2-7]) with 0x82;
 *   the message is neither delivered nor acknowledged. A packet only clients send (SUBSCRIBE,
 *   PINGREQ) also ends it with 0x82.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Client, type Message } from '../../packages/client/src/index.js';
import { connectWith } from '../../packages/client/src/connect.js';
import type { ConnectPacket, DisconnectPacket, Packet, PublishPacket } from '../../src/protocol/packets.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { withTimeout } from '../helpers/peers.js';
import { pollUntil } from '../helpers/wait.js';
import { FakeServer, type FakeConnection } from './fake-server.js';
import { Tap } from './tap.js';
import { startCourier, unique, type TestServer } from './brokers.js';

const nextConnect = (c: Client): Promise<{ sessionPresent: boolean }> => new Promise((r) => c.on('connect', r));

void describe('inbound topic aliases against Courier', () => {
  let server: TestServer;
  before(async () => {
    server = await startCourier();
  });
  after(async () => {
    await server?.close();
  });

  void it('topicAliasMaximum 2: Courier sends aliases, the client resolves them, the application sees full topics, across a reconnect', async () => {
    const proxy = new FaultProxy({ port: server.port });
    const tap = new Tap();
    const c = await connectWith(tap.open, `mqtt://127.0.0.1:${await proxy.listen()}`, {
      clientId: unique('ia'),
      clean: false,
      sessionExpiry: 600,
      topicAliasMaximum: 2,
      reconnect: { initialDelay: 5, maxDelay: 50 },
    });
    const pub = await connect(server.url('tcp'));
    try {
      assert.equal((tap.connections[0]![0] as ConnectPacket).properties?.topicAliasMaximum, 2);
      const base = unique('ia');
      const got: string[] = [];
      await c.subscribe(`${base}/+`, { qos: 1, handler: (m: Message) => void got.push(`${m.topic}=${m.text()}`) });
      const sent: string[] = [];
      const send = async (n: number) => {
        for (let i = 0; i < n; i++) {
          const topic = `${base}/${'abac'[i % 4]!}`; // a, b, a (alias alone), c (an alias reused), ...
          sent.push(`${topic}=${sent.length}`);
          await pub.publish(topic, String(sent.length - 1), { qos: 1 });
        }
      };
      await send(9);
      await pollUntil(() => got.length === 9, { what: '9 messages' });
      const back = nextConnect(c);
      proxy.cut();
      await withTimeout(back, 10_000, 'reconnect');
      await send(9);
      await pollUntil(() => got.length === 18, { what: '18 messages' });
      assert.deepEqual(got, sent, 'every message with its full topic, in order');
      for (const conn of tap.received) {
        const publishes = conn.filter((p): p is PublishPacket => p.type === 'publish');
        const aliases = publishes.map((p) => p.properties?.topicAlias);
        assert.ok(
          aliases.every((a) => a !== undefined && a >= 1 && a <= 2),
          `aliases within 1..2: ${aliases.join(',')}`,
        );
        assert.ok(
          publishes.some((p) => p.topic === ''),
          'some PUBLISH carried the alias alone',
        );
        assert.notEqual(publishes[0]!.topic, '', 'the first PUBLISH of a connection carries its topic');
      }
    } finally {
      await pub.close();
      await c.close();
      await proxy.close();
    }
  });
});

void describe('inbound topic aliases: what a misbehaving server sends', () => {
  let server: FakeServer;
  before(async () => {
    server = await new FakeServer().listen();
  });
  after(async () => {
    await server?.close();
  });

  const publish = (topic: string, alias: number, packetId?: number): PublishPacket => ({
    type: 'publish',
    topic,
    payload: Buffer.from('x'),
    qos: packetId === undefined ? 0 : 1,
    retain: false,
    dup: false,
    ...(packetId === undefined ? {} : { packetId }),
    properties: { topicAlias: alias },
  });

  /** Waits for the client's DISCONNECT on `conn` and the connection's end; returns its reason code. */
  const disconnectOf = async (conn: FakeConnection): Promise<number | undefined> => {
    await server.until(() => conn.closed, 'the client closing the connection');
    const d = conn.packets.find((p): p is DisconnectPacket => p.type === 'disconnect');
    return d?.reasonCode;
  };

  async function client(topicAliasMaximum: number | undefined): Promise<{ c: Client; got: string[]; errors: Error[] }> {
    const c = await connect(server.url, { reconnect: { initialDelay: 5, maxDelay: 20 }, ...(topicAliasMaximum === undefined ? {} : { topicAliasMaximum }) });
    const got: string[] = [];
    const errors: Error[] = [];
    c.on('error', (e) => errors.push(e));
    const sub = c.subscribe('#', { qos: 1, handler: (m) => void got.push(m.topic) });
    const conn = server.last;
    await server.until(() => conn.packets.some((p) => p.type === 'subscribe'), 'SUBSCRIBE');
    const s = conn.packets.find((p) => p.type === 'subscribe')!;
    conn.send({ type: 'suback', packetId: (s as { packetId: number }).packetId, reasonCodes: [1] });
    await sub;
    return { c, got, errors };
  }

  void it('aliases within the maximum are resolved; a new topic remaps an alias', async () => {
    const { c, got } = await client(2);
    try {
      const conn = server.last;
      conn.send(publish('t/a', 1));
      conn.send(publish('', 1));
      conn.send(publish('t/b', 2, 7));
      conn.send(publish('', 2));
      conn.send(publish('t/c', 1));
      conn.send(publish('', 1));
      await pollUntil(() => got.length === 6, { what: '6 messages' });
      assert.deepEqual(got, ['t/a', 't/a', 't/b', 't/b', 't/c', 't/c']);
      await server.until(() => conn.packets.some((p) => p.type === 'puback'), 'PUBACK');
    } finally {
      await c.close();
    }
  });

  for (const [what, max, alias] of [
    ['above the maximum (3 > 2)', 2, 3],
    ['0', 2, 0],
    ['any, when the client allowed none', undefined, 1],
  ] as const) {
    void it(`an alias of ${what}: DISCONNECT 0x94, nothing delivered or acknowledged, then a reconnect`, async () => {
      const { c, got, errors } = await client(max);
      try {
        const conn = server.last;
        const back = nextConnect(c);
        conn.send(publish('t/x', alias, 9));
        assert.equal(await disconnectOf(conn), 0x94);
        assert.equal(got.length, 0);
        assert.equal(conn.packets.filter((p) => p.type === 'puback').length, 0, 'not acknowledged');
        assert.ok(errors.some((e) => (e as { reasonCode?: number }).reasonCode === 0x94));
        await withTimeout(back, 5000, 'reconnect');
      } finally {
        await c.close();
      }
    });
  }

  void it('a packet only clients send (SUBSCRIBE, PINGREQ) from the server: DISCONNECT 0x82', async () => {
    const { c } = await client(2);
    try {
      const packets: Packet[] = [
        { type: 'subscribe', packetId: 5, subscriptions: [{ topicFilter: 'x', qos: 0, noLocal: false, retainAsPublished: false, retainHandling: 0 }] },
        { type: 'pingreq' },
      ];
      for (const p of packets) {
        const conn = server.last;
        const back = nextConnect(c);
        conn.send(p);
        assert.equal(await disconnectOf(conn), 0x82, p.type);
        await withTimeout(back, 5000, 'reconnect');
      }
    } finally {
      await c.close();
    }
  });

  void it('an alias not set on this connection (set on the previous one): DISCONNECT 0x82 [MQTT-3.3.2-7]', async () => {
    const { c, got } = await client(2);
    try {
      const first = server.last;
      first.send(publish('t/old', 1));
      await pollUntil(() => got.length === 1, { what: 'the first message' });
      const back = nextConnect(c);
      first.socket.destroy();
      await withTimeout(back, 5000, 'reconnect');
      const second = server.last;
      second.send(publish('', 1, 3));
      assert.equal(await disconnectOf(second), 0x82);
      assert.deepEqual(got, ['t/old']);
    } finally {
      await c.close();
    }
  });
});
