/**
 * The client over TLS (`mqtts://`) and WSS (`wss://`) against Courier's tls and wss listeners,
 * with a self-signed server certificate made by openssl at test time: trusted through `tls.ca`
 * it works both ways; without it the connection is refused (certificates are verified by
 * default); `courier pub --cafile` uses it as mosquitto_pub does.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createBroker, type Broker } from '../../src/index.js';
import { connect, type Message } from '../../packages/client/src/index.js';
import { Peers, missingExecutable, peerGate, withTimeout } from '../helpers/peers.js';
import { unique } from './brokers.js';
import { OPENSSL, selfSignedServer } from '../helpers/certs.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

void describe('client over TLS and WSS', peerGate('openssl', missingExecutable(OPENSSL)), () => {
  const dir = mkdtempSync(join(tmpdir(), 'courier-client-tls-'));
  const peers = new Peers();
  let broker: Broker;
  let tlsPort = 0;
  let wssPort = 0;
  let ca: Buffer;
  before(async () => {
    selfSignedServer(dir, 'courier-client-test');
    ca = readFileSync(join(dir, 'server.crt'));
    const tls = { cert: join(dir, 'server.crt'), key: join(dir, 'server.key') };
    broker = await createBroker({
      listeners: [
        { type: 'tls', host: '127.0.0.1', port: 0, tls },
        { type: 'wss', host: '127.0.0.1', port: 0, path: '/mqtt', tls },
      ],
      persistence: { engine: 'memory' },
    });
    const addrs = await broker.listen();
    tlsPort = addrs.find((a) => a.transport === 'tls')?.port ?? 0;
    wssPort = addrs.find((a) => a.transport === 'wss')?.port ?? 0;
  });
  after(async () => {
    await peers.killAll();
    await broker?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const [scheme, port] of [
    ['mqtts', () => tlsPort],
    ['wss', () => wssPort],
  ] as const) {
    void it(`${scheme}: a QoS 1 round trip with the server certificate trusted through tls.ca; refused without it`, async () => {
      const url = scheme === 'mqtts' ? `mqtts://127.0.0.1:${port()}` : `wss://127.0.0.1:${port()}/mqtt`;
      const topic = unique('tls');
      const c = await connect(url, { tls: { ca } });
      try {
        const sub = await c.subscribe(topic, { qos: 1 });
        const it = sub[Symbol.asyncIterator]();
        assert.ok((await c.publish(topic, 'secret', { qos: 1 })).reasonCode < 0x80);
        const m = (await withTimeout(it.next(), 5000, 'message')).value as Message;
        assert.equal(m.text(), 'secret');
      } finally {
        await c.close();
      }
      await assert.rejects(connect(url, { reconnect: false }), /self.signed|certificate/i);
    });
  }

  /** `courier pub` with these TLS flags; resolves with its exit code and whether the subscriber got the message. */
  async function cliPub(flags: string[]): Promise<{ code: number | null; got: boolean; stderr: string }> {
    const topic = unique('cli-tls');
    const c = await connect(`mqtts://127.0.0.1:${tlsPort}`, { tls: { ca } });
    try {
      const sub = await c.subscribe(topic, { qos: 1 });
      const it = sub[Symbol.asyncIterator]();
      const args = [
        '--import',
        'tsx',
        'test/fixtures/courier-cli.ts',
        'pub',
        '-h',
        '127.0.0.1',
        '-p',
        String(tlsPort),
        ...flags,
        '-t',
        topic,
        '-m',
        'via cli',
        '-q',
        '1',
      ];
      const pub = peers.spawn(process.execPath, args, { cwd: ROOT });
      pub.child.stdin?.end();
      const { code } = await pub.exited();
      if (code !== 0) return { code, got: false, stderr: pub.stderr() };
      const m = (await withTimeout(it.next(), 5000, 'message')).value as Message;
      return { code, got: m.text() === 'via cli', stderr: pub.stderr() };
    } finally {
      await c.close();
    }
  }

  void it('courier pub --cafile over TLS reaches a subscriber', async () => {
    const r = await cliPub(['--cafile', join(dir, 'server.crt')]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.got);
  });

  void it('courier pub --capath DIR trusts the certificates in DIR (an empty one does not); --tls-version picks the version', async () => {
    const capath = join(dir, 'capath');
    const empty = join(dir, 'empty');
    mkdirSync(capath);
    mkdirSync(empty);
    copyFileSync(join(dir, 'server.crt'), join(capath, 'courier-test.pem'));
    for (const v of ['tlsv1.2', 'tlsv1.3']) {
      const r = await cliPub(['--capath', capath, '--tls-version', v]);
      assert.equal(r.code, 0, `${v}: ${r.stderr}`);
      assert.ok(r.got);
    }
    const untrusted = await cliPub(['--capath', empty]);
    assert.notEqual(untrusted.code, 0, 'no trusted certificate: refused');
    assert.equal((await cliPub(['--capath', capath, '--tls-version', 'tlsv1.0'])).code, 1, 'an unknown version is a usage error');
  });
});
