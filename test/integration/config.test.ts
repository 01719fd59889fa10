/**
 * The config loader: file (JSON/YAML) → env → flags, validated into BrokerOptions, with one
 * error line per problem naming the key path, the reason, the value and where it came from.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import {
  ConfigError,
  configFromEnv,
  configKeys,
  envNameToPath,
  loadConfig,
  parseConfig,
  pathToEnvName,
  MAX_PACKET_SIZE_LIMIT,
} from '../../src/config/index.js';
import { defaultMqttOptions, defaultSessionLimits } from '../../src/options.js';

const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/config/${name}`, import.meta.url));

function errorLines(f: () => unknown): string[] {
  try {
    f();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err.lines;
  }
  assert.fail('expected a ConfigError');
}

async function asyncErrorLines(f: () => Promise<unknown>): Promise<string[]> {
  try {
    await f();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err.lines;
  }
  assert.fail('expected a ConfigError');
}

void describe('config: parseConfig', () => {
  void it('accepts an empty document (every default applies)', () => {
    assert.deepEqual(parseConfig({}, 't'), { options: {}, logLevel: 'info', warnings: [] });
  });

  void it('accepts every BrokerOptions key and passes it through unchanged', () => {
    const mqtt = { ...defaultMqttOptions, maxPacketSize: 2048, maximumQoS: 1 as const };
    const sessions = { ...defaultSessionLimits, queueFullPolicy: 'drop-oldest' as const };
    const c = parseConfig({ host: '::', port: null, wsPort: 0, wsPath: '/x', dataDir: 'd', mqtt, sessions, log: { level: 'silent' } }, 't');
    assert.deepEqual(c.options, { host: '::', port: null, wsPort: 0, wsPath: '/x', dataDir: 'd', mqtt, sessions });
    assert.equal(c.logLevel, 'silent');
  });

  void it('every default in src/options.ts passes its own schema', () => {
    assert.doesNotThrow(() => parseConfig({ mqtt: defaultMqttOptions, sessions: defaultSessionLimits }, 'defaults'));
  });

  const bad: Array<[string, unknown, string]> = [
    [
      'a string for an integer',
      { mqtt: { maxPacketSize: 'abc' } },
      `config error: mqtt.maxPacketSize: must be an integer between 1 and ${MAX_PACKET_SIZE_LIMIT} (got "abc", from t.yaml)`,
    ],
    ['a fraction for an integer', { port: 1883.5 }, 'config error: port: must be an integer between 0 and 65535 (got 1883.5, from t.yaml)'],
    ['a port out of range', { wsPort: 70000 }, 'config error: wsPort: must be an integer between 0 and 65535 (got 70000, from t.yaml)'],
    [
      'a packet size above what MQTT can frame',
      { mqtt: { maxPacketSize: MAX_PACKET_SIZE_LIMIT + 1 } },
      `config error: mqtt.maxPacketSize: must be an integer between 1 and ${MAX_PACKET_SIZE_LIMIT} (got ${MAX_PACKET_SIZE_LIMIT + 1}, from t.yaml)`,
    ],
    ['a misspelt key', { mqtt: { maxPaketSize: 10 } }, 'config error: mqtt.maxPaketSize: unknown key (did you mean "maxPacketSize"?) (from t.yaml)'],
    ['an unknown top-level key', { nosuchkey: {} }, 'config error: nosuchkey: unknown key (from t.yaml)'],
    [
      'a cluster without a Redis URL',
      { cluster: { nodeName: 'a' } },
      'config error: cluster.redis: is required: a cluster node needs the Redis URL (got nothing, from t.yaml)',
    ],
    [
      'a cluster Redis URL that is not one',
      { cluster: { redis: 'localhost:6379' } },
      'config error: cluster.redis: must be a Redis URL such as "redis://127.0.0.1:6379" (or "rediss://" for TLS) (got "localhost:6379", from t.yaml)',
    ],
    [
      'a cluster heartbeat longer than half the lease',
      { cluster: { redis: 'redis://h:1', leaseMs: 3000, heartbeatMs: 2000 } },
      'config error: cluster.heartbeatMs: must be at most half of leaseMs (3000) (got 2000, from t.yaml)',
    ],
    [
      'a bad node name',
      { cluster: { redis: 'redis://h:1', nodeName: 'a b' } },
      'config error: cluster.nodeName: must be 1 to 64 letters, digits, ".", "_" or "-" (got "a b", from t.yaml)',
    ],
    ['TLS without its files', { tls: { cert: 'c.pem' } }, 'config error: tls.key: is missing; it must be a file path (from t.yaml)'],
    [
      'mutual TLS without a CA',
      { tls: { cert: 'c.pem', key: 'k.pem', requestCert: true } },
      'config error: tls.ca: is needed to verify client certificates when requestCert is true (got nothing, from t.yaml)',
    ],
    [
      'a tls listener without TLS files',
      { listeners: [{ type: 'tls', port: 8883 }] },
      'config error: listeners[0].tls: a "tls" listener needs TLS files (here or in the top-level "tls") (got nothing, from t.yaml)',
    ],
    ['a QoS of 3', { mqtt: { maximumQoS: 3 } }, 'config error: mqtt.maximumQoS: must be 0, 1 or 2 (got 3, from t.yaml)'],
    ['a string for a boolean', { mqtt: { retainAvailable: 'yes' } }, 'config error: mqtt.retainAvailable: must be true or false (got "yes", from t.yaml)'],
    // [MQTT-3.1.3-5]: the server MUST allow client identifiers of 1 to 23 characters.
    [
      'a client id limit below 23',
      { mqtt: { maxClientIdLength: 8 } },
      'config error: mqtt.maxClientIdLength: must be an integer between 23 and 65535 (got 8, from t.yaml)',
    ],
    [
      'a Receive Maximum of 0',
      { mqtt: { receiveMaximum: 0 } },
      'config error: mqtt.receiveMaximum: must be an integer between 1 and 65535 (got 0, from t.yaml)',
    ],
    [
      'a negative queue limit',
      { sessions: { maxQueuedMessages: -1 } },
      'config error: sessions.maxQueuedMessages: must be an integer >= 0 (got -1, from t.yaml)',
    ],
    [
      'an unknown queue policy',
      { sessions: { queueFullPolicy: 'drop-all' } },
      'config error: sessions.queueFullPolicy: must be "drop-new" or "drop-oldest" (got "drop-all", from t.yaml)',
    ],
    [
      'an unknown log level',
      { log: { level: 'verbose' } },
      'config error: log.level: must be one of "trace", "debug", "info", "warn", "error", "fatal", "silent" (got "verbose", from t.yaml)',
    ],
    [
      'a ws path without a slash',
      { wsPath: 'mqtt' },
      'config error: wsPath: must be a path starting with "/" (no spaces, "?" or "#") (got "mqtt", from t.yaml)',
    ],
    ['an empty host', { host: '' }, 'config error: host: must be a host name or IP address (got "", from t.yaml)'],
    ['a section that is not a mapping', { mqtt: 5 }, 'config error: mqtt: Invalid input: expected object, received number (got 5, from t.yaml)'],
    ['the same port for TCP and WebSocket', { port: 1883, wsPort: 1883 }, 'config error: wsPort: must differ from "port" (got 1883, from t.yaml)'],
    [
      'a listener without a port',
      { listeners: [{ type: 'tcp' }] },
      'config error: listeners[0].port: is missing; it must be an integer between 0 and 65535 (from t.yaml)',
    ],
    [
      'a listener of an unknown type',
      { listeners: [{ type: 'quic', port: 1 }] },
      'config error: listeners[0].type: must be "tcp", "ws", "tls" or "wss" (got "quic", from t.yaml)',
    ],
    [
      'a path on a TCP listener',
      { listeners: [{ type: 'tcp', port: 1, path: '/x' }] },
      'config error: listeners[0].path: only a "ws" or "wss" listener has a path (got "/x", from t.yaml)',
    ],
    [
      'a misspelt listener key',
      { listeners: [{ type: 'tcp', prot: 1883, port: 1 }] },
      'config error: listeners[0].prot: unknown key (did you mean "port"?) (from t.yaml)',
    ],
    [
      'two listeners on one port',
      {
        listeners: [
          { type: 'tcp', port: 1883 },
          { type: 'ws', port: 1883 },
        ],
      },
      'config error: listeners[1].port: same host and port as listeners[0] (got 1883, from t.yaml)',
    ],
    [
      'engine "redis" without its URL',
      { persistence: { engine: 'redis' } },
      'config error: persistence.redis: is required with engine "redis" (got nothing, from t.yaml)',
    ],
    [
      'engine "redis" in a cluster',
      { persistence: { engine: 'redis', redis: 'redis://h:1' }, cluster: { redis: 'redis://h:1' } },
      'config error: persistence.engine: cannot be "redis" in a cluster yet (sessions in Redis come with Cluster II) (got "redis", from t.yaml)',
    ],
    [
      'an unknown workers balance',
      { workers: 2, workersBalance: 'round-robin' },
      'config error: workersBalance: must be "shared" (the workers accept from the shared socket) or "rr" (the primary hands connections out in turn) (got "round-robin", from t.yaml)',
    ],
    ['an empty listener list', { listeners: [] }, 'config error: listeners: must list at least one listener (got [], from t.yaml)'],
    [
      'listeners next to port',
      { listeners: [{ type: 'tcp', port: 1 }], port: 2 },
      'config error: port: cannot be combined with "listeners" (set it on each listener instead) (got 2, from t.yaml)',
    ],
  ];
  for (const [what, input, expected] of bad) {
    void it(`rejects ${what}`, () => {
      assert.deepEqual(
        errorLines(() => parseConfig(input, 't.yaml')),
        [expected],
      );
    });
  }

  void it('reports every problem, one line each', () => {
    const lines = errorLines(() => parseConfig({ port: 'x', mqtt: { maximumQoS: 5, nope: 1 } }, 't.yaml'));
    assert.equal(lines.length, 3);
    assert.ok(lines.every((l) => l.startsWith('config error: ')));
  });

  void it('rejects a document that is not a mapping', () => {
    assert.match(errorLines(() => parseConfig([1, 2], 't.yaml'))[0]!, /^config error: Invalid input: expected object/);
  });
});

void describe('config: files', () => {
  void it('reads a YAML file with every key', async () => {
    const c = await loadConfig({ file: fixture('full.yaml'), env: {} });
    assert.equal(c.file, fixture('full.yaml'));
    assert.equal(c.logLevel, 'debug');
    assert.equal(c.options.port, 1884);
    assert.equal(c.options.wsPath, '/ws');
    assert.equal(c.options.mqtt?.maximumQoS, 1);
    assert.equal(c.options.sessions?.queueFullPolicy, 'drop-oldest');
    assert.equal(c.options.persistence?.durability, 'fsync');
    // The fixtures set every key of the schema: nothing is left out (bridges are in their own,
    // since they cannot be combined with cluster or workers).
    const bridges = await loadConfig({ file: fixture('bridges.yaml'), env: {} });
    const set = configKeys().filter(
      (k) =>
        k.path.reduce<unknown>((o, seg) => (o as Record<string, unknown> | undefined)?.[seg], {
          ...c.options,
          log: { level: c.logLevel },
          workers: c.workers?.count,
          redisServer: c.workers?.redisServer,
          workersBalance: c.workers?.balance,
          bridges: bridges.options.bridges,
        }) !== undefined,
    );
    assert.deepEqual(
      configKeys()
        .filter((k) => !set.includes(k) && k.path[0] !== 'listeners')
        .map((k) => k.path.join('.')),
      // The JWT key sources exclude each other: the fixture sets `secret`.
      ['security.jwt.publicKeyFile', 'security.jwt.jwksFile'],
    );
  });

  void it('refuses bridges on a cluster node or with workers, naming why', () => {
    for (const extra of [{ cluster: { redis: 'redis://127.0.0.1:6379' } }, { workers: 2 }]) {
      assert.throws(
        () => parseConfig({ bridges: [{ name: 'b', remotes: ['mqtt://127.0.0.1:1'], topics: [{ filter: '#', direction: 'out' }] }], ...extra }, 't'),
        (e: unknown) => e instanceof ConfigError && /bridges.*cannot be used with cluster or workers yet/.test(e.message),
      );
    }
  });

  void it('reads a JSON file with explicit listeners', async () => {
    const c = await loadConfig({ file: fixture('listeners.json'), env: {} });
    assert.deepEqual(c.options.listeners, [
      { type: 'tcp', host: '127.0.0.1', port: 0 },
      { type: 'ws', host: '127.0.0.1', port: 0, path: '/mqtt-ws' },
    ]);
    assert.equal(c.logLevel, 'warn');
  });

  void it('treats an empty file as an empty config', async () => {
    assert.deepEqual((await loadConfig({ file: fixture('empty.yaml'), env: {} })).options, {});
  });

  void it('names the file in a validation error', async () => {
    assert.deepEqual(await asyncErrorLines(() => loadConfig({ file: 'test/fixtures/config/bad-type.yaml', env: {} })), [
      `config error: mqtt.maxPacketSize: must be an integer between 1 and ${MAX_PACKET_SIZE_LIMIT} (got "abc", from test/fixtures/config/bad-type.yaml)`,
    ]);
  });

  void it('suggests the right spelling of a misspelt key', async () => {
    const lines = await asyncErrorLines(() => loadConfig({ file: fixture('typo.yaml'), env: {} }));
    assert.equal(lines.length, 1);
    assert.match(lines[0]!, /^config error: mqtt\.maxPaketSize: unknown key \(did you mean "maxPacketSize"\?\)/);
  });

  void it('reports a YAML syntax error with its line', async () => {
    const [line] = await asyncErrorLines(() => loadConfig({ file: 'broken.yaml', cwd: fixture('.'), env: {} }));
    assert.match(line!, /^config error: broken\.yaml is not valid YAML at line \d+, column \d+: /);
  });

  void it('reports a JSON syntax error', async () => {
    const [line] = await asyncErrorLines(() => loadConfig({ file: fixture('broken.json'), env: {} }));
    assert.match(line!, /^config error: .*broken\.json is not valid JSON: /);
  });

  void it('rejects a file whose top level is a list', async () => {
    const [line] = await asyncErrorLines(() => loadConfig({ file: fixture('list.yaml'), env: {} }));
    assert.match(line!, /^config error: .*list\.yaml must hold a mapping of keys to values \(got \[/);
  });

  void it('reports a missing file', async () => {
    assert.deepEqual(await asyncErrorLines(() => loadConfig({ file: 'nope.yaml', cwd: fixture('.'), env: {} })), [
      'config error: cannot read config file nope.yaml: no such file',
    ]);
  });

  void it('takes the file from COURIER_CONFIG when no file is given', async () => {
    const c = await loadConfig({ env: { COURIER_CONFIG: fixture('full.yaml') } });
    assert.equal(c.options.port, 1884);
  });
});

void describe('config: environment and flags', () => {
  void it('maps variable names to key paths and back', () => {
    assert.deepEqual(envNameToPath('COURIER_WS_PORT'), ['wsPort']);
    assert.deepEqual(envNameToPath('COURIER_MQTT__MAX_PACKET_SIZE'), ['mqtt', 'maxPacketSize']);
    assert.equal(pathToEnvName(['sessions', 'queueFullPolicy']), 'COURIER_SESSIONS__QUEUE_FULL_POLICY');
    assert.equal(pathToEnvName(['log', 'level']), 'COURIER_LOG_LEVEL');
    assert.equal(pathToEnvName(['mqtt', 'maximumQoS']), 'COURIER_MQTT__MAXIMUM_QOS');
    assert.deepEqual(envNameToPath('COURIER_MQTT__MAXIMUMQOS'), ['mqtt', 'maximumQoS']);
    for (const k of configKeys()) {
      if (k.path.join('.') !== 'log.level') assert.deepEqual(envNameToPath(pathToEnvName(k.path)), k.path);
    }
  });

  void it('converts values to the type of their key', async () => {
    const c = await loadConfig({
      env: {
        COURIER_HOST: '0.0.0.0',
        COURIER_PORT: '1999',
        COURIER_WS_PORT: 'off',
        COURIER_DATA_DIR: '2024',
        COURIER_LOG_LEVEL: 'error',
        COURIER_MQTT__RETAIN_AVAILABLE: 'false',
        COURIER_MQTT__MAXIMUM_QOS: '1',
        COURIER_SESSIONS__QUEUE_FULL_POLICY: 'drop-oldest',
      },
    });
    assert.deepEqual(c.options, {
      host: '0.0.0.0',
      port: 1999,
      wsPort: null,
      dataDir: '2024',
      mqtt: { retainAvailable: false, maximumQoS: 1 },
      sessions: { queueFullPolicy: 'drop-oldest' },
    });
    assert.equal(c.logLevel, 'error');
  });

  void it('takes listeners as JSON', async () => {
    const c = await loadConfig({ env: { COURIER_LISTENERS: '[{"type":"ws","port":0,"path":"/m"}]' } });
    assert.deepEqual(c.options.listeners, [{ type: 'ws', port: 0, path: '/m' }]);
  });

  void it('names the variable in an error', async () => {
    assert.deepEqual(await asyncErrorLines(() => loadConfig({ env: { COURIER_PORT: 'abc' } })), [
      'config error: port: must be an integer between 0 and 65535 (got "abc", from COURIER_PORT)',
    ]);
    assert.deepEqual(await asyncErrorLines(() => loadConfig({ env: { COURIER_MQTT__MAX_PAKET_SIZE: '1' } })), [
      'config error: mqtt.maxPaketSize: unknown key (did you mean "maxPacketSize"?) (from COURIER_MQTT__MAX_PAKET_SIZE)',
    ]);
  });

  void it('warns about, and ignores, a COURIER_ variable with no key, and ignores empty values', () => {
    const r = configFromEnv({ COURIER_POTR: '1', COURIER_REQUIRE_PEERS: '1', COURIER_CONFIG: 'x', COURIER_HOST: '', OTHER: 'x' });
    assert.deepEqual(r.data, {});
    assert.deepEqual(r.warnings, ['ignoring environment variable COURIER_POTR: no config key "potr" (did you mean COURIER_PORT?)']);
  });

  void it('layers flags over env over file', async () => {
    const c = await loadConfig({
      file: fixture('full.yaml'), // port 1884, wsPort 8084, host 0.0.0.0, log debug
      env: { COURIER_PORT: '1900', COURIER_WS_PORT: '8900', COURIER_MQTT__MAX_PACKET_SIZE: '4096' },
      flags: { port: '2000', logLevel: 'trace' },
    });
    assert.equal(c.options.port, 2000, 'flag beats env and file');
    assert.equal(c.options.wsPort, 8900, 'env beats file');
    assert.equal(c.options.host, '0.0.0.0', 'file beats defaults');
    assert.equal(c.options.mqtt?.maxPacketSize, 4096, 'env sets one key of a section');
    assert.equal(c.options.mqtt?.receiveMaximum, 100, 'the rest of the section stays from the file');
    assert.equal(c.logLevel, 'trace');
  });

  void it('names the flag in an error, and reports file errors alongside', async () => {
    const lines = await asyncErrorLines(() => loadConfig({ file: fixture('bad-type.yaml'), env: {}, flags: { port: 'x', logLevel: 'loud' } }));
    assert.deepEqual(lines.sort(), [
      'config error: log.level: must be one of "trace", "debug", "info", "warn", "error", "fatal", "silent" (got "loud", from --log-level)',
      `config error: mqtt.maxPacketSize: must be an integer between 1 and ${MAX_PACKET_SIZE_LIMIT} (got "abc", from ${fixture('bad-type.yaml')})`,
      'config error: port: must be an integer between 0 and 65535 (got "x", from --port)',
    ]);
  });
});
