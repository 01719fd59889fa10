/**
 * The client library against two brokers (Courier in-process, Mosquitto spawned), MQTT 3.1.1 and
 * 5.0, TCP and WebSocket: one suite, the same assertions for every combination.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect, ClosedError, RefusedError, type Client, type Message } from '../../packages/client/src/index.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { withTimeout } from '../helpers/peers.js';
import { mosquittoGate, startCourier, startMosquitto, unique, type TestServer } from './brokers.js';

const VERSIONS = [4, 5] as const;
const TRANSPORTS = ['tcp', 'ws'] as const;

async function take<T>(it: AsyncIterator<T>, n: number): Promise<T[]> {
  const out: T[] = [];
  while (out.length < n) {
    const r = await withTimeout(it.next(), 5000, `message ${out.length + 1} of ${n}`);
    if (r.done === true) break;
    out.push(r.value);
  }
  return out;
}

function suite(name: 'courier' | 'mosquitto', start: () => Promise<TestServer>, gate: { skip: string | false }): void {
  void describe(`client against ${name}`, gate, () => {
    let server: TestServer;
    const clients: Client[] = [];
    const open = async (url: string, options: Parameters<typeof connect>[1] = {}): Promise<Client> => {
      const c = await connect(url, { reconnect: { initialDelay: 20, maxDelay: 200 }, ...options });
      clients.push(c);
      return c;
    };
    before(async () => {
      server = await start();
    });
    after(async () => {
      await Promise.all(clients.map((c) => c.close()));
      await server?.close();
    });

    for (const version of VERSIONS) {
      for (const transport of TRANSPORTS) {
        const tag = `v${version === 5 ? '5' : '3.1.1'} ${transport}`;

        void it(`${tag}: publish QoS 0/1/2 resolves on acknowledgement; an iterator receives them in order; break unsubscribes`, async () => {
          const topic = unique('t');
          const sub = await open(server.url(transport), { protocolVersion: version });
          const pub = await open(server.url(transport), { protocolVersion: version });
          const s = await sub.subscribe(`${topic}/#`, { qos: 2 });
          assert.equal(s.grantedQoS, 2);
          const r0 = await pub.publish(`${topic}/a`, 'zero', { qos: 0 });
          const r1 = await pub.publish(`${topic}/a`, 'one', { qos: 1 });
          const r2 = await pub.publish(`${topic}/a`, new Uint8Array([1, 2, 3]), { qos: 2 });
          assert.deepEqual([r0.reasonCode, r1.reasonCode, r2.reasonCode], [0, 0, 0]);
          const got: Message[] = [];
          for await (const m of s) {
            got.push(m);
            if (got.length === 3) break;
          }
          assert.deepEqual(
            got.map((m) => [m.topic, m.qos]),
            [
              [`${topic}/a`, 0],
              [`${topic}/a`, 1],
              [`${topic}/a`, 2],
            ],
          );
          assert.equal(got[1]!.text(), 'one');
          assert.deepEqual([...got[2]!.payload], [1, 2, 3]);
          // After break the subscription is gone: a second subscriber sees the next message, the first does not.
          const s2 = await sub.subscribe(`${topic}/b`, { qos: 1 });
          await pub.publish(`${topic}/a`, 'after', { qos: 1 });
          await pub.publish(`${topic}/b`, 'marker', { qos: 1 });
          const [m] = await take(s2[Symbol.asyncIterator](), 1);
          assert.equal(m!.text(), 'marker');
        });

        void it(`${tag}: handlers with named wildcards, retained messages, overlapping subscriptions`, async () => {
          const topic = unique('h');
          const pub = await open(server.url(transport), { protocolVersion: version });
          await pub.publish(`${topic}/dev7/temp`, '21.5', { qos: 1, retain: true });
          const c = await open(server.url(transport), { protocolVersion: version });
          const seen: string[] = [];
          let resolveAll: () => void;
          const all = new Promise<void>((r) => (resolveAll = r));
          await c.subscribe(`${topic}/+id/temp`, {
            qos: 1,
            handler: (m) => {
              seen.push(`${m.params.id}=${m.text()} retain=${m.retain}`);
              if (seen.length === 2) resolveAll();
            },
          });
          // Another client: in 3.1.1 a second, overlapping SUBSCRIBE here would bring the retained message to both.
          const c2 = await open(server.url(transport), { protocolVersion: version });
          const rest = await c2.subscribe(`${topic}/#rest`, { qos: 1 });
          await pub.publish(`${topic}/dev8/temp`, '19', { qos: 1 });
          await withTimeout(all, 5000, 'handler messages');
          assert.deepEqual(seen, [`dev7=21.5 retain=true`, `dev8=19 retain=false`]);
          const [a, b] = await take(rest[Symbol.asyncIterator](), 2);
          assert.deepEqual(a!.params.rest, ['dev7', 'temp']);
          assert.deepEqual(b!.params.rest, ['dev8', 'temp']);
          await pub.publish(`${topic}/dev7/temp`, '', { qos: 1, retain: true });
        });

        void it(`${tag}: a persistent session resumes after the connection is cut: QoS 1/2 sent meanwhile arrive, no resubscribe needed`, async () => {
          const topic = unique('r');
          const u = new URL(server.url(transport));
          const proxy = new FaultProxy({ port: Number(u.port) });
          const pport = await proxy.listen();
          u.port = String(pport);
          try {
            const id = unique('resume');
            const c = await open(u.href, { protocolVersion: version, clientId: id, clean: false, sessionExpiry: 300, keepAlive: 5 });
            const s = await c.subscribe(`${topic}/#`, { qos: 2 });
            const it2 = s[Symbol.asyncIterator]();
            const reconnected = new Promise<{ sessionPresent: boolean }>((resolve) => c.on('connect', resolve));
            const disconnected = new Promise<void>((resolve) => c.on('disconnect', () => resolve()));
            const pub = await open(server.url(transport), { protocolVersion: version });
            proxy.cut();
            await withTimeout(disconnected, 5000, 'disconnect');
            await pub.publish(`${topic}/x`, 'q1', { qos: 1 });
            await pub.publish(`${topic}/x`, 'q2', { qos: 2 });
            const info = await withTimeout(reconnected, 5000, 'reconnect');
            assert.equal(info.sessionPresent, true);
            const got = await take(it2, 2);
            assert.deepEqual(
              got.map((m) => m.text()),
              ['q1', 'q2'],
            );
            // Unacknowledged publishes made while offline are queued and sent after the reconnect.
            await c.publish(`${topic}/y`, 'from resumed', { qos: 1 });
          } finally {
            await proxy.close();
          }
        });

        if (version === 5) {
          void it(`${tag}: request/response over Response Topic + Correlation Data`, async () => {
            const svc = unique('svc');
            const server1 = await open(server.url(transport), { protocolVersion: 5 });
            await server1.respond(`${svc}/+op`, (req) => `${req.params.op}:${req.text().toUpperCase()}`, { qos: 1 });
            const c = await open(server.url(transport), { protocolVersion: 5 });
            const [a, b] = await Promise.all([c.request(`${svc}/echo`, 'hello', { timeout: 5000 }), c.request(`${svc}/shout`, 'world', { timeout: 5000 })]);
            assert.equal(a.text(), 'echo:HELLO');
            assert.equal(b.text(), 'shout:WORLD');
          });

          const noTakeover = name === 'mosquitto' ? 'Mosquitto 2.0.11 closes a taken-over connection without DISCONNECT 0x8E' : false;
          void it(`${tag}: a session takeover (DISCONNECT 0x8E) ends the client without a reconnect loop`, { skip: noTakeover }, async () => {
            const id = unique('takeover');
            const first = await open(server.url(transport), { protocolVersion: 5, clientId: id });
            const closed = new Promise<Error | undefined>((resolve) => first.on('close', (i) => resolve(i.error)));
            let reconnects = 0;
            first.on('reconnecting', () => reconnects++);
            await open(server.url(transport), { protocolVersion: 5, clientId: id });
            const err = await withTimeout(closed, 5000, 'close after takeover');
            assert.ok(err instanceof RefusedError);
            assert.equal(err.reasonCode, 0x8e);
            assert.equal(reconnects, 0);
            assert.equal(first.state, 'closed');
            await assert.rejects(first.publish('x', 'y', { qos: 1 }), ClosedError);
          });
        }
      }
    }

    void it('v5: overlapping subscriptions each get only the messages sent for them (Subscription Identifiers), retained included', async () => {
      const topic = unique('o');
      const pub = await open(server.url('tcp'));
      await pub.publish(`${topic}/k`, 'kept', { qos: 1, retain: true });
      const c = await open(server.url('tcp'));
      const a = await c.subscribe(`${topic}/+`, { qos: 1 });
      const b = await c.subscribe(`${topic}/#`, { qos: 1 });
      await pub.publish(`${topic}/k`, 'live', { qos: 1 });
      const ia = a[Symbol.asyncIterator]();
      const ib = b[Symbol.asyncIterator]();
      assert.deepEqual(
        (await take(ia, 2)).map((m) => m.text()),
        ['kept', 'live'],
      );
      assert.deepEqual(
        (await take(ib, 2)).map((m) => m.text()),
        ['kept', 'live'],
      );
      await pub.publish(`${topic}/k`, '', { qos: 1, retain: true });
    });

    void it('every promise settles: close() rejects queued and in-flight publishes, pending subscribes; abort signals reject', async () => {
      const u = new URL(server.url('tcp'));
      const proxy = new FaultProxy({ port: Number(u.port) });
      u.port = String(await proxy.listen());
      try {
        const c = await connect(u.href, { reconnect: { initialDelay: 10 } });
        proxy.blackhole();
        const inflight = c.publish('settle/a', 'x', { qos: 1 });
        const qos2 = c.publish('settle/b', 'x', { qos: 2 });
        const sub = c.subscribe('settle/#', { qos: 1 });
        const ac = new AbortController();
        const aborted = c.publish('settle/c', 'x', { qos: 1, signal: ac.signal });
        ac.abort(new Error('stop'));
        await assert.rejects(aborted, /stop/);
        await assert.rejects(c.publish('settle/d', 'x', { qos: 1, signal: AbortSignal.abort() }));
        const settled = Promise.all([assert.rejects(inflight, ClosedError), assert.rejects(qos2, ClosedError), assert.rejects(sub, ClosedError)]);
        await c.close();
        await settled;
        assert.equal(c.pendingPublishes, 0);
      } finally {
        await proxy.close();
      }
    });

    void it('connect rejects at once when nothing listens, and an aborted signal rejects connect', async () => {
      const u = new URL(server.url('tcp'));
      const proxy = new FaultProxy({ port: Number(u.port) });
      const port = await proxy.listen();
      await proxy.close();
      await assert.rejects(connect(`mqtt://127.0.0.1:${port}`), /cannot connect/);
      await assert.rejects(connect(server.url('tcp'), { signal: AbortSignal.abort(new Error('nope')) }), /nope/);
    });
  });
}

suite('courier', () => startCourier(), { skip: false });
suite('mosquitto', () => startMosquitto(), mosquittoGate());
