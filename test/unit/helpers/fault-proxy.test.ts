/** The fault proxy against a tiny echo server: each fault, and heal() undoing it. */
import assert from 'node:assert/strict';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { FaultProxy } from '../../helpers/fault-proxy.js';

/** An echo server that counts what it received and its connections. */
interface Echo {
  server: Server;
  port: number;
  received: number;
  connections: number;
}

let echo: Echo;
const proxies: FaultProxy[] = [];
const sockets: Socket[] = [];
const serverSockets = new Set<Socket>();

before(async () => {
  const e: Echo = { server: createServer(), port: 0, received: 0, connections: 0 };
  e.server.on('connection', (s) => {
    e.connections++;
    serverSockets.add(s);
    s.on('close', () => serverSockets.delete(s));
    s.on('data', (d: Buffer) => {
      e.received += d.length;
      s.write(d);
    });
    s.on('error', () => {});
  });
  await new Promise<void>((resolve) => e.server.listen(0, '127.0.0.1', () => resolve()));
  e.port = (e.server.address() as AddressInfo).port;
  echo = e;
});
after(async () => {
  for (const s of sockets) s.destroy();
  await Promise.all(proxies.map((p) => p.close()));
  for (const s of serverSockets) s.destroy();
  await new Promise<void>((resolve) => echo.server.close(() => resolve()));
});

async function proxy(): Promise<FaultProxy> {
  const p = new FaultProxy({ port: echo.port });
  proxies.push(p);
  await p.listen();
  return p;
}

/** A client socket that collects what it reads; `read(n)` resolves once n bytes arrived in total. */
interface Client {
  socket: Socket;
  data(): string;
  read(n: number, timeoutMs?: number): Promise<string>;
  closed: Promise<{ error: string | undefined }>;
}

function open(port: number): Promise<Client> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    sockets.push(socket);
    let data = '';
    const waiters = new Set<() => void>();
    let error: string | undefined;
    const closed = new Promise<{ error: string | undefined }>((r) => socket.on('close', () => r({ error })));
    socket.on('error', (e: NodeJS.ErrnoException) => {
      error = e.code ?? e.message;
      reject(e);
    });
    socket.on('data', (d: Buffer) => {
      data += d.toString('latin1');
      for (const w of [...waiters]) w();
    });
    socket.on('connect', () =>
      resolve({
        socket,
        data: () => data,
        closed,
        read: (n, timeoutMs = 5000) =>
          new Promise((res, rej) => {
            const check = (): void => {
              if (data.length < n) return;
              clearTimeout(timer);
              waiters.delete(check);
              res(data.slice(0, n));
            };
            const timer = setTimeout(() => {
              waiters.delete(check);
              rej(new Error(`read ${n} bytes: timed out with ${data.length}`));
            }, timeoutMs);
            waiters.add(check);
            check();
          }),
      }),
    );
  });
}

void describe('FaultProxy (echo server)', () => {
  void it('forwards both ways and counts bytes and connections', async () => {
    const p = await proxy();
    const c = await open(p.port);
    c.socket.write('hello');
    assert.equal(await c.read(5), 'hello');
    const s = await p.waitFor((st) => st.bytesToClient === 5);
    assert.equal(s.bytesToTarget, 5);
    assert.equal(s.bytesFromClient, 5);
    assert.equal(s.bytesFromTarget, 5);
    assert.equal(s.liveConnections, 1);
    assert.equal(s.acceptedConnections, 1);
    c.socket.end();
    await c.closed;
    await p.waitFor((st) => st.liveConnections === 0, 5000, 'the connection to go');
  });

  void it('cut() resets current connections (ECONNRESET) and accepts new ones', async () => {
    const p = await proxy();
    const c = await open(p.port);
    c.socket.write('x');
    await c.read(1);
    assert.equal(p.cut(), 1);
    assert.deepEqual(await c.closed, { error: 'ECONNRESET' });
    const d = await open(p.port);
    d.socket.write('again');
    assert.equal(await d.read(5), 'again');
  });

  void it('blackhole() drops bytes both ways and holds new connections; heal() resets the damaged ones only', async () => {
    const p = await proxy();
    const damaged = await open(p.port);
    const intact = await open(p.port);
    await p.waitFor((s) => s.liveConnections === 2 && s.heldConnections === 0);
    const before = { received: echo.received, connections: echo.connections };
    p.blackhole();
    damaged.socket.write('lost');
    const held = await open(p.port);
    held.socket.write('also lost');
    await p.waitFor((s) => s.bytesDropped === 4 + 9 && s.heldConnections === 1);
    assert.equal(echo.received, before.received, 'the target got nothing');
    assert.equal(echo.connections, before.connections, 'the held connection did not reach the target');
    assert.equal(damaged.data(), '');
    await p.heal();
    assert.equal((await damaged.closed).error, 'ECONNRESET');
    assert.equal((await held.closed).error, 'ECONNRESET');
    intact.socket.write('fine');
    assert.equal(await intact.read(4), 'fine');
  });

  void it('blackhole() drops what the target sends too', async () => {
    const talker = createServer();
    const serverSide = new Promise<Socket>((resolve) => talker.once('connection', resolve));
    await new Promise<void>((resolve) => talker.listen(0, '127.0.0.1', () => resolve()));
    const p = new FaultProxy({ port: (talker.address() as AddressInfo).port });
    proxies.push(p);
    await p.listen();
    const c = await open(p.port);
    const s = await serverSide;
    s.on('error', () => {});
    s.write('hi');
    assert.equal(await c.read(2), 'hi');
    p.blackhole();
    s.write('gone');
    await p.waitFor((st) => st.bytesDropped === 4 && st.bytesFromTarget === 6);
    assert.equal(c.data(), 'hi');
    await p.heal();
    assert.equal((await c.closed).error, 'ECONNRESET');
    s.destroy();
    await new Promise<void>((resolve) => talker.close(() => resolve()));
  });

  void it('a connection accepted during blackhole() that sent nothing reaches the target after heal()', async () => {
    const p = await proxy();
    p.blackhole();
    const c = await open(p.port);
    await p.waitFor((s) => s.heldConnections === 1);
    await p.heal();
    await p.waitFor((s) => s.heldConnections === 0);
    c.socket.write('late');
    assert.equal(await c.read(4), 'late');
  });

  void it('latency(ms) delays each direction and keeps order', async () => {
    const p = await proxy();
    const c = await open(p.port);
    p.latency(60);
    const started = Date.now();
    let sent = '';
    for (let i = 0; i < 50; i++) {
      const piece = `${i},`;
      sent += piece;
      c.socket.write(piece);
    }
    assert.equal(await c.read(sent.length), sent);
    assert.ok(Date.now() - started >= 115, `round trip took ${Date.now() - started} ms`);
    p.latency(0);
    c.socket.write('!');
    assert.equal((await c.read(sent.length + 1)).slice(-1), '!');
  });

  void it('pause() buffers and holds new connections; resume() delivers everything in order', async () => {
    const p = await proxy();
    const c = await open(p.port);
    await p.waitFor((s) => s.heldConnections === 0 && s.liveConnections === 1);
    const before = echo.connections;
    p.pause();
    c.socket.write('one ');
    c.socket.write('two');
    const d = await open(p.port);
    d.socket.write('queued');
    await p.waitFor((s) => s.bytesFromClient === 7 + 6 && s.heldConnections === 1);
    assert.equal(p.stats().bytesToTarget, 0);
    assert.equal(echo.connections, before);
    p.resume();
    assert.equal(await c.read(7), 'one two');
    assert.equal(await d.read(6), 'queued');
    assert.equal(p.stats().bytesDropped, 0);
  });

  void it('refuse() refuses new connections (ECONNREFUSED) while current ones go on; heal() listens again on the same port', async () => {
    const p = await proxy();
    const port = p.port;
    const c = await open(port);
    p.refuse();
    await assert.rejects(open(port), { code: 'ECONNREFUSED' });
    c.socket.write('still');
    assert.equal(await c.read(5), 'still');
    await p.heal();
    assert.equal(p.port, port);
    const d = await open(port);
    d.socket.write('back');
    assert.equal(await d.read(4), 'back');
  });

  void it('a target that is down makes clients see a reset', async () => {
    const dead = createServer();
    await new Promise<void>((resolve) => dead.listen(0, '127.0.0.1', () => resolve()));
    const deadPort = (dead.address() as AddressInfo).port;
    await new Promise<void>((resolve) => dead.close(() => resolve()));
    const p = new FaultProxy({ port: deadPort });
    proxies.push(p);
    await p.listen();
    const c = await open(p.port);
    assert.equal((await c.closed).error, 'ECONNRESET');
  });

  void it('close() ends every connection and stops listening', async () => {
    const p = await proxy();
    const c = await open(p.port);
    await p.waitFor((s) => s.liveConnections === 1);
    await p.close();
    await c.closed;
    assert.equal(p.stats().liveConnections, 0);
    await assert.rejects(open(p.port), { code: 'ECONNREFUSED' });
  });
});
