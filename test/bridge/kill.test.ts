/**
 * The remote of a bridge killed (SIGKILL) and started again under QoS 1 load: the remote is a
 * real `courier` process with its durable store (it acknowledges only what it has committed),
 * the bridge runs in this process. Every message published here reaches a persistent
 * subscriber on the remote, and the first delivery of each comes in publish order.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from '../../packages/client/src/index.js';
import { startBroker } from '../helpers/broker.js';
import { startCourier } from '../helpers/courier-process.js';
import { ProcessGroup, removeTempDir, tempDir } from '../helpers/processes.js';
import { pollUntil } from '../helpers/wait.js';
import { Collector, bridgeState } from './helpers.js';

void describe('bridge: remote killed and restarted', () => {
  const group = new ProcessGroup();
  const dataDir = tempDir('courier-bridge-remote');
  after(async () => {
    await group.killAll();
    removeTempDir(dataDir);
  });

  void it('SIGKILL of the remote under QoS 1 load: 0 lost, order kept', async () => {
    const N = 3000;
    // The far subscriber's session on the remote queues what the bridge resends while that
    // subscriber is still reconnecting after the restart: room for all of it (the default 1,000
    // dropped the overflow on a loaded CI machine, which is the queue limit, not a loss).
    let remote = await startCourier(group, { dataDir, wsPort: 'off', env: { COURIER_SESSIONS__MAX_QUEUED_MESSAGES: String(2 * N) } });
    const url = remote.url;
    const local = await startBroker({
      sessions: { maxQueuedMessages: N },
      bridges: [{ name: 'kill', remotes: [url], topics: [{ filter: 'k/#', direction: 'out', qos: 1 }], reconnect: { initialDelay: 50, maxDelay: 300 } }],
    });
    const far = await Collector.open(url, 'k/#', 1, { clientId: 'bridge-kill-far', clean: false, sessionExpiry: 3600 });
    const pub = await connect(`mqtt://127.0.0.1:${local.port}`);
    try {
      await bridgeState(local.broker, 'kill', true);
      const publishing = (async () => {
        for (let i = 0; i < N; i += 50) {
          await Promise.all(Array.from({ length: 50 }, (_, k) => pub.publish('k/seq', String(i + k), { qos: 1 })));
        }
      })();
      await far.count(N / 4);
      await remote.sigkill();
      await bridgeState(local.broker, 'kill', false);
      remote = await remote.restart();
      await publishing;
      await far.until((x) => new Set(x.map((y) => y.text())).size === N, `all ${N} distinct messages`, 60_000);
      const seen = new Set<string>();
      const firsts: number[] = [];
      for (const x of far.messages) {
        if (seen.has(x.text())) continue;
        seen.add(x.text());
        firsts.push(Number(x.text()));
      }
      assert.deepEqual(
        firsts,
        Array.from({ length: N }, (_, i) => i),
        'first deliveries in publish order',
      );
      const s = await pollUntil(() => local.broker.stats().bridges!.find((b) => b.queued === 0), { what: 'the bridge to hold nothing' });
      assert.ok(s.connects >= 2);
    } finally {
      await pub.close();
      await far.close();
      await local.close();
      await remote.sigterm().catch(() => undefined);
    }
  });
});
