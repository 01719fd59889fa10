/**
 * The client under network faults, through the in-process proxy (test/helpers/fault-proxy.ts)
 * in front of Courier and of Mosquitto: connections cut again and again under QoS 1 and QoS 2
 * load, a blackholed connection found dead by keep alive, refused reconnects. Both publisher and
 * subscriber go through the proxy with persistent sessions. Expected: 0 lost QoS 1, 0
 * duplicated (and 0 lost) QoS 2 delivered to the application, every publish promise settled.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Client, type QoS } from '../../packages/client/src/index.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { withTimeout } from '../helpers/peers.js';
import { mosquittoGate, startCourier, startMosquitto, unique, type TestServer } from './brokers.js';

const MESSAGES = 1500;
const CUT_EVERY = 250;
const WINDOW = 200;

function suite(name: string, start: () => Promise<TestServer>, gate: { skip: string | false }): void {
  void describe(`client faults against ${name}`, gate, () => {
    let server: TestServer;
    before(async () => {
      server = await start();
    });
    after(async () => {
      await server?.close();
    });

    for (const version of [4, 5] as const) {
      for (const qos of [1, 2] as const) {
        void it(`v${version === 5 ? 5 : '3.1.1'} QoS ${qos}: ${MESSAGES} messages while the proxy cuts both connections every ${CUT_EVERY} acknowledgements`, async () => {
          const proxy = new FaultProxy({ port: server.port });
          const url = `mqtt://127.0.0.1:${await proxy.listen()}`;
          const topic = unique('fault');
          const opts = {
            protocolVersion: version,
            clean: false,
            sessionExpiry: 600,
            keepAlive: 10,
            reconnect: { initialDelay: 5, maxDelay: 100 },
            connectTimeout: 3000,
          } as const;
          const clients: Client[] = [];
          try {
            const sub = await connect(url, { ...opts, clientId: unique('fsub') });
            clients.push(sub);
            const counts = new Uint16Array(MESSAGES);
            let delivered = 0;
            let resolveAll!: () => void;
            const all = new Promise<void>((r) => (resolveAll = r));
            // End-to-end pacing: at most WINDOW messages published but not yet delivered, so the
            // brokers' per-session queue limits (1000 messages in both) never drop anything.
            let wake: (() => void) | undefined;
            await sub.subscribe(`${topic}/#`, {
              qos: qos as QoS,
              handler: (m) => {
                const seq = Number(m.text());
                if (counts[seq]!++ === 0 && ++delivered === MESSAGES) resolveAll();
                wake?.();
              },
            });
            const pub = await connect(url, { ...opts, clientId: unique('fpub') });
            clients.push(pub);
            let cuts = 0;
            let acked = 0;
            let rejected = 0;
            const sends: Array<Promise<unknown>> = [];
            for (let i = 0; i < MESSAGES; i++) {
              const p = pub.publish(`${topic}/s`, String(i), { qos }).then(
                () => {
                  if (++acked % CUT_EVERY === 0) cuts += proxy.cut() > 0 ? 1 : 0;
                },
                () => void rejected++,
              );
              sends.push(p);
              while (i + 1 - delivered > WINDOW) await new Promise<void>((r) => (wake = r));
            }
            await withTimeout(Promise.all(sends), 60_000, 'every publish promise settles');
            await withTimeout(all, 60_000, `all ${MESSAGES} delivered (have ${delivered})`);
            assert.equal(rejected, 0);
            assert.equal(acked, MESSAGES);
            assert.ok(cuts >= 3, `the proxy cut connections ${cuts} times`);
            const dups = counts.reduce((n, c) => n + (c > 1 ? 1 : 0), 0);
            if (qos === 2) assert.equal(dups, 0, 'QoS 2 delivered exactly once');
            assert.equal(pub.pendingPublishes, 0);
          } finally {
            await Promise.all(clients.map((c) => c.close()));
            await proxy.close();
          }
        });
      }
    }

    void it('a blackholed connection is found dead by keep alive; publishes made meanwhile complete after heal', async () => {
      const proxy = new FaultProxy({ port: server.port });
      const url = `mqtt://127.0.0.1:${await proxy.listen()}`;
      const c = await connect(url, {
        clientId: unique('bh'),
        clean: false,
        sessionExpiry: 60,
        keepAlive: 1,
        connectTimeout: 1000,
        reconnect: { initialDelay: 10, maxDelay: 200 },
      });
      try {
        const lost = new Promise<void>((r) => c.on('disconnect', () => r()));
        proxy.blackhole();
        const p = c.publish('bh/t', 'x', { qos: 1 });
        await withTimeout(lost, 10_000, 'keep alive declares the connection dead');
        const back = new Promise<void>((r) => c.on('connect', () => r()));
        await proxy.heal();
        await withTimeout(back, 10_000, 'reconnect after heal');
        // 0x00, or 0x10 No matching subscribers: both are success codes.
        assert.ok((await withTimeout(p, 10_000, 'publish after heal')).reasonCode < 0x80);
      } finally {
        await c.close();
        await proxy.close();
      }
    });

    void it('reconnect backs off while the server refuses connections, and resumes when it is back', async () => {
      const proxy = new FaultProxy({ port: server.port });
      const url = `mqtt://127.0.0.1:${await proxy.listen()}`;
      const c = await connect(url, { clientId: unique('rf'), reconnect: { initialDelay: 20, maxDelay: 160, jitter: 'none' } });
      try {
        const delays: number[] = [];
        const enough = new Promise<void>((r) =>
          c.on('reconnecting', ({ delay }) => {
            delays.push(delay);
            if (delays.length === 5) r();
          }),
        );
        proxy.refuse();
        proxy.cut();
        await withTimeout(enough, 10_000, 'five reconnect attempts');
        assert.deepEqual(delays.slice(0, 5), [20, 40, 80, 160, 160]);
        const back = new Promise<void>((r) => c.on('connect', () => r()));
        await proxy.unrefuse();
        await withTimeout(back, 10_000, 'reconnected');
        assert.equal(c.state, 'connected');
      } finally {
        await c.close();
        await proxy.close();
      }
    });
  });
}

suite('courier', () => startCourier(), { skip: false });
suite('mosquitto', () => startMosquitto(), mosquittoGate());
