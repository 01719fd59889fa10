/**
 * Bridges between two Courier brokers in this process (the remote is a Courier too): out, in,
 * both, prefixes, QoS 0/1/2, retained messages, a `#` bridge both ways without loops (5.0 and
 * 3.1.1), messages queued while the remote is away and delivered in order when it returns, a
 * remote that refuses the bridge's credentials, and the state in $SYS.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '../../packages/client/src/index.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import type { BridgeOptions } from '../../src/index.js';
import { Collector, bridgeState, recordingLogger } from './helpers.js';
import { pollUntil } from '../helpers/wait.js';
import { createConnection, createServer, type Socket } from 'node:net';

/** A TCP relay to `port` that can stop reading from its clients (their writes then back up, as towards a slow broker). */
async function stallingProxy(port: number): Promise<{ port: number; stall(): void; resume(): void; close(): Promise<void> }> {
  const clients = new Set<Socket>();
  let stalled = false;
  const server = createServer((client) => {
    clients.add(client);
    const up = createConnection({ host: '127.0.0.1', port });
    client.on('data', (d) => up.write(d));
    up.on('data', (d) => client.write(d));
    client.on('close', () => up.destroy());
    up.on('close', () => client.destroy());
    client.on('error', () => undefined);
    up.on('error', () => undefined);
    if (stalled) client.pause();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    stall: () => {
      stalled = true;
      for (const c of clients) c.pause();
    },
    resume: () => {
      stalled = false;
      for (const c of clients) c.resume();
    },
    close: async () => {
      for (const c of clients) c.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function pair(bridge: Omit<BridgeOptions, 'remotes'>, remoteOptions = {}): Promise<{ local: TestBroker; remote: TestBroker; close(): Promise<void> }> {
  const remote = await startBroker(remoteOptions);
  const local = await startBroker({ bridges: [{ ...bridge, remotes: [`mqtt://127.0.0.1:${remote.port}`] }] });
  await bridgeState(local.broker, bridge.name, true);
  return { local, remote, close: async () => (await local.close(), await remote.close()) };
}

for (const protocolVersion of [5, 4] as const) {
  const v = protocolVersion === 5 ? '5.0' : '3.1.1';
  void describe(`bridge Courier → Courier (MQTT ${v})`, () => {
    let p: Awaited<ReturnType<typeof pair>>;
    before(async () => {
      p = await pair({
        name: 'c2c',
        protocolVersion,
        topics: [
          { filter: 'up/#', direction: 'out', qos: 2, localPrefix: 'site/', remotePrefix: 'plant1/' },
          { filter: 'cmd/#', direction: 'in', qos: 2, localPrefix: 'from-cloud/', remotePrefix: 'plant1/' },
          { filter: 'shared/#', direction: 'both', qos: 1 },
        ],
      });
    });
    after(() => p?.close());

    void it('out: a local topic under localPrefix reaches the remote under remotePrefix, QoS 0/1/2 kept (capped by the rule)', async () => {
      const far = await Collector.open(`mqtt://127.0.0.1:${p.remote.port}`, 'plant1/up/#', 2);
      const pub = await connect(`mqtt://127.0.0.1:${p.local.port}`);
      for (const qos of [0, 1, 2] as const) await pub.publish(`site/up/q${qos}`, `m${qos}`, { qos });
      await pub.publish('elsewhere/up/x', 'not bridged', { qos: 1 });
      await far.count(3);
      assert.deepEqual(far.texts().sort(), ['plant1/up/q0=m0', 'plant1/up/q1=m1', 'plant1/up/q2=m2']);
      assert.deepEqual(far.messages.map((m) => m.qos).sort(), [0, 1, 2]);
      await Promise.all([far.close(), pub.close()]);
    });

    void it('in: a remote topic under remotePrefix is published here under localPrefix, QoS 0/1/2', async () => {
      const near = await Collector.open(`mqtt://127.0.0.1:${p.local.port}`, 'from-cloud/#', 2);
      const pub = await connect(`mqtt://127.0.0.1:${p.remote.port}`);
      for (const qos of [0, 1, 2] as const) await pub.publish(`plant1/cmd/q${qos}`, `c${qos}`, { qos });
      await pub.publish('plant2/cmd/x', 'not ours', { qos: 1 });
      await near.count(3);
      assert.deepEqual(near.texts().sort(), ['from-cloud/cmd/q0=c0', 'from-cloud/cmd/q1=c1', 'from-cloud/cmd/q2=c2']);
      assert.deepEqual(near.messages.map((m) => m.qos).sort(), [0, 1, 2]);
      await Promise.all([near.close(), pub.close()]);
    });

    void it('both: each side gets the other side’s messages exactly once (no echo back)', async () => {
      const near = await Collector.open(`mqtt://127.0.0.1:${p.local.port}`, 'shared/#', 1);
      const far = await Collector.open(`mqtt://127.0.0.1:${p.remote.port}`, 'shared/#', 1);
      const a = await connect(`mqtt://127.0.0.1:${p.local.port}`);
      const b = await connect(`mqtt://127.0.0.1:${p.remote.port}`);
      for (let i = 0; i < 20; i++) {
        await a.publish(`shared/a/${i}`, `a${i}`, { qos: 1 });
        await b.publish(`shared/b/${i}`, `b${i}`, { qos: 1 });
      }
      await a.publish('shared/end', 'a-end', { qos: 1 });
      await b.publish('shared/end', 'b-end', { qos: 1 });
      const ends = (m: readonly { topic: string }[]) => m.filter((x) => x.topic === 'shared/end').length === 2;
      await near.until(ends, 'both end markers on the local side');
      await far.until(ends, 'both end markers on the remote side');
      for (const c of [near, far]) {
        const texts = c.texts();
        assert.equal(texts.length, 42, `42 messages, each once: ${texts.length}`);
        assert.equal(new Set(texts).size, 42);
      }
      const s = p.local.broker.stats().bridges![0]!;
      if (protocolVersion === 4) assert.ok(s.dropped.loop >= 21, `3.1.1: the remote echoed our messages and the guard dropped them (${s.dropped.loop})`);
      else assert.equal(s.dropped.loop, 0, '5.0: No Local, nothing comes back');
      await Promise.all([near.close(), far.close(), a.close(), b.close()]);
    });
  });
}

void describe('bridge Courier → Courier: retained messages, queueing, refusals, $SYS', () => {
  void it('retained: existing retained messages cross at start, both ways, and live ones keep their flag', async () => {
    const remote = await startBroker();
    const pre = await connect(`mqtt://127.0.0.1:${remote.port}`);
    await pre.publish('in/r', 'remote-retained', { qos: 1, retain: true });
    const local = await startBroker({
      bridges: [
        {
          name: 'ret',
          remotes: [`mqtt://127.0.0.1:${remote.port}`],
          topics: [
            { filter: 'out/#', direction: 'out', qos: 1 },
            { filter: 'in/#', direction: 'in', qos: 1 },
          ],
        },
      ],
    });
    try {
      const lp = await connect(`mqtt://127.0.0.1:${local.port}`);
      await lp.publish('out/r', 'local-retained', { qos: 1, retain: true });
      await bridgeState(local.broker, 'ret', true);
      // A subscriber that comes later on each side finds the other side's retained message.
      const farCheck = await Collector.open(`mqtt://127.0.0.1:${remote.port}`, 'out/#', 1);
      await farCheck.count(1).catch(async () => {
        await farCheck.close();
        throw new Error('out/r not retained on the remote');
      });
      const nearCheck = await Collector.open(`mqtt://127.0.0.1:${local.port}`, 'in/#', 1);
      await nearCheck.count(1);
      assert.equal(farCheck.messages[0]!.retain, true);
      assert.equal(nearCheck.messages[0]!.text(), 'remote-retained');
      assert.equal(nearCheck.messages[0]!.retain, true);
      await lp.publish('out/live', 'live-retained', { qos: 1, retain: true });
      await farCheck.count(2);
      const late = await Collector.open(`mqtt://127.0.0.1:${remote.port}`, 'out/live', 1);
      await late.count(1);
      assert.equal(late.messages[0]!.text(), 'live-retained');
      await Promise.all([lp.close(), pre.close(), farCheck.close(), nearCheck.close(), late.close()]);
    } finally {
      await local.close();
      await remote.close();
    }
  });

  void it('QoS 1 messages for an absent remote queue in the local session and arrive in order when it returns; QoS 0 ones are dropped and counted', async () => {
    const remote = await startBroker();
    const port = remote.port;
    const local = await startBroker({
      bridges: [
        {
          name: 'q',
          remotes: [`mqtt://127.0.0.1:${port}`],
          topics: [{ filter: 'q/#', direction: 'out', qos: 1 }],
          reconnect: { initialDelay: 20, maxDelay: 200 },
        },
      ],
    });
    const pub = await connect(`mqtt://127.0.0.1:${local.port}`);
    let remote2: TestBroker | undefined;
    try {
      await bridgeState(local.broker, 'q', true);
      await remote.close();
      await bridgeState(local.broker, 'q', false);
      // QoS 0 first: the PUBACKs of the QoS 1 messages after it show that the broker has handled it.
      await pub.publish('q/zero', 'lost', { qos: 0 });
      for (let i = 0; i < 500; i++) await pub.publish(`q/${i}`, String(i), { qos: 1 });
      const held = local.broker.stats().bridges![0]!;
      assert.equal(held.queued, 500, 'all 500 held for the remote');
      assert.equal(held.dropped.qos0, 1, 'the QoS 0 message is counted as dropped');
      remote2 = await startBroker({ listeners: [{ type: 'tcp', host: '127.0.0.1', port }] });
      const far = await Collector.open(`mqtt://127.0.0.1:${port}`, 'q/#', 1);
      await far.count(500);
      assert.deepEqual(
        far.messages.map((m) => m.text()),
        Array.from({ length: 500 }, (_, i) => String(i)),
        'in order, none lost',
      );
      await far.close();
    } finally {
      await pub.close();
      await local.close();
      await remote2?.close();
    }
  });

  void it('a full queue for an absent remote: QoS 1 messages past sessions.maxQueuedMessages are dropped and counted for the bridge', async () => {
    const remote = await startBroker();
    const port = remote.port;
    const local = await startBroker({
      sessions: { maxQueuedMessages: 10 },
      bridges: [
        {
          name: 'full',
          remotes: [`mqtt://127.0.0.1:${port}`],
          topics: [{ filter: 'full/#', direction: 'out', qos: 1 }],
          reconnect: { initialDelay: 20, maxDelay: 200 },
        },
      ],
    });
    const pub = await connect(`mqtt://127.0.0.1:${local.port}`);
    try {
      await bridgeState(local.broker, 'full', true);
      await remote.close();
      await bridgeState(local.broker, 'full', false);
      for (let i = 0; i < 15; i++) await pub.publish(`full/${i}`, String(i), { qos: 1 });
      const s = local.broker.stats().bridges![0]!;
      assert.equal(s.queued, 10, 'the queue holds its limit');
      assert.equal(s.dropped.queueFull, 5, 'the rest dropped and counted for this bridge, not silently');
      assert.match(await local.broker.metrics.render(), /^courier_bridge_dropped_total\{bridge="full",reason="queue_full"\} 5$/m);
    } finally {
      await pub.close();
      await local.close();
    }
  });

  void it('messages queued for an absent remote survive a restart of the local broker (LMDB) and leave in order', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'courier-bridge-durable-'));
    const remote = await startBroker();
    const port = remote.port;
    await remote.close();
    const bridges: BridgeOptions[] = [
      {
        name: 'durable',
        remotes: [`mqtt://127.0.0.1:${port}`],
        topics: [{ filter: 'd/#', direction: 'out', qos: 1 }],
        reconnect: { initialDelay: 20, maxDelay: 200 },
      },
    ];
    let local = await startBroker({ dataDir, persistence: { engine: 'lmdb' }, bridges });
    let remote2: TestBroker | undefined;
    try {
      const pub = await connect(`mqtt://127.0.0.1:${local.port}`);
      for (let i = 0; i < 300; i++) await pub.publish(`d/${i}`, String(i), { qos: 1 });
      await pub.close();
      assert.equal(local.broker.stats().bridges![0]!.queued, 300);
      await local.close();
      remote2 = await startBroker({ listeners: [{ type: 'tcp', host: '127.0.0.1', port }] });
      const far = await Collector.open(`mqtt://127.0.0.1:${port}`, 'd/#', 1);
      local = await startBroker({ dataDir, persistence: { engine: 'lmdb' }, bridges });
      await far.count(300);
      assert.deepEqual(
        far.messages.map((m) => m.text()),
        Array.from({ length: 300 }, (_, i) => String(i)),
      );
      await far.close();
    } finally {
      await local.close();
      await remote2?.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  void it('failover: the first remote that answers is used; after a loss the first is tried again', async () => {
    const dead = await startBroker();
    const deadPort = dead.port;
    await dead.close();
    const live = await startBroker();
    const local = await startBroker({
      bridges: [
        {
          name: 'fo',
          remotes: [`mqtt://127.0.0.1:${deadPort}`, `mqtt://127.0.0.1:${live.port}`],
          topics: [{ filter: 'fo/#', direction: 'out', qos: 1 }],
          reconnect: { initialDelay: 20, maxDelay: 100 },
        },
      ],
    });
    let back: TestBroker | undefined;
    try {
      const s = await bridgeState(local.broker, 'fo', true);
      assert.equal(s.remote, `mqtt://127.0.0.1:${live.port}`);
      // The primary comes back and the backup goes: the bridge returns to the primary.
      back = await startBroker({ listeners: [{ type: 'tcp', host: '127.0.0.1', port: deadPort }] });
      await live.close();
      await bridgeState(local.broker, 'fo', false);
      const again = await bridgeState(local.broker, 'fo', true);
      assert.equal(again.remote, `mqtt://127.0.0.1:${deadPort}`);
    } finally {
      await local.close();
      await live.close();
      await back?.close();
    }
  });

  void it('a remote that stops reading: local subscribers get everything, QoS 0 for the remote is dropped and counted, QoS 1 waits and arrives', async () => {
    const remote = await startBroker();
    const proxy = await stallingProxy(remote.port);
    const proxyPort = proxy.port;
    const local = await startBroker({
      bridges: [
        {
          name: 'slow',
          remotes: [`mqtt://127.0.0.1:${proxyPort}`],
          topics: [{ filter: 'slow/#', direction: 'out', qos: 1 }],
          maxOutboundBufferBytes: 256 * 1024,
          keepAlive: 0,
        },
      ],
    });
    const near = await Collector.open(`mqtt://127.0.0.1:${local.port}`, 'slow/#', 1);
    const far = await Collector.open(`mqtt://127.0.0.1:${remote.port}`, 'slow/#', 1);
    const pub = await connect(`mqtt://127.0.0.1:${local.port}`);
    try {
      await bridgeState(local.broker, 'slow', true);
      proxy.stall();
      const big = new Uint8Array(64 * 1024).fill(0x61);
      for (let i = 0; i < 400; i++) await pub.publish(`slow/q0/${i}`, big, { qos: 0 });
      for (let i = 0; i < 200; i++) await pub.publish(`slow/q1/${i}`, String(i), { qos: 1 });
      await near.count(600);
      const s = local.broker.stats().bridges![0]!;
      assert.ok(s.dropped.qos0 > 0, `QoS 0 dropped and counted (${s.dropped.qos0})`);
      assert.ok(s.queued > 0, 'QoS 1 held for the remote');
      proxy.resume();
      const q1 = (m: readonly { topic: string }[]) => m.filter((x) => x.topic.startsWith('slow/q1/')).length;
      await far.until((m) => q1(m) === 200, 'the 200 QoS 1 messages on the remote');
      assert.deepEqual(
        far.messages.filter((x) => x.topic.startsWith('slow/q1/')).map((x) => x.text()),
        Array.from({ length: 200 }, (_, i) => String(i)),
      );
      const q0 = far.messages.length - 200;
      assert.equal(q0 + s.dropped.qos0, 400, `every QoS 0 message either arrived (${q0}) or was counted as dropped (${s.dropped.qos0})`);
    } finally {
      await Promise.all([near.close(), far.close(), pub.close()]);
      await local.close();
      await proxy.close();
      await remote.close();
    }
  });

  void it('cleanStart false: the remote queues `in` messages while the bridge is down, and they arrive when it starts again', async () => {
    const remote = await startBroker();
    const bridges: BridgeOptions[] = [
      {
        name: 'persist',
        clientId: 'bridge-persist-test',
        remotes: [`mqtt://127.0.0.1:${remote.port}`],
        topics: [{ filter: 'p/#', direction: 'in', qos: 1 }],
      },
    ];
    let local = await startBroker({ bridges });
    try {
      await bridgeState(local.broker, 'persist', true);
      // The SUBACK is in once a message published on the remote comes through.
      const probe = await Collector.open(`mqtt://127.0.0.1:${local.port}`, 'p/#', 1);
      const rp = await connect(`mqtt://127.0.0.1:${remote.port}`);
      await rp.publish('p/probe', 'probe', { qos: 1 });
      await probe.count(1);
      await probe.close();
      await local.close();
      for (let i = 0; i < 100; i++) await rp.publish(`p/${i}`, String(i), { qos: 1 });
      await rp.close();
      local = await startBroker({ bridges });
      const near = await Collector.open(`mqtt://127.0.0.1:${local.port}`, 'p/#', 1);
      // The bridge may already have published some before this subscriber came: count from the store of both.
      const s = await pollUntil(() => local.broker.stats().bridges!.find((b) => b.forwardedIn >= 100), { what: '100 messages in from the remote' });
      assert.equal(s.forwardedIn, 100, 'the queued messages, each once');
      await near.close();
    } finally {
      await local.close();
      await remote.close();
    }
  });

  void it('a remote that refuses the credentials: a log line naming the reason, then attempts further and further apart', async () => {
    const remote = await startBroker({ authenticate: () => ({ ok: false }) });
    const log = recordingLogger();
    const local = await startBroker({
      logger: log,
      bridges: [
        {
          name: 'auth',
          remotes: [`mqtt://127.0.0.1:${remote.port}`],
          username: 'bridge',
          password: 'wrong',
          topics: [{ filter: 'x/#', direction: 'both' }],
          reconnect: { initialDelay: 50, maxDelay: 400 },
        },
      ],
    });
    try {
      const refusals = () => log.lines.filter((l) => l.level === 'warn' && /bad user name or password|not authorized/.test(l.msg));
      const deadline = Date.now() + 10_000;
      while (refusals().length < 5 && Date.now() < deadline) await new Promise<void>((r) => setTimeout(r, 25));
      const lines = refusals();
      assert.ok(lines.length >= 5, `5 refusals logged: ${JSON.stringify(log.lines.map((l) => l.msg))}`);
      // Each next attempt waits at least half the capped doubling delay: 50, 100, 200, 400, 400 ms.
      lines.slice(0, 5).forEach((l, k) => {
        const cap = Math.min(400, 50 * 2 ** k);
        const d = l.obj.retryInMs as number;
        assert.ok(d >= cap / 2 && d <= cap, `attempt ${k}: delay ${d} within [${cap / 2}, ${cap}]`);
      });
      assert.match(lines[0]!.msg, /bridge auth: .*refused|cannot connect/);
      const s = local.broker.stats().bridges![0]!;
      assert.equal(s.connected, false);
      assert.match(s.lastError, /0x8[67]/);
    } finally {
      await local.close();
      await remote.close();
    }
  });

  void it('$SYS/broker/connection/<name>/state is 1 while connected and 0 after the remote goes; the metrics say the same', async () => {
    const p = await pair({ name: 'sys', topics: [{ filter: 'a/#', direction: 'out' }], reconnect: { initialDelay: 20, maxDelay: 100 } });
    const c = await Collector.open(`mqtt://127.0.0.1:${p.local.port}`, '$SYS/broker/connection/+/state', 0);
    try {
      await c.until((m) => m.some((x) => x.topic === '$SYS/broker/connection/sys/state' && x.text() === '1'), 'state 1');
      assert.equal(c.messages[0]!.retain, true, 'retained');
      const metrics = await p.local.broker.metrics.render();
      assert.match(metrics, /^courier_bridge_up\{bridge="sys"\} 1$/m);
      assert.match(metrics, /^courier_bridge_dropped_total\{bridge="sys",reason="loop"\} 0$/m);
      await p.remote.close();
      await c.until((m) => m.some((x) => x.text() === '0'), 'state 0');
    } finally {
      await c.close();
      await p.local.close();
    }
  });
});
