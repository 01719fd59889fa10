/**
 * The Node floor: not a broker, the least a Node.js process must do to pass the idle and
 * latency scenarios, so that a run shows how much of Courier's cost is Node's own (net.Socket,
 * libuv, V8) and how much is Courier's.
 *
 * It frames MQTT packets from `net` sockets and answers CONNECT with CONNACK, SUBSCRIBE with a
 * SUBACK granting QoS 0, PINGREQ with PINGRESP, and forwards every QoS 0 PUBLISH as received to
 * every subscribed socket, with no topic matching, sessions, validation or limits. The frames
 * of one `data` chunk leave each subscriber in one write. MQTT 3.1.1 only.
 *
 * argv: [port]. Prints `READY <port>` once listening. Exits on SIGTERM or when stdin closes.
 */
import net from 'node:net';
import { PacketReader } from '../loadgen/mqtt.js';
import { collectGarbageOnSignal, listenHost, settleStartupHeap } from './gc-signal.js';
import { traceIfAsked } from './trace.js';

const port = Number(process.argv[2] ?? 0);
const CONNACK = Buffer.from([0x20, 2, 0, 0]);
const PINGRESP = Buffer.from([0xd0, 0]);
const subscribers = new Set<net.Socket>();

function serve(socket: net.Socket): void {
  socket.setNoDelay(true);
  // The run of consecutive PUBLISH frames in the buffer being framed, forwarded as one slice.
  let buf: Buffer | null = null;
  let frameStart = 0;
  let runStart = -1;
  let runEnd = -1;
  const forward = (): void => {
    if (buf === null || runStart < 0) return;
    const out = buf.subarray(runStart, runEnd);
    for (const s of subscribers) s.write(out);
    runStart = -1;
  };
  const reader = new PacketReader((type, _flags, b, start, end) => {
    // The reader frames each buffer from its first byte, packet after packet.
    if (b !== buf) {
      forward();
      buf = b;
      frameStart = 0;
    }
    if (type === 3) {
      if (runStart < 0) runStart = frameStart;
      runEnd = end;
    } else {
      forward();
      if (type === 1) socket.write(CONNACK);
      else if (type === 8) {
        subscribers.add(socket);
        socket.write(Buffer.from([0x90, 3, b[start]!, b[start + 1]!, 0]));
      } else if (type === 12) socket.write(PINGRESP);
      else if (type === 14) socket.end();
    }
    frameStart = end;
  });
  socket.on('data', (chunk: Buffer) => {
    reader.push(chunk);
    forward();
    buf = null;
  });
  socket.on('error', () => socket.destroy());
  socket.on('close', () => subscribers.delete(socket));
}

const server = net.createServer(serve);
collectGarbageOnSignal();
traceIfAsked('node-floor');
server.listen(port, listenHost(), () => {
  const addr = server.address() as net.AddressInfo;
  settleStartupHeap();
  process.stdout.write(`READY ${addr.port}\n`);
});

function stop(): void {
  setTimeout(() => process.exit(0), 500).unref();
  for (const s of subscribers) s.destroy();
  server.close(() => process.exit(0));
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop);
process.stdin.resume();
