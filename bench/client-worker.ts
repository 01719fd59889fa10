/**
 * One measurement for bench/client.ts: a subscriber and a publisher of one library (`courier` =
 * @courier/client from source, `mqttjs` = MQTT.js, `baseline` = an earlier build of
 * @courier/client given by its path in COURIER_CLIENT_BASELINE) in this process, N messages of S
 * bytes at one QoS, at most W published but not yet received. Prints one JSON line {msgsPerSec, cpuMs}.
 *
 *   node --import tsx bench/client-worker.ts courier|mqttjs|baseline PORT QOS N SIZE WINDOW
 */
import mqtt from 'mqtt';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { connect as connectSource } from '../packages/client/src/index.js';

const [lib, portArg, qosArg, nArg, sizeArg, windowArg] = process.argv.slice(2);
const port = Number(portArg);
const qos = Number(qosArg) as 0 | 1 | 2;
const n = Number(nArg);
const size = Number(sizeArg);
const window = Number(windowArg);
const url = `mqtt://127.0.0.1:${port}`;
const topic = `cb/${process.pid}`;
const payload = new Uint8Array(size).fill(0x61);

let received = 0;
let lastProgress = 0;
let wake: (() => void) | undefined;
let done!: () => void;
const finished = new Promise<void>((r) => (done = r));
const onMessage = (): void => {
  received++;
  lastProgress = performance.now();
  if (received === n) done();
  const w = wake;
  wake = undefined;
  w?.();
};

interface Publisher {
  publish(i: number): Promise<unknown>;
  close(): Promise<void>;
}

async function setup(): Promise<Publisher> {
  if (lib === 'courier' || lib === 'baseline') {
    const connect: typeof connectSource =
      lib === 'courier'
        ? connectSource
        : ((await import(pathToFileURL(process.env.COURIER_CLIENT_BASELINE ?? '').href)) as { connect: typeof connectSource }).connect;
    const sub = await connect(url, { protocolVersion: 5 });
    await sub.subscribe(topic, { qos, handler: onMessage });
    const pub = await connect(url, { protocolVersion: 5 });
    return { publish: () => pub.publish(topic, payload, { qos }), close: async () => void (await Promise.all([sub.close(), pub.close()])) };
  }
  const sub = await mqtt.connectAsync(url, { protocolVersion: 5, reconnectPeriod: 0 });
  sub.on('message', onMessage);
  await sub.subscribeAsync(topic, { qos });
  const pub = await mqtt.connectAsync(url, { protocolVersion: 5, reconnectPeriod: 0 });
  // MQTT.js waits for 'drain' once per publish while its socket is full: with a window over 1000,
  // Node warns about the listeners on every run. Only the warning goes.
  pub.stream.setMaxListeners(0);
  const buf = Buffer.from(payload);
  return { publish: () => pub.publishAsync(topic, buf, { qos }), close: async () => void (await Promise.all([sub.endAsync(), pub.endAsync()])) };
}

const p = await setup();
const cpu0 = process.cpuUsage();
const t0 = performance.now();
lastProgress = t0;
// A run that stops making progress for 10 s (a broker dropping what a client sends past its
// Receive Maximum, say) ends with `stalled` and what arrived by then.
let stalled = false;
const watchdog = setInterval(() => {
  if (performance.now() - lastProgress > 10_000) {
    stalled = true;
    done();
    wake?.();
  }
}, 1000);
for (let i = 0; i < n; i++) {
  void p.publish(i).catch(() => undefined);
  while (i + 1 - received > window && !stalled) await new Promise<void>((r) => (wake = r));
  if (stalled) break;
}
await finished;
clearInterval(watchdog);
const seconds = (stalled ? lastProgress - t0 : performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
process.stdout.write(
  `${JSON.stringify({ lib, qos, msgsPerSec: Math.round(received / seconds), cpuUsPerMsg: Number(((cpu.user + cpu.system) / Math.max(1, received)).toFixed(2)), received, stalled })}\n`,
);
if (stalled) process.exit(0); // the stuck client may never close
await p.close();
