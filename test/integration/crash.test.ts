/**
 * Durability under SIGKILL (issue 5): publishers send numbered QoS 1 and QoS 2 messages to
 * persistent subscribers while the broker process is killed with SIGKILL at random moments and
 * restarted on the same data directory, several times. Afterwards every message acknowledged
 * to a publisher has reached its subscriber (QoS 1 at least once, QoS 2 exactly once), and the
 * retained message and the subscriptions are intact.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { Peers, freePort, type Peer } from '../helpers/peers.js';

const CLI = fileURLToPath(new URL('../fixtures/courier-cli.ts', import.meta.url));
const KILLS = 4;
const peers = new Peers();
const dir = mkdtempSync(path.join(tmpdir(), 'courier-crash-'));
after(async () => {
  await peers.killAll();
  rmSync(dir, { recursive: true, force: true });
});

/** Progress events: every acknowledgement and delivery; `until` waits for a condition on them, never for time. */
const progress = new EventEmitter();
function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  if (cond()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      progress.off('tick', check);
      reject(new Error(`timed out waiting for ${what}`));
    }, ms);
    const check = (): void => {
      if (!cond()) return;
      clearTimeout(timer);
      progress.off('tick', check);
      resolve();
    };
    progress.on('tick', check);
  });
}

async function startBroker(port: number): Promise<Peer> {
  const p = peers.spawn(process.execPath, [
    '--import',
    'tsx',
    CLI,
    '--port',
    String(port),
    '--ws-port',
    '0',
    '--admin-port',
    'off',
    '--data-dir',
    dir,
    '--log-level',
    'warn',
  ]);
  // Ready once the port accepts MQTT: a throwaway client connects.
  for (;;) {
    const c = mqtt.connect(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0, connectTimeout: 2000, clientId: `probe-${Date.now()}` });
    const ok = await new Promise<boolean>((resolve) => {
      c.once('connect', () => resolve(true));
      c.once('error', () => resolve(false));
      c.once('close', () => resolve(false));
    });
    c.end(true);
    if (ok) return p;
    if (p.child.exitCode !== null) throw new Error(`broker exited: ${p.stderr()}`);
    await new Promise((r) => setImmediate(r));
  }
}

function client(port: number, clientId: string, clean: boolean): MqttClient {
  return mqtt.connect(`mqtt://127.0.0.1:${port}`, {
    clientId,
    clean,
    protocolVersion: 5,
    reconnectPeriod: 50,
    connectTimeout: 2000,
    properties: { sessionExpiryInterval: 3600 },
    resubscribe: false,
  });
}

void describe('crash safety: SIGKILL during QoS 1/2 traffic', () => {
  void it(
    `every acknowledged message reaches its persistent subscriber across ${KILLS} SIGKILLs (QoS 1 ≥ once, QoS 2 exactly once)`,
    { timeout: 120_000 },
    async () => {
      const port = await freePort();
      let broker = await startBroker(port);

      // Persistent subscribers: subscribe once; the session keeps the subscription across restarts.
      const received = { 1: new Map<number, number>(), 2: new Map<number, number>() };
      const subs: MqttClient[] = [];
      for (const qos of [1, 2] as const) {
        const s = client(port, `crash-sub-${qos}`, true);
        await new Promise<void>((resolve) => s.once('connect', () => resolve()));
        await s.subscribeAsync(`crash/q${qos}`, { qos });
        s.end(true);
        const again = client(port, `crash-sub-${qos}`, false);
        again.on('message', (_t, payload) => {
          const n = Number(payload.toString());
          received[qos].set(n, (received[qos].get(n) ?? 0) + 1);
          progress.emit('tick');
        });
        subs.push(again);
      }
      const retainer = client(port, 'crash-retainer', true);
      await new Promise<void>((resolve) => retainer.once('connect', () => resolve()));
      await retainer.publishAsync('crash/retained', 'kept', { qos: 1, retain: true });
      retainer.end(true);

      const acked = { 1: new Set<number>(), 2: new Set<number>() };
      let next = 0;
      let stop = false;
      const publishers = ([1, 2] as const).map((qos) => {
        const pub = client(port, `crash-pub-${qos}`, false);
        const loop = async (): Promise<void> => {
          while (!stop) {
            if (!pub.connected) {
              await new Promise<void>((resolve) => pub.once('connect', () => resolve()));
              continue;
            }
            const n = next++;
            try {
              await pub.publishAsync(`crash/q${qos}`, String(n), { qos });
              acked[qos].add(n);
              progress.emit('tick');
            } catch {
              // Not acknowledged (the broker died first): the publisher owes nothing for it.
            }
          }
        };
        return { pub, done: loop() };
      });

      for (let k = 0; k < KILLS; k++) {
        const target = acked[1].size + acked[2].size + 50 + Math.floor(Math.random() * 250);
        await until(() => acked[1].size + acked[2].size >= target, 30_000, `${target} acknowledgements`);
        broker.kill('SIGKILL');
        await broker.exited(10_000);
        broker = await startBroker(port);
      }
      const target = acked[1].size + acked[2].size + 100;
      await until(() => acked[1].size + acked[2].size >= target, 30_000, `${target} acknowledgements`);
      stop = true;
      for (const p of publishers) {
        p.pub.end(true);
      }

      // Wait until every acknowledged message has arrived (bounded by the test timeout).
      const missing = (): number => [...acked[1]].filter((n) => !received[1].has(n)).length + [...acked[2]].filter((n) => !received[2].has(n)).length;
      await until(() => missing() === 0, 60_000, 'every acknowledged message').catch(() => {});

      const dup2 = [...received[2].entries()].filter(([, c]) => c > 1).map(([n]) => n);
      const dup1 = [...received[1].values()].filter((c) => c > 1).length;
      console.log(
        `crash test: ${KILLS} SIGKILLs; acknowledged QoS 1 ${acked[1].size}, QoS 2 ${acked[2].size}; received QoS 1 ${received[1].size} (${dup1} duplicated), QoS 2 ${received[2].size}; missing ${missing()}; QoS 2 duplicates ${dup2.length}`,
      );
      assert.equal(missing(), 0, 'every acknowledged message was delivered');
      assert.deepEqual(dup2, [], 'no QoS 2 message was delivered twice');

      // Retained message and subscriptions intact after the last restart.
      const late = client(port, 'crash-late', true);
      const retained = new Promise<string>((resolve) => late.on('message', (t, p) => t === 'crash/retained' && resolve(p.toString())));
      await new Promise<void>((resolve) => late.once('connect', () => resolve()));
      await late.subscribeAsync('crash/retained', { qos: 1 });
      assert.equal(await retained, 'kept');
      late.end(true);
      for (const s of subs) s.end(true);
      broker.kill('SIGTERM');
      await broker.exited(10_000);
    },
  );
});
