/**
 * `courier --workers 2` as one broker: clients connected to different worker processes exchange
 * messages at QoS 0, 1 and 2, with wildcards and retained messages, and a persistent session
 * moves between workers on reconnect (Session Present 1, queued messages delivered). Real
 * processes: the CLI, its private redis-server, MQTT.js.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { MqttClient } from 'mqtt';
import type { CourierProcess } from '../helpers/courier-process.js';
import { ProcessGroup } from '../helpers/processes.js';
import { redisServerGate } from '../helpers/redis-server.js';
import { pollUntil } from '../helpers/wait.js';
import { connectOn, connectPlaced, listeningLine, startWorkers, waitForRoutes } from './workers-helpers.js';

void describe('--workers 2: one broker over two processes', redisServerGate(), () => {
  const group = new ProcessGroup();
  const clients: MqttClient[] = [];
  let broker: CourierProcess;

  void before(async () => {
    broker = await startWorkers(group, 2);
  });
  void after(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => {})));
    await group.killAll();
  });

  const keep = <T extends { client: MqttClient }>(p: T): T => {
    clients.push(p.client);
    return p;
  };

  void test('the primary says how many workers listen; every log line carries its worker id', () => {
    const line = listeningLine(broker);
    assert.equal(line.workers, 2);
    assert.equal(line.balance, process.platform === 'linux' ? 'shared' : 'rr', 'the default balance');
    assert.equal((line.pids as number[]).length, 2);
    const ids = new Set(broker.logs().map((l) => l.worker));
    assert.deepEqual([...ids].sort(), [0, 1, 2], 'lines from the primary (0) and both workers');
  });

  void test('clients on different workers exchange QoS 0, 1 and 2 messages through + and # filters', async () => {
    const s1 = keep(await connectOn(broker, 1, 'ex-s1'));
    const s2 = keep(await connectOn(broker, 2, 'ex-s2'));
    const p1 = keep(await connectOn(broker, 1, 'ex-p1'));
    const p2 = keep(await connectOn(broker, 2, 'ex-p2'));
    const got = new Map<MqttClient, string[]>([
      [s1.client, []],
      [s2.client, []],
    ]);
    for (const [c, list] of got) {
      c.on('message', (t, payload, packet) => {
        if (!t.startsWith('probe')) list.push(`${t} ${payload.toString()} q${packet.qos}`);
      });
    }
    await s1.client.subscribeAsync({ 'ex/+/a': { qos: 2 }, 'probe/1': { qos: 0 } });
    await s2.client.subscribeAsync({ 'ex/#': { qos: 1 }, 'probe/2': { qos: 0 } });
    await waitForRoutes(p2.client, 'probe/1', [s1.client]);
    await waitForRoutes(p1.client, 'probe/2', [s2.client]);

    for (const qos of [0, 1, 2] as const) {
      await p1.client.publishAsync('ex/one/a', `from1-q${qos}`, { qos });
      await p2.client.publishAsync('ex/two/a', `from2-q${qos}`, { qos });
      await p2.client.publishAsync('ex/two/b/deep', `deep-q${qos}`, { qos });
    }
    // Per publisher, in order; the granted QoS is the lower of the two.
    const expect1 = ['ex/one/a from1-q0 q0', 'ex/one/a from1-q1 q1', 'ex/one/a from1-q2 q2'];
    const expect1b = ['ex/two/a from2-q0 q0', 'ex/two/a from2-q1 q1', 'ex/two/a from2-q2 q2'];
    const expect2 = ['ex/one/a from1-q0 q0', 'ex/one/a from1-q1 q1', 'ex/one/a from1-q2 q1'];
    const expect2b = [
      'ex/two/a from2-q0 q0',
      'ex/two/b/deep deep-q0 q0',
      'ex/two/a from2-q1 q1',
      'ex/two/b/deep deep-q1 q1',
      'ex/two/a from2-q2 q1',
      'ex/two/b/deep deep-q2 q1',
    ];
    await pollUntil(() => got.get(s1.client)!.length >= 6 && got.get(s2.client)!.length >= 9, { what: 'all deliveries' });
    const a = got.get(s1.client)!;
    const b = got.get(s2.client)!;
    assert.deepEqual(
      a.filter((m) => m.includes('from1')),
      expect1,
    );
    assert.deepEqual(
      a.filter((m) => m.includes('from2')),
      expect1b,
    );
    assert.deepEqual(
      b.filter((m) => m.includes('from1')),
      expect2,
    );
    assert.deepEqual(
      b.filter((m) => !m.includes('from1')),
      expect2b,
    );
    assert.equal(a.length, 6, `no duplicates on worker 1: ${a.join(', ')}`);
    assert.equal(b.length, 9, `no duplicates on worker 2: ${b.join(', ')}`);
  });

  void test('a retained message published on one worker reaches a later subscriber on the other', async () => {
    const pub = keep(await connectOn(broker, 2, 'ret-p'));
    await pub.client.publishAsync('ret/x', 'kept', { qos: 1, retain: true });
    const sub = keep(await connectOn(broker, 1, 'ret-s'));
    const first = new Promise<string>((resolve) => sub.client.once('message', (t, p, packet) => resolve(`${t} ${p.toString()} retain=${packet.retain}`)));
    await sub.client.subscribeAsync('ret/+', { qos: 1 });
    assert.equal(await first, 'ret/x kept retain=true');
  });

  // What each reconnect delivered, for the test below.
  const rounds: Array<{ round: number; got: string[]; from?: number; to?: number }> = [];

  void test('a persistent session moves between workers on reconnect: Session Present 1 and its queued QoS 1 messages', async () => {
    const opts = { clean: false, properties: { sessionExpiryInterval: 300 } };
    const pub = keep(await connectOn(broker, 1, 'mv-pub'));
    let placed = await connectPlaced(broker, 'mover', opts);
    await placed.client.subscribeAsync('mv/#', { qos: 1 });
    await waitForRoutes(pub.client, 'mv/probe', [placed.client]);
    // With the shared socket the kernel picks the worker of each reconnect: at least 4 rounds,
    // and more (up to 24) until the session has moved twice.
    let moves = 0;
    for (let round = 0; round < 4 || (moves < 2 && round < 24); round++) {
      const was = placed.worker;
      await placed.client.endAsync();
      for (let i = 0; i < 5; i++) await pub.client.publishAsync(`mv/${round}`, `r${round}-${i}`, { qos: 1 });
      const got: string[] = [];
      const entry: (typeof rounds)[number] = { round, got, from: was };
      rounds.push(entry);
      placed = await connectPlaced(broker, 'mover', opts, (c) =>
        c.on('message', (t, p) => {
          if (t !== 'mv/probe') got.push(p.toString());
        }),
      );
      assert.equal(placed.sessionPresent, true, `round ${round}: Session Present 1`);
      entry.to = placed.worker;
      if (placed.worker !== was) moves++;
      // Queued messages arrive after the CONNACK; all five are checked by the test below.
      await pollUntil(() => got.length >= 5, { what: `round ${round}: the 5 queued messages` }).catch(() => {});
      assert.ok(got.length >= 1, `round ${round} (worker ${was} → ${placed.worker}): queued messages delivered after the reconnect`);
    }
    clients.push(placed.client);
    assert.ok(moves >= 2, `the session moved between workers at least twice in ${rounds.length} reconnects (moves: ${moves})`);
  });

  // A graceful move while the publisher's forwards still sit in the old worker's inbox: the old
  // worker hands them over (also between a refused commit and its kick), and the new one holds
  // what it routes directly until they are back (src/cluster/move-order.ts). Before those fixes
  // 1 run in 10 lost the last message (r0-4) or swapped two (r1-1, r1-0, ...).
  void test('every queued message arrives once, in order, after each move', () => {
    assert.ok(rounds.length >= 4);
    // A hold given up under load (move-order.ts: best-effort order after a second) is named.
    const letGo = broker
      .logs()
      .filter((l) => l.clientId === 'mover' && l.level === 'warn')
      .map((l) => l.msg.slice(0, 60));
    for (const { round, got, from, to } of rounds)
      assert.deepEqual(
        got,
        [0, 1, 2, 3, 4].map((i) => `r${round}-${i}`),
        `round ${round}, worker ${from} → ${to}: ${got.join(' ')}; warnings for the mover: ${letGo.join(' | ') || 'none'}`,
      );
  });
});
