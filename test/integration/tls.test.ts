/**
 * TLS transports (`tls`, `wss`): certificates made by `openssl` at test time (a CA, a server
 * certificate for 127.0.0.1/localhost, a client certificate CN=alice, and a second CA whose
 * client certificate must be refused). The listeners are tested directly with a recording echo
 * handler, then end to end with a Broker and real MQTT peers: mosquitto_pub/sub over TLS
 * (server-authenticated and mutual), MQTT.js over mqtts:// and wss://. Certificate rotation is
 * followed without a restart, by file watch and by explicit reload.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { EventEmitter, once } from 'node:events';
import { copyFileSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import mqtt, { type MqttClient } from 'mqtt';
import WebSocket from 'ws';
import { Broker } from '../../src/broker.js';
import { setPassword } from '../../src/security/passwords.js';
import type { ClientInfo } from '../../src/core/connection.js';
import { TlsContextSource, TlsFileError, splitAltNames, type TlsCertificateSummary, type TlsFiles } from '../../src/transport/tls-context.js';
import { createTlsListener, type TlsListener } from '../../src/transport/tls.js';
import type { ConnectionInfo } from '../../src/transport/types.js';
import { createWssListener } from '../../src/transport/wss.js';
import { Inbox, connectClient, endAll, unique } from '../helpers/interop.js';
import { Peers, missingExecutable, peerGate, withTimeout, type Peer } from '../helpers/peers.js';

const OPENSSL = '/usr/bin/openssl';
const PUB = '/usr/bin/mosquitto_pub';
const SUB = '/usr/bin/mosquitto_sub';
const STDBUF = '/usr/bin/stdbuf';
const gate = peerGate('openssl', missingExecutable(OPENSSL));
const mosquittoGate = peerGate('mosquitto-clients', missingExecutable(PUB) ?? missingExecutable(SUB) ?? missingExecutable(STDBUF));
const HOST = '127.0.0.1';

// ---------------------------------------------------------------------------------------------
// Certificates

function openssl(cwd: string, args: string[]): void {
  const r = spawnSync(OPENSSL, args, { cwd, encoding: 'utf8', timeout: 20_000 });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${r.stderr || r.error?.message}`);
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** A self-signed CA: <name>.crt, <name>.key in dir. */
function makeCa(dir: string, name: string, cn: string): void {
  openssl(dir, [
    'req',
    '-x509',
    ...EC,
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.crt`,
    '-days',
    '2',
    '-subj',
    `/CN=${cn}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
}

/** A leaf certificate signed by CA `ca`: <name>.crt, <name>.key in dir. */
function makeLeaf(dir: string, name: string, ca: string, o: { cn: string; serial: string; usage: 'serverAuth' | 'clientAuth'; san?: string }): void {
  openssl(dir, ['req', '-new', ...EC, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${o.cn}`]);
  const ext = ['basicConstraints=CA:FALSE', 'keyUsage=critical,digitalSignature', `extendedKeyUsage=${o.usage}`];
  if (o.san !== undefined) ext.push(`subjectAltName=${o.san}`);
  writeFileSync(join(dir, `${name}.ext`), ext.join('\n') + '\n');
  openssl(dir, [
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    `${ca}.crt`,
    '-CAkey',
    `${ca}.key`,
    '-set_serial',
    o.serial,
    '-days',
    '2',
    '-out',
    `${name}.crt`,
    '-extfile',
    `${name}.ext`,
  ]);
}

interface Pki {
  dir: string;
  path(file: string): string;
  read(file: string): Buffer;
}

function makePki(): Pki {
  const dir = mkdtempSync(join(tmpdir(), 'courier-tls-'));
  makeCa(dir, 'ca', 'Courier Test CA');
  makeCa(dir, 'other-ca', 'Some Other CA');
  const serverSan = 'IP:127.0.0.1,DNS:localhost';
  makeLeaf(dir, 'server', 'ca', { cn: 'courier-test', serial: '0x1001', usage: 'serverAuth', san: serverSan });
  makeLeaf(dir, 'server2', 'ca', { cn: 'courier-rotated', serial: '0x2002', usage: 'serverAuth', san: serverSan });
  makeLeaf(dir, 'alice', 'ca', { cn: 'alice', serial: '0x3003', usage: 'clientAuth', san: 'email:alice@example.test' });
  makeLeaf(dir, 'mallory', 'other-ca', { cn: 'alice', serial: '0x4004', usage: 'clientAuth' });
  openssl(dir, ['pkey', '-in', 'server.key', '-aes256', '-passout', 'pass:s3cret', '-out', 'server-enc.key']);
  return { dir, path: (f) => join(dir, f), read: (f) => readFileSync(join(dir, f)) };
}

// ---------------------------------------------------------------------------------------------
// Event recording without sleeps

/** Values pushed over time; `until` resolves with the first (from index `from`) matching one. */
class Recorder<T> {
  readonly items: T[] = [];
  readonly #changed = new EventEmitter();

  push(item: T): void {
    this.items.push(item);
    this.#changed.emit('push');
  }

  until(pred: (item: T) => boolean, what: string, from = 0, timeoutMs = 10_000): Promise<T> {
    return withTimeout(
      new Promise<T>((resolve) => {
        const check = (): void => {
          const hit = this.items.slice(from).find(pred);
          if (hit === undefined) return;
          this.#changed.off('push', check);
          resolve(hit);
        };
        this.#changed.on('push', check);
        check();
      }),
      timeoutMs,
      `waiting for ${what} (have ${this.items.length})`,
    );
  }
}

interface TlsErrorReport {
  err: Error;
  remoteAddress: string | undefined;
}

/** A ConnectionHandler that records the ConnectionInfo and echoes every byte back. */
function echoHandler(seen: Recorder<ConnectionInfo>) {
  return (stream: Duplex, info: ConnectionInfo): void => {
    stream.on('error', () => {});
    stream.pipe(stream);
    seen.push(info);
  };
}

/** Client sockets still open: a failing test destroys them so closing a listener does not hang. */
const openSockets = new Set<TLSSocket>();
function destroySockets(): void {
  for (const s of openSockets) s.destroy();
  openSockets.clear();
}

/** Opens a TLS connection; resolves once the handshake finished (rejects on error). */
async function openTls(port: number, options: { ca?: Buffer; cert?: Buffer; key?: Buffer; servername?: string } = {}): Promise<TLSSocket> {
  const socket = tlsConnect({ host: HOST, port, ...options });
  openSockets.add(socket);
  socket.once('close', () => openSockets.delete(socket));
  socket.on('error', () => {});
  await Promise.race([
    once(socket, 'secureConnect'),
    once(socket, 'close').then(() => {
      throw new Error('closed before the handshake finished');
    }),
  ]);
  return socket;
}

/** Writes `text` and resolves with the echoed bytes. */
async function echo(socket: Duplex, text: string): Promise<string> {
  let got = '';
  const done = new Promise<string>((resolve, reject) => {
    const onData = (d: Buffer): void => {
      got += d.toString('utf8');
      if (got.length >= text.length) {
        socket.off('data', onData);
        resolve(got);
      }
    };
    socket.on('data', onData);
    socket.once('close', () => reject(new Error(`closed after ${JSON.stringify(got)}`)));
  });
  socket.write(text);
  return withTimeout(done, 5000, `echo of ${text}`);
}

/**
 * For connections that must be refused: resolves once the socket closed, with the error the client
 * saw (if any; Node refuses an unverified client certificate by closing, without an alert) and the
 * number of bytes it received (none may come back from a handler).
 */
async function refused(socket: Duplex): Promise<{ error: Error | undefined; received: number }> {
  let error: Error | undefined;
  let received = 0;
  socket.on('error', (e: Error) => {
    error = e;
  });
  socket.on('data', (d: Buffer) => {
    received += d.length;
  });
  if (!socket.destroyed) await withTimeout(new Promise((resolve) => socket.once('close', resolve)), 5000, 'the refused connection to close');
  return { error, received };
}

// ---------------------------------------------------------------------------------------------

void describe('TLS transports', { ...gate, timeout: 120_000 }, () => {
  let pki: Pki;
  const files = (extra: Partial<TlsFiles> = {}): TlsFiles => ({ cert: pki.path('server.crt'), key: pki.path('server.key'), ca: pki.path('ca.crt'), ...extra });

  before(() => {
    pki = makePki();
  });
  after(() => {
    if (pki) rmSync(pki.dir, { recursive: true, force: true });
  });

  void describe('TlsContextSource: early, file-naming errors', () => {
    const rejects = (f: TlsFiles, pattern: RegExp, file?: string): void => {
      assert.throws(
        () => new TlsContextSource(f),
        (err: unknown) => {
          assert.ok(err instanceof TlsFileError, `not a TlsFileError: ${String(err)}`);
          assert.match(err.message, pattern);
          if (file !== undefined) {
            assert.equal(err.file, file);
            assert.ok(err.message.includes(file), `message does not name ${file}: ${err.message}`);
          }
          return true;
        },
      );
    };

    void it('loads good files and describes the certificate', () => {
      const source = new TlsContextSource(files());
      assert.match(source.certificate.subject, /CN=courier-test/);
      assert.equal(source.certificate.serialNumber, '1001');
      const o = source.serverOptions();
      assert.equal(o.requestCert, false);
      assert.equal(o.minVersion, 'TLSv1.2');
      const mutual = new TlsContextSource(files({ requestCert: true, minVersion: 'TLSv1.3' })).serverOptions();
      assert.equal(mutual.requestCert, true);
      assert.equal(mutual.rejectUnauthorized, true, 'rejectUnauthorized defaults to true with requestCert');
      assert.equal(mutual.minVersion, 'TLSv1.3');
    });

    void it('names a missing certificate, key or CA file', () => {
      const missing = pki.path('nope.crt');
      rejects(files({ cert: missing }), /certificate file .* does not exist/, missing);
      rejects(files({ key: missing }), /private key file .* does not exist/, missing);
      rejects(files({ ca: missing }), /CA bundle file .* does not exist/, missing);
    });

    void it('names a file without PEM data and a directory given as a file', () => {
      const junk = pki.path('junk.pem');
      writeFileSync(junk, 'not a certificate\n');
      rejects(files({ ca: junk }), /CA bundle file .* holds no PEM data/, junk);
      rejects(files({ cert: pki.dir }), /certificate file .* is a directory/, pki.dir);
    });

    void it('names the key that does not match the certificate', () => {
      rejects(files({ key: pki.path('alice.key') }), /private key file .* does not match the certificate in .*server\.crt/, pki.path('alice.key'));
    });

    void it('names an encrypted key without (or with a wrong) passphrase; loads it with the right one', () => {
      const enc = pki.path('server-enc.key');
      rejects(files({ key: enc }), /private key file .* cannot be read as a private key \(is it encrypted\? set a passphrase\)/, enc);
      rejects(files({ key: enc, passphrase: 'wrong' }), /wrong passphrase/, enc);
      assert.match(new TlsContextSource(files({ key: enc, passphrase: 's3cret' })).certificate.subject, /courier-test/);
    });

    void it('refuses mutual TLS without a CA to verify clients against', () => {
      const { ca: _ca, ...noCa } = files();
      rejects({ ...noCa, requestCert: true }, /requestCert .* needs a ca file/);
    });

    void it('a listener built on bad files throws at construction, naming the file', () => {
      const missing = pki.path('absent.key');
      assert.throws(
        () => createTlsListener({ host: HOST, port: 0, tls: files({ key: missing }) }, () => {}),
        (e: unknown) => e instanceof TlsFileError && e.file === missing,
      );
      assert.throws(
        () => createWssListener({ host: HOST, port: 0, path: '/mqtt', tls: files({ key: missing }) }, () => {}),
        (e: unknown) => e instanceof TlsFileError && e.file === missing,
      );
    });

    void it('splits subjectAltName strings, including JSON-quoted values', () => {
      assert.deepEqual(splitAltNames('DNS:localhost, IP Address:127.0.0.1'), ['DNS:localhost', 'IP Address:127.0.0.1']);
      assert.deepEqual(splitAltNames('DNS:"a, DNS:b", email:x@y'), ['DNS:a, DNS:b', 'email:x@y']);
      assert.deepEqual(splitAltNames('URI:"spiffe://t/\\"q\\""'), ['URI:spiffe://t/"q"']);
      assert.deepEqual(splitAltNames(''), []);
    });
  });

  void describe('tls listener (direct, echo handler)', () => {
    const seen = new Recorder<ConnectionInfo>();
    const tlsErrors = new Recorder<TlsErrorReport>();
    let plain: TlsListener;
    let mutual: TlsListener;
    let lenient: TlsListener;
    const ports = { plain: 0, mutual: 0, lenient: 0 };
    const onTlsError = (err: Error, remoteAddress: string | undefined): void => tlsErrors.push({ err, remoteAddress });

    before(async () => {
      plain = createTlsListener({ host: HOST, port: 0, name: 'tls-plain', tls: files(), onTlsError }, echoHandler(seen));
      mutual = createTlsListener({ host: HOST, port: 0, name: 'tls-mutual', tls: files({ requestCert: true }), onTlsError }, echoHandler(seen));
      lenient = createTlsListener(
        { host: HOST, port: 0, name: 'tls-lenient', tls: files({ requestCert: true, rejectUnauthorized: false }), onTlsError },
        echoHandler(seen),
      );
      ports.plain = (await plain.listen()).port;
      ports.mutual = (await mutual.listen()).port;
      ports.lenient = (await lenient.listen()).port;
    });
    after(async () => {
      destroySockets();
      await Promise.all([plain?.close(), mutual?.close(), lenient?.close()]);
    });

    void it('hands the TLS socket over with transport "tls", the listener name and the peer address', async () => {
      const from = seen.items.length;
      const client = await openTls(ports.plain, { ca: pki.read('ca.crt') });
      try {
        assert.equal(client.getPeerCertificate().subject.CN, 'courier-test');
        assert.equal(await echo(client, 'ping'), 'ping');
        const info = await seen.until((i) => i.remotePort === client.localPort, 'the connection info', from);
        assert.equal(info.transport, 'tls');
        assert.equal(info.listener, 'tls-plain');
        assert.equal(info.remoteAddress, HOST);
        assert.equal(info.certificate, undefined, 'no client certificate without mutual TLS');
      } finally {
        client.destroy();
      }
    });

    void it('mutual TLS: the verified client certificate reaches ConnectionInfo.certificate', async () => {
      const from = seen.items.length;
      const client = await openTls(ports.mutual, { ca: pki.read('ca.crt'), cert: pki.read('alice.crt'), key: pki.read('alice.key') });
      try {
        assert.equal(await echo(client, 'hello alice'), 'hello alice');
        const info = await seen.until((i) => i.remotePort === client.localPort, 'the connection info', from);
        assert.equal(info.listener, 'tls-mutual');
        assert.deepEqual(info.certificate, { subjectCN: 'alice', subjectAltNames: ['email:alice@example.test'] });
      } finally {
        client.destroy();
      }
    });

    void it('mutual TLS refuses a client certificate from another CA and one without a certificate; each reported once, no crash', async () => {
      for (const creds of [{ cert: pki.read('mallory.crt'), key: pki.read('mallory.key') }, {}]) {
        const fromSeen = seen.items.length;
        const fromErr = tlsErrors.items.length;
        const socket = tlsConnect({ host: HOST, port: ports.mutual, ca: pki.read('ca.crt'), ...creds });
        socket.write('probe');
        assert.equal((await refused(socket)).received, 0, 'nothing echoed: no handler saw the connection');
        const report = await tlsErrors.until(() => true, 'onTlsError', fromErr);
        assert.equal(report.remoteAddress, HOST);
        assert.match(report.err.message, /certificate/i);
        // A good connection afterwards: the listener lives, and the refused one reached no handler.
        const good = await openTls(ports.mutual, { ca: pki.read('ca.crt'), cert: pki.read('alice.crt'), key: pki.read('alice.key') });
        assert.equal(await echo(good, 'still here'), 'still here');
        await seen.until((i) => i.remotePort === good.localPort, 'the good connection', fromSeen);
        good.destroy();
        assert.equal(seen.items.length, fromSeen + 1, 'the refused connection never reached the handler');
        assert.equal(tlsErrors.items.length, fromErr + 1, 'one report per failed handshake');
      }
    });

    void it('plain TCP (an MQTT CONNECT) on the TLS port is reported once and never reaches the handler', async () => {
      const fromSeen = seen.items.length;
      const fromErr = tlsErrors.items.length;
      const socket = netConnect({ host: HOST, port: ports.plain });
      await once(socket, 'connect');
      // CONNECT, MQTT 3.1.1, clean session, keep alive 60, client id "x".
      socket.write(Buffer.from([0x10, 0x0d, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00, 0x3c, 0x00, 0x01, 0x78]));
      await refused(socket);
      const report = await tlsErrors.until(() => true, 'onTlsError', fromErr);
      assert.equal(report.remoteAddress, HOST);
      const good = await openTls(ports.plain, { ca: pki.read('ca.crt') });
      assert.equal(await echo(good, 'ok'), 'ok');
      good.destroy();
      assert.equal(tlsErrors.items.length, fromErr + 1);
      assert.equal(seen.items.filter((_, i) => i >= fromSeen).length, 1);
    });

    void it('requestCert without rejectUnauthorized admits an unverified client but gives it no identity', async () => {
      const from = seen.items.length;
      const client = await openTls(ports.lenient, { ca: pki.read('ca.crt'), cert: pki.read('mallory.crt'), key: pki.read('mallory.key') });
      try {
        assert.equal(await echo(client, 'x'), 'x');
        const info = await seen.until((i) => i.remotePort === client.localPort, 'the connection info', from);
        assert.equal(info.certificate, undefined, 'an unverified certificate (CN=alice from another CA) must not become an identity');
      } finally {
        client.destroy();
      }
      const verified = await openTls(ports.lenient, { ca: pki.read('ca.crt'), cert: pki.read('alice.crt'), key: pki.read('alice.key') });
      try {
        assert.equal(await echo(verified, 'y'), 'y');
        const info = await seen.until((i) => i.remotePort === verified.localPort, 'the connection info', from);
        assert.equal(info.certificate?.subjectCN, 'alice');
      } finally {
        verified.destroy();
      }
    });

    void it('minVersion TLSv1.3 refuses a TLS 1.2 client', async () => {
      const errors = new Recorder<TlsErrorReport>();
      const strict = createTlsListener(
        { host: HOST, port: 0, tls: files({ minVersion: 'TLSv1.3' }), onTlsError: (err, a) => errors.push({ err, remoteAddress: a }) },
        echoHandler(seen),
      );
      const { port } = await strict.listen();
      try {
        const old = tlsConnect({ host: HOST, port, ca: pki.read('ca.crt'), maxVersion: 'TLSv1.2' });
        assert.ok((await refused(old)).error, 'the TLS 1.2 client sees a protocol version alert');
        await errors.until(() => true, 'the protocol version error');
        const modern = await openTls(port, { ca: pki.read('ca.crt') });
        assert.equal(modern.getProtocol(), 'TLSv1.3');
        modern.destroy();
      } finally {
        destroySockets();
        await strict.close();
      }
    });
  });

  void describe('wss listener (direct, echo handler)', () => {
    const seen = new Recorder<ConnectionInfo>();
    let listener: TlsListener;
    let port = 0;

    before(async () => {
      listener = createWssListener(
        { host: HOST, port: 0, path: '/mqtt', name: 'wss-mutual', tls: files({ requestCert: true, rejectUnauthorized: false }) },
        echoHandler(seen),
      );
      port = (await listener.listen()).port;
    });
    after(() => listener?.close());

    const openWs = async (options: { cert?: Buffer; key?: Buffer; protocols?: string[] } = {}): Promise<WebSocket> => {
      const ws = new WebSocket(`wss://${HOST}:${port}/mqtt`, options.protocols ?? ['mqtt'], { ca: pki.read('ca.crt'), cert: options.cert, key: options.key });
      await withTimeout(once(ws, 'open'), 5000, 'wss open');
      return ws;
    };
    const wsEcho = async (ws: WebSocket, text: string): Promise<string> => {
      const reply = once(ws, 'message') as Promise<[Buffer]>;
      ws.send(Buffer.from(text));
      const [data] = await withTimeout(reply, 5000, 'wss echo');
      return data.toString('utf8');
    };

    void it('echoes subprotocol "mqtt" [MQTT-6.0.0-3]/[MQTT-6.0.0-4] and hands over transport "wss" with the client identity', async () => {
      const from = seen.items.length;
      const ws = await openWs({ cert: pki.read('alice.crt'), key: pki.read('alice.key') });
      try {
        assert.equal(ws.protocol, 'mqtt');
        assert.equal(await wsEcho(ws, 'over wss'), 'over wss');
        const info = await seen.until(() => true, 'the connection info', from);
        assert.equal(info.transport, 'wss');
        assert.equal(info.listener, 'wss-mutual');
        assert.equal(info.remoteAddress, HOST);
        assert.equal(info.certificate?.subjectCN, 'alice');
      } finally {
        ws.terminate();
      }
    });

    void it('without a client certificate the connection has no identity', async () => {
      const from = seen.items.length;
      const ws = await openWs({ protocols: ['mqttv3.1'] });
      try {
        assert.equal(ws.protocol, 'mqttv3.1');
        assert.equal(await wsEcho(ws, 'anon'), 'anon');
        const info = await seen.until(() => true, 'the connection info', from);
        assert.equal(info.certificate, undefined);
      } finally {
        ws.terminate();
      }
    });

    void it('answers a plain HTTPS request with 426 Upgrade Required', async () => {
      const req = request({ host: HOST, port, path: '/mqtt', ca: pki.read('ca.crt') });
      req.end();
      const [res] = (await withTimeout(once(req, 'response'), 5000, 'https response')) as [import('node:http').IncomingMessage];
      res.resume();
      assert.equal(res.statusCode, 426);
    });
  });

  void describe('certificate reload without restart', () => {
    /** A directory of its own holding server.crt/server.key copies that the test rotates. */
    const rotatingDir = (): { cert: string; key: string; dir: string } => {
      const dir = mkdtempSync(join(pki.dir, 'rot-'));
      copyFileSync(pki.path('server.crt'), join(dir, 'server.crt'));
      copyFileSync(pki.path('server.key'), join(dir, 'server.key'));
      return { dir, cert: join(dir, 'server.crt'), key: join(dir, 'server.key') };
    };
    /** Replaces `target` by rename (as cert managers do), so the old inode stays with old readers. */
    const replace = (source: string, target: string): void => {
      writeFileSync(`${target}.tmp`, readFileSync(source));
      renameSync(`${target}.tmp`, target);
    };

    void it('a watched listener picks up rotated files; new connections get the new certificate, old ones keep working; bad files keep the old one', async () => {
      const rot = rotatingDir();
      const reloads = new Recorder<TlsCertificateSummary>();
      const reloadErrors = new Recorder<TlsFileError>();
      const seen = new Recorder<ConnectionInfo>();
      const listener = createTlsListener(
        {
          host: HOST,
          port: 0,
          tls: { cert: rot.cert, key: rot.key },
          onReload: (s) => reloads.push(s),
          onReloadError: (e) => reloadErrors.push(e),
        },
        echoHandler(seen),
      );
      const { port } = await listener.listen();
      const ca = pki.read('ca.crt');
      const old = await openTls(port, { ca });
      try {
        assert.equal(old.getPeerCertificate().subject.CN, 'courier-test');
        assert.equal(await echo(old, 'before'), 'before');

        // Key first, then certificate: a reload in between fails (mismatch) and keeps the old pair.
        replace(pki.path('server2.key'), rot.key);
        replace(pki.path('server2.crt'), rot.cert);
        const summary = await reloads.until((s) => /CN=courier-rotated/.test(s.subject), 'the reload callback');
        assert.equal(summary.serialNumber, '2002');
        assert.match(listener.tlsSource.certificate.subject, /courier-rotated/);

        const fresh = await openTls(port, { ca });
        const cert = fresh.getPeerCertificate();
        assert.equal(cert.subject.CN, 'courier-rotated');
        assert.equal(cert.serialNumber, '2002');
        assert.equal(await echo(fresh, 'after'), 'after');
        fresh.destroy();
        // The connection made before the rotation still works and still has the old certificate.
        assert.equal(await echo(old, 'still old'), 'still old');
        assert.equal(old.getPeerCertificate().subject.CN, 'courier-test');

        // A bad update (key of another certificate) is reported, naming the file; the old context stays.
        const fromErr = reloadErrors.items.length;
        replace(pki.path('alice.key'), rot.key);
        const err = await reloadErrors.until((e) => e.file === rot.key, 'the reload error', fromErr);
        assert.match(err.message, /does not match the certificate/);
        const stillRotated = await openTls(port, { ca });
        assert.equal(stillRotated.getPeerCertificate().subject.CN, 'courier-rotated');
        stillRotated.destroy();
      } finally {
        destroySockets();
        await listener.close();
      }
    });

    void it('reload() (the SIGHUP path) installs new files on an unwatched listener, and reports bad ones', async () => {
      const rot = rotatingDir();
      const reloads = new Recorder<TlsCertificateSummary>();
      const reloadErrors = new Recorder<TlsFileError>();
      const listener = createWssListener(
        {
          host: HOST,
          port: 0,
          path: '/mqtt',
          watch: false,
          tls: { cert: rot.cert, key: rot.key },
          onReload: (s) => reloads.push(s),
          onReloadError: (e) => reloadErrors.push(e),
        },
        echoHandler(new Recorder<ConnectionInfo>()),
      );
      const { port } = await listener.listen();
      const ca = pki.read('ca.crt');
      const served = async (): Promise<string> => {
        const s = await openTls(port, { ca });
        const cn = s.getPeerCertificate().subject.CN;
        s.destroy();
        return String(cn);
      };
      try {
        assert.equal(await served(), 'courier-test');
        rmSync(rot.key);
        assert.equal(listener.reload(), false, 'a missing key fails the reload');
        assert.equal(reloadErrors.items[0]?.file, rot.key);
        assert.match(reloadErrors.items[0]?.message ?? '', /does not exist/);
        assert.equal(await served(), 'courier-test', 'the old certificate is still served');
        copyFileSync(pki.path('server2.key'), rot.key);
        copyFileSync(pki.path('server2.crt'), rot.cert);
        assert.equal(listener.reload(), true);
        assert.match(reloads.items[0]?.subject ?? '', /courier-rotated/);
        assert.equal(await served(), 'courier-rotated');
      } finally {
        destroySockets();
        await listener.close();
      }
    });

    void it('listeners sharing one TlsContextSource all switch on its reload', async () => {
      const rot = rotatingDir();
      const source = new TlsContextSource({ cert: rot.cert, key: rot.key }, { debounceMs: 20 });
      const reloads = new Recorder<TlsCertificateSummary>();
      source.onReload((s) => reloads.push(s));
      const a = createTlsListener({ host: HOST, port: 0, tls: source }, echoHandler(new Recorder<ConnectionInfo>()));
      const b = createWssListener({ host: HOST, port: 0, path: '/mqtt', tls: source }, echoHandler(new Recorder<ConnectionInfo>()));
      const pa = (await a.listen()).port;
      const pb = (await b.listen()).port;
      source.watch();
      try {
        replace(pki.path('server2.key'), rot.key);
        replace(pki.path('server2.crt'), rot.cert);
        await reloads.until((s) => /courier-rotated/.test(s.subject), 'the shared reload');
        for (const port of [pa, pb]) {
          const s = await openTls(port, { ca: pki.read('ca.crt') });
          assert.equal(s.getPeerCertificate().subject.CN, 'courier-rotated');
          s.destroy();
        }
      } finally {
        destroySockets();
        source.unwatch();
        await Promise.all([a.close(), b.close()]);
      }
    });
  });

  void describe('end to end with a Broker', () => {
    let broker: Broker;
    const infos = new Recorder<ConnectionInfo>();
    const connects = new Recorder<ClientInfo>();
    const tlsErrors = new Recorder<TlsErrorReport>();
    const listeners: TlsListener[] = [];
    const ports = { tls: 0, mtls: 0, wss: 0, rot: 0 };
    const reloads = new Recorder<TlsCertificateSummary>();
    const clients: MqttClient[] = [];
    let rot: { cert: string; key: string };

    /** The broker's handler, wrapped to observe the ConnectionInfo each transport produced. */
    const handler = (stream: Duplex, info: ConnectionInfo): void => {
      infos.push(info);
      broker.handle(stream, info);
    };
    const onTlsError = (err: Error, remoteAddress: string | undefined): void => tlsErrors.push({ err, remoteAddress });
    /** The ConnectionInfo of the client that connected with `clientId`. */
    const infoOf = async (clientId: string): Promise<{ client: ClientInfo; info: ConnectionInfo }> => {
      const client = await connects.until((c) => c.clientId === clientId, `clientConnect of ${clientId}`);
      const info = await infos.until((i) => i.remotePort === client.remotePort && i.transport === client.transport, `info of ${clientId}`);
      return { client, info };
    };

    before(async () => {
      broker = new Broker({ listeners: [], persistence: { engine: 'memory' } });
      broker.on('clientConnect', (c) => connects.push(c));
      await broker.open();
      const dir = mkdtempSync(join(pki.dir, 'e2e-'));
      rot = { cert: join(dir, 'server.crt'), key: join(dir, 'server.key') };
      copyFileSync(pki.path('server.crt'), rot.cert);
      copyFileSync(pki.path('server.key'), rot.key);
      const specs = [
        createTlsListener({ host: HOST, port: 0, name: 'tls', tls: files(), onTlsError }, handler),
        createTlsListener({ host: HOST, port: 0, name: 'mtls', tls: files({ requestCert: true }), onTlsError }, handler),
        createWssListener({ host: HOST, port: 0, path: '/mqtt', name: 'wss', tls: files({ requestCert: true }), onTlsError }, handler),
        createTlsListener({ host: HOST, port: 0, name: 'rot', tls: { cert: rot.cert, key: rot.key }, onTlsError, onReload: (s) => reloads.push(s) }, handler),
      ];
      listeners.push(...specs);
      const bound = await Promise.all(specs.map((l) => l.listen()));
      [ports.tls, ports.mtls, ports.wss, ports.rot] = bound.map((b) => b.port) as [number, number, number, number];
    });
    after(async () => {
      await endAll(clients);
      // The broker ends the connections it still holds; then the listeners can close.
      await broker?.close();
      await Promise.all(listeners.map((l) => l.close()));
    });

    const tlsOpts = (withCert: 'alice' | 'mallory' | 'none') => ({
      ca: pki.read('ca.crt'),
      ...(withCert === 'none' ? {} : { cert: pki.read(`${withCert}.crt`), key: pki.read(`${withCert}.key`) }),
    });

    void describe('mosquitto_pub / mosquitto_sub', mosquittoGate, () => {
      const peers = new Peers();
      after(() => peers.killAll());
      const sub = (args: string[]): Peer => peers.spawn(STDBUF, ['-oL', SUB, ...args]);

      for (const version of ['mqttv311', 'mqttv5'] as const) {
        void it(`${version}: subscribe and publish over TLS, server verified with --cafile`, async () => {
          const topic = unique('tls-mos');
          const subId = unique('mos-sub');
          const common = ['-h', HOST, '-p', String(ports.tls), '-V', version, '--cafile', pki.path('ca.crt')];
          const s = sub([...common, '-d', '-i', subId, '-t', topic, '-q', '1', '-C', '1', '-W', '10']);
          await s.waitFor(/received SUBACK/);
          const pub = peers.spawn(PUB, [...common, '-t', topic, '-q', '1', '-m', 'secret hello']);
          assert.equal((await pub.exited()).code, 0, pub.stderr());
          await s.waitFor(/^secret hello$/m);
          assert.equal((await s.exited()).code, 0);
          const { client, info } = await infoOf(subId);
          assert.equal(client.transport, 'tls');
          assert.equal(info.listener, 'tls');
          assert.equal(info.certificate, undefined);
        });
      }

      void it('mutual TLS with --cert/--key: the client identity (CN=alice) reaches ConnectionInfo', async () => {
        const topic = unique('mtls-mos');
        const subId = unique('mos-alice');
        const common = [
          '-h',
          HOST,
          '-p',
          String(ports.mtls),
          '-V',
          'mqttv5',
          '--cafile',
          pki.path('ca.crt'),
          '--cert',
          pki.path('alice.crt'),
          '--key',
          pki.path('alice.key'),
        ];
        const s = sub([...common, '-d', '-i', subId, '-t', topic, '-C', '1', '-W', '10']);
        await s.waitFor(/received SUBACK/);
        const pub = peers.spawn(PUB, [...common, '-t', topic, '-m', 'from alice']);
        assert.equal((await pub.exited()).code, 0, pub.stderr());
        await s.waitFor(/^from alice$/m);
        const { info } = await infoOf(subId);
        assert.equal(info.listener, 'mtls');
        assert.equal(info.certificate?.subjectCN, 'alice');
      });

      void it('mutual TLS refuses mosquitto_pub with a certificate from another CA, and one without a certificate', async () => {
        for (const creds of [['--cert', pki.path('mallory.crt'), '--key', pki.path('mallory.key')], []]) {
          const fromErr = tlsErrors.items.length;
          const id = unique('mos-refused');
          const pub = peers.spawn(PUB, ['-h', HOST, '-p', String(ports.mtls), '--cafile', pki.path('ca.crt'), ...creds, '-i', id, '-t', 'x', '-m', 'no']);
          const { code } = await pub.exited();
          assert.notEqual(code, 0, `mosquitto_pub must fail: ${pub.stdout()} ${pub.stderr()}`);
          await tlsErrors.until(() => true, 'the handshake error report', fromErr);
          assert.equal(
            connects.items.find((c) => c.clientId === id),
            undefined,
          );
        }
      });

      void it('mosquitto_pub refuses the broker when it trusts another CA', async () => {
        const pub = peers.spawn(PUB, ['-h', HOST, '-p', String(ports.tls), '--cafile', pki.path('other-ca.crt'), '-t', 'x', '-m', 'no']);
        assert.notEqual((await pub.exited()).code, 0);
      });
    });

    void describe('MQTT.js', () => {
      void it('mqtts:// with the CA: publish and receive (3.1.1 and 5.0)', async () => {
        for (const protocolVersion of [4, 5] as const) {
          const topic = unique('mqtts');
          const sub = await connectClient(`mqtts://${HOST}:${ports.tls}`, { ...tlsOpts('none'), protocolVersion });
          const pub = await connectClient(`mqtts://${HOST}:${ports.tls}`, { ...tlsOpts('none'), protocolVersion });
          clients.push(sub, pub);
          const inbox = new Inbox(sub);
          await sub.subscribeAsync(topic, { qos: 1 });
          await pub.publishAsync(topic, 'over tls', { qos: 1 });
          const m = await inbox.next();
          assert.equal(m.payload, 'over tls');
          const { client } = await infoOf(sub.options.clientId!);
          assert.equal(client.transport, 'tls');
          assert.equal(client.protocolVersion, protocolVersion);
          await endAll([sub, pub]);
        }
      });

      void it('mqtts:// with a client certificate: clientConnect, and CN=alice in ConnectionInfo', async () => {
        const clientId = unique('alice-mqtts');
        const c = await connectClient(`mqtts://${HOST}:${ports.mtls}`, { ...tlsOpts('alice'), clientId, protocolVersion: 5 });
        clients.push(c);
        const { client, info } = await infoOf(clientId);
        assert.equal(client.transport, 'tls');
        assert.equal(info.listener, 'mtls');
        assert.equal(info.certificate?.subjectCN, 'alice');
        assert.deepEqual(info.certificate?.subjectAltNames, ['email:alice@example.test']);
        const inbox = new Inbox(c);
        const topic = unique('alice-self');
        await c.subscribeAsync(topic);
        await c.publishAsync(topic, 'loop');
        assert.equal((await inbox.next()).payload, 'loop');
        await endAll([c]);
      });

      void it('wss:// with a client certificate: clientConnect, transport "wss", CN=alice', async () => {
        const clientId = unique('alice-wss');
        const c = await connectClient(`wss://${HOST}:${ports.wss}/mqtt`, { ...tlsOpts('alice'), clientId });
        clients.push(c);
        const { client, info } = await infoOf(clientId);
        assert.equal(client.transport, 'wss');
        assert.equal(info.listener, 'wss');
        assert.equal(info.certificate?.subjectCN, 'alice');
        const inbox = new Inbox(c);
        const topic = unique('wss-self');
        await c.subscribeAsync(topic, { qos: 2 });
        await c.publishAsync(topic, 'over wss', { qos: 2 });
        assert.equal((await inbox.next()).payload, 'over wss');
        await endAll([c]);
      });

      void it('a client certificate from another CA is refused (mqtts:// and wss://) and reported', async () => {
        for (const url of [`mqtts://${HOST}:${ports.mtls}`, `wss://${HOST}:${ports.wss}/mqtt`]) {
          const fromErr = tlsErrors.items.length;
          const clientId = unique('mallory');
          const c = mqtt.connect(url, { ...tlsOpts('mallory'), clientId, reconnectPeriod: 0, connectTimeout: 5000 });
          c.on('error', () => {});
          // Never a CONNACK: the client ends with a close (Node refuses by closing, no alert in TLS 1.3).
          const outcome = await withTimeout(
            new Promise<string>((resolve) => {
              c.once('connect', () => resolve('connected'));
              c.once('close', () => resolve('closed'));
            }),
            8000,
            `${url} refusing the client`,
          );
          c.end(true);
          assert.equal(outcome, 'closed');
          const report = await tlsErrors.until(() => true, 'the handshake error report', fromErr);
          assert.equal(report.remoteAddress, HOST);
          assert.equal(
            connects.items.find((c) => c.clientId === clientId),
            undefined,
          );
        }
      });

      void it('after certificate rotation new MQTT connections see the new certificate; the old session keeps working', async () => {
        const topic = unique('rotation');
        const old = await connectClient(`mqtts://${HOST}:${ports.rot}`, { ca: pki.read('ca.crt') });
        clients.push(old);
        assert.equal((old.stream as TLSSocket).getPeerCertificate().subject.CN, 'courier-test');
        const inbox = new Inbox(old);
        await old.subscribeAsync(topic, { qos: 1 });

        writeFileSync(`${rot.key}.new`, pki.read('server2.key'));
        renameSync(`${rot.key}.new`, rot.key);
        writeFileSync(`${rot.cert}.new`, pki.read('server2.crt'));
        renameSync(`${rot.cert}.new`, rot.cert);
        await reloads.until((s) => /courier-rotated/.test(s.subject), 'the reload callback');

        const fresh = await connectClient(`mqtts://${HOST}:${ports.rot}`, { ca: pki.read('ca.crt') });
        clients.push(fresh);
        assert.equal((fresh.stream as TLSSocket).getPeerCertificate().subject.CN, 'courier-rotated');
        await fresh.publishAsync(topic, 'to the old connection', { qos: 1 });
        assert.equal((await inbox.next()).payload, 'to the old connection');
        await old.publishAsync(topic, 'from the old connection', { qos: 1 });
        assert.equal((await inbox.next()).payload, 'from the old connection');
        await endAll([old, fresh]);
      });
    });
  });

  void describe('Broker options: tls, tlsPort, wssPort (what the config file and the CLI use)', () => {
    let broker: Broker;
    let tlsPort = 0;
    let wssPort = 0;
    before(async () => {
      // Not loopback-anonymous: only a verified client certificate authenticates (security.certificateAuth).
      broker = new Broker({
        host: HOST,
        port: null,
        wsPort: null,
        tlsPort: 0,
        wssPort: 0,
        tls: { cert: pki.path('server.crt'), key: pki.path('server.key'), ca: pki.path('ca.crt'), requestCert: true, rejectUnauthorized: false },
        persistence: { engine: 'memory' },
        security: { allowAnonymous: false, certificateAuth: true },
      });
      const bound = await broker.listen();
      tlsPort = bound.find((b) => b.transport === 'tls')!.port;
      wssPort = bound.find((b) => b.transport === 'wss')!.port;
    });
    after(() => broker?.close());

    void it('listens with MQTT over TLS and over WSS; a client certificate (CN=alice) authenticates, a client without one is refused (v5 CONNACK 0x87)', async () => {
      const seen = new Recorder<ClientInfo>();
      broker.on('clientConnect', (c) => seen.push(c));
      for (const url of [`mqtts://${HOST}:${tlsPort}`, `wss://${HOST}:${wssPort}/mqtt`]) {
        const clientId = unique('opt-alice');
        const c = await connectClient(url, { ca: pki.read('ca.crt'), cert: pki.read('alice.crt'), key: pki.read('alice.key'), clientId, protocolVersion: 5 });
        const info = await seen.until((x) => x.clientId === clientId, `clientConnect of ${clientId}`);
        assert.equal(info.username, 'alice');
        await endAll([c]);
      }
      const anon = mqtt.connect(`mqtts://${HOST}:${tlsPort}`, { ca: pki.read('ca.crt'), protocolVersion: 5, reconnectPeriod: 0, clientId: unique('opt-anon') });
      const err = await new Promise<Error & { code?: number }>((resolve) => anon.once('error', resolve));
      assert.equal(err.code, 0x87);
      anon.end(true);
    });

    void it('password file over TLS: mosquitto_pub/mosquitto_sub with --cafile and -u/-P; a wrong password is refused', mosquittoGate, async () => {
      const pw = join(pki.dir, 'users.pw');
      await setPassword(pw, 'bob', 'b0b-secret');
      const b = new Broker({
        host: HOST,
        port: null,
        wsPort: null,
        tlsPort: 0,
        wssPort: null,
        tls: { cert: pki.path('server.crt'), key: pki.path('server.key') },
        persistence: { engine: 'memory' },
        security: { allowAnonymous: false, passwordFile: pw },
      });
      const [addr] = await b.listen();
      const peers = new Peers();
      try {
        const common = ['-h', HOST, '-p', String(addr!.port), '--cafile', pki.path('ca.crt'), '-V', 'mqttv5'];
        const topic = unique('tls-pw');
        const sub = peers.spawn(STDBUF, ['-oL', SUB, ...common, '-u', 'bob', '-P', 'b0b-secret', '-t', topic, '-C', '1', '-W', '10', '-d']);
        await sub.waitFor(/received SUBACK/);
        const pub = peers.spawn(PUB, [...common, '-u', 'bob', '-P', 'b0b-secret', '-t', topic, '-m', 'secret hello', '-q', '1']);
        assert.equal((await pub.exited()).code, 0, pub.stderr());
        assert.equal((await sub.exited()).code, 0, sub.stderr());
        assert.match(sub.stdout(), /secret hello/);
        const bad = peers.spawn(PUB, [...common, '-u', 'bob', '-P', 'wrong', '-t', topic, '-m', 'x']);
        const r = await bad.exited();
        assert.notEqual(r.code, 0);
        assert.match(bad.stderr() + bad.stdout(), /Bad user name or password|not authori[sz]ed/i);
      } finally {
        await peers.killAll();
        await b.close();
      }
    });

    void it('reloadTls() (the SIGHUP path) rereads the files', () => {
      assert.equal(broker.reloadTls(), true);
    });
  });
});
