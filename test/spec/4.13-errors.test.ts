/**
 * MQTT 5.0 §4.13 / 3.1.1 §4.8 handling errors, against a live broker: malformed bytes, bad flags,
 * an oversize Remaining Length, a connection that ends mid-packet, garbage instead of CONNECT.
 * Each case must close only the offending connection (5.0: DISCONNECT with the reason code
 * first) while a bystander client of the same version keeps publishing and receiving, which a
 * QoS 1 round trip proves after every case.
 */
import assert from 'node:assert/strict';
import { withTimeout } from '../helpers/peers.js';
import { once } from 'node:events';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { after, afterEach, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import type { ProtocolVersion } from '../../src/protocol/constants.js';
import { encode } from '../../src/protocol/encoder.js';
import type { PublishPacket } from '../../src/protocol/packets.js';
import { attachMqttWebSocket, closeWebSocketServer } from '../../src/transport/ws.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { RawClient } from '../helpers/raw-client.js';
import { brokerEvent, connect, connectFull, destroyAll, track } from '../helpers/spec.js';

const MAX_PACKET = 1024;
/** The broker's close grace (CLOSE_GRACE_MS in src/core/connection.ts). */
const CLOSE_GRACE_MS = 2_000;
const KiB = 1024;
const MiB = 1024 * KiB;
/** What a closing connection may still read after the decision: Node's readable buffer and one read, with room to spare. */
const READ_AFTER_BOUND = 256 * KiB;
/** How much a flooding client writes at most (the old behaviour read all of it within the grace). */
const FLOOD_LIMIT = 64 * MiB;

/** Writes junk as fast as the socket takes it, up to FLOOD_LIMIT, until it closes. */
function flood(socket: Socket, chunk = Buffer.alloc(64 * KiB, 0x61)): void {
  let written = 0;
  const pump = (): void => {
    while (!socket.destroyed && !socket.writableEnded && written < FLOOD_LIMIT) {
      written += chunk.length;
      if (!socket.write(chunk)) {
        socket.once('drain', pump);
        return;
      }
    }
  };
  pump();
}

let pid = 0;
const nextPid = (): number => (pid = (pid % 0xffff) + 1);

/** The broker closes `c`; a 5.0 client first gets a DISCONNECT with `code`, a 3.1.1 one nothing. */
async function expectClosed(c: RawClient, version: ProtocolVersion, code: number): Promise<void> {
  if (version === 5) {
    const d = await c.next('disconnect');
    assert.equal(d.reasonCode, code, `DISCONNECT reason 0x${(d.reasonCode ?? 0).toString(16)}`);
  }
  await c.closed();
  assert.deepEqual(c.pending, [], 'nothing else was sent');
}

afterEach(() => {
  destroyAll();
});

for (const version of [4, 5] as const) {
  const v5 = version === 5;
  const CLOSE = v5 ? '[MQTT-4.13.1-1]' : '[MQTT-4.8.0-1]';

  void describe(`§4.13 errors over a live broker (MQTT ${v5 ? '5.0' : '3.1.1'})`, () => {
    let b: TestBroker;
    let bystander: RawClient;
    let rounds = 0;
    /** A TCP front that hands its sockets to the broker (broker.handle), so a test can see the server side of a connection. */
    let front: Server;
    const fronted = new Map<number, Socket>();

    before(async () => {
      b = await startBroker({ mqtt: { maxPacketSize: MAX_PACKET } });
      front = createServer((socket) => {
        fronted.set(socket.remotePort!, socket);
        b.broker.handle(socket, { transport: 'tcp', listener: 'front', remoteAddress: socket.remoteAddress, remotePort: socket.remotePort });
      });
      front.listen(0, '127.0.0.1');
      await once(front, 'listening');
      const r = await RawClient.connect(b.port, { protocolVersion: version, clientId: `bystander-${version}` });
      bystander = r.client;
      bystander.socket.setNoDelay(true);
      bystander.send({
        type: 'subscribe',
        packetId: 1,
        subscriptions: ['echo/bystander', 'err/+/will'].map((topicFilter) => ({
          topicFilter,
          qos: 1 as const,
          noLocal: false,
          retainAsPublished: false,
          retainHandling: 0 as const,
        })),
      });
      assert.deepEqual((await bystander.next('suback')).reasonCodes, [1, 1]);
    });
    after(async () => {
      if (!bystander.isClosed) await bystander.disconnect();
      front.close();
      await b.close();
    });

    /** The bystander publishes QoS 1 to itself: PUBACK and the message come back, then nothing else. */
    async function roundTrip(): Promise<void> {
      assert.equal(bystander.isClosed, false, 'the bystander is still connected');
      const tag = `round ${++rounds}`;
      const packetId = nextPid();
      bystander.send({ type: 'publish', topic: 'echo/bystander', payload: Buffer.from(tag), qos: 1, retain: false, dup: false, packetId });
      const got = await bystander.barrier();
      const ack = got.find((p) => p.type === 'puback');
      const echo = got.find((p): p is PublishPacket => p.type === 'publish');
      assert.equal(got.length, 2, JSON.stringify(got.map((p) => p.type)));
      assert.equal(ack?.type === 'puback' ? ack.packetId : undefined, packetId);
      assert.equal(echo?.payload.toString(), tag);
      bystander.send({ type: 'puback', packetId: echo!.packetId! });
    }

    void it(`[MQTT-3.3.1-4] ${CLOSE} a PUBLISH with both QoS bits set (malformed) closes that connection${v5 ? ' with DISCONNECT 0x81' : ''}; others carry on`, async () => {
      await roundTrip();
      const c = await connect(b.port, version, 'qos3');
      c.sendRaw(`36 ${v5 ? '07' : '06'} 0001 7a 0001 ${v5 ? '00' : ''} 70`);
      await expectClosed(c, version, 0x81);
      await roundTrip();
    });

    void it(`${v5 ? '[MQTT-1.5.4-1] [MQTT-1.5.4-2]' : '[MQTT-1.5.3-1] [MQTT-1.5.3-2]'} ${CLOSE} a topic that is not well-formed UTF-8, or holds U+0000, closes that connection${v5 ? ' with DISCONNECT 0x81' : ''}; others carry on`, async () => {
      const props = v5 ? '00' : '';
      const len = (n: number): string => (n + (v5 ? 1 : 0)).toString(16).padStart(2, '0');
      for (const hex of [
        `30 ${len(5)} 0002 c328 ${props} 70`, // 0xC3 0x28: a lead byte without its continuation
        `30 ${len(6)} 0003 eda080 ${props} 70`, // U+D800, a surrogate
        `30 ${len(6)} 0003 610062 ${props} 70`, // "a\0b"
      ]) {
        const c = await connect(b.port, version, 'utf8');
        c.sendRaw(hex);
        await expectClosed(c, version, 0x81);
        await roundTrip();
      }
    });

    void it(`${v5 ? '[MQTT-2.1.3-1] [MQTT-3.8.1-1]' : '[MQTT-2.2.2-1] [MQTT-2.2.2-2] [MQTT-3.8.1-1]'} ${CLOSE} reserved fixed-header flags set wrong (PINGREQ 0xC1, SUBSCRIBE 0x80) close that connection${v5 ? ' with DISCONNECT 0x81' : ''}; others carry on`, async () => {
      for (const hex of ['c1 00', `80 ${v5 ? '07' : '06'} 0001 ${v5 ? '00' : ''} 0001 7a 00`]) {
        const c = await connect(b.port, version, 'flags');
        c.sendRaw(hex);
        await expectClosed(c, version, 0x81);
        await roundTrip();
      }
    });

    void it(`${CLOSE} a first byte of packet type 0 (reserved) or a Remaining Length longer than 4 bytes closes that connection${v5 ? ' with DISCONNECT 0x81' : ''}; others carry on`, async () => {
      for (const hex of ['00 00', '30 ff ff ff ff 01']) {
        const c = await connect(b.port, version, 'garbage');
        c.sendRaw(hex);
        await expectClosed(c, version, 0x81);
        await roundTrip();
      }
    });

    void it(`${v5 ? '[MQTT-3.2.2-15] [MQTT-4.13.1-1]' : '§2.2.3, §4.8 (an implementation limit; 3.1.1 has no statement for it):'} a packet of exactly mqtt.maxPacketSize is accepted; one byte more, or a Remaining Length claiming more, closes that connection${v5 ? ' with DISCONNECT 0x95' : ''} before the body arrives; others carry on`, async () => {
      const sized = (total: number): Buffer => {
        const overhead = encode(
          { type: 'publish', topic: 'echo/bystander', payload: Buffer.alloc(0), qos: 1, retain: false, dup: false, packetId: 1 },
          version,
        ).length;
        // Remaining Length needs 2 bytes here, one more than for the empty payload.
        const buf = encode(
          { type: 'publish', topic: 'echo/bystander', payload: Buffer.alloc(total - overhead - 1, 0x61), qos: 1, retain: false, dup: false, packetId: 1 },
          version,
        );
        assert.equal(buf.length, total);
        return buf;
      };
      const { client: ok, connack } = await connectFull(b.port, version, 'size-ok');
      if (v5) assert.equal(connack.properties?.maximumPacketSize, MAX_PACKET);
      ok.sendRaw(sized(MAX_PACKET));
      assert.equal((await ok.next('puback')).packetId, 1);
      const fitting = await bystander.next('publish');
      assert.equal(encode(fitting, version).length, MAX_PACKET, 'the whole packet, forwarded');
      bystander.send({ type: 'puback', packetId: fitting.packetId! });
      await roundTrip();

      const over = await connect(b.port, version, 'size-over');
      over.sendRaw(sized(MAX_PACKET + 1));
      await expectClosed(over, version, 0x95);
      await roundTrip();

      const claim = await connect(b.port, version, 'size-claim');
      claim.sendRaw('30 d0 0f'); // Remaining Length 2000, no body: judged on the header alone
      await expectClosed(claim, version, 0x95);
      await roundTrip();
    });

    void it(`${CLOSE} once the broker has decided to close a connection (an oversize Remaining Length, a malformed packet) it reads no more: of a continuous stream sent after the offending bytes at most ${READ_AFTER_BOUND / KiB} KiB is read after the decision${v5 ? ' (the DISCONNECT)' : ''}, and the connection is closed within the grace; others carry on`, async () => {
      const frontPort = (front.address() as AddressInfo).port;
      for (const [what, bytes, code] of [
        ['oversize', '30 ff ff ff 7f', 0x95], // a PUBLISH claiming 268,435,455 bytes
        ['malformed', '36', 0x81], // a PUBLISH with QoS 3 [MQTT-3.3.1-4]
      ] as const) {
        const c = track(await RawClient.open(frontPort, version));
        const clientId = `flood-${what}-${version}`;
        assert.equal((await c.handshake({ clientId })).reasonCode, 0);
        const server = fronted.get(c.socket.localPort!);
        assert.ok(server !== undefined, 'the server side of the connection');
        const serverClosed = once(server, 'close');
        let readAtDecision = -1;
        const decided = brokerEvent(b.broker, 'clientDisconnect', (client) => {
          if (client.clientId !== clientId) return false;
          readAtDecision = server.bytesRead;
          return true;
        });
        c.sendRaw(bytes);
        flood(c.socket);
        await decided;
        const decidedAt = Date.now();
        await expectClosed(c, version, code);
        await serverClosed;
        const closedAfter = Date.now() - decidedAt;
        const readAfter = server.bytesRead - readAtDecision;
        assert.ok(readAfter <= READ_AFTER_BOUND, `${what}: ${(readAfter / KiB).toFixed(0)} KiB read after the decision`);
        assert.ok(closedAfter <= CLOSE_GRACE_MS + 1_000, `${what}: closed ${closedAfter} ms after the decision`);
        await roundTrip();
      }
    });

    void it(`[MQTT-3.14.4-1] after the client's DISCONNECT the broker reads at most ${READ_AFTER_BOUND / KiB} KiB of a continuous stream the client keeps sending, and closes within the grace; others carry on`, async () => {
      const frontPort = (front.address() as AddressInfo).port;
      const c = track(await RawClient.open(frontPort, version));
      const clientId = `flood-after-disconnect-${version}`;
      assert.equal((await c.handshake({ clientId })).reasonCode, 0);
      const server = fronted.get(c.socket.localPort!);
      assert.ok(server !== undefined, 'the server side of the connection');
      const serverClosed = once(server, 'close');
      let readAtDecision = -1;
      const ended = brokerEvent(b.broker, 'clientDisconnect', (client) => {
        if (client.clientId !== clientId) return false;
        readAtDecision = server.bytesRead;
        return true;
      });
      // A hostile client ignores the broker's FIN and keeps writing.
      c.socket.allowHalfOpen = true;
      c.sendRaw('e0 00'); // DISCONNECT
      // Well-formed packets (PINGREQ), so nothing but the decision can stop the reading.
      flood(c.socket, Buffer.from('c000'.repeat(32 * KiB), 'hex'));
      await ended;
      const endedAt = Date.now();
      await withTimeout(serverClosed, CLOSE_GRACE_MS + 3_000, 'the broker closing the connection after DISCONNECT');
      const readAfter = server.bytesRead - readAtDecision;
      assert.ok(readAfter <= READ_AFTER_BOUND, `${(readAfter / KiB).toFixed(0)} KiB read after DISCONNECT`);
      assert.ok(Date.now() - endedAt <= CLOSE_GRACE_MS + 1_000, 'closed within the grace');
      await roundTrip();
    });

    void it(`${CLOSE} over WebSocket too: after an oversize Remaining Length the broker reads at most ${READ_AFTER_BOUND / KiB} KiB more of a continuous stream of WebSocket messages, and closes within the grace; others carry on`, async () => {
      // The broker's own WebSocket plumbing on a server of the test's, so the test sees the socket under it.
      const http = createHttpServer();
      let server: Socket | undefined;
      const wss = attachMqttWebSocket(http, { path: '/mqtt', maxPayload: MAX_PACKET + 8 }, (stream, req) => {
        server = req.socket as Socket;
        b.broker.handle(stream, { transport: 'ws', listener: 'ws-front', remoteAddress: req.socket.remoteAddress, remotePort: req.socket.remotePort });
      });
      http.listen(0, '127.0.0.1');
      await once(http, 'listening');
      const ws = new WebSocket(`ws://127.0.0.1:${(http.address() as AddressInfo).port}/mqtt`, 'mqtt');
      try {
        await once(ws, 'open');
        const clientId = `ws-flood-${version}`;
        ws.send(encode({ type: 'connect', protocolName: 'MQTT', protocolVersion: version, clean: true, keepAlive: 0, clientId }, version));
        const [connack] = (await once(ws, 'message')) as [Buffer];
        assert.equal(connack[0], 0x20);
        const received: Buffer[] = [];
        ws.on('message', (m: Buffer) => received.push(m));
        const socket = server!;
        let readAtDecision = -1;
        const decided = brokerEvent(b.broker, 'clientDisconnect', (client) => {
          if (client.clientId !== clientId) return false;
          readAtDecision = socket.bytesRead;
          return true;
        });
        const serverClosed = once(socket, 'close');
        ws.send(Buffer.from('30ffffff7f', 'hex')); // a PUBLISH claiming 268,435,455 bytes
        const chunk = Buffer.alloc(KiB, 0x61);
        let sent = 0;
        const pump = (): void => {
          if (ws.readyState !== WebSocket.OPEN || sent >= FLOOD_LIMIT) return;
          sent += chunk.length;
          ws.send(chunk, (err) => {
            if (err === undefined || err === null) pump();
          });
        };
        for (let i = 0; i < 64; i++) pump();
        await decided;
        const decidedAt = Date.now();
        await serverClosed;
        const closedAfter = Date.now() - decidedAt;
        const readAfter = socket.bytesRead - readAtDecision;
        if (v5) assert.deepEqual([...(received[0] ?? [])].slice(0, 3), [0xe0, received[0]![1], 0x95], 'DISCONNECT 0x95');
        assert.ok(readAfter <= READ_AFTER_BOUND, `${(readAfter / KiB).toFixed(0)} KiB read after the decision`);
        assert.ok(closedAfter <= CLOSE_GRACE_MS + 1_000, `closed ${closedAfter} ms after the decision`);
      } finally {
        ws.terminate();
        await closeWebSocketServer(wss, http);
      }
      await roundTrip();
    });

    void it(`[MQTT-3.1.2-8] a connection that ends in the middle of a packet: the partial packet is dropped, the will is published; others carry on`, async () => {
      const c = await connect(b.port, version, 'trunc', { will: { topic: `err/${version}/will`, payload: Buffer.from('gone'), qos: 1, retain: false } });
      const whole = encode(
        { type: 'publish', topic: 'echo/bystander', payload: Buffer.from('never complete'), qos: 1, retain: false, dup: false, packetId: 9 },
        version,
      );
      c.sendRaw(whole.subarray(0, 12));
      c.socket.end();
      await c.closed();
      const will = await bystander.next('publish');
      assert.deepEqual([will.topic, will.payload.toString()], [`err/${version}/will`, 'gone']);
      bystander.send({ type: 'puback', packetId: will.packetId! });
      assert.deepEqual(await bystander.barrier(), [], 'the partial PUBLISH was not delivered');
      await roundTrip();
    });

    void it(`[MQTT-3.1.0-1] ${CLOSE} bytes other than a CONNECT first (HTTP, a PINGREQ, type 0) close the connection without any answer; others carry on`, async () => {
      for (const bytes of [Buffer.from('GET /mqtt HTTP/1.1\r\nHost: x\r\n\r\n'), Buffer.from([0xc0, 0x00]), Buffer.from([0x00, 0x00])]) {
        const c = await RawClient.open(b.port, version);
        track(c);
        c.sendRaw(bytes);
        await c.closed();
        assert.deepEqual(c.pending, [], 'no CONNACK or anything else');
        await roundTrip();
      }
    });
  });
}
