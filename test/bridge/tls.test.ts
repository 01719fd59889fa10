/**
 * Bridges over TLS (mqtts://) and WebSocket over TLS (wss://) to a Courier with a self-signed
 * certificate made by openssl at test time: trusted through the bridge's `tls.ca`, messages
 * cross; without it the remote is not trusted, and the bridge says so in `lastError`.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '../../packages/client/src/index.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { missingExecutable, peerGate } from '../helpers/peers.js';
import { pollUntil } from '../helpers/wait.js';
import { Collector, bridgeState } from './helpers.js';
import { clientCertificate, OPENSSL, selfSignedServer } from '../helpers/certs.js';

void describe('bridge over TLS and WSS', peerGate('openssl', missingExecutable(OPENSSL)), () => {
  const dir = mkdtempSync(join(tmpdir(), 'courier-bridge-tls-'));
  let remote: TestBroker;
  let mtlsRemote: TestBroker;
  let mtlsPort = 0;
  let tlsPort = 0;
  let wssPort = 0;
  before(async () => {
    selfSignedServer(dir, 'courier-bridge-test');
    // Mutual TLS: a CA of our own and a client certificate it signed (the bridge's login).
    clientCertificate(dir, 'plant1');
    const tls = { cert: join(dir, 'server.crt'), key: join(dir, 'server.key') };
    remote = await startBroker({
      listeners: [
        { type: 'tcp', host: '127.0.0.1', port: 0 },
        { type: 'tls', host: '127.0.0.1', port: 0, tls },
        { type: 'wss', host: '127.0.0.1', port: 0, path: '/mqtt', tls },
      ],
    });
    mtlsRemote = await startBroker({
      listeners: [
        { type: 'tcp', host: '127.0.0.1', port: 0 },
        { type: 'tls', host: '127.0.0.1', port: 0, tls: { ...tls, ca: join(dir, 'ca.crt'), requestCert: true } },
      ],
    });
    mtlsPort = mtlsRemote.broker.addresses.find((a) => a.transport === 'tls')?.port ?? 0;
    const addrs = remote.broker.addresses;
    tlsPort = addrs.find((a) => a.transport === 'tls')?.port ?? 0;
    wssPort = addrs.find((a) => a.transport === 'wss')?.port ?? 0;
  });
  after(async () => {
    await remote?.close();
    await mtlsRemote?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const [scheme, port] of [
    ['mqtts', () => `mqtts://127.0.0.1:${tlsPort}`],
    ['wss', () => `wss://127.0.0.1:${wssPort}/mqtt`],
  ] as const) {
    void it(`${scheme}: with the remote's certificate trusted through tls.ca, messages cross`, async () => {
      const local = await startBroker({
        bridges: [{ name: scheme, remotes: [port()], tls: { ca: join(dir, 'server.crt') }, topics: [{ filter: `${scheme}/#`, direction: 'out', qos: 1 }] }],
      });
      const far = await Collector.open(`mqtt://127.0.0.1:${remote.port}`, `${scheme}/#`, 1);
      try {
        await bridgeState(local.broker, scheme, true);
        const pub = await connect(`mqtt://127.0.0.1:${local.port}`);
        await pub.publish(`${scheme}/x`, 'over tls', { qos: 1 });
        await far.count(1);
        assert.equal(far.messages[0]!.text(), 'over tls');
        await pub.close();
      } finally {
        await far.close();
        await local.close();
      }
    });
  }

  void it('without the CA the remote is not trusted: not connected, and lastError says why', async () => {
    const local = await startBroker({
      bridges: [
        {
          name: 'untrusted',
          remotes: [`mqtts://127.0.0.1:${tlsPort}`],
          topics: [{ filter: 'u/#', direction: 'out' }],
          reconnect: { initialDelay: 50, maxDelay: 200 },
        },
      ],
    });
    try {
      const s = await pollUntil(() => local.broker.stats().bridges!.find((b) => b.lastError !== ''), { what: 'a connection error' });
      assert.equal(s.connected, false);
      assert.match(s.lastError, /self.signed|certificate/i);
    } finally {
      await local.close();
    }
  });

  void it('mutual TLS: a remote that requires client certificates takes the bridge with tls.cert/key, and refuses it without', async () => {
    const base = {
      remotes: [`mqtts://127.0.0.1:${mtlsPort}`],
      topics: [{ filter: 'm/#', direction: 'out' as const, qos: 1 as const }],
      reconnect: { initialDelay: 50, maxDelay: 200 },
    };
    const local = await startBroker({
      bridges: [
        { name: 'mtls', ...base, tls: { ca: join(dir, 'server.crt'), cert: join(dir, 'client.crt'), key: join(dir, 'client.key') } },
        { name: 'nocert', ...base, tls: { ca: join(dir, 'server.crt') } },
      ],
    });
    const far = await Collector.open(`mqtt://127.0.0.1:${mtlsRemote.port}`, 'm/#', 1);
    try {
      await bridgeState(local.broker, 'mtls', true);
      const pub = await connect(`mqtt://127.0.0.1:${local.port}`);
      await pub.publish('m/x', 'with a client certificate', { qos: 1 });
      await far.count(1);
      assert.equal(far.messages[0]!.text(), 'with a client certificate');
      await pub.close();
      const refused = await pollUntil(() => local.broker.stats().bridges!.find((b) => b.name === 'nocert' && b.lastError !== ''), {
        what: 'the bridge without a certificate refused',
      });
      assert.equal(refused.connected, false);
    } finally {
      await far.close();
      await local.close();
    }
  });
});
