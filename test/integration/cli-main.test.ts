/**
 * The `courier` command's logic, in process: flags, config errors, --check-config, the startup and
 * shutdown log lines and exit codes, with a stand-in broker (test/integration/cli.test.ts runs the
 * real binary against the real broker).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { main, USAGE, type CliBroker, type CliIO } from '../../src/cli/main.js';
import type { BrokerOptions } from '../../src/options.js';
import type { BoundAddress } from '../../src/transport/types.js';

const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/config/${name}`, import.meta.url));

interface Harness {
  io: Partial<CliIO>;
  out: () => string;
  err: () => string;
  logs: () => Array<Record<string, unknown>>;
  signal: (s: NodeJS.Signals) => void;
  created: BrokerOptions[];
  closed: () => number;
  forced: number[];
  /** Resolves once a log line with this msg (prefix) was written. */
  logged: (msg: string) => Promise<Record<string, unknown>>;
}

function harness(broker: Partial<CliBroker> = {}, addresses: BoundAddress[] = []): Harness {
  let out = '';
  let err = '';
  const lines: Array<Record<string, unknown>> = [];
  const waiters: Array<() => void> = [];
  let handler: ((s: NodeJS.Signals) => void) | undefined;
  const created: BrokerOptions[] = [];
  let closed = 0;
  const forced: number[] = [];
  const h: Harness = {
    io: {
      stdout: { write: (t: string) => (out += t) },
      stderr: { write: (t: string) => (err += t) },
      env: {},
      cwd: fixture('.'),
      logDestination: {
        write: (line: string) => {
          lines.push(JSON.parse(line) as Record<string, unknown>);
          for (const w of waiters.splice(0)) w();
        },
      },
      onSignal: (f) => {
        handler = f;
        return () => (handler = undefined);
      },
      forceExit: (code) => forced.push(code),
      createBroker: (options) => {
        created.push(options);
        return Promise.resolve({
          listen: () => Promise.resolve(addresses),
          close: () => {
            closed += 1;
            return Promise.resolve();
          },
          on: () => undefined,
          ...broker,
        });
      },
    },
    out: () => out,
    err: () => err,
    logs: () => lines,
    signal: (s) => handler?.(s),
    created,
    closed: () => closed,
    forced,
    logged: (msg) =>
      new Promise((resolve) => {
        const check = () => {
          const hit = lines.find((l) => typeof l.msg === 'string' && l.msg.startsWith(msg));
          if (hit) resolve(hit);
          else waiters.push(check);
        };
        check();
      }),
  };
  return h;
}

void describe('courier CLI (in process)', () => {
  void it('--help prints the usage and exits 0', async () => {
    const h = harness();
    assert.equal(await main(['--help'], h.io), 0);
    assert.equal(h.out(), USAGE);
    for (const flag of ['--host', '--port', '--ws-port', '--data-dir', '--config', '--log-level', '--check-config', '--version']) {
      assert.ok(USAGE.includes(flag), flag);
    }
  });

  void it('--version prints the package version', async () => {
    const h = harness();
    assert.equal(await main(['--version'], h.io), 0);
    assert.match(h.out(), /^courier \d+\.\d+\.\d+/);
  });

  const usageErrors: Array<[string[], RegExp]> = [
    [['--bogus'], /^courier: unknown option --bogus \(try --help\)\n$/],
    [['--port'], /^courier: option --port needs a value \(try --help\)\n$/],
    [['serve'], /^courier: unexpected argument "serve" \(try --help\)\n$/],
    [['--port', 'abc'], /^config error: port: must be an integer between 0 and 65535 \(got "abc", from --port\)\n$/],
    [['--log-level', 'loud'], /^config error: log\.level: must be one of .* \(got "loud", from --log-level\)\n$/],
    [['--config', 'nope.yaml'], /^config error: cannot read config file nope\.yaml: no such file\n$/],
    [['--config', 'typo.yaml'], /^config error: mqtt\.maxPaketSize: unknown key \(did you mean "maxPacketSize"\?\) \(from typo\.yaml\)\n$/],
  ];
  for (const [argv, expected] of usageErrors) {
    void it(`${argv.join(' ')} → one line on stderr, exit 2, no broker`, async () => {
      const h = harness();
      assert.equal(await main(argv, h.io), 2);
      assert.match(h.err(), expected);
      assert.equal(h.out(), '');
      assert.equal(h.created.length, 0);
    });
  }

  void it('--check-config prints "config OK" for a valid file', async () => {
    const h = harness();
    assert.equal(await main(['--check-config', 'full.yaml'], h.io), 0);
    assert.equal(h.out(), 'config OK\n');
    assert.equal(h.created.length, 0);
  });

  void it('--check-config prints every error of an invalid file and exits 2', async () => {
    const h = harness();
    h.io.env = { COURIER_PORT: 'x' };
    assert.equal(await main(['--check-config', 'bad-type.yaml'], h.io), 2);
    assert.deepEqual(h.err().trim().split('\n').sort(), [
      'config error: mqtt.maxPacketSize: must be an integer between 1 and 268435460 (got "abc", from bad-type.yaml)',
      'config error: port: must be an integer between 0 and 65535 (got "x", from COURIER_PORT)',
    ]);
  });

  void it('starts the broker with the layered options, logs the listeners, and stops on SIGTERM', async () => {
    const h = harness({}, [
      { transport: 'tcp', host: '127.0.0.1', port: 41883 },
      { transport: 'ws', host: '127.0.0.1', port: 48083 },
    ]);
    h.io.env = { COURIER_WS_PORT: '0', COURIER_MQTT__MAX_PACKET_SIZE: '4096' };
    const exit = main(['--port', '0', '--config', 'listeners.json', '--log-level', 'debug'], h.io).catch((e: unknown) => e);
    // listeners.json has `listeners`: combined with --port that is a config error, not a start.
    assert.equal(await exit, 2);

    const h2 = harness({}, [
      { transport: 'tcp', host: '127.0.0.1', port: 41883 },
      { transport: 'ws', host: '127.0.0.1', port: 48083 },
    ]);
    h2.io.env = { COURIER_WS_PORT: '0', COURIER_MQTT__MAX_PACKET_SIZE: '4096' };
    const running = main(['--port', '0', '--data-dir', '/tmp/x', '--log-level', 'debug', '--ws-path', '/m'], h2.io);
    const line = await h2.logged('listening on ');
    assert.equal(line.level, 'info');
    assert.equal(line.msg, 'listening on mqtt://127.0.0.1:41883, ws://127.0.0.1:48083/m');
    assert.deepEqual(line.listeners, [
      { transport: 'tcp', host: '127.0.0.1', port: 41883, url: 'mqtt://127.0.0.1:41883' },
      { transport: 'ws', host: '127.0.0.1', port: 48083, url: 'ws://127.0.0.1:48083/m' },
    ]);
    assert.equal(h2.created.length, 1);
    const { logger, ...opts } = h2.created[0]!;
    assert.ok(logger, 'the broker gets the CLI logger');
    // The command turns the admin listener on (its defaults: 127.0.0.1:18083) unless admin.port is null.
    assert.deepEqual(opts, { port: 0, wsPort: 0, wsPath: '/m', dataDir: '/tmp/x', mqtt: { maxPacketSize: 4096 }, admin: {} });

    h2.signal('SIGTERM');
    assert.equal(await running, 0);
    assert.equal(h2.closed(), 1);
    const msgs = h2.logs().map((l) => l.msg);
    assert.deepEqual(msgs.slice(-2), ['shutting down', 'stopped']);
    assert.equal(h2.logs().at(-1)?.signal, 'SIGTERM');
  });

  void it('a second signal during shutdown forces the exit with 128 + signal number', async () => {
    let finishClose: (() => void) | undefined;
    const h = harness({ close: () => new Promise<void>((resolve) => (finishClose = resolve)) }, []);
    const running = main(['--port', '0'], h.io);
    await h.logged('listening on ');
    h.signal('SIGINT');
    await h.logged('shutting down');
    h.signal('SIGINT');
    assert.deepEqual(h.forced, [130]);
    finishClose?.();
    assert.equal(await running, 0);
  });

  void it('a port in use → a clear line on stderr, exit 1, and the broker is closed', async () => {
    const inUse = Object.assign(new Error('listen EADDRINUSE: address already in use 127.0.0.1:1883'), {
      code: 'EADDRINUSE',
      address: '127.0.0.1',
      port: 1883,
    });
    let closed = 0;
    const h = harness({
      listen: () => Promise.reject(inUse),
      close: () => {
        closed += 1;
        return Promise.resolve();
      },
    });
    assert.equal(await main(['--port', '1883'], h.io), 1);
    assert.match(h.err(), /^courier: cannot listen on 127\.0\.0\.1:1883: address already in use/);
    assert.equal(closed, 1);
    assert.equal(h.logs().at(-1)?.level, 'fatal');
  });

  void it('warns in the log about a COURIER_ variable that names no key', async () => {
    const h = harness({}, []);
    h.io.env = { COURIER_PROT: '1' };
    const running = main([], h.io);
    const warn = await h.logged('ignoring environment variable COURIER_PROT');
    assert.equal(warn.level, 'warn');
    h.signal('SIGINT');
    assert.equal(await running, 0);
  });
});
