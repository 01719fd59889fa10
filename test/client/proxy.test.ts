/**
 * The client through a SOCKS5 proxy (`proxy` option, `courier pub --proxy`): a small SOCKS5
 * server written here (RFC 1928 CONNECT by domain name, RFC 1929 user/password) in front of
 * Courier. Messages pass both ways; wrong credentials fail the connection.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { connect as netConnect, createServer, type Server, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { connect, ConnectionError, type Message } from '../../packages/client/src/index.js';
import { withTimeout } from '../helpers/peers.js';
import { startCourier, unique, type TestServer } from './brokers.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** A SOCKS5 server: no authentication, or user/password when `auth` is given. Counts tunnels. */
async function socks5(auth?: { user: string; pass: string }): Promise<{ port: number; tunnels: () => number; close: () => Promise<void> }> {
  let tunnels = 0;
  const sockets = new Set<Socket>();
  const srv: Server = createServer((c) => {
    sockets.add(c);
    c.on('error', () => undefined);
    let buf = Buffer.alloc(0);
    let stage: 'hello' | 'auth' | 'request' = 'hello';
    const onData = (d: Buffer): void => {
      buf = Buffer.concat([buf, d]);
      if (stage === 'hello') {
        if (buf.length < 2 || buf.length < 2 + buf[1]!) return;
        const methods = [...buf.subarray(2, 2 + buf[1]!)];
        buf = buf.subarray(2 + buf[1]!);
        const want = auth === undefined ? 0 : 2;
        if (!methods.includes(want)) return void c.end(Buffer.from([5, 0xff]));
        c.write(Buffer.from([5, want]));
        stage = want === 2 ? 'auth' : 'request';
      }
      if (stage === 'auth') {
        if (buf.length < 2) return;
        const ul = buf[1]!;
        if (buf.length < 3 + ul || buf.length < 3 + ul + buf[2 + ul]!) return;
        const user = buf.subarray(2, 2 + ul).toString();
        const pass = buf.subarray(3 + ul, 3 + ul + buf[2 + ul]!).toString();
        buf = buf.subarray(3 + ul + buf[2 + ul]!);
        if (user !== auth!.user || pass !== auth!.pass) return void c.end(Buffer.from([1, 1]));
        c.write(Buffer.from([1, 0]));
        stage = 'request';
      }
      if (stage === 'request') {
        if (buf.length < 5 || buf[3] !== 3 || buf.length < 7 + buf[4]!) return;
        const host = buf.subarray(5, 5 + buf[4]!).toString();
        const port = buf.readUInt16BE(5 + buf[4]!);
        const rest = buf.subarray(7 + buf[4]!);
        c.off('data', onData);
        const up = netConnect({ host, port }, () => {
          tunnels++;
          c.write(Buffer.from([5, 0, 0, 1, 0, 0, 0, 0, 0, 0]));
          if (rest.length > 0) up.write(rest);
          c.pipe(up);
          up.pipe(c);
        });
        sockets.add(up);
        up.on('error', () => c.destroy());
        c.on('close', () => up.destroy());
      }
    };
    c.on('data', onData);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    port: (srv.address() as { port: number }).port,
    tunnels: () => tunnels,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => srv.close(() => r()));
    },
  };
}

void describe('SOCKS5 proxy', () => {
  let server: TestServer;
  before(async () => {
    server = await startCourier();
  });
  after(async () => {
    await server?.close();
  });

  void it('publish and subscribe through a proxy without and with user/password; wrong credentials fail', async () => {
    const open = await socks5();
    const locked = await socks5({ user: 'u', pass: 'p w' });
    try {
      const t = unique('socks');
      const sub = await connect(`mqtt://localhost:${server.port}`, { proxy: `socks5h://127.0.0.1:${open.port}` });
      const pub = await connect(`mqtt://localhost:${server.port}`, { proxy: `socks5h://u:p%20w@127.0.0.1:${locked.port}` });
      try {
        const s = await sub.subscribe(`${t}/#`, { qos: 1 });
        const it = s[Symbol.asyncIterator]();
        await pub.publish(`${t}/x`, 'tunnelled', { qos: 1 });
        assert.equal(((await withTimeout(it.next(), 5000, 'message')).value as Message).text(), 'tunnelled');
        assert.equal(open.tunnels(), 1);
        assert.equal(locked.tunnels(), 1);
      } finally {
        await sub.close();
        await pub.close();
      }
      await assert.rejects(
        connect(`mqtt://localhost:${server.port}`, { proxy: `socks5h://u:wrong@127.0.0.1:${locked.port}`, reconnect: false }),
        (e: unknown) => e instanceof ConnectionError && /authentication refused/.test(e.message),
      );
      // Spawned, not spawnSync: the proxy runs in this process.
      const cli = spawn(
        process.execPath,
        [
          '--import',
          'tsx',
          'test/fixtures/courier-cli.ts',
          'pub',
          '--proxy',
          `socks5h://127.0.0.1:${open.port}`,
          '-p',
          String(server.port),
          '-t',
          `${t}/cli`,
          '-m',
          'x',
        ],
        { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] },
      );
      let stderr = '';
      cli.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const [code] = (await withTimeout(once(cli, 'exit'), 20_000, 'courier pub --proxy')) as [number | null];
      assert.equal(code, 0, stderr);
      assert.equal(open.tunnels(), 2);
    } finally {
      await open.close();
      await locked.close();
    }
  });
});
