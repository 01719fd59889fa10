/**
 * Interop with Eclipse Mosquitto's command-line clients (`mosquitto_pub`, `mosquitto_sub`),
 * MQTT 3.1.1 and 5.0 over TCP: QoS 0/1/2, retained messages, a will fired by SIGKILL, and a large
 * payload. Assertions are on their stdout (with -d debug lines for the packet flow) and exit codes.
 * Mosquitto v5 clients connect with an empty client id: the broker must assign one.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Peers, missingExecutable, peerGate, type Peer } from '../helpers/peers.js';
import { startSubject, unique, type Subject } from '../helpers/interop.js';

const PUB = '/usr/bin/mosquitto_pub';
const SUB = '/usr/bin/mosquitto_sub';
const gate = peerGate('mosquitto-clients', missingExecutable(PUB) ?? missingExecutable(SUB) ?? missingExecutable('/usr/bin/stdbuf'));
/** topic|qos|retain|payload */
const FORMAT = '%t|%q|%r|%p';
/** mosquitto_sub block-buffers stdout into a pipe: run it line-buffered so -d lines arrive as they happen. */
const STDBUF = '/usr/bin/stdbuf';
const sub = (peers: Peers, args: string[]): Peer => peers.spawn(STDBUF, ['-oL', SUB, ...args]);

/** The message lines of a mosquitto_sub -d output (debug lines removed). */
function messageLines(out: string): string[] {
  return out.split('\n').filter((l) => l !== '' && !l.startsWith('Client ') && !l.startsWith('Subscribed ('));
}

void describe('mosquitto_pub / mosquitto_sub interop', gate, () => {
  let subject: Subject;
  const peers = new Peers();

  before(async () => {
    subject = await startSubject();
  });
  after(async () => {
    await peers.killAll();
    await subject?.close();
  });

  for (const version of ['mqttv311', 'mqttv5'] as const) {
    void describe(version, () => {
      const common = () => ['-h', '127.0.0.1', '-p', String(subject.port), '-V', version];

      /** Starts mosquitto_sub with -d and resolves once its SUBACK arrived. */
      const subscribe = async (args: string[]): Promise<Peer> => {
        const proc = sub(peers, [...common(), '-d', '-W', '10', ...args]);
        await proc.waitFor(/received SUBACK/);
        return proc;
      };
      /** Runs mosquitto_pub -d to completion; asserts it exited 0; returns its output. */
      const publish = async (args: string[], input?: string | Buffer): Promise<string> => {
        const pub = peers.spawn(PUB, [...common(), '-d', ...args]);
        pub.child.stdin?.end(input);
        const { code } = await pub.exited();
        assert.equal(code, 0, `mosquitto_pub failed:\n${pub.stdout()}\n${pub.stderr()}`);
        return pub.stdout();
      };

      void it('QoS 0, 1 and 2 publishes reach a QoS 2 subscriber with the full handshake', async () => {
        const root = unique('mos-qos');
        const sub = await subscribe(['-t', `${root}/#`, '-q', '2', '-C', '3', '-F', FORMAT]);
        const out0 = await publish(['-t', `${root}/zero`, '-q', '0', '-m', 'm0']);
        const out1 = await publish(['-t', `${root}/one`, '-q', '1', '-m', 'm1']);
        const out2 = await publish(['-t', `${root}/two`, '-q', '2', '-m', 'm2']);
        assert.doesNotMatch(out0, /received PUB/);
        assert.match(out1, /received PUBACK/);
        assert.match(out2, /received PUBREC[\s\S]*sending PUBREL[\s\S]*received PUBCOMP/);
        const { code } = await sub.exited();
        assert.equal(code, 0, sub.stderr());
        assert.deepEqual(messageLines(sub.stdout()), [`${root}/zero|0|0|m0`, `${root}/one|1|0|m1`, `${root}/two|2|0|m2`]);
        assert.match(sub.stdout(), /received PUBLISH \(d0, q2[\s\S]*sending PUBREC[\s\S]*received PUBREL[\s\S]*sending PUBCOMP/);
      });

      void it('downgrades to the subscription QoS (QoS 2 publish, QoS 1 subscription)', async () => {
        const topic = unique('mos-down');
        const sub = await subscribe(['-t', topic, '-q', '1', '-C', '1', '-F', FORMAT]);
        await publish(['-t', topic, '-q', '2', '-m', 'x']);
        const { code } = await sub.exited();
        assert.equal(code, 0);
        assert.deepEqual(messageLines(sub.stdout()), [`${topic}|1|0|x`]);
      });

      void it('delivers a retained message to a later subscriber (-r, -C 1) and clears it with -n', async () => {
        const topic = unique('mos-retained');
        await publish(['-t', topic, '-q', '1', '-r', '-m', 'keep']);
        const late = sub(peers, [...common(), '-t', topic, '-q', '1', '-C', '1', '-W', '10', '-F', FORMAT]);
        const r = await late.exited();
        assert.equal(r.code, 0, late.stderr());
        assert.deepEqual(messageLines(late.stdout()), [`${topic}|1|1|keep`]);

        await publish(['-t', topic, '-q', '1', '-r', '-n']);
        // --retained-only exits at the first non-retained message: the marker. Nothing retained is printed.
        const check = await subscribe(['-t', topic, '-t', `${topic}/marker`, '--retained-only', '-F', FORMAT]);
        await publish(['-t', `${topic}/marker`, '-q', '1', '-m', 'marker']);
        const c = await check.exited();
        assert.equal(c.code, 0, check.stderr());
        assert.deepEqual(messageLines(check.stdout()), []);
      });

      void it('publishes the will of a client killed with SIGKILL', async () => {
        const topic = unique('mos-will');
        const watcher = await subscribe(['-t', topic, '-q', '1', '-C', '1', '-F', FORMAT]);
        const doomed = await subscribe(['-t', `${topic}/unused`, '--will-topic', topic, '--will-payload', 'gone', '--will-qos', '1']);
        doomed.kill('SIGKILL');
        const { code } = await watcher.exited();
        assert.equal(code, 0, watcher.stderr());
        assert.deepEqual(messageLines(watcher.stdout()), [`${topic}|1|0|gone`]);
      });

      void it('carries a 200 kB payload read from stdin', async () => {
        const topic = unique('mos-big');
        const payload = 'abcdefghij'.repeat(20_000);
        const sub = await subscribe(['-t', topic, '-q', '1', '-C', '1', '-F', '%t|%l']);
        await publish(['-t', topic, '-q', '1', '-s'], payload);
        const { code } = await sub.exited();
        assert.equal(code, 0, sub.stderr());
        assert.deepEqual(messageLines(sub.stdout()), [`${topic}|${payload.length}`]);
      });

      if (version !== 'mqttv5') return;

      void it('v5 subscription identifiers: each subscriber gets its own identifier, one overlapping client gets both [MQTT-3.3.4-3]', async () => {
        const root = unique('mos-subid');
        // One mosquitto_sub with two overlapping filters would carry one id per SUBSCRIBE; it sends one SUBSCRIBE, so one id.
        const a = await subscribe(['-t', `${root}/#`, '-D', 'subscribe', 'subscription-identifier', '7', '-C', '1', '-F', '%j']);
        const b = await subscribe(['-t', `${root}/x`, '-D', 'subscribe', 'subscription-identifier', '42', '-C', '1', '-F', '%j']);
        await publish(['-t', `${root}/x`, '-q', '1', '-m', 'hello']);
        for (const [proc, id] of [
          [a, 7],
          [b, 42],
        ] as const) {
          const { code } = await proc.exited();
          assert.equal(code, 0, proc.stderr());
          const msg = JSON.parse(messageLines(proc.stdout())[0]!) as { payload: string; properties?: { 'subscription-identifier'?: number | number[] } };
          assert.equal(msg.payload, 'hello');
          assert.deepEqual(msg.properties?.['subscription-identifier'], id);
        }
      });

      void it('v5 shared subscriptions: two mosquitto_sub members of $share/g share 20 messages, each message once', async () => {
        const topic = unique('mos-share');
        const members = [
          await subscribe(['-t', `$share/g/${topic}`, '-q', '1', '-F', '%p']),
          await subscribe(['-t', `$share/g/${topic}`, '-q', '1', '-F', '%p']),
        ];
        for (let i = 0; i < 20; i++) await publish(['-t', topic, '-q', '1', '-m', String(i)]);
        // Round robin: each member gets 10; wait for them, then stop the members.
        await Promise.all(members.map((m) => m.waitFor(/(?:^|\n)(?:\d+\n[\s\S]*){10}/)));
        for (const m of members) m.kill('SIGTERM');
        const got = members.map((m) => messageLines(m.stdout()).map(Number));
        assert.deepEqual(
          got.map((g) => g.length),
          [10, 10],
        );
        assert.deepEqual(
          got.flat().sort((x, y) => x - y),
          Array.from({ length: 20 }, (_, i) => i),
        );
      });
    });
  }
});
