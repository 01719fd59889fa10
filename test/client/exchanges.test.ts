/**
 * SUBSCRIBE / UNSUBSCRIBE exchanges that outlive their caller:
 *
 * - An aborted subscribe() whose SUBSCRIBE is on the wire keeps its Packet Identifier until the
 *   SUBACK comes (the server may still answer it [MQTT-2.2.1-3]), then frees it: 70,000 aborted
 *   subscribes against a stand-in server that answers late do not use up the 65,535 identifiers.
 *   The late SUBACK granted a subscription nobody wants, so the client unsubscribes it.
 * - Aborted after the connection was lost, the identifier is free at once and nothing is resent.
 * - unsubscribe() while offline: the UNSUBSCRIBE goes once reconnected when the server kept the
 *   session (Courier, Session Present 1): no message arrives and the broker has no subscription.
 *   With Session Present 0 nothing is sent (the server has nothing to undo).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Client, type ClientOptions } from '../../packages/client/src/index.js';
import { connectWith } from '../../packages/client/src/connect.js';
import type { Packet, SubscribePacket } from '../../src/protocol/packets.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { withTimeout } from '../helpers/peers.js';
import { pollUntil } from '../helpers/wait.js';
import { FakeServer } from './fake-server.js';
import { Tap } from './tap.js';
import { unique } from './brokers.js';

const isAbort = (e: unknown): boolean => e instanceof Error && e.name === 'AbortError';
const count = (packets: readonly Packet[], type: Packet['type']): number => packets.filter((p) => p.type === type).length;
const nextConnect = (c: Client): Promise<{ sessionPresent: boolean }> => new Promise((r) => c.on('connect', r));

void describe('aborted SUBSCRIBE: its packet identifier is freed when the SUBACK comes', () => {
  let server: FakeServer;
  before(async () => {
    server = await new FakeServer().listen();
    // UNSUBSCRIBE is answered at once; SUBSCRIBE only when the test says.
    server.onPacket = (p, c) => {
      if (p.type === 'unsubscribe') c.send({ type: 'unsuback', packetId: p.packetId, reasonCodes: p.topicFilters.map(() => 0) });
    };
  });
  after(async () => {
    await server?.close();
  });

  void it('70,000 subscribes aborted before their SUBACK: identifiers are held until it comes, then freed; none is used up', async () => {
    const c = await connect(server.url, { reconnect: false });
    try {
      const conn = server.last;
      const batch = 5000;
      let sent = 0;
      for (let round = 0; round < 14; round++) {
        const aborts = Array.from({ length: batch }, () => new AbortController());
        const subs = aborts.map((ac) => c.subscribe('ids/t', { qos: 1, signal: ac.signal }));
        sent += batch;
        await server.until(() => (conn.counts.get('subscribe') ?? 0) === sent, `${sent} SUBSCRIBE`);
        for (const ac of aborts) ac.abort();
        const results = await Promise.allSettled(subs);
        assert.ok(
          results.every((r) => r.status === 'rejected' && isAbort(r.reason)),
          'every aborted subscribe rejects with the abort reason',
        );
        // The server may still answer them: their identifiers stay taken.
        assert.equal(c.resources.packetIds, batch, `round ${round}: identifiers held until the SUBACK`);
        const ids = conn.packets.slice(-batch).map((p) => (p as SubscribePacket).packetId);
        assert.equal(new Set(ids).size, batch, 'no identifier given twice');
        for (const id of ids) conn.send({ type: 'suback', packetId: id, reasonCodes: [1] });
        // Each late grant is undone (nobody subscribes to ids/t any more), and every identifier comes back.
        await server.until(() => (conn.counts.get('unsubscribe') ?? 0) === sent, `${sent} UNSUBSCRIBE`);
        await pollUntil(() => c.resources.packetIds === 0 && c.resources.exchanges === 0, { what: `round ${round}: identifiers freed` });
      }
      // Still usable: a subscribe that is answered resolves.
      const ok = c.subscribe('ids/last', { qos: 0 });
      await server.until(() => (conn.counts.get('subscribe') ?? 0) === sent + 1, 'the last SUBSCRIBE');
      const last = conn.packets.at(-1) as SubscribePacket;
      conn.send({ type: 'suback', packetId: last.packetId, reasonCodes: [0] });
      assert.equal((await withTimeout(ok, 5000, 'the last subscribe')).grantedQoS, 0);
    } finally {
      await c.close();
    }
  });

  void it('aborted after the connection was lost: freed at once, not sent again on the next connection', async () => {
    const c = await connect(server.url, { reconnect: { initialDelay: 5, maxDelay: 20 } });
    try {
      const first = server.last;
      const ac = new AbortController();
      const sub = c.subscribe('ids/lost', { qos: 1, signal: ac.signal });
      sub.catch(() => undefined);
      await server.until(() => (first.counts.get('subscribe') ?? 0) === 1, 'the SUBSCRIBE');
      const lost = new Promise<void>((r) => c.on('disconnect', () => r()));
      first.socket.destroy();
      await withTimeout(lost, 5000, 'disconnect');
      ac.abort();
      await assert.rejects(sub, isAbort);
      assert.equal(c.resources.packetIds, 0);
      assert.equal(c.resources.exchanges, 0);
      const back = nextConnect(c);
      await withTimeout(back, 5000, 'reconnect');
      const second = server.last;
      assert.notEqual(second, first);
      // A PINGREQ round trip would need keep alive; an answered subscribe shows what was sent before it.
      const probe = c.subscribe('ids/probe', { qos: 0 });
      await server.until(() => (second.counts.get('subscribe') ?? 0) >= 1, 'the probe SUBSCRIBE');
      const subs = second.packets.filter((p): p is SubscribePacket => p.type === 'subscribe');
      assert.deepEqual(
        subs.map((p) => p.subscriptions[0]!.topicFilter),
        ['ids/probe'],
        'the aborted SUBSCRIBE is not sent again',
      );
      second.send({ type: 'suback', packetId: subs[0]!.packetId, reasonCodes: [0] });
      await probe;
    } finally {
      await c.close();
    }
  });
});

void describe('unsubscribe() while offline, against Courier', () => {
  let b: TestBroker;
  before(async () => {
    b = await startBroker();
  });
  after(async () => {
    await b?.close();
  });

  const filtersOf = (clientId: string): string[] => b.broker.inspector.subscriptions({ clientId }).items.map((s) => s.filter);

  for (const version of [5, 4] as const) {
    const tag = version === 5 ? 'v5' : 'v3.1.1';

    void it(`${tag}: session kept (Session Present 1): the UNSUBSCRIBE goes once reconnected; no message arrives, the broker has no subscription`, async () => {
      const proxy = new FaultProxy({ port: b.port });
      const tap = new Tap();
      const opts: ClientOptions = {
        protocolVersion: version,
        clientId: unique('unsub'),
        clean: false,
        sessionExpiry: 600,
        reconnect: { initialDelay: 5, maxDelay: 50 },
      };
      const c = await connectWith(tap.open, `mqtt://127.0.0.1:${await proxy.listen()}`, opts);
      const pub = await connect(`mqtt://127.0.0.1:${b.port}`, { protocolVersion: version });
      try {
        const topic = unique('off');
        const got: string[] = [];
        const sub = await c.subscribe(`${topic}/+`, { qos: 1, handler: (m) => void got.push(m.topic) });
        const keep = await c.subscribe(`${topic}/keep`, { qos: 1, handler: (m) => void got.push(m.topic) });
        assert.deepEqual(filtersOf(opts.clientId!).sort(), [`${topic}/+`, `${topic}/keep`]);
        const lost = new Promise<void>((r) => c.on('disconnect', () => r()));
        proxy.refuse();
        proxy.cut();
        await withTimeout(lost, 5000, 'disconnect');
        const unsubscribed = sub.unsubscribe(); // offline: waits for the connection
        let done = false;
        void unsubscribed.then(() => (done = true));
        await new Promise((r) => setImmediate(r));
        assert.equal(done, false, 'an offline unsubscribe() waits for the server');
        const back = nextConnect(c);
        await proxy.unrefuse();
        assert.equal((await withTimeout(back, 10_000, 'reconnect')).sessionPresent, true);
        await withTimeout(unsubscribed, 5000, 'the UNSUBACK');
        const conn = tap.connections.at(-1)!;
        assert.deepEqual(
          conn.filter((p) => p.type === 'unsubscribe').map((p) => (p.type === 'unsubscribe' ? p.topicFilters : [])),
          [[`${topic}/+`]],
          'one UNSUBSCRIBE on the new connection',
        );
        assert.deepEqual(filtersOf(opts.clientId!), [`${topic}/keep`], 'the broker kept only the other subscription');
        await pub.publish(`${topic}/x`, 'gone', { qos: 1 });
        await pub.publish(`${topic}/keep`, 'kept', { qos: 1 });
        await pollUntil(() => got.length >= 1, { what: 'the message of the kept subscription' });
        assert.deepEqual(got, [`${topic}/keep`], 'nothing for the unsubscribed filter');
        await keep.unsubscribe();
      } finally {
        await pub.close();
        await c.close();
        await proxy.close();
      }
    });
  }

  void it('v5: the session was discarded (Session Present 0): no UNSUBSCRIBE is sent, unsubscribe() resolves', async () => {
    const proxy = new FaultProxy({ port: b.port });
    const tap = new Tap();
    const opts: ClientOptions = { clientId: unique('unsub0'), clean: false, sessionExpiry: 600, reconnect: { initialDelay: 5, maxDelay: 50 } };
    const c = await connectWith(tap.open, `mqtt://127.0.0.1:${await proxy.listen()}`, opts);
    try {
      const sub = await c.subscribe(`${unique('off0')}/+`, { qos: 1 });
      const lost = new Promise<void>((r) => c.on('disconnect', () => r()));
      proxy.refuse();
      proxy.cut();
      await withTimeout(lost, 5000, 'disconnect');
      const other = await connect(`mqtt://127.0.0.1:${b.port}`, { clientId: opts.clientId!, clean: true });
      await other.close();
      const unsubscribed = sub.unsubscribe();
      const back = nextConnect(c);
      await proxy.unrefuse();
      assert.equal((await withTimeout(back, 10_000, 'reconnect')).sessionPresent, false);
      await withTimeout(unsubscribed, 5000, 'unsubscribe()');
      assert.equal(count(tap.connections.at(-1)!, 'unsubscribe'), 0);
      assert.equal(c.resources.packetIds, 0);
    } finally {
      await c.close();
      await proxy.close();
    }
  });
});
