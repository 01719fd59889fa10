/**
 * Aedes launcher for the benchmark: in-memory persistence (the default), plain TCP on
 * 127.0.0.1. Prints `READY <port>` once listening. Exits on SIGTERM or when stdin closes.
 */
import net from 'node:net';
import { Aedes } from 'aedes';

const port = Number(process.argv[2] ?? 0);
const aedes = await Aedes.createBroker();
const server = net.createServer(aedes.handle);
server.listen(port, '127.0.0.1', () => {
  const addr = server.address() as net.AddressInfo;
  process.stdout.write(`READY ${addr.port}\n`);
});

let stopping = false;
function stop(): void {
  if (stopping) return;
  stopping = true;
  setTimeout(() => process.exit(0), 2000).unref();
  server.close();
  aedes.close(() => process.exit(0));
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop);
process.stdin.resume();
