/**
 * Courier launcher for the benchmark. Loads the built library (dist/index.js, what users run)
 * unless COURIER_FROM=src, plain TCP on 127.0.0.1, no WebSocket listener, in-memory store.
 * Prints `READY <port>` once listening. Exits on SIGTERM or when stdin closes.
 *
 * argv: [port] [store]   store: "memory" (default) or "durable" (LMDB in a temporary data
 * directory, durability "commit").
 *
 * BENCH_COURIER_BRIDGES='[...]' adds bridges (bench/bridge.ts).
 *
 * BENCH_COURIER_ADMIN=1 turns the admin listener on (a free port) and starts admin-scraper.ts
 * beside the broker: GET /metrics every second and one open dashboard stream, to measure what
 * observability costs under load.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { collectGarbageOnSignal, listenHost, settleStartupHeap } from './gc-signal.js';
import { traceIfAsked } from './trace.js';

interface CourierBroker {
  listen(): Promise<{ transport: string; host: string; port: number }[]>;
  close(): Promise<void>;
  readonly admin?: { port: number; token: string | undefined };
}
interface CourierModule {
  createBroker(options: Record<string, unknown>): Promise<CourierBroker>;
}

const port = Number(process.argv[2] ?? 0);
const store = process.argv[3] ?? 'memory';
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const dist = path.join(root, 'dist/index.js');
const fromSrc = process.env.COURIER_FROM === 'src' || !existsSync(dist);
const entry = fromSrc ? path.join(root, 'src/index.ts') : dist;
const mod = (await import(pathToFileURL(entry).href)) as CourierModule;

if (store !== 'memory' && store !== 'durable') {
  process.stderr.write(`courier launcher: unknown store "${store}" (memory or durable)\n`);
  process.exit(2);
}
const dataDir = mkdtempSync(path.join(tmpdir(), 'courier-bench-'));
collectGarbageOnSignal();
traceIfAsked(`courier ${store}`);
const broker = await mod.createBroker({
  host: listenHost(),
  port,
  wsPort: null,
  dataDir,
  persistence: { engine: store === 'durable' ? 'lmdb' : 'memory' },
  ...(process.env.BENCH_COURIER_ADMIN === '1' ? { admin: { port: 0 } } : {}),
  // On 0.0.0.0 (idle scenario over several destination addresses) the listener is not loopback-only.
  ...(listenHost() !== '127.0.0.1' ? { security: { allowAnonymous: true } } : {}),
  // bench/bridge.ts: the bridges to run, as JSON.
  ...(process.env.BENCH_COURIER_BRIDGES === undefined ? {} : { bridges: JSON.parse(process.env.BENCH_COURIER_BRIDGES) as unknown }),
});
const addrs = await broker.listen();
const tcp = addrs.find((a) => a.transport === 'tcp') ?? addrs[0];
if (tcp === undefined) {
  process.stderr.write('courier launcher: listen() returned no address\n');
  process.exit(2);
}
let scraper: ChildProcess | undefined;
if (broker.admin !== undefined) {
  const a = broker.admin;
  // Like Prometheus, the scraper is not the broker: it may run on any CPU (the launcher's affinity is widened).
  const cpus = `0-${Math.max(0, availableParallelism() - 1)}`;
  scraper = spawn(
    'taskset',
    ['-c', cpus, process.execPath, '--import', 'tsx', path.join(root, 'bench/brokers/admin-scraper.ts'), String(a.port), a.token ?? ''],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  await new Promise<void>((resolve, reject) => {
    scraper!.stdout!.once('data', () => resolve());
    scraper!.once('exit', (code) => reject(new Error(`admin scraper exited (${code})`)));
  });
}
settleStartupHeap();
process.stdout.write(`READY ${tcp.port} ${fromSrc ? 'src' : 'dist'}${broker.admin !== undefined ? '+admin' : ''}\n`);

let stopping = false;
function stop(): void {
  if (stopping) return;
  stopping = true;
  scraper?.kill('SIGTERM');
  setTimeout(() => process.exit(0), 2000).unref();
  const exit = (code: number) => (): void => {
    rmSync(dataDir, { recursive: true, force: true });
    process.exit(code);
  };
  broker.close().then(exit(0), exit(1));
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop);
process.stdin.resume();
