/**
 * MQTT 5.0 features of the client: outbound topic aliases against Courier (announcing a Topic
 * Alias Maximum of 2) and Mosquitto (10, the client capped at 2): the least recently used topic
 * gives up its alias; a new connection starts afresh. Checked on the wire by a tap on the client's transport and at a
 * subscriber that must see every topic right.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:net';
import { connect, RefusedError, type Client, type EnhancedAuth, type Message } from '../../packages/client/src/index.js';
import { encode } from '../../src/protocol/encoder.js';
import type { EnhancedAuthenticator } from '../../src/security/types.js';
import { connectWith } from '../../packages/client/src/connect.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { withTimeout } from '../helpers/peers.js';
import { mosquittoGate, startCourier, startMosquitto, unique, type TestServer } from './brokers.js';
import { Tap } from './tap.js';

async function take(sub: AsyncIterable<Message>, n: number): Promise<Message[]> {
  const it = sub[Symbol.asyncIterator]();
  const out: Message[] = [];
  while (out.length < n) out.push((await withTimeout(it.next(), 5000, `message ${out.length + 1} of ${n}`)).value as Message);
  return out;
}

const wire = (tap: Tap, i: number): Array<[string, number | undefined]> => tap.publishes(i).map((p) => [p.topic, p.properties?.topicAlias]);

/** `option`: the client's `topicAliases`; either it or the server's maximum is 2. */
function aliasSuite(name: string, start: () => Promise<TestServer>, gate: { skip: string | false }, option: true | 2, serverMax: number): void {
  void describe(`outbound topic aliases against ${name} (Topic Alias Maximum ${serverMax}, topicAliases: ${option})`, gate, () => {
    let server: TestServer;
    before(async () => {
      server = await start();
    });
    after(async () => {
      await server?.close();
    });

    void it('LRU assignment within the server maximum; the subscriber sees every topic; a reconnect starts afresh', async () => {
      const t = unique('alias');
      const sub = await connect(server.url('tcp'));
      const proxy = new FaultProxy({ port: server.port });
      const tap = new Tap();
      let pub: Client | undefined;
      try {
        const s = await sub.subscribe(`${t}/#`, { qos: 1 });
        pub = await connectWith(tap.open, `mqtt://127.0.0.1:${await proxy.listen()}`, {
          topicAliases: option,
          clientId: unique('ap'),
          clean: false,
          sessionExpiry: 60,
          reconnect: { initialDelay: 5 },
        });
        assert.equal(pub.server.topicAliasMaximum, serverMax);
        const order = ['a', 'b', 'a', 'c', 'b', 'b'];
        for (const [i, x] of order.entries()) await pub.publish(`${t}/${x}`, String(i), { qos: 1 });
        assert.deepEqual(wire(tap, 0), [
          [`${t}/a`, 1],
          [`${t}/b`, 2],
          ['', 1],
          [`${t}/c`, 2], // b was the least recently used: its alias goes to c
          [`${t}/b`, 1], // then a was
          ['', 1],
        ]);
        const got = await take(s, order.length);
        assert.deepEqual(
          got.map((m) => [m.topic, m.text()]),
          order.map((x, i) => [`${t}/${x}`, String(i)]),
        );

        const back = new Promise<void>((r) => pub!.on('connect', () => r()));
        proxy.cut();
        await withTimeout(back, 10_000, 'reconnect');
        await pub.publish(`${t}/b`, 'after', { qos: 1 });
        assert.deepEqual(wire(tap, 1), [[`${t}/b`, 1]], 'the first PUBLISH of a connection carries its topic');
        assert.equal((await take(s, 1))[0]!.topic, `${t}/b`);
      } finally {
        await pub?.close();
        await sub.close();
        await proxy.close();
      }
    });

    void it('off by default, and never above the option', async () => {
      const t = unique('noalias');
      for (const [topicAliases, expected] of [
        [undefined, [undefined, undefined]],
        [1, [1, 1]],
      ] as const) {
        const tap = new Tap();
        const c = await connectWith(tap.open, server.url('tcp'), topicAliases === undefined ? {} : { topicAliases });
        try {
          await c.publish(`${t}/x`, '1', { qos: 1 });
          await c.publish(`${t}/y`, '2', { qos: 1 });
          assert.deepEqual(
            tap.publishes(0).map((p) => p.properties?.topicAlias),
            expected,
          );
        } finally {
          await c.close();
        }
      }
    });
  });
}

void describe('SUBSCRIBE and DISCONNECT properties (courier sub -D subscribe|disconnect ...)', () => {
  void it('user properties on SUBSCRIBE; user properties, reason string and session expiry on DISCONNECT', async () => {
    const server = await startCourier();
    const tap = new Tap();
    try {
      const c = await connectWith(tap.open, server.url('tcp'), { sessionExpiry: 60 });
      await c.subscribe('props/#', { qos: 1, userProperties: [['k', 'v']] });
      await c.close({ userProperties: [['bye', '1']], reasonString: 'done', sessionExpiry: 0 });
      const sent = tap.connections[0]!;
      const sub = sent.find((p) => p.type === 'subscribe');
      assert.deepEqual(sub?.properties?.userProperties, [['k', 'v']]);
      const bye = sent.find((p) => p.type === 'disconnect');
      assert.deepEqual(bye?.properties, { userProperties: [['bye', '1']], reasonString: 'done', sessionExpiryInterval: 0 });
    } finally {
      await server.close();
    }
  });
});

aliasSuite('courier', () => startCourier({ mqtt: { topicAliasMaximum: 2 } }), { skip: false }, true, 2);
aliasSuite('mosquitto', () => startMosquitto(), mosquittoGate(), 2, 10);

// ---------------------------------------------------------------------------------------------
// Enhanced authentication

const SECRET = 'client-test-secret';
const hmac = (key: string, nonce: Uint8Array): Buffer => createHmac('sha256', key).update(nonce).digest();

/** The server's side: a nonce in AUTH 0x18, then HMAC(secret, nonce) expected back; "ok" or "again" at the end. */
const challenge: EnhancedAuthenticator = (req) => {
  let nonce: Buffer | undefined;
  return {
    step(data) {
      if (nonce === undefined) {
        nonce = randomBytes(16);
        return { continue: true, data: nonce };
      }
      return data !== undefined && data.equals(hmac(SECRET, nonce))
        ? { continue: false, result: { ok: true }, data: Buffer.from(req.reauthenticate ? 'again' : 'ok') }
        : { continue: false, result: { ok: false, reasonCode: 0x87 } };
    },
  };
};

/** The client's side, with a secret that can be changed between exchanges. */
function clientAuth(): EnhancedAuth & { secret: string; finals: string[]; steps: number } {
  const a = {
    method: 'HMAC-TEST',
    secret: SECRET,
    finals: [] as string[],
    steps: 0,
    step: (nonce: Uint8Array | undefined) => {
      a.steps++;
      return hmac(a.secret, nonce ?? new Uint8Array());
    },
    done: (data: Uint8Array | undefined) => void a.finals.push(Buffer.from(data ?? []).toString()),
  };
  return a;
}

void describe('enhanced authentication against Courier', () => {
  let server: TestServer;
  before(async () => {
    server = await startCourier({ enhancedAuth: { 'HMAC-TEST': challenge } });
  });
  after(async () => {
    await server?.close();
  });

  void it('a challenge/response at CONNECT, then reauthenticate() (AUTH 0x19) succeeds on the live connection', async () => {
    const auth = clientAuth();
    const c = await connect(server.url('tcp'), { auth });
    try {
      assert.equal(auth.steps, 1);
      assert.deepEqual(auth.finals, ['ok']);
      await withTimeout(c.reauthenticate(), 5000, 're-authentication');
      assert.equal(auth.steps, 2);
      assert.deepEqual(auth.finals, ['ok', 'again']);
      assert.equal(c.state, 'connected');
      assert.ok((await c.publish('auth/t', 'x', { qos: 1 })).reasonCode < 0x80);
    } finally {
      await c.close();
    }
  });

  void it('a wrong answer is refused (0x87 at CONNECT; at re-authentication the server disconnects and the client ends)', async () => {
    const bad = clientAuth();
    bad.secret = 'wrong';
    await assert.rejects(connect(server.url('tcp'), { auth: bad, reconnect: false }), (e: unknown) => e instanceof RefusedError && e.reasonCode === 0x87);

    const auth = clientAuth();
    const c = await connect(server.url('tcp'), { auth, reconnect: { initialDelay: 10 } });
    try {
      auth.secret = 'changed';
      const closed = new Promise<void>((r) => c.on('close', () => r()));
      await assert.rejects(withTimeout(c.reauthenticate(), 5000, 're-authentication'), (e: unknown) => e instanceof RefusedError && e.reasonCode === 0x87);
      await withTimeout(closed, 5000, 'the client ends (not authorized is not retried)');
    } finally {
      await c.close();
    }
  });

  void it('an unknown method is refused with 0x8C', async () => {
    await assert.rejects(
      connect(server.url('tcp'), { auth: { method: 'NOPE', step: () => '' }, reconnect: false }),
      (e: unknown) => e instanceof RefusedError && e.reasonCode === 0x8c,
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Redirects

/** Answers every CONNECT with a CONNACK `code` pointing at `reference`, then closes. */
async function redirector(code: number, reference: string): Promise<{ port: number; connects: () => number; close: () => Promise<void> }> {
  let connects = 0;
  const srv: Server = createServer((s) => {
    s.once('data', () => {
      connects++;
      s.end(encode({ type: 'connack', sessionPresent: false, reasonCode: code, properties: { serverReference: reference } }, 5));
    });
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  return { port, connects: () => connects, close: () => new Promise((r) => srv.close(() => r())) };
}

void describe('redirects (CONNACK 0x9C / 0x9D with a Server Reference)', () => {
  let server: TestServer;
  before(async () => {
    server = await startCourier();
  });
  after(async () => {
    await server?.close();
  });

  void it('not followed by default: the refusal tells where', async () => {
    const r = await redirector(0x9d, `127.0.0.1:${server.port}`);
    try {
      await assert.rejects(
        connect(`mqtt://127.0.0.1:${r.port}`, { reconnect: false }),
        (e: unknown) => e instanceof RefusedError && e.reasonCode === 0x9d && e.serverReference === `127.0.0.1:${server.port}`,
      );
    } finally {
      await r.close();
    }
  });

  void it('0x9D (server moved) followed: this and every later connection go to the new server', async () => {
    const r = await redirector(0x9d, `127.0.0.1:${server.port}`);
    const proxy = new FaultProxy({ port: r.port });
    const c = await connect(`mqtt://127.0.0.1:${await proxy.listen()}`, { followRedirects: true, reconnect: { initialDelay: 5 } });
    try {
      assert.equal(c.target.port, String(server.port));
      assert.ok((await c.publish('redir/t', 'x', { qos: 1 })).reasonCode < 0x80);
      const back = new Promise<void>((res) => c.on('connect', () => res()));
      await server.close(); // the moved-to server goes away and comes back: nothing asks the old one again
      server = await startCourierOn(server.port);
      await withTimeout(back, 10_000, 'reconnect');
      assert.equal(r.connects(), 1);
    } finally {
      await c.close();
      await proxy.close();
      await r.close();
    }
  });

  void it('0x9C (use another server) followed for that attempt; a chain longer than the hop limit is refused', async () => {
    const r = await redirector(0x9c, `127.0.0.1:${server.port}`);
    const c = await connect(`mqtt://127.0.0.1:${r.port}`, { followRedirects: 1, reconnect: false });
    try {
      assert.equal(c.target.port, String(server.port));
    } finally {
      await c.close();
    }
    // A redirector pointing at itself: one hop allowed, so the second refusal is the answer.
    const loop = await redirector(0x9c, 'placeholder');
    const self = await redirector(0x9c, `127.0.0.1:${loop.port}`);
    try {
      await assert.rejects(
        connect(`mqtt://127.0.0.1:${self.port}`, { followRedirects: 1, reconnect: false }),
        (e: unknown) => e instanceof RefusedError && e.reasonCode === 0x9c,
      );
    } finally {
      await loop.close();
      await self.close();
      await r.close();
    }
  });
});

async function startCourierOn(port: number): Promise<TestServer> {
  return startCourier({ listeners: [{ type: 'tcp', host: '127.0.0.1', port }] });
}
