/**
 * `courier pub | sub | rr | bench` (spawned like users run them) against Mosquitto and Courier,
 * next to mosquitto_pub / mosquitto_sub / mosquitto_rr: the same messages, the same -F output,
 * the same exit codes (27 on -W timeout, the CONNACK code on refusal).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect } from '../../packages/client/src/index.js';
import { Peers, missingExecutable, peerGate } from '../helpers/peers.js';
import { MOSQUITTO, startCourier, startMosquitto, unique, type TestServer } from './brokers.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = ['--import', 'tsx', 'test/fixtures/courier-cli.ts'];
const PUB = '/usr/bin/mosquitto_pub';
const SUB = '/usr/bin/mosquitto_sub';
const RR = '/usr/bin/mosquitto_rr';
const gate = peerGate(
  'mosquitto and mosquitto-clients',
  missingExecutable(MOSQUITTO) ?? missingExecutable(PUB) ?? missingExecutable(SUB) ?? missingExecutable(RR),
);

void describe('courier pub/sub/rr/bench: interop with Mosquitto and its clients', gate, () => {
  const peers = new Peers();
  let mosq: TestServer;
  let courier: TestServer;
  // Mosquitto also listens on a Unix socket here (its directory writable by the user it drops to).
  const sockDir = mkdtempSync(join(tmpdir(), 'courier-cli-unix-'));
  chmodSync(sockDir, 0o777);
  const sock = join(sockDir, 'mqtt.sock');
  const courierCli = (args: string[], stdin?: string) => {
    const p = peers.spawn(process.execPath, [...CLI, ...args], { cwd: ROOT });
    if (stdin !== undefined) p.child.stdin?.end(stdin);
    else p.child.stdin?.end();
    return p;
  };
  const run = async (cmd: string, args: string[]) => {
    const p = cmd === 'courier' ? courierCli(args) : peers.spawn(cmd, args);
    p.child.stdin?.end();
    const { code } = await p.exited(20_000);
    return { code, out: p.stdout(), err: p.stderr() };
  };
  /** Starts a subscriber (either tool) and resolves once it has subscribed (-d output). */
  const subscriber = async (cmd: 'courier' | typeof SUB, args: string[]) => {
    const p = cmd === 'courier' ? courierCli(['sub', ...args, '-d']) : peers.spawn('/usr/bin/stdbuf', ['-oL', SUB, ...args, '-d']);
    await p.waitFor(cmd === 'courier' ? /subscribed to/ : /received SUBACK/i, { stream: cmd === 'courier' ? 'stderr' : 'stdout', timeoutMs: 20_000 });
    return p;
  };
  before(async () => {
    mosq = await startMosquitto([`listener 0 ${sock}`]);
    courier = await startCourier();
  });
  after(async () => {
    await peers.killAll();
    await mosq?.close();
    await courier?.close();
    rmSync(sockDir, { recursive: true, force: true });
  });

  void it('--unix reaches Mosquitto over its Unix socket; -A binds the local address (one not on this host fails, exit 1)', async () => {
    const t = unique('unix');
    const c = await connect(mosq.url('tcp'));
    try {
      const s = await c.subscribe(`${t}/#`, { qos: 1 });
      const it = s[Symbol.asyncIterator]();
      const viaUnix = await run('courier', ['pub', '--unix', sock, '-t', `${t}/u`, '-m', 'over unix', '-q', '1']);
      assert.equal(viaUnix.code, 0, viaUnix.err);
      assert.equal(((await it.next()).value as { text(): string }).text(), 'over unix');
      const bound = await run('courier', ['pub', '-A', '127.0.0.1', '-p', String(mosq.port), '-t', `${t}/a`, '-m', 'bound', '-q', '1']);
      assert.equal(bound.code, 0, bound.err);
      assert.equal(((await it.next()).value as { text(): string }).text(), 'bound');
      const elsewhere = await run('courier', ['pub', '-A', '192.0.2.1', '-p', String(mosq.port), '-t', `${t}/a`, '-m', 'x']);
      assert.equal(elsewhere.code, 1);
      assert.match(elsewhere.err, /EADDRNOTAVAIL|bind/);
    } finally {
      await c.close();
    }
  });

  for (const [label, server] of [
    ['Mosquitto', () => mosq],
    ['Courier', () => courier],
  ] as const) {
    for (const v of ['5', '311'] as const) {
      void it(`${label} v${v}: courier pub (-m, -l, -q 1/2, -r) to courier sub -v -C; the same messages as mosquitto_sub -F prints them`, async () => {
        const port = String(server().port);
        const t = unique('cli');
        // Widths and precision as mosquitto_sub applies them (%-4p cut and padded, %6x three bytes, %.2t, %05l).
        const fmt = '%t|%p|%q|%r|%l|%-4p|%6x|%.2t|%05l|%3q';
        const ours = await subscriber('courier', ['-p', port, '-V', v, '-t', `${t}/#`, '-q', '2', '-C', '4', '-F', fmt]);
        const theirs = await subscriber(SUB, ['-p', port, '-V', v === '5' ? 'mqttv5' : 'mqttv311', '-t', `${t}/#`, '-q', '2', '-C', '4', '-F', fmt]);
        assert.equal((await run('courier', ['pub', '-p', port, '-V', v, '-t', `${t}/a`, '-m', 'hello world', '-q', '1'])).code, 0);
        const lines = courierCli(['pub', '-p', port, '-V', v, '-t', `${t}/b`, '-l', '-q', '2'], 'one\ntwo\n');
        assert.equal((await lines.exited()).code, 0, lines.stderr());
        assert.equal((await run('courier', ['pub', '-p', port, '-V', v, '-t', `${t}/c`, '-n', '-q', '0'])).code, 0);
        const [a, b] = [await ours.exited(), await theirs.exited()];
        assert.equal(a.code, 0, ours.stderr());
        assert.equal(b.code, 0, theirs.stderr());
        const expected = [
          `${t}/a|hello world|1|0|11|hell|68656c|cl|00011|1`,
          `${t}/b|one|2|0|3|one |    6f|cl|00003|2`, // mosquitto_sub's %6x: half the payload at most
          `${t}/b|two|2|0|3|two |    74|cl|00003|2`,
          `${t}/c||0|0|0|    |      |cl|00000|0`,
        ];
        const clean = (s: string) => s.split('\n').filter((l) => l.includes('|'));
        assert.deepEqual(clean(ours.stdout()), expected);
        assert.deepEqual(clean(theirs.stdout()), expected);
      });
    }

    void it(`${label}: mosquitto_pub to courier sub -v; courier pub -r then mosquitto_sub sees the retained message`, async () => {
      const port = String(server().port);
      const t = unique('mp');
      const ours = await subscriber('courier', ['-p', port, '-t', `${t}/+`, '-v', '-C', '2', '-q', '1']);
      assert.equal((await run(PUB, ['-p', port, '-t', `${t}/x`, '-m', 'from mosquitto_pub', '-q', '1'])).code, 0);
      assert.equal((await run(PUB, ['-p', port, '-t', `${t}/y`, '-m', 'v5 too', '-q', '2', '-V', 'mqttv5'])).code, 0);
      assert.equal((await ours.exited()).code, 0);
      assert.deepEqual(ours.stdout().trim().split('\n'), [`${t}/x from mosquitto_pub`, `${t}/y v5 too`]);
      assert.equal((await run('courier', ['pub', '-p', port, '-t', `${t}/r`, '-m', 'kept', '-r', '-q', '1'])).code, 0);
      const r = await run(SUB, ['-p', port, '-t', `${t}/r`, '-C', '1', '-v', '-W', '5']);
      assert.equal(r.code, 0);
      assert.equal(r.out.trim(), `${t}/r kept`);
      assert.equal((await run('courier', ['pub', '-p', port, '-t', `${t}/r`, '-n', '-r'])).code, 0);
    });

    void it(`${label}: -W timeout exits 27 as mosquitto_sub and mosquitto_rr do`, async () => {
      const port = String(server().port);
      const t = unique('w');
      const results = await Promise.all([
        run('courier', ['sub', '-p', port, '-t', t, '-W', '1']),
        run(SUB, ['-p', port, '-t', t, '-W', '1']),
        run('courier', ['rr', '-p', port, '-t', t, '-m', 'x', '-W', '1']),
        run(RR, ['-p', port, '-t', t, '-e', `${t}/resp`, '-m', 'x', '-W', '1']),
      ]);
      assert.deepEqual(
        results.map((r) => r.code),
        [27, 27, 27, 27],
      );
    });

    void it(`${label}: courier rr gets the response of a responder (both with and without -e)`, async () => {
      const port = String(server().port);
      const t = unique('rr');
      const responder = await connect(`mqtt://127.0.0.1:${port}`);
      try {
        await responder.respond(`${t}/req`, (m) => `re:${m.text()}`, { qos: 1 });
        const a = await run('courier', ['rr', '-p', port, '-t', `${t}/req`, '-m', 'ping', '-W', '5']);
        assert.equal(a.code, 0, a.err);
        assert.equal(a.out, 're:ping\n');
        const b = await run('courier', ['rr', '-p', port, '-t', `${t}/req`, '-e', `${t}/resp`, '-m', 'pong', '-v', '-W', '5']);
        assert.equal(b.code, 0, b.err);
        assert.equal(b.out, `${t}/resp re:pong\n`);
        const c = await run(RR, ['-p', port, '-t', `${t}/req`, '-e', `${t}/resp2`, '-m', 'mosq', '-W', '5']);
        assert.equal(c.code, 0, c.err);
        assert.equal(c.out, 're:mosq\n');
      } finally {
        await responder.close();
      }
    });

    void it(`${label}: courier bench QoS 1 reports 0 lost and exits 0`, async () => {
      const r = await run('courier', ['bench', '-p', String(server().port), '-c', '2', '-n', '500', '-q', '1', '--window', '10', '--json']);
      assert.equal(r.code, 0, r.err);
      const s = JSON.parse(r.out) as { sent: number; received: number; lost: number; duplicated: number; latencyMs: { p50: number } };
      assert.equal(s.sent, 1000);
      assert.equal(s.received, 1000);
      assert.equal(s.lost, 0);
      assert.equal(s.duplicated, 0);
      assert.ok(s.latencyMs.p50 > 0);
    });
  }

  void it('a refused CONNECT exits with the CONNACK code, as mosquitto_sub does (5 in 3.1.1, 135 in 5.0)', async () => {
    const locked = await startMosquitto(['allow_anonymous false']);
    try {
      const port = String(locked.port);
      for (const [v, mv, code] of [
        ['5', 'mqttv5', 135],
        ['311', 'mqttv311', 5],
      ] as const) {
        const ours = await run('courier', ['sub', '-p', port, '-t', 'x', '-V', v]);
        const theirs = await run(SUB, ['-p', port, '-t', 'x', '-V', mv]);
        assert.equal(theirs.code, code);
        assert.equal(ours.code, code, ours.err);
      }
    } finally {
      await locked.close();
    }
  });

  void it('usage errors exit 1 with a message; --help exits 0', async () => {
    const bad = await run('courier', ['pub', '-t', 'x']);
    assert.equal(bad.code, 1);
    assert.match(bad.err, /give exactly one of -m/);
    const help = await run('courier', ['sub', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.out, /Usage: courier sub/);
  });
});
