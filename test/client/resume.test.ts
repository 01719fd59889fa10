/**
 * Resubscribe only when the server kept no session, against Courier and Mosquitto, 5.0 and 3.1.1:
 * every packet the client writes is decoded by a tap on its transport, so the tests count the
 * SUBSCRIBE packets of each connection.
 *
 * - Session Present 1 (connection cut, session kept): no SUBSCRIBE, and messages still arrive.
 * - The broker restarted without state, or the session was discarded (a clean-start connection
 *   with the same client id, as an expiry does): exactly one SUBSCRIBE per filter, and messages arrive.
 * - Subscriptions kept in a file store: a new process (a new client on the same store) knows them;
 *   with Session Present 0 it makes them again, with 1 it does not; their messages wait in the
 *   restored subscription until subscribe() with the same filter takes them over.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, fileStore, type Client, type ClientOptions, type Message } from '../../packages/client/src/index.js';
import { connectWith } from '../../packages/client/src/connect.js';
import { Tap } from './tap.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { withTimeout } from '../helpers/peers.js';
import { mosquittoGate, startCourier, startMosquitto, unique, type TestServer } from './brokers.js';

const nextConnect = (c: Client): Promise<{ sessionPresent: boolean }> => new Promise((r) => c.on('connect', r));

function suite(name: string, start: () => Promise<TestServer>, gate: { skip: string | false }): void {
  void describe(`resubscribe only when Session Present is 0, against ${name}`, gate, () => {
    let server: TestServer;
    const dir = mkdtempSync(join(tmpdir(), 'courier-resume-'));
    before(async () => {
      server = await start();
    });
    after(async () => {
      await server?.close();
      rmSync(dir, { recursive: true, force: true });
    });

    for (const version of [4, 5] as const) {
      const tag = `v${version === 5 ? '5' : '3.1.1'}`;
      const base = (): ClientOptions => ({
        protocolVersion: version,
        clientId: unique('rs'),
        clean: false,
        sessionExpiry: 600,
        reconnect: { initialDelay: 5, maxDelay: 50 },
      });

      void it(`${tag}: Session Present 1 after a cut: no SUBSCRIBE is sent, messages still arrive`, async () => {
        const proxy = new FaultProxy({ port: server.port });
        const tap = new Tap();
        const c = await connectWith(tap.open, `mqtt://127.0.0.1:${await proxy.listen()}`, base());
        try {
          const topic = unique('sp1');
          const s = await c.subscribe(`${topic}/+id`, { qos: 1 });
          await c.subscribe(`${topic}/x`, { qos: 0, handler: () => undefined });
          assert.deepEqual(tap.subscribes(0), [`${topic}/+`, `${topic}/x`]);
          const back = nextConnect(c);
          proxy.cut();
          assert.equal((await withTimeout(back, 10_000, 'reconnect')).sessionPresent, true);
          const it = s[Symbol.asyncIterator]();
          await publishDirect(server, version, `${topic}/7`, 'kept');
          const m = (await withTimeout(it.next(), 5000, 'message after resume')).value as Message;
          assert.equal(m.text(), 'kept');
          assert.deepEqual(tap.subscribes(1), [], 'no SUBSCRIBE on a resumed session');
        } finally {
          await c.close();
          await proxy.close();
        }
      });

      void it(`${tag}: the session was discarded while offline: one SUBSCRIBE per filter, a subscribe() made offline goes once`, async () => {
        const proxy = new FaultProxy({ port: server.port });
        const tap = new Tap();
        const opts = base();
        const c = await connectWith(tap.open, `mqtt://127.0.0.1:${await proxy.listen()}`, opts);
        try {
          const topic = unique('sp0');
          const s = await c.subscribe(`${topic}/+id`, { qos: 1 });
          await c.subscribe(`${topic}/+other`, { qos: 1 }); // same filter as sent: one SUBSCRIBE for both
          const lost = new Promise<void>((r) => c.on('disconnect', () => r()));
          proxy.refuse();
          proxy.cut();
          await withTimeout(lost, 5000, 'disconnect');
          // What an expiry does: the server forgets the session. A clean-start connection with the same id discards it.
          const other = await connect(server.url('tcp'), { protocolVersion: version, clientId: opts.clientId!, clean: true });
          await other.close();
          const offline = c.subscribe(`${topic}/late`, { qos: 1 });
          const back = nextConnect(c);
          await proxy.unrefuse();
          assert.equal((await withTimeout(back, 10_000, 'reconnect')).sessionPresent, false);
          await withTimeout(offline, 5000, 'the offline subscribe');
          const it = s[Symbol.asyncIterator]();
          await publishDirect(server, version, `${topic}/9`, 'again');
          assert.equal(((await withTimeout(it.next(), 5000, 'message after resubscribe')).value as Message).text(), 'again');
          assert.deepEqual(tap.subscribes(tap.connections.length - 1), [`${topic}/+`, `${topic}/late`]);
        } finally {
          await c.close();
          await proxy.close();
        }
      });

      void it(`${tag}: the broker restarted without state: the subscriptions are made again, once`, async () => {
        const first = await start();
        let second: TestServer | undefined;
        let proxy = new FaultProxy({ port: first.port });
        const tap = new Tap();
        const port = await proxy.listen();
        const c = await connectWith(tap.open, `mqtt://127.0.0.1:${port}`, base());
        try {
          const topic = unique('rst');
          const s = await c.subscribe(`${topic}/#`, { qos: 2 });
          const back = nextConnect(c);
          await proxy.close();
          await first.close();
          second = await start();
          proxy = new FaultProxy({ port: second.port });
          await proxy.listen(port);
          assert.equal((await withTimeout(back, 10_000, 'reconnect')).sessionPresent, false);
          const it = s[Symbol.asyncIterator]();
          await publishDirect(second, version, `${topic}/a`, 'restarted');
          assert.equal(((await withTimeout(it.next(), 5000, 'message after restart')).value as Message).text(), 'restarted');
          assert.deepEqual(tap.subscribes(tap.connections.length - 1), [`${topic}/#`]);
        } finally {
          await c.close();
          await proxy.close();
          await second?.close();
        }
      });

      void it(`${tag}: subscriptions kept in a file store: a new process knows them, resubscribes only on Session Present 0`, async () => {
        const path = join(dir, `${unique('store')}.journal`);
        const opts = base();
        const topic = unique('fs');
        const url = `mqtt://127.0.0.1:${server.port}`;
        const one = await connect(url, { ...opts, store: fileStore(path) });
        await one.subscribe(`${topic}/+id/v`, { qos: 1, handler: () => undefined });
        const gone = await one.subscribe(`${topic}/gone`, { qos: 1 });
        await gone.unsubscribe();
        await one.close();
        // Published while no process runs: the server keeps it for the session (QoS 1).
        await publishDirect(server, version, `${topic}/3/v`, 'while away');

        const tap = new Tap();
        const two = await connectWith(tap.open, url, { ...opts, store: fileStore(path) });
        try {
          assert.deepEqual(
            two.restoredSubscriptions.map((s) => s.filter),
            [`${topic}/+id/v`],
          );
          assert.deepEqual(tap.subscribes(0), [], 'Session Present 1: nothing subscribed again');
          // The message waits in the restored subscription; subscribe() with the same filter takes it over.
          const s = await two.subscribe(`${topic}/+id/v`, { qos: 1 });
          const it = s[Symbol.asyncIterator]();
          const m = (await withTimeout(it.next(), 5000, 'the message kept by the server')).value as Message<`${string}/+id/v`>;
          assert.equal(m.text(), 'while away');
          assert.equal(m.params.id, '3');
          assert.deepEqual(two.restoredSubscriptions, [], 'taken over');
        } finally {
          await two.close();
        }

        // The session discarded (as after an expiry): the third process subscribes again from the store.
        const wipe = await connect(url, { protocolVersion: version, clientId: opts.clientId!, clean: true });
        await wipe.close();
        const tap3 = new Tap();
        const three = await connectWith(tap3.open, url, { ...opts, store: fileStore(path) });
        try {
          const [restored] = three.restoredSubscriptions;
          assert.ok(restored !== undefined);
          await withTimeout(waitForSubscribes(tap3, 1), 5000, 'the resubscribe');
          assert.deepEqual(tap3.subscribes(0), [`${topic}/+/v`]);
          await waitForSuback(three);
          await publishDirect(server, version, `${topic}/4/v`, 'resubscribed');
          const it = restored[Symbol.asyncIterator]();
          assert.equal(((await withTimeout(it.next(), 5000, 'message on the restored subscription')).value as Message).text(), 'resubscribed');
        } finally {
          await three.close();
        }
      });
    }
  });
}

async function publishDirect(server: TestServer, version: 4 | 5, topic: string, payload: string): Promise<void> {
  const pub = await connect(server.url('tcp'), { protocolVersion: version, reconnect: false });
  try {
    await pub.publish(topic, payload, { qos: 1 });
  } finally {
    await pub.close();
  }
}

async function waitForSubscribes(tap: Tap, n: number): Promise<void> {
  while (tap.subscribes(tap.connections.length - 1).length < n) await new Promise((r) => setTimeout(r, 5));
}

/** The resubscribe's SUBACK: no exchange left pending. */
async function waitForSuback(c: Client): Promise<void> {
  while (c.resources.exchanges !== 0) await new Promise((r) => setTimeout(r, 5));
}

suite('courier', () => startCourier(), { skip: false });
suite('mosquitto', () => startMosquitto(), mosquittoGate());
