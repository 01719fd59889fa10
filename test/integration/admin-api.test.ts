/**
 * The admin API: the permission matrix (anonymous / viewer / admin × every endpoint), bad input
 * answered with a clear 4xx and no change, DNS rebinding and CSRF attempts refused, the one-time
 * token, and the operations themselves (kick with 0x98 and session discard, retained delete,
 * publish, paging).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { MqttClient } from 'mqtt';
import { routeTable } from '../../src/admin/api.js';
import { startBroker } from '../helpers/broker.js';
import { basic, http, jsonFrom, loginWithToken, startAdminBroker, type AdminBroker } from '../helpers/admin.js';
import { Inbox, connectClient, endAll } from '../helpers/interop.js';
import { pollUntil } from '../helpers/wait.js';

type Who = 'anonymous' | 'viewer' | 'admin';

interface Case {
  method: string;
  path: string;
  /** The route pattern it exercises (checked against the route table). */
  route: string;
  need: 'none' | 'viewer' | 'admin';
  body?: unknown;
  /** Runs before the admin's call (the admin's call changes state). */
  prepare?: () => Promise<void>;
}

void describe('admin API', () => {
  let b: AdminBroker;
  const clients: MqttClient[] = [];
  let adminCookie: Record<string, string>;
  const viewer = basic('vera', 'viewer-pw');
  const url = (): string => `mqtt://127.0.0.1:${b.port}`;

  before(async () => {
    b = await startAdminBroker({
      users: [
        ['vera', 'viewer', 'viewer-pw'],
        ['ada', 'admin', 'admin-pw'],
      ],
    });
    const r = await http(b.adminPort, 'POST', '/api/v1/login', { headers: jsonFrom(b.origin), body: JSON.stringify({ user: 'ada', password: 'admin-pw' }) });
    assert.equal(r.status, 200, r.text);
    adminCookie = { cookie: String(r.headers['set-cookie']).split(';')[0]! };
    const c = await connectClient(url(), { protocolVersion: 5, clientId: 'matrix-client' });
    clients.push(c);
    await c.subscribeAsync('matrix/#', { qos: 1 });
    b.broker.publish({ topic: 'matrix/retained', payload: 'keep me', retain: true });
  });
  after(async () => {
    await endAll(clients);
    await b.close();
  });

  async function offlineSession(clientId: string): Promise<void> {
    const c = await connectClient(url(), { protocolVersion: 5, clientId, clean: false, properties: { sessionExpiryInterval: 300 } });
    await c.endAsync();
  }

  function headersFor(who: Who, mutating: boolean): Record<string, string> {
    const base = mutating ? jsonFrom(b.origin) : {};
    if (who === 'viewer') return { ...base, ...viewer };
    if (who === 'admin') return { ...base, ...adminCookie };
    return base;
  }

  async function call(who: Who, c: Case): Promise<number> {
    const mutating = c.method !== 'GET';
    if (c.path === '/api/v1/stream') {
      // An event stream: the status line is enough; then hang up.
      return await new Promise<number>((resolve, reject) => {
        void import('node:http').then(({ request }) => {
          const req = request(
            { host: '127.0.0.1', port: b.adminPort, path: c.path, headers: { host: `127.0.0.1:${b.adminPort}`, ...headersFor(who, false) }, agent: false },
            (res) => {
              resolve(res.statusCode ?? 0);
              req.destroy();
            },
          );
          req.on('error', (e) => (req.destroyed ? undefined : reject(e)));
          req.end();
        });
      });
    }
    const r = await http(b.adminPort, c.method, c.path, {
      headers: headersFor(who, mutating),
      ...(c.body === undefined ? {} : { body: JSON.stringify(c.body) }),
    });
    return r.status;
  }

  const enc = encodeURIComponent;
  const cases: Case[] = [
    { method: 'GET', path: '/api/v1/broker', route: '^\\/api\\/v1\\/broker$', need: 'viewer' },
    { method: 'GET', path: '/api/v1/stats', route: '^\\/api\\/v1\\/stats$', need: 'viewer' },
    { method: 'GET', path: '/api/v1/sys', route: '^\\/api\\/v1\\/sys$', need: 'viewer' },
    { method: 'GET', path: '/api/v1/bridges', route: '^\\/api\\/v1\\/bridges$', need: 'viewer' },
    { method: 'GET', path: '/api/v1/metrics/history', route: '^\\/api\\/v1\\/metrics\\/history$', need: 'viewer' },
    { method: 'GET', path: '/api/v1/stream', route: '^\\/api\\/v1\\/stream$', need: 'viewer' },
    { method: 'GET', path: '/api/v1/clients?limit=5', route: '^\\/api\\/v1\\/clients$', need: 'viewer' },
    { method: 'GET', path: '/api/v1/clients/matrix-client', route: '^\\/api\\/v1\\/clients\\/([^/]+)$', need: 'viewer' },
    {
      method: 'DELETE',
      path: '/api/v1/clients/matrix-kick?session=discard',
      route: '^\\/api\\/v1\\/clients\\/([^/]+)$',
      need: 'admin',
      prepare: () => offlineSession('matrix-kick'),
    },
    { method: 'GET', path: '/api/v1/subscriptions', route: '^\\/api\\/v1\\/subscriptions$', need: 'viewer' },
    { method: 'GET', path: '/api/v1/topics', route: '^\\/api\\/v1\\/topics$', need: 'viewer' },
    { method: 'GET', path: '/api/v1/retained', route: '^\\/api\\/v1\\/retained$', need: 'viewer' },
    { method: 'GET', path: `/api/v1/retained/${enc('matrix/retained')}`, route: '^\\/api\\/v1\\/retained\\/(.+)$', need: 'viewer' },
    {
      method: 'DELETE',
      path: `/api/v1/retained/${enc('matrix/doomed')}`,
      route: '^\\/api\\/v1\\/retained\\/(.+)$',
      need: 'admin',
      prepare: () => Promise.resolve(b.broker.publish({ topic: 'matrix/doomed', payload: 'x', retain: true })),
    },
    { method: 'POST', path: '/api/v1/publish', route: '^\\/api\\/v1\\/publish$', need: 'admin', body: { topic: 'matrix/published', payload: 'hi', qos: 1 } },
    { method: 'GET', path: '/api/v1/alarms', route: '^\\/api\\/v1\\/alarms$', need: 'viewer' },
    { method: 'DELETE', path: '/api/v1/alarms', route: '^\\/api\\/v1\\/alarms$', need: 'admin' },
  ];

  void it('covers every route of the API in the matrix below', () => {
    const covered = new Set(cases.map((c) => `${c.method} ${c.route}`));
    for (const r of routeTable()) {
      if (r.need === 'none') continue; // login and logout: tested on their own
      assert.ok(covered.has(`${r.method} ${r.path}`), `no matrix case for ${r.method} ${r.path}`);
    }
  });

  void it('permission matrix: anonymous 401, viewer 200 on reads and 403 on changes, admin 200 everywhere', async () => {
    const rows: string[] = [];
    for (const c of cases) {
      for (const who of ['anonymous', 'viewer', 'admin'] as const) {
        if (who === 'admin') await c.prepare?.();
        const got = await call(who, c);
        const want = who === 'anonymous' ? 401 : who === 'viewer' && c.need === 'admin' ? 403 : 200;
        if (got !== want) rows.push(`${who} ${c.method} ${c.path}: ${got}, want ${want}`);
      }
    }
    assert.deepEqual(rows, []);
  });

  void it('a refused change changes nothing', async () => {
    b.broker.publish({ topic: 'matrix/survivor', payload: 'x', retain: true });
    for (const who of ['anonymous', 'viewer'] as const) {
      await call(who, { method: 'DELETE', path: `/api/v1/retained/${enc('matrix/survivor')}`, route: '', need: 'admin' });
      await call(who, { method: 'DELETE', path: '/api/v1/clients/matrix-client', route: '', need: 'admin' });
    }
    assert.equal((await http(b.adminPort, 'GET', `/api/v1/retained/${enc('matrix/survivor')}`, { headers: viewer })).status, 200);
    const c = (await http(b.adminPort, 'GET', '/api/v1/clients/matrix-client', { headers: viewer })).json<{ state: string }>();
    assert.equal(c.state, 'online');
  });

  void it('/metrics, /healthz and /readyz answer without credentials on a loopback listener', async () => {
    for (const p of ['/metrics', '/healthz', '/readyz']) assert.equal((await http(b.adminPort, 'GET', p)).status, 200, p);
    assert.deepEqual((await http(b.adminPort, 'GET', '/readyz')).json(), { status: 'ok' });
  });

  void it('bad input: clear 4xx with a code and message', async () => {
    const admin = (extra: Record<string, string> = {}): Record<string, string> => ({ ...jsonFrom(b.origin), ...adminCookie, ...extra });
    const expect = async (
      method: string,
      path: string,
      status: number,
      code: string,
      opts: { body?: string | Buffer; headers?: Record<string, string> } = {},
    ) => {
      const r = await http(b.adminPort, method, path, { headers: opts.headers ?? admin(), ...(opts.body === undefined ? {} : { body: opts.body }) });
      assert.equal(r.status, status, `${method} ${path}: ${r.text}`);
      const body = r.json<{ code: string; message: string }>();
      assert.equal(body.code, code);
      assert.ok(body.message.length > 0);
    };
    await expect('GET', '/api/v1/clients/no-such-client', 404, 'not_found');
    await expect('DELETE', '/api/v1/clients/no-such-client', 404, 'not_found');
    await expect('GET', `/api/v1/retained/${enc('no/such/topic')}`, 404, 'not_found');
    await expect('DELETE', `/api/v1/retained/${enc('no/such/topic')}`, 404, 'not_found');
    await expect('POST', '/api/v1/publish', 400, 'bad_json', { body: '{"topic": ' });
    await expect('POST', '/api/v1/publish', 400, 'bad_request', { body: '[1,2]' });
    await expect('POST', '/api/v1/publish', 400, 'bad_request', { body: JSON.stringify({ topic: 'a/#', payload: 'x' }) });
    await expect('POST', '/api/v1/publish', 400, 'bad_request', { body: JSON.stringify({ topic: '$SYS/broker/version', payload: 'x' }) });
    await expect('POST', '/api/v1/publish', 400, 'bad_request', { body: JSON.stringify({ topic: 'a', payload: 'x', qos: 3 }) });
    await expect('POST', '/api/v1/publish', 400, 'bad_request', { body: JSON.stringify({ topic: 'a', payload: 'x', encoding: 'hex' }) });
    await expect('POST', '/api/v1/publish', 415, 'unsupported_media_type', {
      body: 'topic=a',
      headers: admin({ 'content-type': 'application/x-www-form-urlencoded' }),
    });
    await expect('POST', '/api/v1/publish', 413, 'too_large', { body: Buffer.alloc(1024 * 1024, 'a') });
    await expect('GET', '/api/v1/clients?limit=5000', 400, 'bad_request');
    await expect('GET', '/api/v1/clients?limit=abc', 400, 'bad_request');
    await expect('GET', '/api/v1/clients?state=sleepy', 400, 'bad_request');
    await expect('GET', '/api/v1/retained?match=a/%23/b', 400, 'bad_request');
    await expect('DELETE', '/api/v1/clients/matrix-client?session=maybe', 400, 'bad_request');
    await expect('GET', '/api/v1/clients/%E0%A4%A', 400, 'bad_request');
    await expect('GET', '/api/v1/nothing-here', 404, 'not_found');
    await expect('PUT', '/api/v1/broker', 405, 'method_not_allowed', { body: '{}' });
    // Nothing changed: the client is connected, the retained message is there.
    const c = (await http(b.adminPort, 'GET', '/api/v1/clients/matrix-client', { headers: viewer })).json<{ state: string }>();
    assert.equal(c.state, 'online');
    assert.equal((await http(b.adminPort, 'GET', `/api/v1/retained/${enc('matrix/retained')}`, { headers: viewer })).status, 200);
  });

  void it('DNS rebinding: a foreign Host header gets 403 everywhere; localhost and 127.0.0.1 with the port are accepted', async () => {
    for (const path of ['/', '/app.js', '/api/v1/broker', '/metrics', '/healthz']) {
      const r = await http(b.adminPort, 'GET', path, { headers: { host: `attacker.example:${b.adminPort}`, ...viewer } });
      assert.equal(r.status, 403, path);
      assert.equal(r.json<{ code: string }>().code, 'bad_host');
    }
    assert.equal((await http(b.adminPort, 'GET', '/api/v1/broker', { headers: { host: '127.0.0.1', ...viewer } })).status, 403, 'without the port');
    assert.equal((await http(b.adminPort, 'GET', '/api/v1/broker', { headers: { host: `localhost:${b.adminPort}`, ...viewer } })).status, 200);
  });

  void it('CSRF: changes from another Origin, or with the cookie but no Origin, are refused and change nothing', async () => {
    b.broker.publish({ topic: 'matrix/csrf', payload: 'x', retain: true });
    const path = `/api/v1/retained/${enc('matrix/csrf')}`;
    const foreign = await http(b.adminPort, 'DELETE', path, { headers: { ...adminCookie, origin: 'http://attacker.example' } });
    assert.equal(foreign.status, 403);
    assert.equal(foreign.json<{ code: string }>().code, 'bad_origin');
    const none = await http(b.adminPort, 'DELETE', path, { headers: adminCookie });
    assert.equal(none.status, 403);
    const post = await http(b.adminPort, 'POST', '/api/v1/publish', {
      headers: { ...adminCookie, 'content-type': 'text/plain', origin: b.origin },
      body: JSON.stringify({ topic: 'matrix/csrf', payload: '' }),
    });
    assert.equal(post.status, 415, 'a simple (form-like) request is not accepted');
    assert.equal((await http(b.adminPort, 'GET', path, { headers: viewer })).status, 200, 'still there');
    // Reads from a foreign origin (e.g. fetch with credentials) are refused as well.
    assert.equal((await http(b.adminPort, 'GET', '/api/v1/clients', { headers: { ...adminCookie, origin: 'http://attacker.example' } })).status, 403);
  });

  void it('security headers: strict CSP, nosniff, no-referrer, DENY framing; HttpOnly SameSite=Strict cookie; no-store on the API', async () => {
    const page = await http(b.adminPort, 'GET', '/');
    assert.equal(page.status, 200);
    const csp = String(page.headers['content-security-policy']);
    assert.match(csp, /default-src 'self'/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.ok(!csp.includes('unsafe-inline'));
    assert.equal(page.headers['x-content-type-options'], 'nosniff');
    assert.equal(page.headers['referrer-policy'], 'no-referrer');
    assert.ok(!page.text.includes('<script>'), 'no inline script');
    assert.ok(!page.text.includes('style='), 'no inline style');
    const login = await http(b.adminPort, 'POST', '/api/v1/login', {
      headers: jsonFrom(b.origin),
      body: JSON.stringify({ user: 'vera', password: 'viewer-pw' }),
    });
    const cookie = String(login.headers['set-cookie']);
    assert.match(cookie, /HttpOnly/);
    assert.match(cookie, /SameSite=Strict/);
    assert.equal((await http(b.adminPort, 'GET', '/api/v1/broker', { headers: viewer })).headers['cache-control'], 'no-store');
    const wrong = await http(b.adminPort, 'POST', '/api/v1/login', { headers: jsonFrom(b.origin), body: JSON.stringify({ user: 'vera', password: 'nope' }) });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.headers['set-cookie'], undefined);
  });

  void it('kick: a v5 client gets DISCONNECT 0x98; with session=discard its session is gone', async () => {
    const c = await connectClient(url(), { protocolVersion: 5, clientId: 'kick-me', clean: false, properties: { sessionExpiryInterval: 600 } });
    clients.push(c);
    const disconnected = new Promise<number | undefined>((resolve) => c.on('disconnect', (p) => resolve(p.reasonCode)));
    const r = await http(b.adminPort, 'DELETE', '/api/v1/clients/kick-me?session=discard', { headers: { ...adminCookie, origin: b.origin } });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json(), { disconnected: true, discarded: true });
    assert.equal(await disconnected, 0x98);
    assert.equal((await http(b.adminPort, 'GET', '/api/v1/clients/kick-me', { headers: viewer })).status, 404);
  });

  void it('kick without discard keeps a persistent session (offline)', async () => {
    const c = await connectClient(url(), { protocolVersion: 5, clientId: 'kick-keep', clean: false, properties: { sessionExpiryInterval: 600 } });
    clients.push(c);
    const r = await http(b.adminPort, 'DELETE', '/api/v1/clients/kick-keep', { headers: { ...adminCookie, origin: b.origin } });
    assert.deepEqual(r.json(), { disconnected: true, discarded: false });
    const d = await pollUntil(
      async () => {
        const x = (await http(b.adminPort, 'GET', '/api/v1/clients/kick-keep', { headers: viewer })).json<{ state: string }>();
        return x.state === 'offline' ? x : undefined;
      },
      { what: 'offline session' },
    );
    assert.equal(d.state, 'offline');
  });

  void it('publish: a subscriber receives the message published through the API', async () => {
    const sub = await connectClient(url(), { protocolVersion: 5 });
    clients.push(sub);
    const inbox = new Inbox(sub);
    await sub.subscribeAsync('api/publish/#', { qos: 1 });
    const r = await http(b.adminPort, 'POST', '/api/v1/publish', {
      headers: { ...jsonFrom(b.origin), ...adminCookie },
      body: JSON.stringify({ topic: 'api/publish/x', payload: Buffer.from([0, 1, 2, 255]).toString('base64'), encoding: 'base64', qos: 1 }),
    });
    assert.equal(r.status, 200, r.text);
    const m = await inbox.next();
    assert.equal(m.topic, 'api/publish/x');
    assert.equal(m.packet.qos, 1);
    assert.deepEqual([...(m.packet.payload as Buffer)], [0, 1, 2, 255]);
  });

  void it('retained: list, read and delete; a new subscriber then gets nothing', async () => {
    b.broker.publish({ topic: 'ret/one', payload: '{"a":1}', retain: true, qos: 1 });
    b.broker.publish({ topic: 'ret/two', payload: Buffer.from([0xff, 0xfe]), retain: true });
    const list = (await http(b.adminPort, 'GET', '/api/v1/retained?match=ret/%23', { headers: viewer })).json<{
      items: Array<{ topic: string; preview: string | null }>;
    }>();
    assert.deepEqual(
      list.items.map((i) => [i.topic, i.preview]),
      [
        ['ret/one', '{"a":1}'],
        ['ret/two', null],
      ],
    );
    const two = (await http(b.adminPort, 'GET', `/api/v1/retained/${enc('ret/two')}`, { headers: viewer })).json<{ payload: string; encoding: string }>();
    assert.deepEqual(two, { ...two, payload: '//4=', encoding: 'base64' });
    const del = await http(b.adminPort, 'DELETE', `/api/v1/retained/${enc('ret/one')}`, { headers: { ...adminCookie, origin: b.origin } });
    assert.equal(del.status, 200);
    const sub = await connectClient(url(), { protocolVersion: 5 });
    clients.push(sub);
    const got: string[] = [];
    sub.on('message', (t) => got.push(t));
    await sub.subscribeAsync('ret/#');
    await pollUntil(() => got.includes('ret/two'), { what: 'ret/two' });
    assert.deepEqual(got, ['ret/two']);
  });

  void it('clients: search, state filter, cursor pages that stay stable while clients come and go', async () => {
    for (let i = 0; i < 25; i++) await offlineSession(`page-${String(i).padStart(2, '0')}`);
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const q = new URLSearchParams({ search: 'page-', limit: '10', ...(cursor === undefined ? {} : { cursor }) });
      const page = (await http(b.adminPort, 'GET', `/api/v1/clients?${q}`, { headers: viewer })).json<{
        items: Array<{ clientId: string; state: string }>;
        total: number;
        next?: string;
      }>();
      seen.push(...page.items.map((i) => i.clientId));
      assert.ok(page.items.every((i) => i.state === 'offline'));
      cursor = page.next;
      pages++;
      // Churn between pages: one earlier and one later id appear; pages already read are not repeated.
      if (pages === 1) {
        await offlineSession('page-00a');
        await offlineSession('page-99');
      }
    } while (cursor !== undefined);
    assert.equal(new Set(seen).size, seen.length, 'no duplicates');
    for (let i = 0; i < 25; i++) assert.ok(seen.includes(`page-${String(i).padStart(2, '0')}`));
    assert.ok(seen.includes('page-99'), 'a later id appears on a later page');
    const online = (await http(b.adminPort, 'GET', '/api/v1/clients?state=online&search=matrix', { headers: viewer })).json<{
      items: Array<{ clientId: string }>;
    }>();
    assert.deepEqual(
      online.items.map((i) => i.clientId),
      ['matrix-client'],
    );
  });

  void it('subscriptions and topics list what clients subscribed', async () => {
    const subs = (await http(b.adminPort, 'GET', '/api/v1/subscriptions?clientId=matrix-client', { headers: viewer })).json<{
      items: Array<{ filter: string; qos: number }>;
    }>();
    assert.deepEqual(
      subs.items.map((s) => [s.filter, s.qos]),
      [['matrix/#', 1]],
    );
    const topics = (await http(b.adminPort, 'GET', '/api/v1/topics?search=matrix', { headers: viewer })).json<{
      items: Array<{ filter: string; subscribers: number }>;
    }>();
    assert.deepEqual(topics.items, [{ filter: 'matrix/#', subscribers: 1 }]);
  });
});

void describe('admin listener: token and safe defaults', () => {
  void it('the one-time token logs in once, as admin', async () => {
    const b = await startAdminBroker();
    try {
      assert.ok(b.token !== undefined && b.token.length >= 32);
      const cookie = await loginWithToken(b);
      assert.equal((await http(b.adminPort, 'GET', '/api/v1/whoami')).json(), null, 'anonymous: null');
      assert.deepEqual((await http(b.adminPort, 'GET', '/api/v1/whoami', { headers: cookie })).json(), { user: 'token', role: 'admin' });
      const again = await http(b.adminPort, 'POST', '/api/v1/login', { headers: jsonFrom(b.origin), body: JSON.stringify({ token: b.token }) });
      assert.equal(again.status, 401);
      assert.equal(b.broker.admin?.token, undefined);
    } finally {
      await b.close();
    }
  });

  void it('no token when admin users exist; a wrong token is refused', async () => {
    const b = await startAdminBroker({ users: [['ada', 'admin', 'pw']] });
    try {
      assert.equal(b.token, undefined);
      const r = await http(b.adminPort, 'POST', '/api/v1/login', { headers: jsonFrom(b.origin), body: JSON.stringify({ token: 'guess' }) });
      assert.equal(r.status, 401);
    } finally {
      await b.close();
    }
  });

  void it('brute force: after 10 failed logins from one address in a minute, logins answer 429', async () => {
    const b = await startAdminBroker({ users: [['ada', 'admin', 'pw']] });
    try {
      const login = (password: string): Promise<number> =>
        http(b.adminPort, 'POST', '/api/v1/login', { headers: jsonFrom(b.origin), body: JSON.stringify({ user: 'ada', password }) }).then((r) => r.status);
      for (let i = 0; i < 10; i++) assert.equal(await login(`wrong-${i}`), 401);
      assert.equal(await login('pw'), 429, 'even the right password waits');
      assert.equal((await http(b.adminPort, 'GET', '/api/v1/broker', { headers: basic('ada', 'pw') })).status, 429, 'Basic too');
    } finally {
      await b.close();
    }
  });

  void it('publicMetrics false: /metrics, /healthz, /readyz need a viewer credential', async () => {
    const b = await startAdminBroker({ users: [['vera', 'viewer', 'pw']], admin: { publicMetrics: false } });
    try {
      for (const p of ['/metrics', '/healthz', '/readyz']) {
        assert.equal((await http(b.adminPort, 'GET', p)).status, 401, p);
        assert.equal((await http(b.adminPort, 'GET', p, { headers: basic('vera', 'pw') })).status, 200, p);
        assert.equal((await http(b.adminPort, 'GET', p, { headers: basic('vera', 'wrong') })).status, 401, p);
      }
    } finally {
      await b.close();
    }
  });

  void it('a non-loopback bind without TLS is refused unless allowInsecure is set', async () => {
    await assert.rejects(startBroker({ admin: { host: '0.0.0.0', port: 0 } }), /refusing plain HTTP on 0\.0\.0\.0/);
    const b = await startBroker({ admin: { host: '0.0.0.0', port: 0, allowInsecure: true, allowedHosts: ['127.0.0.1'] } });
    try {
      const port = b.broker.admin!.port;
      assert.equal((await http(port, 'GET', '/metrics')).status, 401, 'not loopback: metrics need credentials by default');
    } finally {
      await b.close();
    }
  });

  void it('the library starts no admin listener unless asked', async () => {
    const b = await startBroker();
    try {
      assert.equal(b.broker.admin, undefined);
    } finally {
      await b.close();
    }
  });
});
