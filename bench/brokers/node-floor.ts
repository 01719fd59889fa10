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

const port = Number(process.argv[2] ?? 0);
const CONNACK = Buffer.from([0x20, 2, 0, 0]);
const PINGRESP = Buffer.from([0xd0, 0]);
const subscribers = new Set<net.Socket>();

function serve(socket: net.Socket): void {
  socket.setNoDelay(true);
  let pending: Buffer | null = null;
  socket.on('data', (chunk: Buffer) => {
    const buf = pending === null ? chunk : Buffer.concat([pending, chunk]);
    pending = null;
    let pos = 0;
    let fwdStart = -1;
    let fwdEnd = -1;
    while (pos + 2 <= buf.length) {
      let len = 0;
      let mul = 1;
      let i = pos + 1;
      let done = false;
      while (i < buf.length && i < pos + 5) {
        const b = buf[i++]!;
        len += (b & 0x7f) * mul;
        mul *= 128;
        if ((b & 0x80) === 0) {
          done = true;
          break;
        }
      }
      if (!done || i + len > buf.length) break;
      const type = buf[pos]! >> 4;
      const end = i + len;
      if (type === 3) {
        // Consecutive PUBLISH frames are forwarded as one slice.
        if (fwdEnd !== pos) fwdStart = pos;
        fwdEnd = end;
      } else if (type === 1) socket.write(CONNACK);
      else if (type === 8) {
        subscribers.add(socket);
        socket.write(Buffer.from([0x90, 3, buf[i]!, buf[i + 1]!, 0]));
      } else if (type === 12) socket.write(PINGRESP);
      else if (type === 14) socket.end();
      pos = end;
    }
    if (fwdStart >= 0) {
      const out = buf.subarray(fwdStart, fwdEnd);
      for (const s of subscribers) s.write(out);
    }
    if (pos < buf.length) pending = Buffer.from(buf.subarray(pos));
  });
  socket.on('error', () => socket.destroy());
  socket.on('close', () => subscribers.delete(socket));
}

const server = net.createServer(serve);
server.listen(port, '127.0.0.1', () => {
  const addr = server.address() as net.AddressInfo;
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
