/**
 * Bridge benchmark: QoS 1 throughput through a bridge to a remote Mosquitto, with the local
 * broker either Courier (its bridge, src/bridge/) or Mosquitto (its `connection` bridge), in one
 * run. The remote Mosquitto is pinned to CPU 1, the local broker to CPU 0; the driver (this
 * process, @courier/client) publishes N QoS 1 messages to the local broker, at most W published
 * and not yet received by its subscriber on the remote, and measures messages per second from
 * the first publish to the last arrival. Rounds alternate the two; the median is reported.
 * The publisher and the bridge use QoS 1; the subscriber on the remote uses `--sub-qos` (default
 * 0, so that the remote Mosquitto's own QoS 1 delivery to it, ~7k msgs/s here, does not cap the
 * measurement below what the bridges do).
 *
 *   npm run bench:bridge -- [--messages 20000] [--size 64] [--window 200] [--rounds 3] [--version 5|4] [--sub-qos 0|1] [--json]
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { connect } from '../packages/client/src/index.js';
import { freePort, killAll, pinnedSpawn, startBroker, type RunningBroker } from './brokers/index.js';
import { median as medianOf } from './stats.js';

const { values } = parseArgs({
  options: {
    messages: { type: 'string', default: '20000' },
    size: { type: 'string', default: '64' },
    window: { type: 'string', default: '200' },
    rounds: { type: 'string', default: '3' },
    version: { type: 'string', default: '5' },
    'sub-qos': { type: 'string', default: '0' },
    json: { type: 'boolean', default: false },
  },
});
const N = Number(values.messages);
const SIZE = Number(values.size);
const WINDOW = Number(values.window);
const ROUNDS = Number(values.rounds);
const VERSION = values.version === '4' ? 4 : 5;
const SUB_QOS = Number(values['sub-qos']) as 0 | 1;

process.on('exit', killAll);
process.on('SIGINT', () => process.exit(130));

async function waitPort(port: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      const c = await connect(`mqtt://127.0.0.1:${port}`, { reconnect: false });
      await c.close();
      return;
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** Mosquitto as the local broker, bridging `bench/#` out at QoS 1 to the remote. */
async function mosquittoBridge(remotePort: number): Promise<RunningBroker> {
  const port = await freePort();
  const dir = mkdtempSync(path.join(tmpdir(), 'courier-bench-bridge-'));
  const conf = path.join(dir, 'mosquitto.conf');
  writeFileSync(
    conf,
    [
      `listener ${port} 127.0.0.1`,
      'allow_anonymous true',
      'persistence false',
      'log_dest stderr',
      'log_type error',
      'connection_messages false',
      'connection bench',
      `address 127.0.0.1:${remotePort}`,
      'topic bench/# out 1',
      `bridge_protocol_version ${VERSION === 5 ? 'mqttv50' : 'mqttv311'}`,
      'cleansession true',
      '',
    ].join('\n'),
  );
  const child = pinnedSpawn('0', 0, '/usr/sbin/mosquitto', ['-c', conf]);
  await waitPort(port);
  return {
    name: 'mosquitto',
    pid: child.pid!,
    host: '127.0.0.1',
    port,
    detail: 'bridge',
    output: () => '',
    stop: async () => {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function courierBridge(remotePort: number): Promise<RunningBroker> {
  process.env.BENCH_COURIER_BRIDGES = JSON.stringify([
    {
      name: 'bench',
      remotes: [`mqtt://127.0.0.1:${remotePort}`],
      protocolVersion: VERSION,
      cleanStart: true,
      topics: [{ filter: 'bench/#', direction: 'out', qos: 1 }],
    },
  ]);
  try {
    return await startBroker('courier', { cpu: '0', nofile: 0 });
  } finally {
    delete process.env.BENCH_COURIER_BRIDGES;
  }
}

/** CPU time (user + system) of a process so far, in µs, from /proc. */
function cpuOf(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  // utime and stime are fields 14 and 15 of stat (11 and 12 after the command), in clock ticks (100 Hz).
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

/** Publishes N QoS 1 messages to the local broker; returns msgs/s as received on the remote and the bridging broker's CPU µs per message. */
async function measure(localPort: number, localPid: number, remotePort: number, round: number): Promise<{ rate: number; cpu: number }> {
  const topic = `bench/${process.pid}/${round}`;
  const payload = new Uint8Array(SIZE).fill(0x61);
  let received = 0;
  let wake: (() => void) | undefined;
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  const sub = await connect(`mqtt://127.0.0.1:${remotePort}`, { protocolVersion: VERSION });
  // The bridge connects on its own schedule: wait until a probe crosses it.
  let probed!: () => void;
  const probe = new Promise<void>((r) => (probed = r));
  await sub.subscribe(`${topic}/#`, {
    qos: SUB_QOS,
    handler: (m) => {
      if (m.topic !== topic) return probed();
      if (++received === N) done();
      const w = wake;
      wake = undefined;
      w?.();
    },
  });
  const pub = await connect(`mqtt://127.0.0.1:${localPort}`, { protocolVersion: VERSION });
  const timer = setInterval(() => void pub.publish(`${topic}/probe`, 'p', { qos: 1 }).catch(() => undefined), 200);
  await pub.publish(`${topic}/probe`, 'p', { qos: 1 });
  await probe;
  clearInterval(timer);
  const cpu0 = cpuOf(localPid);
  const t0 = performance.now();
  for (let i = 0; i < N; i++) {
    void pub.publish(topic, payload, { qos: 1 }).catch(() => undefined);
    while (i + 1 - received > WINDOW) await new Promise<void>((r) => (wake = r));
  }
  await finished;
  const rate = N / ((performance.now() - t0) / 1000);
  const cpu = (cpuOf(localPid) - cpu0) / N;
  await Promise.all([sub.close(), pub.close()]);
  return { rate: Math.round(rate), cpu: Number(cpu.toFixed(1)) };
}

// The upper middle for an even count, as this report always had.
const median = (xs: number[]): number => medianOf(xs, 'upper');

const remote = await startBroker('mosquitto', { cpu: '1', nofile: 0 });
const results: Record<'courier' | 'mosquitto', number[]> = { courier: [], mosquitto: [] };
const cpus: Record<'courier' | 'mosquitto', number[]> = { courier: [], mosquitto: [] };
try {
  for (let round = 0; round < ROUNDS; round++) {
    for (const name of ['courier', 'mosquitto'] as const) {
      const local = name === 'courier' ? await courierBridge(remote.port) : await mosquittoBridge(remote.port);
      try {
        const { rate, cpu } = await measure(local.port, local.pid, remote.port, round);
        results[name].push(rate);
        cpus[name].push(cpu);
        if (!values.json) process.stdout.write(`round ${round + 1}: ${name} → mosquitto bridge: ${rate} msgs/s, ${cpu} µs CPU/msg in the bridging broker\n`);
      } finally {
        await local.stop();
      }
    }
  }
} finally {
  await remote.stop();
}
const c = median(results.courier);
const m = median(results.mosquitto);
const cc = median(cpus.courier);
const mc = median(cpus.mosquitto);
const summary = {
  messages: N,
  size: SIZE,
  window: WINDOW,
  version: VERSION,
  subQos: SUB_QOS,
  courier: c,
  mosquitto: m,
  ratio: Number((c / m).toFixed(2)),
  rounds: results,
};
if (values.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
else
  process.stdout.write(
    `QoS 1, ${N} × ${SIZE} B, window ${WINDOW}, subscriber QoS ${SUB_QOS}, MQTT ${VERSION === 5 ? '5.0' : '3.1.1'} bridge: Courier → Mosquitto ${c} msgs/s, Mosquitto → Mosquitto ${m} msgs/s (median of ${ROUNDS}): ${(c / m).toFixed(2)}×; CPU per message in the bridging broker: Courier ${cc} µs, Mosquitto ${mc} µs\n`,
  );
