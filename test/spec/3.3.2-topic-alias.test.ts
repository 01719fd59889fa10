/**
 * MQTT 5.0 §3.3.2.3.4 Topic Alias, broker → client: the broker assigns aliases up to the
 * client's Topic Alias Maximum, sends a repeated topic as its alias alone, and replaces aliases
 * in turn when all are taken. Also MQTT.js, whose client resolves them.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import mqtt from 'mqtt';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { RawClient } from '../helpers/raw-client.js';
import type { PublishPacket } from '../../src/protocol/packets.js';

let n = 0;
const id = (p: string): string => `alias-${p}-${++n}`;

void describe('§3.3.2.3.4 outbound topic aliases (MQTT 5.0)', () => {
  let b: TestBroker;
  before(async () => {
    b = await startBroker();
  });
  after(() => b.close());

  async function subscriber(aliasMax: number | undefined): Promise<RawClient> {
    const props = aliasMax === undefined ? {} : { topicAliasMaximum: aliasMax };
    const { client } = await RawClient.connect(b.port, { protocolVersion: 5, clientId: id('sub'), properties: props });
    client.send({
      type: 'subscribe',
      packetId: 1,
      subscriptions: [{ topicFilter: 'alias/#', qos: 0, noLocal: false, retainAsPublished: false, retainHandling: 0 }],
    });
    await client.next('suback');
    return client;
  }

  async function publishAll(topics: string[]): Promise<void> {
    const { client: pub } = await RawClient.connect(b.port, { protocolVersion: 5, clientId: id('pub') });
    for (const t of topics) pub.send({ type: 'publish', topic: t, payload: Buffer.from(t), qos: 0, retain: false, dup: false });
    await pub.barrier();
    await pub.disconnect();
  }

  /** Resolves aliases as a client must [MQTT-3.3.2-10]: returns the topics in order. */
  function resolve(packets: PublishPacket[]): string[] {
    const map = new Map<number, string>();
    return packets.map((p) => {
      const alias = p.properties?.topicAlias;
      if (alias === undefined) return p.topic;
      if (p.topic !== '') map.set(alias, p.topic);
      const t = map.get(alias);
      assert.ok(t !== undefined, `alias ${alias} used before it was set`);
      return t;
    });
  }

  void it('[MQTT-3.3.2-11] a repeated topic is sent as its alias with an empty topic name after the first time', async () => {
    const sub = await subscriber(10);
    await publishAll(['alias/a', 'alias/a', 'alias/b', 'alias/a']);
    const got = (await sub.barrier()) as PublishPacket[];
    assert.deepEqual(
      got.map((p) => [p.topic, p.properties?.topicAlias]),
      [
        ['alias/a', 1],
        ['', 1],
        ['alias/b', 2],
        ['', 1],
      ],
    );
    assert.deepEqual(
      got.map((p) => p.payload.toString()),
      ['alias/a', 'alias/a', 'alias/b', 'alias/a'],
    );
    await sub.disconnect();
  });

  void it("[MQTT-3.3.2-11] never an alias above the client's Topic Alias Maximum: with 2 slots, aliases are replaced in turn and every message resolves", async () => {
    const sub = await subscriber(2);
    const topics = ['alias/1', 'alias/2', 'alias/3', 'alias/1', 'alias/3', 'alias/4', 'alias/4', 'alias/2'];
    await publishAll(topics);
    const got = (await sub.barrier()) as PublishPacket[];
    for (const p of got) assert.ok(p.properties?.topicAlias !== undefined && p.properties.topicAlias >= 1 && p.properties.topicAlias <= 2);
    assert.deepEqual(resolve(got), topics);
    await sub.disconnect();
  });

  void it('[MQTT-3.3.2-11] a client that sets no Topic Alias Maximum (0) never gets an alias', async () => {
    const sub = await subscriber(undefined);
    await publishAll(['alias/x', 'alias/x']);
    const got = (await sub.barrier()) as PublishPacket[];
    assert.deepEqual(
      got.map((p) => [p.topic, p.properties?.topicAlias]),
      [
        ['alias/x', undefined],
        ['alias/x', undefined],
      ],
    );
    await sub.disconnect();
  });

  void it('[MQTT-3.3.2-7] aliases do not carry over to a new connection: the first message after reconnecting carries the topic again', async () => {
    const cid = id('recon');
    for (let round = 0; round < 2; round++) {
      const { client } = await RawClient.connect(b.port, { protocolVersion: 5, clientId: cid, properties: { topicAliasMaximum: 5 } });
      client.send({
        type: 'subscribe',
        packetId: 1,
        subscriptions: [{ topicFilter: 'alias/re', qos: 0, noLocal: false, retainAsPublished: false, retainHandling: 0 }],
      });
      await client.next('suback');
      await publishAll(['alias/re']);
      const [p] = (await client.barrier()) as PublishPacket[];
      assert.deepEqual([p!.topic, p!.properties?.topicAlias], ['alias/re', 1]);
      await client.disconnect();
    }
  });

  void it('MQTT.js with topicAliasMaximum receives 200 messages on 3 topics with the right topics, and auto-assigns its own aliases inbound', async () => {
    const sub = await mqtt.connectAsync(`mqtt://127.0.0.1:${b.port}`, { protocolVersion: 5, clientId: id('js-sub'), properties: { topicAliasMaximum: 2 } });
    const pub = await mqtt.connectAsync(`mqtt://127.0.0.1:${b.port}`, { protocolVersion: 5, clientId: id('js-pub'), autoAssignTopicAlias: true });
    await sub.subscribeAsync('alias/js/+', { qos: 1 });
    const seen: string[] = [];
    const done = new Promise<void>((res) =>
      sub.on('message', (t, p) => {
        assert.equal(t, `alias/js/${p.toString().split(':')[0]!}`);
        seen.push(t);
        if (seen.length === 200) res();
      }),
    );
    for (let i = 0; i < 200; i++) {
      const k = ['a', 'b', 'c'][i % 3]!;
      await pub.publishAsync(`alias/js/${k}`, `${k}:${i}`, { qos: 1 });
    }
    await done;
    await pub.endAsync();
    await sub.endAsync();
  });
});
