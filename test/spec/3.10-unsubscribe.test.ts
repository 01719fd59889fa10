/**
 * MQTT 3.1.1 §3.10–3.11 / 5.0 §3.10–3.11 UNSUBSCRIBE and UNSUBACK, server side: the UNSUBACK
 * (5.0: a reason code per filter, 0x11 where nothing was subscribed), exact filter comparison,
 * messages stopping, in-flight deliveries completing, and an UNSUBSCRIBE without filters.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import type { ProtocolVersion, QoS } from '../../src/protocol/constants.js';
import type { ConnectPacket, Packet, PublishPacket } from '../../src/protocol/packets.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { RawClient } from '../helpers/raw-client.js';

const open: RawClient[] = [];
let seq = 0;
let pid = 0;
const nextPid = (): number => (pid = (pid % 0xffff) + 1);

async function connect(port: number, version: ProtocolVersion, prefix: string, extra: Partial<ConnectPacket> = {}): Promise<RawClient> {
  const r = await RawClient.connect(port, { protocolVersion: version, clientId: `${prefix}-${version}-${++seq}`, ...extra });
  open.push(r.client);
  r.client.socket.setNoDelay(true);
  assert.equal(r.connack.reasonCode, 0, `CONNACK for ${prefix}`);
  return r.client;
}

async function subscribe(c: RawClient, filters: Array<[string, QoS]>): Promise<void> {
  const packetId = nextPid();
  c.send({
    type: 'subscribe',
    packetId,
    subscriptions: filters.map(([topicFilter, qos]) => ({ topicFilter, qos, noLocal: false, retainAsPublished: false, retainHandling: 0 as const })),
  });
  assert.deepEqual(
    (await c.next('suback')).reasonCodes,
    filters.map(([, q]) => q),
  );
}

async function unsubscribe(c: RawClient, topicFilters: string[], packetId = nextPid()): Promise<number[]> {
  c.send({ type: 'unsubscribe', packetId, topicFilters });
  const ack = await c.next('unsuback');
  assert.equal(ack.packetId, packetId, 'UNSUBACK has the UNSUBSCRIBE packet id');
  return ack.reasonCodes;
}

async function publish(c: RawClient, topic: string, qos: QoS = 0, payload = topic): Promise<void> {
  const p: PublishPacket = { type: 'publish', topic, payload: Buffer.from(payload), qos, retain: false, dup: false };
  if (qos > 0) p.packetId = nextPid();
  c.send(p);
  if (qos === 1) await c.next('puback');
  if (qos === 2) await c.next('pubrec');
  await c.barrier();
}

function publishesIn(packets: Packet[]): PublishPacket[] {
  return packets.filter((p): p is PublishPacket => p.type === 'publish');
}

async function received(c: RawClient): Promise<string[]> {
  return publishesIn(await c.barrier()).map((p) => p.topic);
}

afterEach(() => {
  for (const c of open.splice(0)) if (!c.isClosed) c.destroy();
});

for (const version of [4, 5] as const) {
  const v5 = version === 5;

  void describe(`§3.10 UNSUBSCRIBE (MQTT ${v5 ? '5.0' : '3.1.1'})`, () => {
    let b: TestBroker;
    before(async () => {
      b = await startBroker();
    });
    after(() => b.close());

    void it(`${v5 ? '[MQTT-3.10.4-4] [MQTT-3.10.4-5] [MQTT-3.11.3-1] [MQTT-3.11.3-2]' : '[MQTT-3.10.4-4] [MQTT-3.10.4-5]'} UNSUBACK carries the UNSUBSCRIBE's packet id${v5 ? ' and one reason code per filter: 0x00, or 0x11 where no subscription existed' : ', also when nothing was subscribed'}`, async () => {
      const c = await connect(b.port, version, 'ack');
      await subscribe(c, [['ack/a', 1]]);
      c.send({ type: 'unsubscribe', packetId: 0xabcd, topicFilters: ['ack/a', 'ack/none'] });
      assert.deepEqual(await c.next(), { type: 'unsuback', packetId: 0xabcd, reasonCodes: v5 ? [0x00, 0x11] : [] });
      c.send({ type: 'unsubscribe', packetId: 0x0102, topicFilters: ['ack/a'] });
      assert.deepEqual(await c.next(), { type: 'unsuback', packetId: 0x0102, reasonCodes: v5 ? [0x11] : [] }, 'already gone');
    });

    void it('[MQTT-3.10.4-2] after the UNSUBACK no new messages for the filter are delivered; other subscriptions keep working', async () => {
      const c = await connect(b.port, version, 'stop');
      await subscribe(c, [
        ['stop/a', 1],
        ['stop/b', 0],
      ]);
      const pub = await connect(b.port, version, 'stop-pub');
      await publish(pub, 'stop/a', 0);
      assert.deepEqual(await received(c), ['stop/a']);
      await unsubscribe(c, ['stop/a']);
      await publish(pub, 'stop/a', 1);
      await publish(pub, 'stop/b', 0);
      assert.deepEqual(await received(c), ['stop/b']);
    });

    void it('[MQTT-3.10.4-1] filters are compared character by character: "+" does not remove "a", another case removes nothing', async () => {
      const c = await connect(b.port, version, 'exact');
      await subscribe(c, [
        ['exact/a', 0],
        ['exact/+', 0],
      ]);
      const codes = await unsubscribe(c, ['exact/+', 'EXACT/a', 'exact/#']);
      if (v5) assert.deepEqual(codes, [0x00, 0x11, 0x11]);
      const pub = await connect(b.port, version, 'exact-pub');
      await publish(pub, 'exact/a');
      await publish(pub, 'exact/b');
      assert.deepEqual(await received(c), ['exact/a'], 'only the exact filter "exact/a" is left');
    });

    void it('[MQTT-3.10.4-6] several filters in one UNSUBSCRIBE act as a sequence, answered by one UNSUBACK', async () => {
      const c = await connect(b.port, version, 'multi');
      await subscribe(c, [
        ['multi/a', 0],
        ['multi/b', 0],
        ['multi/c', 0],
      ]);
      const codes = await unsubscribe(c, ['multi/a', 'multi/b', 'multi/a', 'multi/zz']);
      if (v5) assert.deepEqual(codes, [0x00, 0x00, 0x11, 0x11]);
      assert.deepEqual(await c.barrier(), [], 'one UNSUBACK only');
      const pub = await connect(b.port, version, 'multi-pub');
      for (const t of ['multi/a', 'multi/b', 'multi/c']) await publish(pub, t);
      assert.deepEqual(await received(c), ['multi/c']);
    });

    void it('[MQTT-3.10.4-3] QoS 1 and QoS 2 deliveries already started complete after the UNSUBSCRIBE', async () => {
      const c = await connect(b.port, version, 'inflight');
      await subscribe(c, [
        ['inflight/1', 1],
        ['inflight/2', 2],
      ]);
      const pub = await connect(b.port, version, 'inflight-pub');
      await publish(pub, 'inflight/1', 1);
      await publish(pub, 'inflight/2', 2);
      const [q1, q2] = publishesIn(await c.barrier());
      assert.equal(q1?.qos, 1);
      assert.equal(q2?.qos, 2);
      await unsubscribe(c, ['inflight/1', 'inflight/2']);
      c.send({ type: 'pubrec', packetId: q2!.packetId! });
      const rel = await c.next('pubrel');
      assert.equal(rel.packetId, q2!.packetId);
      c.send({ type: 'pubcomp', packetId: q2!.packetId! });
      c.send({ type: 'puback', packetId: q1!.packetId! });
      assert.deepEqual(await c.barrier(), []);
    });

    void it(`${v5 ? '[MQTT-3.10.3-2] [MQTT-4.13.1-1]' : '[MQTT-3.10.3-2] [MQTT-4.8.0-1]'} an UNSUBSCRIBE without any topic filter closes the connection${v5 ? ' (DISCONNECT 0x82)' : ''}`, async () => {
      const c = await connect(b.port, version, 'empty');
      c.sendRaw(v5 ? 'a2 03 0001 00' : 'a2 02 0001');
      if (v5) assert.equal((await c.next('disconnect')).reasonCode, 0x82);
      await c.closed();
      assert.deepEqual(c.pending, []);
    });

    void it(`[MQTT-4.7.3-1] ${v5 ? '[MQTT-4.13.1-1]' : '[MQTT-4.8.0-1]'} an UNSUBSCRIBE with a zero-length topic filter, or '$share/group/' with an empty filter part, is malformed: no UNSUBACK, the connection is closed${v5 ? ' (DISCONNECT 0x81)' : ''}`, async () => {
      for (const filter of ['', '$share/group/']) {
        const c = await connect(b.port, version, 'empty-filter');
        c.send({ type: 'unsubscribe', packetId: 7, topicFilters: ['ok/a', filter] });
        if (v5) assert.equal((await c.next('disconnect')).reasonCode, 0x81, JSON.stringify(filter));
        await c.closed();
        assert.deepEqual(c.pending, [], `nothing else for ${JSON.stringify(filter)}`);
      }
    });
  });
}
