/**
 * MQTT 5.0 features of the client: outbound topic aliases against Courier (announcing a Topic
 * Alias Maximum of 2) and Mosquitto (10, the client capped at 2): the least recently used topic
 * gives up its alias; a new connection starts afresh. Checked on the wire by a tap on the client's transport and at a
 * subscriber that must see every topic right.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Client, type Message } from '../../packages/client/src/index.js';
import { connectWith } from '../../packages/client/src/connect.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { withTimeout } from '../helpers/peers.js';
import { mosquittoGate, startCourier, startMosquitto, unique, type TestServer } from './brokers.js';
import { Tap } from './tap.js';

async function take(sub: AsyncIterable<Message>, n: number): Promise<Message[]> {
  const it = sub[Symbol.asyncIterator]();
  const out: Message[] = [];
  while (out.length < n) out.push((await withTimeout(it.next(), 5000, `message ${out.length + 1} of ${n}`)).value as Message);
  return out;
}

const wire = (tap: Tap, i: number): Array<[string, number | undefined]> => tap.publishes(i).map((p) => [p.topic, p.properties?.topicAlias]);

/** `option`: the client's `topicAliases`; either it or the server's maximum is 2. */
function aliasSuite(name: string, start: () => Promise<TestServer>, gate: { skip: string | false }, option: true | 2, serverMax: number): void {
  void describe(`outbound topic aliases against ${name} (Topic Alias Maximum ${serverMax}, topicAliases: ${option})`, gate, () => {
    let server: TestServer;
    before(async () => {
      server = await start();
    });
    after(async () => {
      await server?.close();
    });

    void it('LRU assignment within the server maximum; the subscriber sees every topic; a reconnect starts afresh', async () => {
      const t = unique('alias');
      const sub = await connect(server.url('tcp'));
      const proxy = new FaultProxy({ port: server.port });
      const tap = new Tap();
      let pub: Client | undefined;
      try {
        const s = await sub.subscribe(`${t}/#`, { qos: 1 });
        pub = await connectWith(tap.open, `mqtt://127.0.0.1:${await proxy.listen()}`, {
          topicAliases: option,
          clientId: unique('ap'),
          clean: false,
          sessionExpiry: 60,
          reconnect: { initialDelay: 5 },
        });
        assert.equal(pub.server.topicAliasMaximum, serverMax);
        const order = ['a', 'b', 'a', 'c', 'b', 'b'];
        for (const [i, x] of order.entries()) await pub.publish(`${t}/${x}`, String(i), { qos: 1 });
        assert.deepEqual(wire(tap, 0), [
          [`${t}/a`, 1],
          [`${t}/b`, 2],
          ['', 1],
          [`${t}/c`, 2], // b was the least recently used: its alias goes to c
          [`${t}/b`, 1], // then a was
          ['', 1],
        ]);
        const got = await take(s, order.length);
        assert.deepEqual(
          got.map((m) => [m.topic, m.text()]),
          order.map((x, i) => [`${t}/${x}`, String(i)]),
        );

        const back = new Promise<void>((r) => pub!.on('connect', () => r()));
        proxy.cut();
        await withTimeout(back, 10_000, 'reconnect');
        await pub.publish(`${t}/b`, 'after', { qos: 1 });
        assert.deepEqual(wire(tap, 1), [[`${t}/b`, 1]], 'the first PUBLISH of a connection carries its topic');
        assert.equal((await take(s, 1))[0]!.topic, `${t}/b`);
      } finally {
        await pub?.close();
        await sub.close();
        await proxy.close();
      }
    });

    void it('off by default, and never above the option', async () => {
      const t = unique('noalias');
      for (const [topicAliases, expected] of [
        [undefined, [undefined, undefined]],
        [1, [1, 1]],
      ] as const) {
        const tap = new Tap();
        const c = await connectWith(tap.open, server.url('tcp'), topicAliases === undefined ? {} : { topicAliases });
        try {
          await c.publish(`${t}/x`, '1', { qos: 1 });
          await c.publish(`${t}/y`, '2', { qos: 1 });
          assert.deepEqual(
            tap.publishes(0).map((p) => p.properties?.topicAlias),
            expected,
          );
        } finally {
          await c.close();
        }
      }
    });
  });
}

aliasSuite('courier', () => startCourier({ mqtt: { topicAliasMaximum: 2 } }), { skip: false }, true, 2);
aliasSuite('mosquitto', () => startMosquitto(), mosquittoGate(), 2, 10);
