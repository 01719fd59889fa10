/**
 * Bridges from Courier to a real Mosquitto (Debian's mosquitto, started here on a free port):
 * out, in, both with prefixes at QoS 0/1/2, retained messages, a `#` bridge both ways without
 * loops (5.0 with No Local; 3.1.1, where Mosquitto echoes the bridge's own messages back),
 * Mosquitto stopped and started again under QoS 1 load (0 lost, order kept), and Mosquitto
 * refusing the bridge's password (a log line, attempts further and further apart).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { connect } from '../../packages/client/src/index.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { pollUntil } from '../helpers/wait.js';
import { Collector, bridgeState, mosquitto, mosquittoGate, recordingLogger, type Mosquitto } from './helpers.js';

for (const protocolVersion of [5, 4] as const) {
  const v = protocolVersion === 5 ? '5.0' : '3.1.1';
  void describe(`bridge Courier → Mosquitto (MQTT ${v})`, mosquittoGate(), () => {
    let m: Mosquitto;
    let local: TestBroker;
    before(async () => {
      m = await mosquitto();
      local = await startBroker({
        bridges: [
          {
            name: 'mq',
            protocolVersion,
            remotes: [m.url],
            topics: [
              { filter: 'up/#', direction: 'out', qos: 2, localPrefix: 'site/', remotePrefix: 'plant1/' },
              { filter: 'cmd/#', direction: 'in', qos: 2, localPrefix: 'from-cloud/', remotePrefix: 'plant1/' },
              { filter: '#', direction: 'both', qos: 1, localPrefix: 'sync/', remotePrefix: 'sync/' },
            ],
          },
        ],
      });
      await bridgeState(local.broker, 'mq', true);
    });
    after(async () => {
      await local?.close();
      await m?.close();
    });

    void it('out with prefixes, QoS 0/1/2', async () => {
      const far = await Collector.open(m.url, 'plant1/up/#', 2);
      const pub = await connect(`mqtt://127.0.0.1:${local.port}`);
      for (const qos of [0, 1, 2] as const) await pub.publish(`site/up/q${qos}`, `m${qos}`, { qos });
      await far.count(3);
      assert.deepEqual(far.texts().sort(), ['plant1/up/q0=m0', 'plant1/up/q1=m1', 'plant1/up/q2=m2']);
      assert.deepEqual(far.messages.map((x) => x.qos).sort(), [0, 1, 2]);
      await Promise.all([far.close(), pub.close()]);
    });

    void it('in with prefixes, QoS 0/1/2', async () => {
      const near = await Collector.open(`mqtt://127.0.0.1:${local.port}`, 'from-cloud/#', 2);
      const pub = await connect(m.url);
      for (const qos of [0, 1, 2] as const) await pub.publish(`plant1/cmd/q${qos}`, `c${qos}`, { qos });
      await near.count(3);
      assert.deepEqual(near.texts().sort(), ['from-cloud/cmd/q0=c0', 'from-cloud/cmd/q1=c1', 'from-cloud/cmd/q2=c2']);
      assert.deepEqual(near.messages.map((x) => x.qos).sort(), [0, 1, 2]);
      await Promise.all([near.close(), pub.close()]);
    });

    void it('`#` both ways: every message reaches each side once, nothing loops', async () => {
      const near = await Collector.open(`mqtt://127.0.0.1:${local.port}`, 'sync/#', 1);
      const far = await Collector.open(m.url, 'sync/#', 1);
      const a = await connect(`mqtt://127.0.0.1:${local.port}`);
      const b = await connect(m.url);
      for (let i = 0; i < 50; i++) {
        await a.publish(`sync/a/${i}`, `a${i}`, { qos: 1 });
        await b.publish(`sync/b/${i}`, `b${i}`, { qos: 1 });
      }
      await a.publish('sync/end', 'a-end', { qos: 1 });
      await b.publish('sync/end', 'b-end', { qos: 1 });
      const ends = (x: readonly { topic: string }[]) => x.filter((y) => y.topic === 'sync/end').length === 2;
      await near.until(ends, 'both end markers here');
      await far.until(ends, 'both end markers on Mosquitto');
      for (const c of [near, far]) {
        assert.equal(c.messages.length, 102, `102 messages, each once (got ${c.messages.length})`);
        assert.equal(new Set(c.texts()).size, 102);
      }
      const s = local.broker.stats().bridges![0]!;
      if (protocolVersion === 4) assert.ok(s.dropped.loop >= 51, `Mosquitto echoed what the bridge sent; the guard dropped ${s.dropped.loop}`);
      else assert.equal(s.dropped.loop, 0);
      await Promise.all([near.close(), far.close(), a.close(), b.close()]);
    });

    void it(
      protocolVersion === 5
        ? 'retained messages pass both ways with their flag'
        : 'retained messages pass out with their flag (3.1.1 has no Retain As Published: live ones come in unflagged)',
      async () => {
        const a = await connect(`mqtt://127.0.0.1:${local.port}`);
        const b = await connect(m.url);
        await a.publish('site/up/ret', 'from-courier', { qos: 1, retain: true });
        await b.publish('plant1/cmd/ret', 'from-mosquitto', { qos: 1, retain: true });
        // Late subscribers find them retained on the other side.
        const far = await Collector.open(m.url, 'plant1/up/ret', 1);
        await far.count(1);
        assert.equal(far.messages[0]!.retain, true);
        assert.equal(far.messages[0]!.text(), 'from-courier');
        const near = await Collector.open(`mqtt://127.0.0.1:${local.port}`, 'from-cloud/cmd/ret', 1);
        if (protocolVersion === 5) {
          await near.count(1);
          assert.equal(near.messages[0]!.retain, true);
          assert.equal(near.messages[0]!.text(), 'from-mosquitto');
        }
        await Promise.all([a.close(), b.close(), far.close(), near.close()]);
      },
    );
  });
}

void describe('bridge Courier → Mosquitto: faults', mosquittoGate(), () => {
  void it('Mosquitto stopped and started again under QoS 1 load: 0 lost, order kept', async () => {
    const N = 3000;
    const m = await mosquitto();
    const local = await startBroker({
      // Room for everything published while Mosquitto is away (the bridge's session has the same queue limits as any).
      sessions: { maxQueuedMessages: N },
      bridges: [{ name: 'load', remotes: [m.url], topics: [{ filter: 'load/#', direction: 'out', qos: 1 }], reconnect: { initialDelay: 50, maxDelay: 300 } }],
    });
    const far = await Collector.open(m.url, 'load/#', 1, { clientId: 'bridge-test-far', clean: false, sessionExpiry: 3600, protocolVersion: 5 });
    const pub = await connect(`mqtt://127.0.0.1:${local.port}`);
    try {
      await bridgeState(local.broker, 'load', true);
      const publishing = (async () => {
        for (let i = 0; i < N; i += 50) {
          await Promise.all(Array.from({ length: 50 }, (_, k) => pub.publish('load/seq', String(i + k), { qos: 1 })));
        }
      })();
      await far.count(N / 4);
      // A graceful stop: Mosquitto writes its persistence file (a SIGKILL loses what Mosquitto itself acknowledged since its last autosave).
      await m.stop('SIGTERM');
      await bridgeState(local.broker, 'load', false);
      await m.start();
      await publishing;
      await far
        .until((x) => new Set(x.map((y) => y.text())).size === N, `all ${N} distinct messages`, 60_000)
        .catch((e: Error) => {
          const got = new Set(far.messages.map((y) => y.text()));
          const missing = Array.from({ length: N }, (_, i) => String(i)).filter((x) => !got.has(x));
          throw new Error(`${e.message}; missing ${missing.length}: ${missing.slice(0, 20).join(',')}; bridge ${JSON.stringify(local.broker.stats().bridges)}`);
        });
      // Order: the first delivery of each number comes after the first delivery of the one before.
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
        'in order',
      );
      // The last PUBACKs may still be on their way: nothing stays held once they are in.
      const s = await pollUntil(() => local.broker.stats().bridges!.find((b) => b.queued === 0), { what: 'the bridge to hold nothing' });
      assert.ok(s.connects >= 2, 'reconnected');
      assert.equal(s.forwardedOut >= N, true);
    } finally {
      await pub.close();
      await far.close();
      await local.close();
      await m.close();
    }
  });

  void it('Mosquitto refusing the password: a clear log line, then backoff (no busy loop)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'courier-bridge-pw-'));
    const passwd = join(dir, 'users');
    const r = spawnSync('/usr/bin/mosquitto_passwd', ['-b', '-c', passwd, 'bridge', 'right'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    // Mosquitto, started as root, reads it as its own user.
    chmodSync(dir, 0o755);
    chmodSync(passwd, 0o644);
    const m = await mosquitto(['allow_anonymous false', `password_file ${passwd}`]);
    const log = recordingLogger();
    const local = await startBroker({
      logger: log,
      bridges: [
        {
          name: 'pw',
          protocolVersion: 4,
          remotes: [m.url],
          username: 'bridge',
          password: 'wrong',
          topics: [{ filter: 'x/#', direction: 'out' }],
          reconnect: { initialDelay: 50, maxDelay: 400 },
        },
      ],
    });
    try {
      const refusals = () => log.lines.filter((l) => l.level === 'warn' && /not authorized|bad user name or password/.test(l.msg));
      const deadline = Date.now() + 10_000;
      while (refusals().length < 4 && Date.now() < deadline) await new Promise<void>((res) => setTimeout(res, 25));
      const lines = refusals();
      assert.ok(lines.length >= 4, JSON.stringify(log.lines.map((l) => l.msg)));
      assert.match(
        lines[0]!.msg,
        /^bridge pw: cannot connect to mqtt:\/\/127\.0\.0\.1:\d+: (not authorized \(0x87\)|bad user name or password \(0x86\)); next attempt in/,
      );
      lines.slice(0, 4).forEach((l, k) => {
        const cap = Math.min(400, 50 * 2 ** k);
        const d = l.obj.retryInMs as number;
        assert.ok(d >= cap / 2 && d <= cap, `attempt ${k}: delay ${d} within [${cap / 2}, ${cap}]`);
      });
    } finally {
      await local.close();
      await m.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
