/**
 * A reconnect storm through the fault proxy: hundreds of connections cut right after their
 * CONNACK, each carrying a QoS 1 publish, an aborted publish and a subscribe/unsubscribe, with
 * one long-lived AbortSignal passed to all of them. Afterwards: every promise settled, nothing
 * left behind (abort listeners on the signal, the client's waiters, pending exchanges, timers,
 * sockets), and the heap no larger after the second half of the storm than after the first.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { connect, type Client } from '../../packages/client/src/index.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { withTimeout } from '../helpers/peers.js';
import { mosquittoGate, startCourier, startMosquitto, unique, type TestServer } from './brokers.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

function heapAfterGc(): number {
  for (let i = 0; i < 3; i++) gc();
  return process.memoryUsage().heapUsed;
}

const connected = (c: Client): Promise<void> =>
  c.state === 'connected'
    ? Promise.resolve()
    : new Promise((r) => {
        const off = c.on('connect', () => {
          off();
          r();
        });
      });

function suite(name: string, start: () => Promise<TestServer>, gate: { skip: string | false }, cycles: number): void {
  void describe(`reconnect storm against ${name}`, gate, () => {
    let server: TestServer;
    before(async () => {
      server = await start();
    });
    after(async () => {
      await server?.close();
    });

    for (const version of [4, 5] as const) {
      void it(`v${version === 5 ? '5' : '3.1.1'}: ${cycles} connections cut after CONNACK: every promise settles, nothing leaks, the heap stays bounded`, async () => {
        const proxy = new FaultProxy({ port: server.port });
        const url = `mqtt://127.0.0.1:${await proxy.listen()}`;
        const baseTimers = timers();
        const c = await connect(url, {
          protocolVersion: version,
          clientId: unique('storm'),
          clean: false,
          sessionExpiry: 600,
          keepAlive: 30,
          reconnect: { initialDelay: 1, maxDelay: 4 },
        });
        const long = new AbortController();
        let settled = 0;
        let issued = 0;
        const all: Array<Promise<unknown>> = [];
        const track = (p: Promise<unknown>): void => {
          issued++;
          all.push(
            p.then(
              () => void settled++,
              () => void settled++,
            ),
          );
        };
        const topic = unique('storm');
        const heaps: number[] = [];
        let reconnects = 0;
        const offConnect = c.on('connect', () => void reconnects++);
        try {
          for (let i = 0; i < cycles; i++) {
            await withTimeout(connected(c), 10_000, `connection ${i}`);
            track(c.publish(`${topic}/p`, String(i), { qos: 1, signal: long.signal }));
            const ac = new AbortController();
            track(c.publish(`${topic}/p`, 'aborted', { qos: 1, signal: ac.signal }));
            ac.abort();
            track(c.subscribe(`${topic}/${i % 7}`, { qos: 1, signal: long.signal }).then((s) => s.unsubscribe()));
            const lost = new Promise<void>((r) => {
              const off = c.on('disconnect', () => {
                off();
                r();
              });
            });
            proxy.cut();
            await withTimeout(lost, 10_000, `cut ${i}`);
            if (i === Math.floor(cycles / 2)) heaps.push(heapAfterGc());
          }
          await withTimeout(connected(c), 10_000, 'the last connection');
          await withTimeout(Promise.all(all), 30_000, `every promise settles (${settled} of ${issued})`);
          assert.equal(settled, issued);
          heaps.push(heapAfterGc());
          assert.ok(reconnects >= cycles, `${reconnects} reconnects`);
          assert.equal(getEventListeners(long.signal, 'abort').length, 0, 'no abort listener left on the long-lived signal');
          assert.equal(c.pendingPublishes, 0);
          const r = c.resources;
          assert.equal(r.waiters, 0, 'no connect waiter left');
          assert.equal(r.exchanges, 0, 'no SUBSCRIBE/UNSUBSCRIBE left pending');
          assert.equal(r.subscriptions, 0, 'no local subscription left');
          assert.equal(r.retry, false, 'no reconnect timer');
          assert.equal(r.keepAlive, true, 'one keep alive timer');
          assert.equal(proxy.stats().liveConnections, 1, 'one socket open');
          // Allocation noise aside, a leak of even 10 kB per connection would show here.
          const growth = heaps[1]! - heaps[0]!;
          assert.ok(growth < 1.5 * 1024 * 1024, `heap grew ${(growth / 1024).toFixed(0)} kB over the second half of the storm`);
        } finally {
          offConnect();
          await c.close();
          await proxy.close();
        }
        const r = c.resources;
        assert.equal(r.keepAlive, false);
        assert.equal(r.retry, false);
        assert.equal(r.connection, false);
        await withTimeout(
          waitFor(() => timers() <= baseTimers),
          5000,
          `timers back to ${baseTimers} (now ${timers()})`,
        );
      });
    }
  });
}

async function waitFor(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setImmediate(r));
}

suite('courier', () => startCourier(), { skip: false }, 300);
suite('mosquitto', () => startMosquitto(), mosquittoGate(), 150);
