/**
 * Security over real peers: MQTT.js (3.1.1 and 5.0) and mosquitto_pub / mosquitto_sub against a
 * Courier broker with its security switched on.
 *
 * - Password file: right / wrong / unknown user, and the file reloaded while the broker runs.
 * - ACL file: publish and subscribe allowed and denied, `%u` and `%c` patterns, deny overlap,
 *   wills and retained messages that must not get past the rules.
 * - `authenticate` / `authorize` hooks, synchronous and asynchronous (answering after a
 *   setImmediate), including hook-chosen reason codes.
 * - JWT as the password: HS256 and RS256, valid / expired / wrong signature / wrong audience.
 * - Session ownership, and the default anonymous posture (loopback only).
 *
 * A denial is proved by what comes back (CONNACK, PUBACK, SUBACK codes; exit codes of the
 * Mosquitto clients) and, for "not delivered", by a marker sent after it on the same path: the
 * watcher gets the marker first, so the denied message was never routed.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { SignJWT } from 'jose';
import type { IClientOptions, MqttClient } from 'mqtt';
import type { Logger } from '../../src/options.js';
import { deletePassword, setPassword } from '../../src/security/passwords.js';
import type { AuthenticationResult, Authenticator, AuthorizationRequest, AuthorizationResult, Authorizer } from '../../src/security/types.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { externalFront } from '../helpers/external.js';
import { Inbox, connectClient, endAll, unique } from '../helpers/interop.js';
import { Peers, missingExecutable, peerGate, withTimeout } from '../helpers/peers.js';
import { RawClient } from '../helpers/raw-client.js';

const PUB = '/usr/bin/mosquitto_pub';
const SUB = '/usr/bin/mosquitto_sub';
const mosquittoGate = peerGate('mosquitto-clients', missingExecutable(PUB) ?? missingExecutable(SUB));

const VERSIONS = [
  { name: 'MQTT 3.1.1', protocolVersion: 4 as const },
  { name: 'MQTT 5.0', protocolVersion: 5 as const },
];

/** CONNACK codes: [v5 reason code, 3.1.1 return code]. */
const BAD_CREDENTIALS = { 5: 0x86, 4: 4 } as const;
const NOT_AUTHORIZED = { 5: 0x87, 4: 5 } as const;
/** The statement that a failed authentication ends in a refusing CONNACK and a closed connection. */
const REFUSE_CLOSES = { 5: '[MQTT-3.1.4-2]', 4: '[MQTT-3.2.2-5]' } as const;

const clients: MqttClient[] = [];
const peers = new Peers();
const dirs: string[] = [];

afterEach(async () => {
  await endAll(clients.splice(0));
});
after(async () => {
  await peers.killAll();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'courier-security-'));
  dirs.push(d);
  return d;
}

async function connect(url: string, options: IClientOptions): Promise<MqttClient> {
  const c = await connectClient(url, options);
  clients.push(c);
  return c;
}

/** The CONNACK code of a connection attempt: 0 when accepted (the client is kept for cleanup). */
async function connackCode(url: string, options: IClientOptions): Promise<number> {
  try {
    await connect(url, options);
    return 0;
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (typeof code !== 'number') throw err;
    return code;
  }
}

/** The acknowledgement code of a QoS 1/2 publish: 0 (or 0x10) when accepted, else the v5 reason code. */
async function publishCode(c: MqttClient, topic: string, payload: string, qos: 1 | 2 = 1, retain = false): Promise<number> {
  try {
    await c.publishAsync(topic, payload, { qos, retain });
    return 0;
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (typeof code !== 'number') throw err;
    return code;
  }
}

/** The SUBACK codes for `filters` (failures included; MQTT.js reports them as an error). */
function subackCodes(c: MqttClient, filters: string[], qos: 0 | 1 | 2 = 1): Promise<number[]> {
  return new Promise((resolve, reject) => {
    c.subscribe(filters, { qos }, (err, _granted, packet) => {
      if (packet?.cmd === 'suback') resolve(packet.granted as number[]);
      else reject(err ?? new Error('no SUBACK'));
    });
  });
}

/** A logger that records every line, so a test can await one ("password file reloaded"). */
class LogWatch implements Logger {
  readonly lines: string[] = [];
  #waiters: Array<{ re: RegExp; from: number; resolve: () => void }> = [];

  #add(msg: string | undefined): void {
    this.lines.push(msg ?? '');
    this.#waiters = this.#waiters.filter((w) => {
      if (!this.lines.slice(w.from).some((l) => w.re.test(l))) return true;
      w.resolve();
      return false;
    });
  }

  info(_o: object, msg?: string): void {
    this.#add(msg);
  }
  warn(_o: object, msg?: string): void {
    this.#add(msg);
  }
  error(_o: object, msg?: string): void {
    this.#add(msg);
  }
  debug(): void {}

  /** Resolves at the first line matching `re` logged after this call. */
  next(re: RegExp, timeoutMs = 5_000): Promise<void> {
    const from = this.lines.length;
    return withTimeout(new Promise<void>((resolve) => this.#waiters.push({ re, from, resolve })), timeoutMs, `log line ${re}`);
  }
}

/** Runs a Mosquitto client to its end; resolves with its exit code and output. */
async function mosquitto(cmd: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = peers.spawn(cmd, args);
  const { code } = await p.exited();
  return { code, stdout: p.stdout(), stderr: p.stderr() };
}

/** Resolves when the broker reports `clientId` disconnected (its will, if any, was decided then). */
function disconnected(b: TestBroker, clientId: string): Promise<void> {
  return withTimeout(
    new Promise<void>((resolve) => {
      const on = (client: { clientId: string }): void => {
        if (client.clientId !== clientId) return;
        b.broker.off('clientDisconnect', on);
        resolve();
      };
      b.broker.on('clientDisconnect', on);
    }),
    5_000,
    `disconnect of ${clientId}`,
  );
}

/** Ends an MQTT.js client without DISCONNECT (an abnormal end: its will is due). */
function dropConnection(c: MqttClient): void {
  c.stream.destroy();
}

// -------------------------------------------------------------------------------------------------

void describe('password file', () => {
  let b: TestBroker;
  let file: string;
  const log = new LogWatch();
  const url = (): string => `mqtt://127.0.0.1:${b.port}`;

  before(async () => {
    file = join(tempDir(), 'users.pw');
    await setPassword(file, 'alice', 'wonderland');
    await setPassword(file, 'carol', 'c4r0l');
    b = await startBroker({ security: { passwordFile: file }, logger: log });
  });
  after(async () => {
    await b?.close();
  });

  for (const v of VERSIONS) {
    void it(`${v.name}: ${REFUSE_CLOSES[v.protocolVersion]} the right password is accepted; a wrong one and an unknown user get CONNACK ${BAD_CREDENTIALS[v.protocolVersion]} (Bad User Name or Password) and are counted`, async () => {
      const before = b.broker.stats().authenticationFailures;
      assert.equal(await connackCode(url(), { protocolVersion: v.protocolVersion, username: 'alice', password: 'wonderland' }), 0);
      assert.equal(
        await connackCode(url(), { protocolVersion: v.protocolVersion, username: 'alice', password: 'Wonderland' }),
        BAD_CREDENTIALS[v.protocolVersion],
      );
      assert.equal(
        await connackCode(url(), { protocolVersion: v.protocolVersion, username: 'mallory', password: 'wonderland' }),
        BAD_CREDENTIALS[v.protocolVersion],
      );
      assert.equal(
        await connackCode(url(), { protocolVersion: v.protocolVersion, username: 'alice' }),
        BAD_CREDENTIALS[v.protocolVersion],
        'a known user without a password',
      );
      // The refusing CONNACK is followed by the end of the connection.
      const raw = await RawClient.connect(b.port, {
        protocolVersion: v.protocolVersion,
        clientId: unique('raw'),
        username: 'alice',
        password: Buffer.from('nope'),
      });
      assert.equal(raw.connack.reasonCode, BAD_CREDENTIALS[v.protocolVersion]);
      await raw.client.closed();
      assert.equal(b.broker.stats().authenticationFailures, before + 4);
    });
  }

  void describe('mosquitto_pub / mosquitto_sub -u -P', mosquittoGate, () => {
    for (const version of ['mqttv311', 'mqttv5'] as const) {
      const refusedExit = version === 'mqttv5' ? 0x86 : 4;
      void it(`${version}: mosquitto_pub with the right password publishes; wrong password and unknown user exit with CONNACK ${refusedExit}`, async () => {
        const common = ['-h', '127.0.0.1', '-p', String(b.port), '-V', version, '-t', unique('pw/mos'), '-m', 'x', '-q', '1'];
        const ok = await mosquitto(PUB, [...common, '-u', 'alice', '-P', 'wonderland']);
        assert.equal(ok.code, 0, ok.stderr);
        const wrong = await mosquitto(PUB, [...common, '-u', 'alice', '-P', 'nope']);
        assert.equal(wrong.code, refusedExit, wrong.stderr);
        assert.match(wrong.stderr, /bad user name or password/i);
        const unknown = await mosquitto(SUB, [
          '-h',
          '127.0.0.1',
          '-p',
          String(b.port),
          '-V',
          version,
          '-t',
          'x',
          '-C',
          '1',
          '-W',
          '5',
          '-u',
          'mallory',
          '-P',
          'wonderland',
        ]);
        assert.equal(unknown.code, refusedExit, unknown.stderr);
      });
    }
  });

  void it('a user added with setPassword is accepted once the broker reloads the file; a deleted one is refused again; a broken file keeps the previous users', async () => {
    const bob = { protocolVersion: 5 as const, username: 'bob', password: 'builder' };
    assert.equal(await connackCode(url(), bob), 0x86, 'bob is not in the file yet');

    let reloaded = log.next(/password file reloaded/);
    await setPassword(file, 'bob', 'builder');
    await reloaded;
    assert.equal(await connackCode(url(), bob), 0, 'bob is accepted after the reload');
    const mos = await mosquitto(PUB, ['-h', '127.0.0.1', '-p', String(b.port), '-V', 'mqttv311', '-u', 'bob', '-P', 'builder', '-t', 'x', '-m', 'y']);
    assert.equal(mos.code, 0, mos.stderr);

    reloaded = log.next(/password file reloaded/);
    assert.equal(await deletePassword(file, 'carol'), true);
    await reloaded;
    assert.equal(await connackCode(url(), { protocolVersion: 4, username: 'carol', password: 'c4r0l' }), 4, 'carol was deleted');

    const failed = log.next(/password file not reloaded/);
    writeFileSync(file, 'this line is not USER:HASH\n');
    await failed;
    assert.equal(await connackCode(url(), bob), 0, 'the previous users stay in force');
    assert.equal(await connackCode(url(), { protocolVersion: 4, username: 'carol', password: 'c4r0l' }), 4);
  });
});

// -------------------------------------------------------------------------------------------------

const ACL = `# Global rules
topic read public/#
topic deny public/secret/#
pattern readwrite users/%u/#
pattern readwrite devices/%c/#

user alice
topic write public/#
topic write wills/alice

user admin
topic read users/#
topic read devices/#
topic read wills/#
topic read marker/#
topic write marker/#
`;

void describe('ACL file', () => {
  let b: TestBroker;
  let watcher: MqttClient;
  let inbox: Inbox;
  const url = (): string => `mqtt://127.0.0.1:${b.port}`;
  let markers = 0;

  before(async () => {
    const dir = tempDir();
    const pw = join(dir, 'users.pw');
    for (const [u, p] of [
      ['alice', 'a-pw'],
      ['bob', 'b-pw'],
      ['admin', 'root-pw'],
    ] as const)
      await setPassword(pw, u, p);
    writeFileSync(join(dir, 'acl.conf'), ACL);
    b = await startBroker({ security: { passwordFile: pw, aclFile: join(dir, 'acl.conf') } });
    watcher = await connectClient(url(), { protocolVersion: 5, username: 'admin', password: 'root-pw', clientId: 'acl-watcher' });
    inbox = new Inbox(watcher);
    assert.deepEqual(await subackCodes(watcher, ['users/#', 'devices/#', 'wills/#', 'marker/#']), [1, 1, 1, 1]);
  });
  after(async () => {
    await endAll([watcher]);
    await b?.close();
  });

  /** The watcher's next message is a fresh marker sent now: anything denied before it never arrived. */
  async function nothingElseArrived(): Promise<void> {
    const tag = `marker-${++markers}`;
    b.broker.publish({ topic: 'marker/x', payload: tag, qos: 1 });
    const m = await inbox.next();
    assert.deepEqual([m.topic, m.payload], ['marker/x', tag], 'the watcher got something that should have been denied');
  }

  for (const v of VERSIONS) {
    const denied = v.protocolVersion === 5 ? 0x87 : 0;
    const refused = v.protocolVersion === 5 ? 0x87 : 0x80;
    const as = (username: string, password: string, extra: IClientOptions = {}): Promise<MqttClient> =>
      connect(url(), { protocolVersion: v.protocolVersion, username, password, ...extra });

    void describe(v.name, () => {
      void it(`publish under a %u pattern: allowed to the user's own tree; another user's tree is ${v.protocolVersion === 5 ? 'answered PUBACK/PUBREC 0x87' : 'acknowledged as usual [MQTT-3.3.5-2]'} and not delivered`, async () => {
        const alice = await as('alice', 'a-pw');
        const before = b.broker.stats().publishesDenied;
        assert.equal(await publishCode(alice, 'users/alice/note', 'mine'), 0);
        const m = await inbox.next();
        assert.deepEqual([m.topic, m.payload], ['users/alice/note', 'mine']);
        assert.equal(await publishCode(alice, 'users/bob/note', 'forged', 1), denied);
        assert.equal(await publishCode(alice, 'users/bob/note', 'forged', 2), denied);
        await nothingElseArrived();
        assert.equal(b.broker.stats().publishesDenied, before + 2);
      });

      void it(`subscribe under a %u pattern: the user's own tree is granted; another user's tree, or a wildcard reaching it, gets SUBACK 0x${refused.toString(16)}`, async () => {
        const bob = await as('bob', 'b-pw');
        const before = b.broker.stats().subscriptionsDenied;
        assert.deepEqual(await subackCodes(bob, ['users/bob/#', 'users/alice/#', 'users/+/inbox', 'users/bob/+/x']), [1, refused, refused, 1]);
        assert.equal(b.broker.stats().subscriptionsDenied, before + 2);
      });

      void it('a %c pattern gives a client its own device tree, by client id, whoever the user', async () => {
        const id = unique('dev');
        const dev = await as('bob', 'b-pw', { clientId: id });
        assert.deepEqual(await subackCodes(dev, [`devices/${id}/cmd`, 'devices/other/cmd', 'devices/+/cmd']), [1, refused, refused]);
        assert.equal(await publishCode(dev, `devices/${id}/temp`, '21'), 0);
        const m = await inbox.next();
        assert.equal(m.topic, `devices/${id}/temp`);
        assert.equal(await publishCode(dev, 'devices/other/temp', 'spoofed'), denied);
        await nothingElseArrived();
      });

      void it(`a deny rule wins: a filter that overlaps a denied topic is refused as a whole, a narrower one is granted; publishing under the deny is ${v.protocolVersion === 5 ? 'refused' : 'dropped'}`, async () => {
        const bob = await as('bob', 'b-pw');
        assert.deepEqual(await subackCodes(bob, ['public/#', 'public/+', 'public/news/#', 'public/secret/x']), [refused, refused, 1, refused]);
        const alice = await as('alice', 'a-pw');
        assert.equal(await publishCode(alice, 'public/secret/plans', 'x'), denied);
        assert.equal(await publishCode(alice, 'public/news/today', 'x'), 0);
      });

      void it('retained messages under a denied topic never reach a subscriber, and a denied retained publish is not stored', async () => {
        const root = unique('r');
        b.broker.publish({ topic: `public/news/${root}`, payload: 'news', qos: 1, retain: true });
        b.broker.publish({ topic: `public/secret/${root}`, payload: 'secret', qos: 1, retain: true });
        const bob = await as('bob', 'b-pw');
        const bobInbox = new Inbox(bob);
        assert.deepEqual(await subackCodes(bob, [`public/+/${root}`]), [refused], 'the filter reaches public/secret');
        assert.deepEqual(await subackCodes(bob, [`public/news/${root}`]), [1]);
        const r = await bobInbox.next();
        assert.deepEqual([r.topic, r.payload, r.packet.retain], [`public/news/${root}`, 'news', true]);

        // alice may not write to bob's tree: her retained message must not be kept for bob to find.
        const alice = await as('alice', 'a-pw');
        const retainedBefore = b.broker.stats().retained;
        assert.equal(await publishCode(alice, `users/bob/${root}`, 'planted', 1, true), denied);
        assert.equal(b.broker.stats().retained, retainedBefore);
        assert.deepEqual(await subackCodes(bob, [`users/bob/${root}`, `users/bob/${root}/end`]), [1, 1]);
        b.broker.publish({ topic: `users/bob/${root}/end`, payload: 'end', qos: 1 });
        const next = await bobInbox.next();
        assert.deepEqual([next.topic, next.payload], [`users/bob/${root}/end`, 'end'], 'no retained message came first');
        assert.equal((await inbox.next()).topic, `users/bob/${root}/end`, 'the watcher saw it too');
      });

      void it('a will is authorized when it is published: an allowed will arrives, a denied will is dropped', async () => {
        const allowedId = unique('will-ok');
        const ok = await as('alice', 'a-pw', {
          clientId: allowedId,
          will: { topic: 'wills/alice', payload: Buffer.from('alice gone'), qos: 1, retain: false },
        });
        const willsBefore = b.broker.stats().willsPublished;
        let gone = disconnected(b, allowedId);
        dropConnection(ok);
        await gone;
        const w = await inbox.next();
        assert.deepEqual([w.topic, w.payload], ['wills/alice', 'alice gone']);

        const deniedId = unique('will-denied');
        const bad = await as('bob', 'b-pw', { clientId: deniedId, will: { topic: 'wills/alice', payload: Buffer.from('forged'), qos: 1, retain: true } });
        gone = disconnected(b, deniedId);
        dropConnection(bad);
        await gone;
        await nothingElseArrived();
        assert.equal(b.broker.stats().willsPublished, willsBefore + 1);
      });
    });
  }

  void describe('mosquitto_pub / mosquitto_sub', mosquittoGate, () => {
    const common = (version: string): string[] => ['-h', '127.0.0.1', '-p', String(b.port), '-V', version];

    void it('mqttv5: a denied QoS 1 publish is reported by mosquitto_pub and not delivered; an allowed one is', async () => {
      const ok = await mosquitto(PUB, [...common('mqttv5'), '-u', 'bob', '-P', 'b-pw', '-t', 'users/bob/mos', '-m', 'fine', '-q', '1']);
      assert.equal(ok.code, 0, ok.stderr);
      const m = await inbox.next();
      assert.deepEqual([m.topic, m.payload], ['users/bob/mos', 'fine']);
      const bad = await mosquitto(PUB, [...common('mqttv5'), '-u', 'bob', '-P', 'b-pw', '-t', 'users/alice/mos', '-m', 'forged', '-q', '1', '-d']);
      assert.match(bad.stdout, /received PUBACK \(Mid: \d+, RC:135\)/);
      assert.match(bad.stderr, /Publish \d+ failed: Not authorized/);
      await nothingElseArrived();
    });

    for (const version of ['mqttv311', 'mqttv5'] as const) {
      void it(`${version}: mosquitto_sub to another user's tree is refused in SUBACK; to its own tree it receives`, async () => {
        const denied = await mosquitto(SUB, [...common(version), '-u', 'bob', '-P', 'b-pw', '-t', 'users/alice/#', '-C', '1', '-W', '5', '-d']);
        assert.match(denied.stdout, version === 'mqttv5' ? /Subscribed \(mid: \d+\): 135$/m : /Subscribed \(mid: \d+\): 128$/m);
        assert.match(denied.stderr, /All subscription requests were denied/);
        const sub = peers.spawn('/usr/bin/stdbuf', [
          '-oL',
          SUB,
          ...common(version),
          '-u',
          'bob',
          '-P',
          'b-pw',
          '-t',
          'users/bob/#',
          '-C',
          '1',
          '-W',
          '10',
          '-d',
        ]);
        await sub.waitFor(/received SUBACK/);
        b.broker.publish({ topic: 'users/bob/hello', payload: 'hi bob', qos: 1 });
        const { code } = await sub.exited();
        assert.equal(code, 0, sub.stderr());
        assert.match(sub.stdout(), /^hi bob$/m);
        assert.equal((await inbox.next()).topic, 'users/bob/hello', 'the watcher saw it too');
      });
    }

    void it('mqttv311: a will from mosquitto_sub killed with SIGKILL is published when the ACL allows it and dropped when it does not', async () => {
      const okSub = peers.spawn('/usr/bin/stdbuf', [
        '-oL',
        SUB,
        ...common('mqttv311'),
        '-u',
        'alice',
        '-P',
        'a-pw',
        '-t',
        'users/alice/#',
        '-d',
        '--will-topic',
        'wills/alice',
        '--will-payload',
        'mos-gone',
        '--will-qos',
        '1',
      ]);
      await okSub.waitFor(/received SUBACK/);
      okSub.kill('SIGKILL');
      const w = await inbox.next();
      assert.deepEqual([w.topic, w.payload], ['wills/alice', 'mos-gone']);

      const id = unique('mos-will-denied');
      const badSub = peers.spawn('/usr/bin/stdbuf', [
        '-oL',
        SUB,
        ...common('mqttv311'),
        '-i',
        id,
        '-u',
        'bob',
        '-P',
        'b-pw',
        '-t',
        'users/bob/#',
        '-d',
        '--will-topic',
        'wills/alice',
        '--will-payload',
        'forged',
        '--will-qos',
        '1',
      ]);
      await badSub.waitFor(/received SUBACK/);
      const gone = disconnected(b, id);
      badSub.kill('SIGKILL');
      await gone;
      await nothingElseArrived();
    });
  });
});

// -------------------------------------------------------------------------------------------------

for (const mode of ['synchronous', 'asynchronous'] as const) {
  void describe(`authenticate and authorize hooks (${mode})`, () => {
    let b: TestBroker;
    let watcher: MqttClient;
    let inbox: Inbox;
    const url = (): string => `mqtt://127.0.0.1:${b.port}`;
    const asked: AuthorizationRequest[] = [];
    /** Promises the asynchronous hooks returned, so a test can wait until every decision is in. */
    const pending: Array<Promise<unknown>> = [];
    let markers = 0;

    /** The hook's answer: at once, or after `turns` setImmediate turns. */
    function answer<T>(f: () => T, turns = 1): T | Promise<T> {
      if (mode === 'synchronous') return f();
      const p = new Promise<T>((resolve) => {
        const turn = (left: number): void => {
          if (left === 0) resolve(f());
          else setImmediate(() => turn(left - 1));
        };
        turn(turns);
      });
      pending.push(p);
      return p;
    }

    const authenticate: Authenticator = (req) =>
      answer((): AuthenticationResult | undefined => {
        if (req.username === 'hooked') return req.password?.toString() === 'letmein' ? { ok: true, username: 'hooked-identity' } : { ok: false };
        if (req.username === 'banned') return { ok: false, reasonCode: 0x8a, reason: 'banned by the hook' };
        return undefined; // undecided: the anonymous policy (loopback: accepted, without an identity)
      });

    const authorize: Authorizer = (req) => {
      asked.push(req);
      return answer(
        (): AuthorizationResult | undefined => {
          const [root, kind] = req.topic.split('/');
          if (root !== 'hook') return undefined;
          if (req.action === 'publish' && kind === 'deny') return false;
          if (req.action === 'publish' && kind === 'quota') return { allow: false, reasonCode: 0x97 };
          if (req.action === 'subscribe' && kind === 'secret') return { allow: false };
          if (req.action === 'subscribe' && kind === 'quota') return { allow: false, reasonCode: 0x97 };
          return kind === 'ok' ? true : { allow: true };
          // A subscription to hook/ok/slow/... takes longer to decide than the publishes behind it.
        },
        req.action === 'subscribe' && req.topic.startsWith('hook/ok/slow/') ? 4 : 1,
      );
    };

    before(async () => {
      b = await startBroker({ authenticate, authorize });
      watcher = await connectClient(url(), { protocolVersion: 5, clientId: `hook-watcher-${mode}` });
      inbox = new Inbox(watcher);
      assert.deepEqual(await subackCodes(watcher, ['hook/#']), [1]);
    });
    after(async () => {
      await endAll([watcher]);
      await b?.close();
    });

    /** Waits until every hook decision so far has been acted on, then proves nothing else reached the watcher. */
    async function nothingElseArrived(): Promise<void> {
      await Promise.all(pending.splice(0));
      await new Promise<void>((resolve) => setImmediate(resolve));
      const tag = `marker-${++markers}`;
      b.broker.publish({ topic: 'hook/marker', payload: tag, qos: 1 });
      const m = await inbox.next();
      assert.deepEqual([m.topic, m.payload], ['hook/marker', tag]);
    }

    for (const v of VERSIONS) {
      const pv = v.protocolVersion;
      const opts = (extra: IClientOptions = {}): IClientOptions => ({ protocolVersion: pv, ...extra });

      void it(`${v.name}: the authenticate hook accepts, refuses with 0x86 by default, and refuses with its own code (Banned 0x8A; 3.1.1: 5); an undecided client is anonymous`, async () => {
        const failures = b.broker.stats().authenticationFailures;
        assert.equal(await connackCode(url(), opts({ username: 'hooked', password: 'letmein' })), 0);
        assert.equal(await connackCode(url(), opts({ username: 'hooked', password: 'guess' })), BAD_CREDENTIALS[pv]);
        assert.equal(await connackCode(url(), opts({ username: 'banned', password: 'x' })), pv === 5 ? 0x8a : 5);
        assert.equal(b.broker.stats().authenticationFailures, failures + 2);
        // An unverified user name is no identity: the authorizer sees none.
        const stranger = await connect(url(), opts({ username: 'root', password: 'whatever' }));
        asked.length = 0;
        await stranger.publishAsync('hook/ok/who', 'x', { qos: 1 });
        assert.deepEqual(
          asked.map((r) => [r.action, r.topic, r.username]),
          [['publish', 'hook/ok/who', undefined]],
        );
        assert.equal((await inbox.next()).topic, 'hook/ok/who');
      });

      void it(`${v.name}: the authorizer sees the identity the authenticate hook chose, with the client id, QoS and retain flag`, async () => {
        const id = unique('hooked');
        const c = await connect(url(), opts({ username: 'hooked', password: 'letmein', clientId: id }));
        asked.length = 0;
        await c.publishAsync('hook/ok/id', 'x', { qos: 2, retain: true });
        await c.publishAsync('hook/ok/id', '', { qos: 1, retain: true });
        assert.deepEqual(
          asked.map((r) => ({ ...r })),
          [
            { action: 'publish', clientId: id, username: 'hooked-identity', topic: 'hook/ok/id', qos: 2, retain: true },
            { action: 'publish', clientId: id, username: 'hooked-identity', topic: 'hook/ok/id', qos: 1, retain: true },
          ],
        );
        assert.equal((await inbox.next()).payload, 'x');
        assert.equal((await inbox.next()).payload, '');
      });

      void it(`${v.name}: a publish the hook denies is ${pv === 5 ? "answered with the hook's code (PUBACK 0x87 / 0x97, PUBREC 0x87)" : 'acknowledged as usual [MQTT-3.3.5-2]'} and not delivered`, async () => {
        const c = await connect(url(), opts());
        const denied = b.broker.stats().publishesDenied;
        assert.equal(await publishCode(c, 'hook/deny/a', 'no', 1), pv === 5 ? 0x87 : 0);
        assert.equal(await publishCode(c, 'hook/quota/a', 'no', 1), pv === 5 ? 0x97 : 0);
        assert.equal(await publishCode(c, 'hook/deny/b', 'no', 2), pv === 5 ? 0x87 : 0);
        // QoS 0 has no acknowledgement: a QoS 1 publish on the same connection follows it.
        c.publish('hook/deny/c', 'no', { qos: 0 });
        await c.publishAsync('hook/ok/after-qos0', 'after', { qos: 1 });
        assert.equal((await inbox.next()).topic, 'hook/ok/after-qos0');
        await nothingElseArrived();
        assert.equal(b.broker.stats().publishesDenied, denied + 4);
      });

      void it(`${v.name}: SUBACK carries the hook's decision per filter (${pv === 5 ? '0x87, 0x97' : '0x80'}) and granted filters work`, async () => {
        const c = await connect(url(), opts());
        const cInbox = new Inbox(c);
        const denied = b.broker.stats().subscriptionsDenied;
        assert.deepEqual(await subackCodes(c, ['hook/secret/x', 'hook/quota/x', 'hook/ok/sub']), pv === 5 ? [0x87, 0x97, 1] : [0x80, 0x80, 1]);
        assert.equal(b.broker.stats().subscriptionsDenied, denied + 2);
        b.broker.publish({ topic: 'hook/secret/x', payload: 'hidden', qos: 1 });
        b.broker.publish({ topic: 'hook/ok/sub', payload: 'visible', qos: 1 });
        const m = await cInbox.next();
        assert.deepEqual([m.topic, m.payload], ['hook/ok/sub', 'visible']);
        await inbox.take(2); // the watcher's copies
      });

      void it(`${v.name}: packets sent back to back keep their order while ${mode} hooks decide, even when a later decision is ready first (a slow SUBSCRIBE, then allowed and denied publishes)`, async () => {
        const c = await connect(url(), opts());
        const cInbox = new Inbox(c);
        const topic = `hook/ok/slow/${unique('order')}`;
        const acks: Array<Promise<number>> = [];
        const subscribed = subackCodes(c, [topic]);
        for (let i = 0; i < 10; i++) acks.push(publishCode(c, i % 2 === 0 ? topic : 'hook/deny/order', String(i), 1));
        assert.deepEqual(await subscribed, [1]);
        assert.deepEqual(
          await Promise.all(acks),
          Array.from({ length: 10 }, (_, i) => (i % 2 === 0 || pv === 4 ? 0 : 0x87)),
        );
        const got = await cInbox.take(5);
        assert.deepEqual(
          got.map((m) => m.payload),
          ['0', '2', '4', '6', '8'],
        );
        assert.deepEqual(
          (await inbox.take(5)).map((m) => m.payload),
          ['0', '2', '4', '6', '8'],
        );
        await nothingElseArrived();
      });

      void it(`${v.name}: the authorizer decides wills too: an allowed will is published, a denied one is dropped`, async () => {
        const okId = unique('hook-will-ok');
        const ok = await connect(url(), opts({ clientId: okId, will: { topic: 'hook/ok/will', payload: Buffer.from('bye'), qos: 1, retain: false } }));
        let gone = disconnected(b, okId);
        dropConnection(ok);
        await gone;
        const w = await inbox.next();
        assert.deepEqual([w.topic, w.payload], ['hook/ok/will', 'bye']);
        const badId = unique('hook-will-denied');
        const bad = await connect(url(), opts({ clientId: badId, will: { topic: 'hook/deny/will', payload: Buffer.from('forged'), qos: 1, retain: false } }));
        asked.length = 0;
        gone = disconnected(b, badId);
        dropConnection(bad);
        await gone;
        await nothingElseArrived();
        assert.deepEqual(
          asked.map((r) => [r.action, r.clientId, r.topic]),
          [['publish', badId, 'hook/deny/will']],
        );
      });
    }
  });
}

// -------------------------------------------------------------------------------------------------

void describe('JWT as the password', () => {
  const ISSUER = 'courier-tests';
  const AUDIENCE = 'mqtt';
  const secret = new TextEncoder().encode('courier-tests-hs256-shared-secret-0123456789');
  const wrongSecret = new TextEncoder().encode('not-the-secret-hs256-shared-0123456789abcdef');
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const otherRsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  let hs: TestBroker;
  let rs: TestBroker;

  interface Claims {
    sub?: string;
    aud?: string;
    iss?: string;
    exp?: number;
  }
  async function token(alg: 'HS256' | 'RS256', key: Uint8Array | KeyObject, claims: Claims = {}): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({})
      .setProtectedHeader({ alg })
      .setSubject(claims.sub ?? 'alice')
      .setIssuer(claims.iss ?? ISSUER)
      .setAudience(claims.aud ?? AUDIENCE)
      .setIssuedAt(now - 120)
      .setExpirationTime(claims.exp ?? now + 300)
      .sign(key);
  }

  before(async () => {
    const dir = tempDir();
    const pem = join(dir, 'jwt.pub.pem');
    writeFileSync(pem, rsa.publicKey.export({ type: 'spki', format: 'pem' }));
    writeFileSync(join(dir, 'acl.conf'), 'pattern readwrite users/%u/#\n');
    hs = await startBroker({ security: { jwt: { secret: new TextDecoder().decode(secret), issuer: ISSUER, audience: AUDIENCE } } });
    rs = await startBroker({ security: { jwt: { publicKeyFile: pem, issuer: ISSUER, audience: AUDIENCE }, aclFile: join(dir, 'acl.conf') } });
  });
  after(async () => {
    await hs?.close();
    await rs?.close();
  });

  const cases = [
    { alg: 'HS256' as const, broker: () => hs, key: (): Uint8Array | KeyObject => secret, wrongKey: (): Uint8Array | KeyObject => wrongSecret },
    { alg: 'RS256' as const, broker: () => rs, key: (): Uint8Array | KeyObject => rsa.privateKey, wrongKey: (): Uint8Array | KeyObject => otherRsa.privateKey },
  ];
  for (const c of cases) {
    for (const v of VERSIONS) {
      const pv = v.protocolVersion;
      void it(`${c.alg}, ${v.name}: a valid token is accepted; expired, wrong signature, wrong audience, wrong issuer or another user name get CONNACK ${BAD_CREDENTIALS[pv]}`, async () => {
        const url = `mqtt://127.0.0.1:${c.broker().port}`;
        const as = async (password: string, username = 'alice'): Promise<number> => connackCode(url, { protocolVersion: pv, username, password });
        const failures = c.broker().broker.stats().authenticationFailures;
        assert.equal(await as(await token(c.alg, c.key())), 0, 'valid');
        assert.equal(await as(await token(c.alg, c.key(), { exp: Math.floor(Date.now() / 1000) - 60 })), BAD_CREDENTIALS[pv], 'expired');
        assert.equal(await as(await token(c.alg, c.wrongKey())), BAD_CREDENTIALS[pv], 'wrong signature');
        assert.equal(await as(await token(c.alg, c.key(), { aud: 'not-mqtt' })), BAD_CREDENTIALS[pv], 'wrong audience');
        assert.equal(await as(await token(c.alg, c.key(), { iss: 'someone-else' })), BAD_CREDENTIALS[pv], 'wrong issuer');
        assert.equal(await as(await token(c.alg, c.key()), 'mallory'), BAD_CREDENTIALS[pv], 'user name differs from the token subject');
        assert.equal(c.broker().broker.stats().authenticationFailures, failures + 5);
      });
    }
  }

  void it('RS256: an HS256 token made with the public key as its secret (algorithm confusion) is refused', async () => {
    const pemAsSecret = new TextEncoder().encode(rsa.publicKey.export({ type: 'spki', format: 'pem' }).toString());
    const forged = await token('HS256', pemAsSecret);
    assert.equal(await connackCode(`mqtt://127.0.0.1:${rs.port}`, { protocolVersion: 5, username: 'alice', password: forged }), 0x86);
  });

  void it("RS256: the token subject is the identity the ACL sees (%u): own tree granted, another user's refused", async () => {
    const c = await connect(`mqtt://127.0.0.1:${rs.port}`, { protocolVersion: 5, username: 'alice', password: await token('RS256', rsa.privateKey) });
    assert.deepEqual(await subackCodes(c, ['users/alice/#', 'users/bob/#']), [1, 0x87]);
    assert.equal(await publishCode(c, 'users/bob/x', 'forged'), 0x87);
  });

  void describe('mosquitto_pub -P <token>', mosquittoGate, () => {
    for (const version of ['mqttv311', 'mqttv5'] as const) {
      void it(`${version}: HS256 valid token publishes; an expired one exits with CONNACK ${version === 'mqttv5' ? 0x86 : 4}`, async () => {
        const common = ['-h', '127.0.0.1', '-p', String(hs.port), '-V', version, '-u', 'alice', '-t', 'jwt/mos', '-m', 'x', '-q', '1'];
        const ok = await mosquitto(PUB, [...common, '-P', await token('HS256', secret)]);
        assert.equal(ok.code, 0, ok.stderr);
        const expired = await mosquitto(PUB, [...common, '-P', await token('HS256', secret, { exp: Math.floor(Date.now() / 1000) - 60 })]);
        assert.equal(expired.code, version === 'mqttv5' ? 0x86 : 4, expired.stderr);
      });
    }
  });
});

// -------------------------------------------------------------------------------------------------

/** Connects and resolves with the client, an inbox attached before the CONNACK, and the CONNACK's Session Present flag. */
async function connectWithInbox(url: string, options: IClientOptions): Promise<{ client: MqttClient; inbox: Inbox; sessionPresent: boolean }> {
  const mqtt = await import('mqtt');
  const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...options });
  clients.push(client);
  const inbox = new Inbox(client);
  const sessionPresent = await withTimeout(
    new Promise<boolean>((resolve, reject) => {
      client.once('connect', (p) => resolve(p.sessionPresent));
      client.once('error', reject);
    }),
    5_000,
    'CONNACK',
  );
  client.on('error', () => {});
  return { client, inbox, sessionPresent };
}

void describe('session ownership (security.sessionOwnership)', () => {
  let b: TestBroker;
  const url = (): string => `mqtt://127.0.0.1:${b.port}`;

  before(async () => {
    const pw = join(tempDir(), 'users.pw');
    await setPassword(pw, 'alice', 'a-pw');
    await setPassword(pw, 'bob', 'b-pw');
    b = await startBroker({ security: { passwordFile: pw, sessionOwnership: true } });
  });
  after(async () => {
    await b?.close();
  });

  for (const v of VERSIONS) {
    const pv = v.protocolVersion;
    const persistent: IClientOptions = pv === 5 ? { clean: false, properties: { sessionExpiryInterval: 300 } } : { clean: false };

    void it(`${v.name}: another user, or an anonymous client, cannot resume alice's persistent session (CONNACK ${NOT_AUTHORIZED[pv]}); alice resumes it with Session Present and her queued message`, async () => {
      const id = unique('owned');
      const alice = await connect(url(), { protocolVersion: pv, clientId: id, username: 'alice', password: 'a-pw', ...persistent });
      assert.deepEqual(await subackCodes(alice, [`owned/${id}`]), [1]);
      await alice.endAsync();
      b.broker.publish({ topic: `owned/${id}`, payload: 'for alice', qos: 1 });

      assert.equal(await connackCode(url(), { protocolVersion: pv, clientId: id, username: 'bob', password: 'b-pw', ...persistent }), NOT_AUTHORIZED[pv]);
      assert.equal(await connackCode(url(), { protocolVersion: pv, clientId: id, ...persistent }), NOT_AUTHORIZED[pv], 'anonymous');

      const again = await connectWithInbox(url(), { protocolVersion: pv, clientId: id, username: 'alice', password: 'a-pw', ...persistent });
      assert.equal(again.sessionPresent, true);
      const m = await again.inbox.next();
      assert.deepEqual([m.topic, m.payload], [`owned/${id}`, 'for alice']);
    });

    void it(`${v.name}: a refused CONNECT with alice's client id does not take her connection over (the takeover of ${pv === 5 ? '[MQTT-3.1.4-3]' : '[MQTT-3.1.4-2]'} is for accepted CONNECTs)`, async () => {
      const id = unique('owned-live');
      const { client: alice, inbox } = await connectWithInbox(url(), { protocolVersion: pv, clientId: id, username: 'alice', password: 'a-pw', ...persistent });
      assert.deepEqual(await subackCodes(alice, [`owned/${id}`]), [1]);
      assert.equal(await connackCode(url(), { protocolVersion: pv, clientId: id, username: 'bob', password: 'b-pw', ...persistent }), NOT_AUTHORIZED[pv]);
      await alice.publishAsync(`owned/${id}`, 'still here', { qos: 1 });
      assert.equal((await inbox.next()).payload, 'still here');
      assert.equal(alice.connected, true);
    });
  }

  void it("mosquitto_sub -c (3.1.1) as bob cannot resume alice's session: exit code 5", mosquittoGate, async () => {
    const id = unique('owned-mos');
    const alice = await connect(url(), { protocolVersion: 4, clientId: id, username: 'alice', password: 'a-pw', clean: false });
    await alice.endAsync();
    const r = await mosquitto(SUB, [
      '-h',
      '127.0.0.1',
      '-p',
      String(b.port),
      '-V',
      'mqttv311',
      '-c',
      '-i',
      id,
      '-u',
      'bob',
      '-P',
      'b-pw',
      '-t',
      'x',
      '-C',
      '1',
      '-W',
      '5',
    ]);
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /not authori[sz]ed/i);
  });
});

// -------------------------------------------------------------------------------------------------

void describe('default posture: anonymous clients', () => {
  let def: TestBroker;
  let open: TestBroker;
  let closed: TestBroker;
  const fronts: Array<{ close(): Promise<void> }> = [];
  const front = async (b: TestBroker, address: string): Promise<string> => {
    const f = await externalFront(b.broker, address);
    fronts.push(f);
    return f.url;
  };

  before(async () => {
    const pw = join(tempDir(), 'users.pw');
    await setPassword(pw, 'alice', 'a-pw');
    def = await startBroker({ security: { passwordFile: pw } });
    open = await startBroker({ security: { allowAnonymous: true } });
    closed = await startBroker({ security: { allowAnonymous: false, passwordFile: pw } });
  });
  after(async () => {
    await endAll(clients.splice(0));
    for (const f of fronts) await f.close();
    await def?.close();
    await open?.close();
    await closed?.close();
  });

  for (const v of VERSIONS) {
    const pv = v.protocolVersion;
    void it(`${v.name}: by default an anonymous client is accepted on the loopback TCP and WebSocket listeners`, async () => {
      assert.equal(await connackCode(`mqtt://127.0.0.1:${def.port}`, { protocolVersion: pv }), 0);
      assert.equal(await connackCode(`ws://127.0.0.1:${def.wsPort}/mqtt`, { protocolVersion: pv }), 0);
    });

    void it(`${v.name}: ${REFUSE_CLOSES[pv]} by default an anonymous client from a non-loopback address is refused with CONNACK ${NOT_AUTHORIZED[pv]}; a user with a password is accepted; ::1 counts as loopback`, async () => {
      const failures = def.broker.stats().authenticationFailures;
      const remote = await front(def, '198.51.100.7');
      assert.equal(await connackCode(remote, { protocolVersion: pv }), NOT_AUTHORIZED[pv]);
      assert.equal(
        await connackCode(remote, { protocolVersion: pv, username: 'nobody', password: 'x' }),
        BAD_CREDENTIALS[pv],
        'a user the password file does not know',
      );
      assert.equal(def.broker.stats().authenticationFailures, failures + 2);
      assert.equal(await connackCode(remote, { protocolVersion: pv, username: 'alice', password: 'a-pw' }), 0);
      assert.equal(await connackCode(await front(def, '::1'), { protocolVersion: pv }), 0);
    });

    void it(`${v.name}: security.allowAnonymous true accepts an anonymous client from a non-loopback address, which can then publish and subscribe`, async () => {
      const remote = await front(open, '203.0.113.9');
      const c = await connect(remote, { protocolVersion: pv });
      const inbox = new Inbox(c);
      assert.deepEqual(await subackCodes(c, ['anon/echo']), [1]);
      await c.publishAsync('anon/echo', 'hello', { qos: 1 });
      assert.equal((await inbox.next()).payload, 'hello');
    });

    void it(`${v.name}: security.allowAnonymous false refuses anonymous clients even on loopback (CONNACK ${NOT_AUTHORIZED[pv]}); users still get in`, async () => {
      assert.equal(await connackCode(`mqtt://127.0.0.1:${closed.port}`, { protocolVersion: pv }), NOT_AUTHORIZED[pv]);
      assert.equal(await connackCode(`ws://127.0.0.1:${closed.wsPort}/mqtt`, { protocolVersion: pv }), NOT_AUTHORIZED[pv]);
      assert.equal(await connackCode(`mqtt://127.0.0.1:${closed.port}`, { protocolVersion: pv, username: 'alice', password: 'a-pw' }), 0);
    });
  }

  void it('mosquitto_pub without -u against allowAnonymous false exits with the CONNACK code (3.1.1: 5, 5.0: 135)', mosquittoGate, async () => {
    for (const [version, code] of [
      ['mqttv311', 5],
      ['mqttv5', 0x87],
    ] as const) {
      const r = await mosquitto(PUB, ['-h', '127.0.0.1', '-p', String(closed.port), '-V', version, '-t', 'x', '-m', 'y']);
      assert.equal(r.code, code, r.stderr);
    }
  });
});
