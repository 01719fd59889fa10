/**
 * The file store: a publishing process is killed (SIGKILL) with QoS 1/2 messages in flight (its
 * connection blackholed by the proxy first, so nothing more is acknowledged), then started again
 * on the same store: every message reaches the subscriber, QoS 2 exactly once.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect, fileStore } from '../../packages/client/src/index.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { Peers, withTimeout } from '../helpers/peers.js';
import { mosquittoGate, startCourier, startMosquitto, unique, type TestServer } from './brokers.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CHILD = ['--import', 'tsx', 'test/fixtures/client-store-child.ts'];
const COUNT = 600;

function suite(name: string, start: () => Promise<TestServer>, gate: { skip: string | false }): void {
  void describe(`file store: kill -9 and restart against ${name}`, gate, () => {
    let server: TestServer;
    const peers = new Peers();
    const dir = mkdtempSync(join(tmpdir(), 'courier-client-store-'));
    before(async () => {
      server = await start();
    });
    after(async () => {
      await peers.killAll();
      await server?.close();
      rmSync(dir, { recursive: true, force: true });
    });

    for (const qos of [1, 2] as const) {
      void it(`QoS ${qos}: the restarted process completes what the killed one had in flight; 0 lost${qos === 2 ? ', 0 duplicated' : ''}`, async () => {
        const proxy = new FaultProxy({ port: server.port });
        const url = `mqtt://127.0.0.1:${await proxy.listen()}`;
        const store = join(dir, `${unique('s')}.journal`);
        const id = unique('store');
        const sub = await connect(server.url('tcp'), { clientId: unique('ssub') });
        try {
          const counts = new Uint16Array(COUNT);
          let unique_ = 0;
          let all!: () => void;
          const done = new Promise<void>((r) => (all = r));
          await sub.subscribe('store/t', {
            qos,
            handler: (m) => {
              if (counts[Number(m.text())]!++ === 0 && ++unique_ === COUNT) all();
            },
          });
          const first = peers.spawn(process.execPath, [...CHILD, 'publish', url, store, id, String(qos), String(COUNT)], { cwd: ROOT });
          await first.waitFor(/acked 100/, { timeoutMs: 30_000 });
          proxy.blackhole();
          first.kill('SIGKILL');
          const killed = await first.exited();
          assert.equal(killed.signal, 'SIGKILL');
          assert.ok(unique_ < COUNT, 'messages were still in flight when the process was killed');
          await proxy.heal();
          const second = peers.spawn(process.execPath, [...CHILD, 'resume', url, store, id, String(qos)], { cwd: ROOT });
          await second.waitFor(/done/, { timeoutMs: 30_000 });
          assert.equal((await second.exited()).code, 0, second.stderr());
          await withTimeout(done, 30_000, `all ${COUNT} delivered (have ${unique_})`);
          if (qos === 2) assert.equal(counts.filter((c) => c > 1).length, 0);
          const left = await fileStore(store).load();
          assert.deepEqual(left.publishes, []);
        } finally {
          await sub.close();
          await proxy.close();
        }
      });
    }
  });
}

suite('courier', () => startCourier(), { skip: false });
suite('mosquitto', () => startMosquitto(), mosquittoGate());
