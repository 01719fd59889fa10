/**
 * The $SYS tree: the exact topic set (Mosquitto's names plus Courier's), retained on subscribe,
 * values that move with traffic, only changed values republished, out of reach of `#`, closed to
 * client publishes, the optional connect/disconnect events, and the same values in the API.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { MqttClient } from 'mqtt';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { Inbox, connectClient, endAll } from '../helpers/interop.js';
import { pollUntil } from '../helpers/wait.js';

const LOADS = [
  'messages/received',
  'messages/sent',
  'publish/received',
  'publish/sent',
  'publish/dropped',
  'bytes/received',
  'bytes/sent',
  'connections',
  'sockets',
].flatMap((n) => ['1min', '5min', '15min'].map((p) => `load/${n}/${p}`));
const PACKETS = [
  'connect/received',
  'connack/sent',
  'publish/received',
  'publish/sent',
  'publish/dropped',
  'puback/received',
  'puback/sent',
  'pubrec/received',
  'pubrec/sent',
  'pubrel/received',
  'pubrel/sent',
  'pubcomp/received',
  'pubcomp/sent',
  'subscribe/received',
  'suback/sent',
  'unsubscribe/received',
  'unsuback/sent',
  'pingreq/received',
  'pingresp/sent',
  'disconnect/received',
  'disconnect/sent',
  'auth/received',
  'auth/sent',
].map((p) => `mqtt/${p}`);

/** Every topic a single (non-cluster) broker publishes under $SYS/broker/. */
const EXPECTED = [
  'version',
  'uptime',
  'time',
  'clients/connected',
  'clients/disconnected',
  'clients/total',
  'clients/maximum',
  'clients/expired',
  'messages/received',
  'messages/sent',
  'messages/inflight',
  'messages/queued',
  'bytes/received',
  'bytes/sent',
  'publish/messages/received',
  'publish/messages/sent',
  'publish/messages/dropped',
  'publish/messages/dropped/qos0_backpressure',
  'publish/messages/dropped/queue_full',
  'publish/messages/dropped/expired',
  'publish/messages/dropped/too_large',
  'publish/messages/dropped/queue_budget',
  'publish/messages/unrouted',
  'publish/bytes/received',
  'publish/bytes/sent',
  'connections/socket/count',
  'subscriptions/count',
  'shared_subscriptions/count',
  'retained messages/count',
  'store/messages/count',
  'store/messages/bytes',
  'packet/out/bytes',
  'heap/current',
  'heap/maximum',
  'refused/connections',
  'refused/authentication',
  'refused/publish',
  'refused/subscribe',
  'refused/rate_limited',
  'refused/connect_timeout',
  ...PACKETS,
  ...LOADS,
]
  .map((t) => `$SYS/broker/${t}`)
  .sort();

void describe('$SYS/broker tree', () => {
  let b: TestBroker;
  const clients: MqttClient[] = [];
  const url = (): string => `mqtt://127.0.0.1:${b.port}`;

  before(async () => {
    b = await startBroker({ sys: { interval: 1, events: true } });
  });
  after(async () => {
    await endAll(clients);
    await b.close();
  });

  async function client(opts: Parameters<typeof connectClient>[1] = {}): Promise<MqttClient> {
    const c = await connectClient(url(), { protocolVersion: 5, ...opts });
    clients.push(c);
    return c;
  }

  /** Latest value per topic as a subscriber of $SYS/# sees it. */
  function watch(c: MqttClient): Map<string, string> {
    const seen = new Map<string, string>();
    c.on('message', (t, p) => seen.set(t, p.toString()));
    return seen;
  }

  void it('publishes exactly the documented topic set, retained, with Mosquitto-style values', async () => {
    const c = await client();
    const retainedFlags = new Map<string, boolean>();
    c.on('message', (t, _p, packet) => {
      if (!retainedFlags.has(t)) retainedFlags.set(t, packet.retain);
    });
    const seen = watch(c);
    await c.subscribeAsync('$SYS/#', { qos: 0 });
    await pollUntil(() => EXPECTED.every((t) => seen.has(t)), { what: 'every $SYS topic', timeoutMs: 10_000 });
    const events = [...seen.keys()].filter((t) => t.startsWith('$SYS/broker/events/'));
    assert.deepEqual([...seen.keys()].filter((t) => !t.startsWith('$SYS/broker/events/')).sort(), EXPECTED);
    assert.deepEqual(events, [], 'events are not retained, so none arrive on subscribe');
    // Retained: the first copy of each value comes with the retain flag (sent on SUBSCRIBE).
    for (const t of EXPECTED) assert.equal(retainedFlags.get(t), true, `${t} retained`);
    assert.match(seen.get('$SYS/broker/version')!, /^courier version \d+\.\d+\.\d+/);
    assert.match(seen.get('$SYS/broker/uptime')!, /^\d+ seconds$/);
    assert.ok(!Number.isNaN(Date.parse(seen.get('$SYS/broker/time')!)));
    assert.match(seen.get('$SYS/broker/load/bytes/received/1min')!, /^\d+\.\d\d$/);
  });

  void it('values move with traffic; publish counters and clients/connected follow', async () => {
    const watcher = await client();
    const seen = watch(watcher);
    await watcher.subscribeAsync('$SYS/broker/#');
    await pollUntil(() => seen.has('$SYS/broker/publish/messages/received'), { what: 'first values' });
    const before = Number(seen.get('$SYS/broker/publish/messages/received'));
    const connectedBefore = Number(seen.get('$SYS/broker/clients/connected'));
    const pub = await client();
    const sub = await client();
    const inbox = new Inbox(sub);
    await sub.subscribeAsync('sys-test/#', { qos: 1 });
    for (let i = 0; i < 10; i++) await pub.publishAsync(`sys-test/${i}`, 'x', { qos: 1 });
    await inbox.take(10);
    await pollUntil(() => Number(seen.get('$SYS/broker/publish/messages/received')) >= before + 10, { what: 'publish/messages/received +10' });
    await pollUntil(() => Number(seen.get('$SYS/broker/clients/connected')) >= connectedBefore + 2, { what: 'clients/connected +2' });
    assert.ok(Number(seen.get('$SYS/broker/mqtt/puback/sent')) >= 10);
    assert.ok(Number(seen.get('$SYS/broker/subscriptions/count')) >= 2);
    await pollUntil(() => Number(seen.get('$SYS/broker/load/publish/received/1min')) > 0, { what: 'a load above 0' });
  });

  void it('republishes only what changed (version once, uptime every tick)', async () => {
    const c = await client();
    const counts = new Map<string, number>();
    c.on('message', (t) => counts.set(t, (counts.get(t) ?? 0) + 1));
    await c.subscribeAsync('$SYS/broker/#');
    await pollUntil(() => (counts.get('$SYS/broker/uptime') ?? 0) >= 3, { what: 'three uptime updates', timeoutMs: 10_000 });
    assert.equal(counts.get('$SYS/broker/version'), 1, 'version: the retained copy only');
    assert.equal(counts.get('$SYS/broker/shared_subscriptions/count'), 1, 'an unchanged gauge is not republished');
  });

  void it('a filter starting with a wildcard does not see $SYS [MQTT-4.7.2-1]', async () => {
    const c = await client();
    const got: string[] = [];
    c.on('message', (t) => got.push(t));
    await c.subscribeAsync(['#', '+/broker/#'], { qos: 0 });
    // Something that does match arrives; nothing from $SYS came before or with it.
    const marker = await client();
    await marker.publishAsync('sys-marker', 'm', { qos: 1 });
    await pollUntil(() => got.includes('sys-marker'), { what: 'marker' });
    assert.deepEqual(
      got.filter((t) => t.startsWith('$')),
      [],
    );
  });

  void it('clients cannot publish to $SYS: v5 PUBACK 0x87, the value is unchanged', async () => {
    const c = await client();
    const notAuthorized = (e: unknown): boolean => (e as { code?: number }).code === 0x87;
    await assert.rejects(c.publishAsync('$SYS/broker/version', 'forged', { qos: 1 }), notAuthorized);
    const reader = await client();
    const seen = watch(reader);
    await reader.subscribeAsync('$SYS/broker/version');
    await pollUntil(() => seen.get('$SYS/broker/version'), { what: 'version' });
    assert.match(seen.get('$SYS/broker/version')!, /^courier version/);
    await assert.rejects(c.publishAsync('$SYS/anything/else', 'x', { qos: 1 }), notAuthorized);
  });

  void it('events: connect and disconnect as JSON on fixed topics (sys.events: true)', async () => {
    const watcher = await client();
    const inbox = new Inbox(watcher);
    await watcher.subscribeAsync('$SYS/broker/events/client/+');
    const c = await connectClient(url(), { protocolVersion: 5, clientId: 'sys-event-client', username: 'u1' });
    const con = JSON.parse((await inbox.next()).payload) as Record<string, unknown>;
    assert.equal(con.clientId, 'sys-event-client');
    assert.equal(con.username, 'u1');
    assert.equal(con.protocolVersion, 5);
    await c.endAsync();
    const m = await inbox.next();
    assert.equal(m.topic, '$SYS/broker/events/client/disconnected');
    const dis = JSON.parse(m.payload) as Record<string, unknown>;
    assert.equal(dis.clientId, 'sys-event-client');
    assert.equal(typeof dis.reason, 'string');
    assert.equal(m.packet.retain, false);
  });

  void it('clients/disconnected counts offline sessions and never goes negative under churn', async () => {
    const watcher = await client();
    const values: number[] = [];
    watcher.on('message', (t, p) => {
      if (t === '$SYS/broker/clients/disconnected') values.push(Number(p.toString()));
    });
    await watcher.subscribeAsync('$SYS/broker/clients/disconnected');
    for (let i = 0; i < 20; i++) {
      const c = await connectClient(url(), { protocolVersion: 5, clientId: `churn-${i}`, clean: false, properties: { sessionExpiryInterval: 60 } });
      await c.endAsync();
    }
    await pollUntil(() => values.length > 0 && values[values.length - 1]! >= 20, { what: 'clients/disconnected ≥ 20', timeoutMs: 10_000 });
    assert.ok(values.every((v) => v >= 0));
  });
});

void describe('$SYS off', () => {
  void it('sys.interval 0 publishes nothing', async () => {
    const b = await startBroker({ sys: { interval: 0 } });
    try {
      assert.equal(b.broker.stats().retained, 0);
      const c = await connectClient(`mqtt://127.0.0.1:${b.port}`, { protocolVersion: 5 });
      const got: string[] = [];
      c.on('message', (t) => got.push(t));
      await c.subscribeAsync('$SYS/#');
      await c.publishAsync('x', 'y', { qos: 1 });
      assert.deepEqual(got, []);
      await c.endAsync();
    } finally {
      await b.close();
    }
  });
});
