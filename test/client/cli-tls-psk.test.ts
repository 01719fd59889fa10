/**
 * `courier sub -U … -D unsubscribe user-property …`, and TLS-PSK / --ciphers, the tools run in
 * process (packages/client/src/cli/main.ts `run`):
 *
 * - `-U` sends UNSUBSCRIBE alone (no SUBSCRIBE first) with `-D unsubscribe` user properties, in
 *   mosquitto's four-value form (`user-property NAME VALUE`) as well as `NAME=VALUE` (a stand-in
 *   server shows the packets); against Courier it drops a kept session's subscription.
 * - `--psk HEX --psk-identity ID` against a Mosquitto 2.0.11 PSK listener (`psk_hint`,
 *   `psk_file`): pub → sub round trip over TLS 1.3 and over TLS 1.2 (a PSK cipher suite, picked
 *   by default or named with `--ciphers`); a wrong key or an unknown identity fails (exit 1), and
 *   so does a cipher list that the server does not share.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { run } from '../../packages/client/src/cli/main.js';
import type { ToolIO } from '../../packages/client/src/cli/common.js';
import { connect } from '../../packages/client/src/index.js';
import type { Packet, UnsubscribePacket } from '../../src/protocol/packets.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { startMosquitto as startInteropMosquitto } from '../helpers/interop.js';
import { freePort, withTimeout } from '../helpers/peers.js';
import { pollUntil } from '../helpers/wait.js';
import { FakeServer } from './fake-server.js';
import { mosquittoGate, unique } from './brokers.js';

/** Runs a tool in process; resolves with its exit code and output. `live.err` is what it wrote to stderr so far. */
async function tool(name: string, argv: string[], live: { err: string } = { err: '' }): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  const io: ToolIO = {
    stdout: { write: (s) => (out += typeof s === 'string' ? s : Buffer.from(s).toString()) },
    stderr: { write: (s) => (live.err += s) },
    stdin: (async function* () {})(),
  };
  const code = await run(name, argv, io);
  return { code, out, err: live.err };
}

void describe('courier sub -U with -D unsubscribe user properties', () => {
  let fake: FakeServer;
  let b: TestBroker;
  before(async () => {
    fake = await new FakeServer().listen();
    fake.onPacket = (p, c) => {
      if (p.type === 'unsubscribe') c.send({ type: 'unsuback', packetId: p.packetId, reasonCodes: p.topicFilters.map(() => 0x11) });
      if (p.type === 'subscribe') c.send({ type: 'suback', packetId: p.packetId, reasonCodes: [0] });
    };
    b = await startBroker();
  });
  after(async () => {
    await fake?.close();
    await b?.close();
  });

  void it('UNSUBSCRIBE alone, with the properties in both forms (mosquitto: user-property NAME VALUE; NAME=VALUE)', async () => {
    const r = await tool('sub', [
      '-p',
      String(fake.port),
      '-h',
      '127.0.0.1',
      '-U',
      'old/a',
      '-U',
      'old/b',
      '-D',
      'unsubscribe',
      'user-property',
      'why',
      'cleanup',
      '-D',
      'unsubscribe',
      'user-property',
      'k=v',
      '-t',
      'new/#',
      '-E',
    ]);
    assert.equal(r.code, 0, r.err);
    const packets: Packet[] = fake.last.packets;
    const unsub = packets.filter((p): p is UnsubscribePacket => p.type === 'unsubscribe');
    assert.equal(unsub.length, 1);
    assert.deepEqual(unsub[0]!.topicFilters, ['old/a', 'old/b']);
    assert.deepEqual(unsub[0]!.properties?.userProperties, [
      ['why', 'cleanup'],
      ['k', 'v'],
    ]);
    const subscribed = packets.flatMap((p) => (p.type === 'subscribe' ? p.subscriptions.map((s) => s.topicFilter) : []));
    assert.deepEqual(subscribed, ['new/#'], 'no SUBSCRIBE for the -U filters');
    assert.ok(packets.findIndex((p) => p.type === 'unsubscribe') < packets.findIndex((p) => p.type === 'subscribe'), 'UNSUBSCRIBE first');
  });

  void it('against Courier: -c -U drops a subscription the kept session still had', async () => {
    const id = unique('cli-u');
    const topic = unique('kept');
    const first = await connect(`mqtt://127.0.0.1:${b.port}`, { clientId: id, clean: false, sessionExpiry: 600 });
    await first.subscribe(`${topic}/#`, { qos: 1 });
    await first.close();
    const filters = () => b.broker.inspector.subscriptions({ clientId: id }).items.map((s) => s.filter);
    assert.deepEqual(filters(), [`${topic}/#`]);
    const r = await tool('sub', ['-p', String(b.port), '-h', '127.0.0.1', '-c', '-i', id, '-x', '600', '-U', `${topic}/#`, '-t', `${topic}/new`, '-E']);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(filters(), [`${topic}/new`]);
  });
});

void describe('courier pub/sub --psk against a Mosquitto PSK listener', mosquittoGate(), () => {
  const dir = mkdtempSync(join(tmpdir(), 'courier-psk-'));
  const KEY = '6b1e0f3a9c2d44e8a1b7c3d5e9f00112';
  let port = 0;
  let close: (() => Promise<void>) | undefined;
  before(async () => {
    chmodSync(dir, 0o755); // Mosquitto may read it as its own user
    const file = join(dir, 'psk');
    writeFileSync(file, `courier-cli:${KEY}\n`, { mode: 0o644 });
    port = await freePort();
    const m = await startInteropMosquitto([`listener ${port} 127.0.0.1`, 'psk_hint courier-test', `psk_file ${file}`]);
    close = m.close;
    // The helper waits for Mosquitto's WebSocket listener; this one opens after it.
    await pollUntil(
      () =>
        new Promise<boolean>((resolve) => {
          const s = netConnect(port, '127.0.0.1', () => resolve(true));
          s.on('error', () => resolve(false));
          s.on('connect', () => s.destroy());
        }),
      { what: `Mosquitto's PSK listener on ${port}` },
    );
  });
  after(async () => {
    await close?.();
    rmSync(dir, { recursive: true, force: true });
  });

  const psk = (key = KEY, identity = 'courier-cli'): string[] => ['-h', '127.0.0.1', '-p', String(port), '--psk', key, '--psk-identity', identity];

  for (const [what, extra] of [
    ['TLS 1.3', []],
    ['TLS 1.2, a PSK suite by default', ['--tls-version', 'tlsv1.2']],
    ['TLS 1.2, --ciphers PSK-AES128-GCM-SHA256', ['--tls-version', 'tlsv1.2', '--ciphers', 'PSK-AES128-GCM-SHA256']],
  ] as const) {
    void it(`${what}: courier sub receives what courier pub sent`, async () => {
      const topic = unique('psk');
      const live = { err: '' };
      const sub = tool('sub', [...psk(), ...extra, '-t', topic, '-C', '1', '-W', '20', '-q', '1', '-d'], live);
      await pollUntil(() => live.err.includes('subscribed to'), { what: 'courier sub subscribed' });
      const p = await tool('pub', [...psk(), ...extra, '-t', topic, '-m', 'over psk', '-q', '1']);
      assert.equal(p.code, 0, p.err);
      const r = await withTimeout(sub, 20_000, 'courier sub');
      assert.equal(r.code, 0, r.err);
      assert.equal(r.out, 'over psk\n');
    });
  }

  void it('a wrong key, an unknown identity or no shared cipher: exit 1', async () => {
    for (const args of [psk('00'.repeat(16)), psk(KEY, 'nobody'), [...psk(), '--tls-version', 'tlsv1.2', '--ciphers', 'ECDHE-RSA-AES128-GCM-SHA256']]) {
      const r = await tool('pub', [...args, '-t', 'x', '-m', 'y']);
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.err}`);
      assert.match(r.err, /Connection error/);
    }
    const usage = await tool('pub', ['-p', String(port), '--psk', KEY, '-t', 'x', '-m', 'y']);
    assert.equal(usage.code, 1);
    assert.match(usage.err, /--psk and --psk-identity go together/);
  });
});
