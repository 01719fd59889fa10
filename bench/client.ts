/**
 * Client benchmark: @courier/client against MQTT.js 5, in one run, against the same broker
 * (Courier and/or Mosquitto, pinned to CPU 0; each client process pinned to CPU 1). Per QoS and
 * round the two libraries run alternately (bench/client-worker.ts: subscriber and publisher in
 * one process, MQTT 5, N messages, at most W published and not yet received). Reports the
 * median msgs/s per library and the ratio, and the CPU time per message of the client process.
 *
 * On a small shared machine the load drifts between runs, so next to the ratio of the medians it
 * reports the median of the per-round ratios (each round's two runs are back to back) and their
 * range, and how busy the broker was during each library's runs (its CPU time over the run's
 * wall time, from /proc): near 100 % the broker's one CPU, not the client, sets the msgs/s.
 *
 * `--baseline FILE` adds a third library, an earlier build of @courier/client (its dist/index.js,
 * copied next to packages/client so that it finds `ws`): before and after in one run.
 *
 *   npm run bench:client -- [--brokers courier,mosquitto] [--messages 50000] [--size 64] [--window 100] [--rounds 3] [--baseline FILE] [--json]
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import { parseArgs } from 'node:util';
import { killAll, startBroker, type BrokerName } from './brokers/index.js';
import { median as medianOf } from './stats.js';

const { values } = parseArgs({
  options: {
    brokers: { type: 'string', default: 'courier,mosquitto' },
    messages: { type: 'string', default: '50000' },
    size: { type: 'string', default: '64' },
    window: { type: 'string', default: '100' },
    rounds: { type: 'string', default: '3' },
    baseline: { type: 'string' },
    json: { type: 'boolean', default: false },
  },
});

interface Result {
  lib: string;
  qos: number;
  msgsPerSec: number;
  cpuUsPerMsg: number;
  received: number;
  stalled: boolean;
  /** The broker's CPU time over the run's wall time (1 = one CPU all the time). */
  brokerBusy: number;
}

/** CPU time (user + system) of a process so far, in µs, from /proc (clock ticks of 10 ms). */
function cpuOf(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

async function runWorker(lib: string, port: number, pid: number, qos: number): Promise<Result> {
  const cpu0 = cpuOf(pid);
  const r = await spawnWorker(lib, port, qos);
  // The run's measured span: received / rate (the worker's clock), not the process's start-up.
  const wallUs = (r.received / r.msgsPerSec) * 1e6;
  return { ...r, brokerBusy: Number(((cpuOf(pid) - cpu0) / wallUs).toFixed(2)) };
}

function spawnWorker(lib: string, port: number, qos: number): Promise<Omit<Result, 'brokerBusy'>> {
  return new Promise((resolve, reject) => {
    const args = [
      '-c',
      '1',
      process.execPath,
      '--import',
      'tsx',
      'bench/client-worker.ts',
      lib,
      String(port),
      String(qos),
      values.messages,
      values.size,
      values.window,
    ];
    const env = values.baseline === undefined ? process.env : { ...process.env, COURIER_CLIENT_BASELINE: resolvePath(values.baseline) };
    const child = spawn('taskset', args, { stdio: ['ignore', 'pipe', 'inherit'], env });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', (code) => {
      const line = out.trim().split('\n').pop() ?? '';
      if (code !== 0 || line === '') reject(new Error(`${lib} worker exited ${code}: ${out}`));
      else resolve(JSON.parse(line) as Omit<Result, 'brokerBusy'>);
    });
  });
}

// The upper middle for an even count, as this report always had.
const median = (xs: number[]): number => medianOf(xs, 'upper');
const rows: Array<Record<string, string | number>> = [];
process.on('exit', killAll);
for (const name of values.brokers.split(',') as BrokerName[]) {
  const broker = await startBroker(name, { cpu: '0', nofile: 0 });
  try {
    for (const qos of [0, 1, 2]) {
      const libs = values.baseline === undefined ? ['courier', 'mqttjs'] : ['courier', 'mqttjs', 'baseline'];
      const res: Record<string, Result[]> = { courier: [], mqttjs: [], baseline: [] };
      for (let r = 0; r < Number(values.rounds); r++) {
        for (const lib of r % 2 === 0 ? libs : [...libs].reverse()) res[lib]!.push(await runWorker(lib, broker.port, broker.pid, qos));
      }
      const c = median(res.courier!.map((x) => x.msgsPerSec));
      const m = median(res.mqttjs!.map((x) => x.msgsPerSec));
      const paired = res.courier!.map((x, i) => x.msgsPerSec / res.mqttjs![i]!.msgsPerSec);
      const row = {
        broker: name,
        qos,
        courier: c,
        mqttjs: m,
        ratio: Number((c / m).toFixed(2)),
        pairedRatio: Number(median(paired).toFixed(2)),
        pairedMin: Number(Math.min(...paired).toFixed(2)),
        pairedMax: Number(Math.max(...paired).toFixed(2)),
        courierBrokerBusy: median(res.courier!.map((x) => x.brokerBusy)),
        mqttjsBrokerBusy: median(res.mqttjs!.map((x) => x.brokerBusy)),
        courierCpu: median(res.courier!.map((x) => x.cpuUsPerMsg)),
        mqttjsCpu: median(res.mqttjs!.map((x) => x.cpuUsPerMsg)),
        ...(values.baseline === undefined
          ? {}
          : { baseline: median(res.baseline!.map((x) => x.msgsPerSec)), baselineCpu: median(res.baseline!.map((x) => x.cpuUsPerMsg)) }),
      };
      rows.push(row);
      if (!values.json)
        process.stdout.write(
          `${name} QoS ${qos}: @courier/client ${c} msgs/s (${row.courierCpu} µs CPU/msg, broker busy ${row.courierBrokerBusy}), ` +
            `MQTT.js ${m} msgs/s (${row.mqttjsCpu} µs CPU/msg, broker busy ${row.mqttjsBrokerBusy}): ${row.ratio}×, ` +
            `per round ${row.pairedRatio}× (${row.pairedMin}–${row.pairedMax})` +
            (row.baseline === undefined ? '\n' : `; baseline ${row.baseline} msgs/s (${row.baselineCpu} µs CPU/msg)\n`),
        );
    }
  } finally {
    await broker.stop();
  }
}
if (values.json)
  process.stdout.write(
    `${JSON.stringify({ messages: Number(values.messages), size: Number(values.size), window: Number(values.window), rounds: Number(values.rounds), rows })}\n`,
  );
