/**
 * Helpers of the bridge tests: a Mosquitto of our own (so a test can kill it and start it again
 * on the same port with the same persistence file), a recording logger, a collector of
 * messages with waits, and a wait for a bridge's state.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createConnection } from 'node:net';
import { connect, type Client, type ClientOptions, type Message, type QoS } from '../../packages/client/src/index.js';
import type { Broker, BridgeStats } from '../../src/index.js';
import type { Logger } from '../../src/options.js';
import { Peers, freePort, missingExecutable, peerGate, type Peer } from '../helpers/peers.js';
import { pollUntil } from '../helpers/wait.js';

export const MOSQUITTO = '/usr/sbin/mosquitto';
export const mosquittoGate = (): { skip: string | false } => peerGate('mosquitto', missingExecutable(MOSQUITTO));

export interface Mosquitto {
  readonly port: number;
  readonly url: string;
  readonly dir: string;
  /** Starts it (again) on the same port and persistence directory. */
  start(): Promise<void>;
  /** Sends `signal` and waits for the process to end. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  close(): Promise<void>;
}

/** Mosquitto on a free loopback port; `extra` config lines are appended (e.g. a password file). */
export async function mosquitto(extra: readonly string[] = []): Promise<Mosquitto> {
  const dir = mkdtempSync(join(tmpdir(), 'courier-bridge-mosquitto-'));
  // Run as root, Mosquitto drops to its own user: it must be able to write its persistence file here.
  chmodSync(dir, 0o777);
  const port = await freePort();
  const conf = join(dir, 'mosquitto.conf');
  writeFileSync(
    conf,
    [
      'per_listener_settings false',
      'allow_anonymous true',
      `listener ${port} 127.0.0.1`,
      'persistence true',
      `persistence_location ${dir}/`,
      'max_queued_messages 100000',
      ...extra,
      '',
    ].join('\n'),
  );
  const peers = new Peers();
  let proc: Peer | undefined;
  const m: Mosquitto = {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    dir,
    start: async () => {
      proc = peers.spawn(MOSQUITTO, ['-c', conf, '-v']);
      await proc.waitFor(new RegExp(`Opening ipv4 listen socket on port ${port}`), { stream: 'stderr' });
      // The line comes before the socket listens: wait until it accepts a connection.
      await pollUntil(
        () =>
          new Promise<boolean>((resolve) => {
            const s = createConnection({ host: '127.0.0.1', port }, () => {
              s.destroy();
              resolve(true);
            });
            s.once('error', () => resolve(false));
          }),
        { what: `mosquitto listening on ${port}` },
      );
    },
    stop: async (signal = 'SIGTERM') => {
      const p = proc;
      proc = undefined;
      if (p === undefined) return;
      p.kill(signal);
      await p.exited();
    },
    close: async () => {
      await peers.killAll();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await m.start();
  return m;
}

export interface LogEntry {
  level: 'info' | 'warn' | 'error' | 'debug';
  msg: string;
  obj: Record<string, unknown>;
}

/** A Logger that keeps every line (and prints them with COURIER_TEST_LOG=1). */
export function recordingLogger(): Logger & { lines: LogEntry[] } {
  const lines: LogEntry[] = [];
  const at =
    (level: LogEntry['level']) =>
    (obj: object, msg?: string): void => {
      lines.push({ level, msg: msg ?? '', obj: obj as Record<string, unknown> });
      if (process.env.COURIER_TEST_LOG === '1') process.stderr.write(`${level} ${msg ?? ''} ${JSON.stringify(obj)}\n`);
    };
  return { lines, info: at('info'), warn: at('warn'), error: at('error'), debug: at('debug') };
}

/** A client that records what it receives on `filter` and waits for counts. */
export class Collector {
  readonly messages: Message[] = [];
  #waiters: Array<() => void> = [];
  client!: Client;

  static async open(url: string, filter: string, qos: QoS, options: ClientOptions = {}): Promise<Collector> {
    const c = new Collector();
    c.client = await connect(url, { reconnect: { initialDelay: 20, maxDelay: 200 }, ...options });
    await c.client.subscribe(filter, {
      qos,
      handler: (m) => {
        c.messages.push(m);
        for (const w of [...c.#waiters]) w();
      },
    });
    return c;
  }

  /** Resolves once `check` holds for what was received; rejects after `ms`. */
  until(check: (messages: readonly Message[]) => boolean, what: string, ms = 15_000): Promise<void> {
    if (check(this.messages)) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== poll);
        reject(
          new Error(
            `timed out waiting for ${what}; got ${this.messages.length}: ${this.messages
              .slice(-5)
              .map((m) => `${m.topic}=${m.text()}`)
              .join(', ')}`,
          ),
        );
      }, ms);
      const poll = () => {
        if (!check(this.messages)) return;
        clearTimeout(timer);
        this.#waiters = this.#waiters.filter((w) => w !== poll);
        resolve();
      };
      this.#waiters.push(poll);
    });
  }

  count(n: number, ms?: number): Promise<void> {
    return this.until((m) => m.length >= n, `${n} messages`, ms);
  }

  texts(): string[] {
    return this.messages.map((m) => `${m.topic}=${m.text()}`);
  }

  close(): Promise<void> {
    return this.client.close();
  }
}

/** Resolves once the broker's bridge `name` is (or is not) connected. */
export function bridgeState(broker: Broker, name: string, connected: boolean, ms = 15_000): Promise<BridgeStats> {
  return new Promise<BridgeStats>((resolve, reject) => {
    const deadline = Date.now() + ms;
    const poll = () => {
      const s = broker.stats().bridges?.find((b) => b.name === name);
      if (s !== undefined && s.connected === connected) return resolve(s);
      if (Date.now() > deadline)
        return reject(new Error(`bridge ${name} not ${connected ? 'connected' : 'disconnected'} after ${ms} ms: ${JSON.stringify(s)}`));
      setTimeout(poll, 10);
    };
    poll();
  });
}
