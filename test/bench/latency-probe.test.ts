/**
 * The native latency probe (bench/loadgen/latency.c) against a scripted broker: packets reach it
 * in small pieces (split across reads), MQTT 5 CONNACK and PUBLISH carry properties it must skip,
 * some messages are dropped (the gaps it must count), a refused CONNACK must fail it. Built with
 * `cc` like the benchmark builds it; skipped without a C compiler.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildNative } from '../../bench/loadgen/native.js';

const hasCc = spawnSync('cc', ['--version'], { stdio: 'ignore' }).status === 0;
const DROP_EVERY = 50; // the scripted broker drops every PUBLISH whose sequence number is a multiple

interface Seen {
  /** DISCONNECT packets received. */
  disconnects: number;
  forwarded: number;
}

function varint(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}

function packet(first: number, body: number[] | Buffer): Buffer {
  const b = Buffer.from(body);
  return Buffer.concat([Buffer.from([first, ...varint(b.length)]), b]);
}

const str = (s: string): number[] => [s.length >> 8, s.length & 0xff, ...Buffer.from(s)];

/**
 * Writes what is queued for `sock` in pieces of 1–149 bytes, one piece per millisecond at most, a
 * piece waiting until the queue holds it (or for 20 ms): packets reach the probe split across
 * reads, and one read often holds the end of one packet and the start of the next.
 */
function trickle(sock: net.Socket): (b: Buffer) => void {
  let queue = Buffer.alloc(0);
  let n = 0;
  let waited = 0;
  const timer = setInterval(() => {
    if (queue.length === 0 || sock.destroyed) return;
    const size = 1 + ((n * 37) % 149);
    if (queue.length < size && ++waited < 20) return;
    n++;
    waited = 0;
    sock.write(queue.subarray(0, size));
    queue = queue.subarray(size);
  }, 1);
  sock.once('close', () => clearInterval(timer));
  return (b) => (queue = Buffer.concat([queue, b]));
}

/** A broker that knows exactly what the probe does: lat-sub subscribes, lat-pub publishes. */
function scriptedBroker(connackCode: number): Promise<{ server: net.Server; port: number; seen: Seen }> {
  const seen: Seen = { disconnects: 0, forwarded: 0 };
  let toSub: ((b: Buffer) => void) | undefined;
  const server = net.createServer((sock) => {
    sock.setNoDelay(true);
    const send = trickle(sock);
    let level = 4;
    let buf = Buffer.alloc(0);
    sock.on('error', () => undefined);
    sock.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        let len = 0;
        let i = 1;
        let whole = false;
        for (let shift = 0; i < buf.length && !whole; shift += 7) {
          const b = buf[i++]!;
          len |= (b & 0x7f) << shift;
          whole = (b & 0x80) === 0;
        }
        if (!whole || i + len > buf.length) return;
        const type = buf[0]! >> 4;
        const body = buf.subarray(i, i + len);
        buf = buf.subarray(i + len);
        if (type === 1) {
          level = body[6]!;
          const propsLen = level === 5 ? 1 : 0; // the probe sends no CONNECT properties
          const idAt = 10 + propsLen;
          const id = body.subarray(idAt + 2, idAt + 2 + body.readUInt16BE(idAt)).toString();
          if (id === 'lat-sub') toSub = send;
          // MQTT 5: properties the probe must skip (user property, reason string) or honour.
          const props =
            level === 5 ? [0x13, 0x02, 0x58, 0x27, 0x00, 0x10, 0x00, 0x00, 0x26, ...str('k'), ...str('v'), 0x1f, ...str('fine'), 0x21, 0x00, 0x0a] : [];
          send(packet(0x20, [0x00, connackCode, ...(level === 5 ? [...varint(props.length), ...props] : [])]));
        } else if (type === 8) {
          send(packet(0x90, [body[0]!, body[1]!, ...(level === 5 ? [0x00] : []), 0x00]));
        } else if (type === 3) {
          const topicLen = body.readUInt16BE(0);
          const propsAt = 2 + topicLen;
          const payloadAt = propsAt + (level === 5 ? 1 : 0); // the probe sends no properties
          const seq = body.readBigUInt64BE(payloadAt);
          if (seq % BigInt(DROP_EVERY) === 0n) continue;
          seen.forwarded++;
          // Forwarded with a Message Expiry Interval and a User Property the probe must skip.
          const props = level === 5 ? [0x02, 0, 0, 0, 60, 0x26, ...str('a'), ...str('bc')] : [];
          const out = [...body.subarray(0, propsAt), ...(level === 5 ? [...varint(props.length), ...props] : []), ...body.subarray(payloadAt)];
          toSub?.(packet(0x30, out));
        } else if (type === 14) {
          seen.disconnects++;
        }
      }
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as net.AddressInfo).port, seen })));
}

interface Run {
  code: number | null;
  stdout: string[];
  stderr: string;
}

function runProbe(bin: string, args: (string | number)[]): Promise<Run> {
  const child = spawn(bin, args.map(String), { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (err += b.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000); // it gives up by itself after 30 s more than it runs
  return new Promise((resolve) =>
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: out.split('\n').filter((l) => l !== ''), stderr: err });
    }),
  );
}

void describe('bench/loadgen/latency.c', { skip: hasCc ? false : 'no C compiler (cc)' }, () => {
  let dir: string;
  let bin: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'latency-probe-'));
    const built = buildNative(dir, 'latency');
    if ('error' in built) throw new Error(built.error);
    bin = built.bin;
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const level of [4, 5]) {
    void it(`MQTT level ${level}: frames split packets, skips properties, counts gaps, dumps every sample, disconnects`, async () => {
      const { server, port, seen } = await scriptedBroker(0);
      try {
        const dump = join(dir, `dump-${level}.txt`);
        const r = await runProbe(bin, ['127.0.0.1', port, level, 200, 40, 300, 1000, dump]);
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual(r.stdout.slice(0, 2), ['{"window":"start"}', '{"window":"end"}']);
        const report = JSON.parse(r.stdout[2]!) as Record<string, number>;
        assert.equal(r.stdout.length, 3);
        // ~200 messages in the window, every 50th dropped by the broker: 3–5 of them inside it.
        assert.ok(report.sent! >= 150 && report.sent! <= 201, `sent ${report.sent}`);
        assert.ok(report.gaps! >= 3 && report.gaps! <= 5, `gaps ${report.gaps}`);
        assert.ok(Math.abs(report.received! + report.gaps! - report.sent!) <= 3, JSON.stringify(report));
        assert.equal(report.samples, report.received);
        const order = [report.p50_us!, report.p90_us!, report.p99_us!, report.p999_us!, report.max_us!];
        assert.ok(order[0]! > 0 && order.every((v, i) => i === 0 || v >= order[i - 1]!), `percentiles ${order.join(' ')}`);
        assert.ok(report.window_s! > 0.9 && report.window_s! < 1.5, `window ${report.window_s}`);
        const lines = readFileSync(dump, 'utf8').trim().split('\n');
        assert.equal(lines.length, report.samples);
        const lat = lines.map((l) => {
          assert.match(l, /^\d+ \d+\.\d$/);
          return Number(l.split(' ')[1]);
        });
        assert.ok(Math.abs(Math.max(...lat) - report.max_us!) <= 0.1, `dump max ${Math.max(...lat)}, report ${report.max_us}`);
        // Both connections end with DISCONNECT.
        for (let i = 0; i < 100 && seen.disconnects < 2; i++) await new Promise((r) => setTimeout(r, 20));
        assert.equal(seen.disconnects, 2);
      } finally {
        server.close();
      }
    });
  }

  void it('fails with the code of a refused CONNACK', async () => {
    const { server, port } = await scriptedBroker(0x87);
    try {
      const r = await runProbe(bin, ['127.0.0.1', port, 5, 200, 16, 100, 200]);
      assert.equal(r.code, 1);
      assert.deepEqual(r.stdout, []);
      assert.match(r.stderr, /CONNACK refused with code 0x87/);
    } finally {
      server.close();
    }
  });

  void it('rejects bad arguments', async () => {
    const r = await runProbe(bin, ['127.0.0.1', 1, 5, 200, 8, 100, 200]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /bad arguments/);
  });
});
