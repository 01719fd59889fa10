/**
 * Accepted TCP sockets reading through the process's shared read buffer (transport/shared-reads.ts):
 * every chunk handed on keeps its bytes however many reads of other sockets follow, pausing stops
 * the reads, the end of the stream still ends it, and the TCP listener uses the path on this Node.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net, { type AddressInfo, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { readThroughSharedBuffer, sharedReadsAvailable } from '../../../src/transport/shared-reads.js';
import { createTcpListener } from '../../../src/transport/tcp.js';

/** A server whose accepted sockets read through the shared buffer; `onSocket` attaches listeners before the reads start. */
async function server(onSocket: (s: Socket) => void): Promise<{ port: number; close(): Promise<void> }> {
  const srv = net.createServer({ pauseOnConnect: true }, (s) => {
    assert.equal(readThroughSharedBuffer(s), true);
    onSocket(s);
    s.resume();
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  return {
    port: (srv.address() as AddressInfo).port,
    close: () => new Promise<void>((r) => srv.close(() => r())),
  };
}

async function connect(port: number): Promise<Socket> {
  const c = net.connect({ port, host: '127.0.0.1', noDelay: true });
  await once(c, 'connect');
  return c;
}

/** Bytes whose every position says which client and offset they are (a copy mixed up shows). */
function pattern(client: number, length: number): Buffer {
  const b = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) b[i] = (client * 61 + i * 7) & 0xff;
  return b;
}

void describe('shared reads', () => {
  void it('is available on this Node (if this fails, a Node change removed what the fast read path needs)', () => {
    assert.equal(sharedReadsAvailable, true);
  });

  void it('chunks keep their bytes while other sockets read after them; small reads share slabs, large ones get their own', async () => {
    const kept = new Map<number, Buffer[]>();
    let next = 0;
    let doneResolve!: () => void;
    const done = new Promise<void>((r) => (doneResolve = r));
    const sizes = [1, 7, 100, 1000, 5000, 20_000, 70_000];
    const expected = new Map<number, Buffer>();
    let received = 0;
    const total = sizes.reduce((a, b) => a + b, 0) * 4;
    const srv = await server((s) => {
      const id = next++;
      kept.set(id, []);
      s.on('data', (chunk: Buffer) => {
        kept.get(id)!.push(chunk);
        received += chunk.length;
        if (received === total) doneResolve();
      });
    });
    const clients = await Promise.all([0, 1, 2, 3].map(() => connect(srv.port)));
    try {
      for (let round = 0; round < sizes.length; round++) {
        for (let c = 0; c < clients.length; c++) {
          const part = pattern(c, sizes[round]!);
          const before = expected.get(c) ?? Buffer.alloc(0);
          expected.set(c, Buffer.concat([before, part]));
          clients[c]!.write(part);
        }
        // Interleave: let the server read this round before the next one is written.
        await new Promise((r) => setImmediate(r));
      }
      await done;
      const got = [...kept.values()].map((chunks) => Buffer.concat(chunks));
      // Accept order and client order may differ: match each client's bytes to one socket's.
      for (const [c, want] of expected)
        assert.ok(
          got.some((g) => g.equals(want)),
          `client ${c}'s bytes arrived intact`,
        );
      const all = [...kept.values()].flat();
      assert.ok(
        all.some((ch) => ch.length <= 16 * 1024 && ch.buffer.byteLength === 64 * 1024),
        'small reads are views into a 64 KiB slab',
      );
      assert.ok(
        all.filter((ch) => ch.length > 16 * 1024).every((ch) => ch.buffer.byteLength === ch.length),
        'a read above a quarter of a slab has a buffer of its own',
      );
    } finally {
      for (const c of clients) c.destroy();
      await srv.close();
    }
  });

  void it('pause stops the reads and resume continues them; the peer ending ends the stream', async () => {
    let sock!: Socket;
    const chunks: Buffer[] = [];
    const srv = await server((s) => {
      sock = s;
      s.on('data', (d: Buffer) => chunks.push(d));
    });
    const c = await connect(srv.port);
    c.write('first');
    while (chunks.length === 0) await new Promise((r) => setImmediate(r));
    sock.pause();
    c.write('second');
    c.end();
    // Paused: nothing more is read however long the loop turns (the end is not seen either).
    for (let i = 0; i < 20; i++) await new Promise((r) => setTimeout(r, 5));
    assert.equal(Buffer.concat(chunks).toString(), 'first');
    const ended = once(sock, 'end');
    sock.resume();
    await ended;
    assert.equal(Buffer.concat(chunks).toString(), 'firstsecond');
    await srv.close();
  });

  void it('the TCP listener hands the broker sockets that read through the shared buffer', async () => {
    const chunks: Buffer[] = [];
    let gotData!: () => void;
    const got = new Promise<void>((r) => (gotData = r));
    const listener = createTcpListener({ host: '127.0.0.1', port: 0 }, (stream) => {
      stream.on('data', (d: Buffer) => {
        chunks.push(d);
        gotData();
      });
    });
    const addr = await listener.listen();
    const c = await connect(addr.port);
    c.write(Buffer.from([0x10, 0x00]));
    await got;
    assert.equal(chunks[0]!.buffer.byteLength, 64 * 1024, 'a 2-byte read lies in a shared slab');
    c.destroy();
    await listener.close();
  });
});
