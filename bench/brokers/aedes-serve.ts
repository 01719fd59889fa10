/**
 * What both Aedes launchers share: serve an Aedes broker on plain TCP on 127.0.0.1, print
 * `READY <port>[ <suffix>]` once listening, and exit on SIGTERM/SIGINT or when stdin closes.
 */
import net from 'node:net';
import type { Aedes } from 'aedes';
import { collectGarbageOnSignal, listenHost, settleStartupHeap } from './gc-signal.js';

export function serveAedes(aedes: Aedes, port: number, suffix = ''): void {
  const server = net.createServer(aedes.handle);
  collectGarbageOnSignal();
  server.listen(port, listenHost(), () => {
    const addr = server.address() as net.AddressInfo;
    settleStartupHeap();
    process.stdout.write(`READY ${addr.port}${suffix === '' ? '' : ` ${suffix}`}\n`);
  });
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    setTimeout(() => process.exit(0), 2000).unref();
    server.close();
    aedes.close(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.stdin.on('end', stop);
  process.stdin.resume();
}
