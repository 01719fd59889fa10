/**
 * `courier --workers N` for the tests in this folder: the real CLI (startCourier), a private
 * redis-server from REDIS_SERVER, a short cluster lease; which worker serves a client, read from
 * the worker's "client connected" log line (every worker's lines carry `worker`).
 */
import assert from 'node:assert/strict';
import mqtt, { type IConnackPacket, type MqttClient } from 'mqtt';
import { startCourier, type CourierProcess, type CourierProcessOptions, type LogLine } from '../helpers/courier-process.js';
import type { ProcessGroup } from '../helpers/processes.js';
import { REDIS_SERVER } from '../helpers/redis-server.js';

/** Lease and heartbeat of the workers' cluster nodes in these tests. */
export const TEST_CLUSTER_ENV = { COURIER_CLUSTER__LEASE_MS: '2000', COURIER_CLUSTER__HEARTBEAT_MS: '250' };

/**
 * The primaries started here: their private redis-servers run in a process group of their own
 * (so that Ctrl-C reaches the workers first), so SIGKILLing a primary leaves its Redis running.
 * Every one this test file's primaries logged is stopped when the file's process exits.
 */
const primaries = new Set<CourierProcess>();
process.once('exit', () => {
  for (const p of primaries)
    for (const l of p.logs())
      if (l.msg === 'private Redis started' && typeof l.redisPid === 'number') {
        try {
          process.kill(l.redisPid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
});

export async function startWorkers(group: ProcessGroup, workers: number | 'auto', options: CourierProcessOptions = {}): Promise<CourierProcess> {
  const p = await startCourier(group, {
    ...options,
    args: ['--workers', String(workers), '--redis-server', REDIS_SERVER, ...(options.args ?? [])],
    env: { ...TEST_CLUSTER_ENV, ...options.env },
  });
  primaries.add(p);
  return p;
}

/** The primary's "listening on" line. */
export function listeningLine(p: CourierProcess): LogLine {
  const line = p.logs().find((l) => l.worker === 0 && l.msg.startsWith('listening on'));
  assert.ok(line, 'the primary logged "listening on"');
  return line;
}

/** The worker that logged the next "client connected" line for `clientId` after log index `from`. */
export async function workerOf(p: CourierProcess, clientId: string, from: number): Promise<number> {
  const line = await p.waitForLog(
    (l) => l.msg === 'client connected' && l.clientId === clientId && p.logs().indexOf(l) >= from,
    15_000,
    `"client connected" of ${clientId}`,
  );
  assert.equal(typeof line.worker, 'number', 'the line carries the worker id');
  return line.worker as number;
}

export interface Placed {
  client: MqttClient;
  worker: number;
  sessionPresent: boolean;
}

/** Connects an MQTT.js client and says which worker took it. */
export async function connectPlaced(
  p: CourierProcess,
  clientId: string,
  options: mqtt.IClientOptions = {},
  /** Called before the CONNECT goes out (attach 'message' listeners here: queued messages follow the CONNACK). */
  setup?: (client: MqttClient) => void,
): Promise<Placed> {
  const from = p.logs().length;
  const client = mqtt.connect(p.url, { clientId, protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 10_000, ...options });
  setup?.(client);
  const connack = await new Promise<IConnackPacket>((resolve, reject) => {
    client.once('connect', resolve);
    client.once('error', reject);
  });
  const worker = await workerOf(p, clientId, from);
  return { client, worker, sessionPresent: connack.sessionPresent };
}

/** Most connections connectOn tries before it gives up. */
const PLACEMENT_TRIES = 200;

/**
 * A client on worker `worker`: connects (a fresh client id each try) until one lands there. With
 * `workersBalance: rr` the primary hands connections out in turn (one or two tries); with the
 * shared socket (the default on Linux) the kernel picks the worker, which can be the same one
 * ten or twenty times in a row, so it tries up to PLACEMENT_TRIES times.
 */
export async function connectOn(p: CourierProcess, worker: number, idBase: string, options: mqtt.IClientOptions = {}): Promise<Placed & { clientId: string }> {
  for (let i = 0; i < PLACEMENT_TRIES; i++) {
    const clientId = `${idBase}-${i}`;
    const placed = await connectPlaced(p, clientId, options);
    if (placed.worker === worker) return { ...placed, clientId };
    await placed.client.endAsync(true);
  }
  throw new Error(`no connection of ${idBase} landed on worker ${worker} in ${PLACEMENT_TRIES} tries`);
}

/**
 * Publishes `probe` (QoS 0) on `topic` from `publisher` every 50 ms until every client in
 * `subscribers` has received it: cross-worker routes are replicated asynchronously after SUBACK.
 */
export async function waitForRoutes(publisher: MqttClient, topic: string, subscribers: MqttClient[], timeoutMs = 15_000): Promise<void> {
  const seen = new Set<MqttClient>();
  const listeners = subscribers.map((s) => {
    const f = (t: string): void => {
      if (t === topic) seen.add(s);
    };
    s.on('message', f);
    return () => s.off('message', f);
  });
  const deadline = Date.now() + timeoutMs;
  try {
    while (seen.size < subscribers.length) {
      if (Date.now() > deadline) throw new Error(`routes to ${subscribers.length - seen.size} subscriber(s) not seen within ${timeoutMs} ms`);
      publisher.publish(topic, 'probe', { qos: 0 });
      await new Promise<void>((r) => setTimeout(r, 50));
    }
  } finally {
    for (const off of listeners) off();
  }
}
