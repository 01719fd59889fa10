/**
 * The config file schema (zod). Every key of `BrokerOptions` that can be written down has an
 * entry here, strict (unknown keys are errors), with a message a person can act on. Defaults are
 * not applied here: they live in src/options.ts and the broker applies them, so a key left out
 * of the file means "the broker's default".
 */
import { z } from 'zod';
import { LOG_LEVELS } from '../log.js';
import { defaultClusterOptions } from '../cluster/options.js';
import { checkRule } from '../bridge/topics.js';

/** Largest packet MQTT can frame: 268,435,455 bytes of remaining length + 5 header bytes. */
export const MAX_PACKET_SIZE_LIMIT = 268_435_460;
const UINT32_MAX = 0xffff_ffff;

function int(min: number, max?: number) {
  const message = max === undefined ? `must be an integer >= ${min}` : `must be an integer between ${min} and ${max}`;
  const base = z.int({ error: message }).min(min, { error: message });
  return max === undefined ? base : base.max(max, { error: message });
}

const bool = () => z.boolean({ error: 'must be true or false' });

const nonEmptyString = (what = 'a non-empty string') => z.string({ error: `must be ${what}` }).min(1, { error: `must be ${what}` });

const port = () => int(0, 65535);

const host = () => nonEmptyString('a host name or IP address');

const wsPath = () =>
  z.string({ error: 'must be a path starting with "/"' }).regex(/^\/[^\s?#]*$/, { error: 'must be a path starting with "/" (no spaces, "?" or "#")' });

export const mqttSchema = z
  .strictObject({
    maxPacketSize: int(1, MAX_PACKET_SIZE_LIMIT).describe('Largest packet accepted from a client, in bytes (v5: announced as Maximum Packet Size).'),
    receiveMaximum: int(1, 65535).describe('Inbound QoS 1/2 publishes in flight per client (v5 Receive Maximum).'),
    maximumQoS: z.literal([0, 1, 2], { error: 'must be 0, 1 or 2' }).describe('Highest QoS granted (v5 Maximum QoS).'),
    retainAvailable: bool().describe('Whether retained messages are supported.'),
    topicAliasMaximum: int(0, 65535).describe('Inbound topic aliases per client (v5 Topic Alias Maximum); 0 disables them.'),
    maxKeepAlive: int(0, 65535).describe('Keep alive above this (or 0) is lowered to it (v5: Server Keep Alive), in seconds; 0 = no maximum.'),
    wildcardSubscriptionAvailable: bool().describe('Whether subscriptions may use `+` and `#`.'),
    subscriptionIdentifiersAvailable: bool().describe('Whether v5 subscription identifiers are supported.'),
    sharedSubscriptionAvailable: bool().describe('Whether `$share/...` subscriptions are supported.'),
    outboundTopicAliases: bool().describe('Assign topic aliases on messages to v5 clients that accept them, so a repeated topic costs its bytes once.'),
    responseInformation: z
      .string({ error: 'must be a string' })
      .describe('Response Information for v5 clients that request it (`""` = none); `%c` becomes the client id, e.g. `reply/%c/`.'),
    sharedSubscriptionStrategy: z
      .enum(['round-robin', 'random', 'sticky', 'hash'], { error: 'must be "round-robin", "random", "sticky" or "hash"' })
      .describe(
        'Which member of a shared subscription group gets each message: in turn, at random, the same one while it stays connected, or by a hash of the topic.',
      ),
    maxSessionExpiryInterval: int(0, UINT32_MAX).describe(
      'Cap on the session expiry interval, in seconds (MQTT 3.1.1 Clean Session 0 sessions get the cap); any value is kept to the second, also across restarts; 4294967295 = sessions never expire.',
    ),
    // [MQTT-3.1.3-5]: the server MUST allow client ids of 1 to 23 characters.
    maxClientIdLength: int(23, 65535).describe('Longest client identifier accepted (at least 23, as the spec requires).'),
    allowEmptyClientId: bool().describe('Accept a zero-length client id (clean session / v5) and assign one.'),
  })
  .partial();

export const sessionsSchema = z
  .strictObject({
    maxQueuedMessages: int(0).describe('Queued (offline or beyond the inflight window) QoS 1/2 messages per session.'),
    maxQueuedBytes: int(0).describe('Queued payload bytes per session.'),
    queueFullPolicy: z
      .enum(['drop-new', 'drop-oldest'], { error: 'must be "drop-new" or "drop-oldest"' })
      .describe('When a session queue is full: drop the new message or the oldest queued one.'),
    maxInflight: int(1, 65535).describe('Outbound QoS 1/2 in flight per client when the client announces no smaller Receive Maximum.'),
    maxOutboundBufferBytes: int(0).describe("Bytes buffered for a slow client's socket before QoS 0 messages to it are dropped."),
  })
  .partial();

export const clusterSchema = z
  .strictObject({
    redis: z
      .string({ error: 'must be a Redis URL such as "redis://127.0.0.1:6379"' })
      .regex(/^rediss?:\/\/[^\s]+$/, { error: 'must be a Redis URL such as "redis://127.0.0.1:6379" (or "rediss://" for TLS)' })
      .describe('Redis (or Valkey) URL of the cluster; setting it makes this broker a cluster node (docs/clustering.md).'),
    nodeName: z
      .string({ error: 'must be a node name of letters, digits, ".", "_" or "-"' })
      .regex(/^[A-Za-z0-9._-]{1,64}$/, { error: 'must be 1 to 64 letters, digits, ".", "_" or "-"' })
      .describe('Name of this node, unique in the cluster (default: the host name).'),
    prefix: z.string({ error: 'must be a string' }).describe('Prefix of every Redis key of the cluster, so that several clusters can share one Redis.'),
    leaseMs: int(1000).describe('A node that has not renewed its lease in Redis for this long is declared dead and its routes removed (ms).'),
    inboxSoftLimit: int(1).describe(
      'Unread inbox entries (one per sending node and event-loop turn) beyond which a node counts as lagging: the others stop forwarding QoS 0 messages to it until it catches up (QoS 1/2 still go).',
    ),
    heartbeatMs: int(100).describe('How often a node renews its lease and publishes its counters (ms); at most half of `leaseMs`.'),
  })
  .partial()
  .superRefine((c, ctx) => {
    const lease = c.leaseMs ?? defaultClusterOptions.leaseMs;
    const beat = c.heartbeatMs ?? defaultClusterOptions.heartbeatMs;
    if (beat * 2 > lease) ctx.addIssue({ code: 'custom', path: ['heartbeatMs'], message: `must be at most half of leaseMs (${lease})` });
  });

/** How `workers` share a listening port (src/workers/balance.ts). */
export const WORKERS_BALANCES = ['shared', 'rr'] as const;

/** Most worker processes `workers` accepts. */
export const MAX_WORKERS = 256;

export const persistenceSchema = z
  .strictObject({
    engine: z
      .enum(['lmdb', 'memory', 'redis'], { error: 'must be "lmdb", "memory" or "redis"' })
      .describe(
        'Storage engine: `lmdb` (durable, in `dataDir`), `memory` (nothing survives a restart) or `redis` (in the Redis at `persistence.redis`; single node only).',
      ),
    durability: z
      .enum(['none', 'commit', 'fsync'], { error: 'must be "none", "commit" or "fsync"' })
      .describe(
        'When acknowledgements leave: `none` at once (a crash may lose the last writes), `commit` after the store commit (survives a process crash), `fsync` after commit and fsync (survives power loss).',
      ),
    redis: z
      .string({ error: 'must be a Redis URL such as "redis://127.0.0.1:6379"' })
      .regex(/^rediss?:\/\/[^\s]+$/, { error: 'must be a Redis URL such as "redis://127.0.0.1:6379" (or "rediss://" for TLS)' })
      .describe('Redis URL for `engine: redis` (acknowledgements wait for Redis; Redis `appendfsync always` makes them survive a Redis crash).'),
  })
  .partial()
  .superRefine((p, ctx) => {
    if (p.engine === 'redis' && p.redis === undefined) ctx.addIssue({ code: 'custom', path: ['redis'], message: 'is required with engine "redis"' });
  });

export const securitySchema = z
  .strictObject({
    allowAnonymous: bool().describe(
      'Clients no authenticator vouches for: `true` accepted everywhere, `false` refused everywhere; unset: accepted on loopback listeners only.',
    ),
    passwordFile: nonEmptyString('a file path').describe('Password file (`courier passwd FILE USER` manages it); reloaded when it changes.'),
    aclFile: nonEmptyString('a file path').describe('ACL file: deny by default once given; reloaded when it changes.'),
    sessionOwnership: bool().describe('A persistent session can be resumed only by the user that created it.'),
    certificateAuth: bool().describe('Accept a verified TLS client certificate as authentication; its CN becomes the user name.'),
    jwt: z
      .strictObject({
        secret: nonEmptyString().optional().describe('HS256 shared secret.'),
        publicKeyFile: nonEmptyString('a file path').optional().describe('PEM public key (RS256 / ES256).'),
        jwksFile: nonEmptyString('a file path').optional().describe('JWKS file.'),
        algorithms: z.array(nonEmptyString()).optional().describe('Accepted algorithms.'),
        issuer: nonEmptyString().optional().describe('Required `iss`.'),
        audience: nonEmptyString().optional().describe('Required `aud`.'),
        usernameClaim: nonEmptyString().optional().describe('Claim naming the user (default `sub`).'),
      })
      .superRefine((j, ctx) => {
        const n = [j.secret, j.publicKeyFile, j.jwksFile].filter((x) => x !== undefined).length;
        if (n !== 1) ctx.addIssue({ code: 'custom', message: 'set exactly one of secret, publicKeyFile, jwksFile' });
      })
      .describe('JWT authentication: the token is the CONNECT password.'),
  })
  .partial();

export const limitsSchema = z
  .strictObject({
    maxConnections: int(0).describe('Simultaneous connections, all listeners together; 0 = unlimited.'),
    connectRatePerIp: int(0).describe('CONNECTs per second from one IP address (v5 CONNACK 0x9F beyond); 0 = unlimited.'),
    publishRatePerClient: int(0).describe('PUBLISH packets per second from one client (v5 DISCONNECT 0x96 beyond); 0 = unlimited.'),
    publishBytesPerClient: int(0).describe('PUBLISH payload bytes per second from one client (v5 DISCONNECT 0x96 beyond); 0 = unlimited.'),
    maxTopicLength: int(1, 65535).describe('Longest topic name or filter, in bytes.'),
    maxTopicLevels: int(1).describe('Most levels in a topic name or filter.'),
    maxSubscriptionsPerClient: int(0).describe('Most subscriptions one session may hold (v5 SUBACK 0x97 beyond).'),
    maxQueuedBytesTotal: int(0).describe(
      'Bytes of queued QoS 1/2 messages across all sessions; beyond it new queued messages are dropped and counted; 0 = unlimited.',
    ),
    connectTimeoutMs: int(100).describe('Milliseconds a new connection has to complete its CONNECT.'),
  })
  .partial();

export const tlsSchema = z
  .strictObject({
    cert: nonEmptyString('a file path').describe('Server certificate (PEM), optionally followed by its chain.'),
    key: nonEmptyString('a file path').describe('Private key of the certificate (PEM).'),
    ca: nonEmptyString('a file path').optional().describe('CA bundle client certificates are verified against (needed with `requestCert`).'),
    passphrase: z.string({ error: 'must be a string' }).optional().describe('Passphrase of an encrypted key.'),
    requestCert: bool().optional().describe('Ask clients for a certificate (mutual TLS).'),
    rejectUnauthorized: bool().optional().describe('Refuse clients whose certificate does not verify (default true with `requestCert`).'),
    minVersion: z.enum(['TLSv1.2', 'TLSv1.3'], { error: 'must be "TLSv1.2" or "TLSv1.3"' }).optional().describe('Lowest TLS version.'),
  })
  .superRefine((t, ctx) => {
    if (t.requestCert === true && t.ca === undefined)
      ctx.addIssue({ code: 'custom', path: ['ca'], message: 'is needed to verify client certificates when requestCert is true' });
  });

export const listenerSchema = z
  .strictObject({
    type: z
      .enum(['tcp', 'ws', 'tls', 'wss'], { error: 'must be "tcp", "ws", "tls" or "wss"' })
      .describe('Transport: `tcp`, `ws` (WebSocket), `tls` or `wss` (WebSocket over TLS).'),
    tls: tlsSchema.optional().describe('TLS files of a `tls`/`wss` listener; default the top-level `tls`.'),
    host: host().optional().describe('Interface to bind; default the top-level `host`.'),
    port: port().describe('Port; 0 picks a free port.'),
    path: wsPath().optional().describe('WebSocket path (ws only); default the top-level `wsPath`.'),
    maxConnections: int(0).optional().describe('Most simultaneous connections on this listener; 0 = only the global limit.'),
  })
  .superRefine((l, ctx) => {
    if (l.type !== 'ws' && l.type !== 'wss' && l.path !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['path'], message: 'only a "ws" or "wss" listener has a path' });
    }
    if ((l.type === 'tcp' || l.type === 'ws') && l.tls !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['tls'], message: 'only a "tls" or "wss" listener has TLS files' });
    }
  });

const bridgeTopicSchema = z
  .strictObject({
    filter: z.string({ error: 'must be a topic filter (a string; "" maps one topic to another with both prefixes)' }),
    direction: z.enum(['in', 'out', 'both'], { error: 'must be "in", "out" or "both"' }),
    qos: z.literal([0, 1, 2], { error: 'must be 0, 1 or 2' }).optional(),
    localPrefix: z.string({ error: 'must be a string' }).optional(),
    remotePrefix: z.string({ error: 'must be a string' }).optional(),
  })
  .superRefine((t, ctx) => {
    const bad = checkRule(t);
    if (bad !== null) ctx.addIssue({ code: 'custom', path: ['filter'], message: bad });
  });

const REMOTE_SCHEMES = new Set(['mqtt:', 'mqtts:', 'ws:', 'wss:', 'tcp:', 'ssl:', 'tls:']);

const remoteUrl = () =>
  z.string({ error: 'must be a URL such as mqtt://host:1883' }).refine(
    (u) => {
      try {
        return REMOTE_SCHEMES.has(new URL(u).protocol);
      } catch {
        return false;
      }
    },
    { error: 'must be an mqtt://, mqtts://, ws:// or wss:// URL' },
  );

export const bridgeSchema = z.strictObject({
  name: z.string({ error: 'must be a name' }).regex(/^[A-Za-z0-9._-]{1,64}$/, { error: 'must be 1-64 letters, digits, ".", "_" or "-"' }),
  remotes: z.array(remoteUrl(), { error: 'must be a list of URLs' }).min(1, { error: 'must list at least one remote' }),
  protocolVersion: z.literal([4, 5], { error: 'must be 4 (MQTT 3.1.1) or 5' }).optional(),
  topics: z.array(bridgeTopicSchema, { error: 'must be a list of topic rules' }).min(1, { error: 'must list at least one topic rule' }),
  clientId: nonEmptyString('a client id').optional(),
  username: z.string({ error: 'must be a string' }).optional(),
  password: z.string({ error: 'must be a string' }).optional(),
  tls: z
    .strictObject({
      ca: nonEmptyString('a file path').optional(),
      cert: nonEmptyString('a file path').optional(),
      key: nonEmptyString('a file path').optional(),
      rejectUnauthorized: bool().optional(),
      servername: nonEmptyString('a host name').optional(),
    })
    .optional(),
  cleanStart: bool().optional(),
  sessionExpiry: int(0, UINT32_MAX).optional(),
  keepAlive: int(0, 65535).optional(),
  addressOrder: z.enum(['failover', 'round-robin'], { error: 'must be "failover" or "round-robin"' }).optional(),
  retainAsPublished: bool().optional(),
  sendRetained: bool().optional(),
  maxInflight: int(1, 65535).optional(),
  maxOutboundBufferBytes: int(0).optional(),
  reconnect: z.strictObject({ initialDelay: int(0).optional(), maxDelay: int(0).optional() }).optional(),
});

export const adminSchema = z
  .strictObject({
    host: host().describe(
      'Interface the admin listener (API, `/metrics`, dashboard) binds to; anything but loopback needs `admin.tls` or `admin.allowInsecure`.',
    ),
    port: port().nullable().describe('Admin listener port; `null` switches the admin listener off.'),
    usersFile: nonEmptyString('a file path').describe(
      'Admin users file (`courier passwd --admin FILE USER [--role viewer]`); without users, a one-time token is logged at start.',
    ),
    tls: z
      .strictObject({
        cert: nonEmptyString('a file path').describe('Certificate (PEM) of the admin listener.'),
        key: nonEmptyString('a file path').describe('Private key (PEM) of the admin listener.'),
      })
      .describe('Serve the admin listener over HTTPS.'),
    allowInsecure: bool().describe('Allow plain HTTP on a non-loopback admin address (e.g. behind a TLS proxy); refused otherwise.'),
    allowedHosts: z
      .array(nonEmptyString('a host name'), { error: 'must be a list of host names' })
      .describe('Host header values the admin listener answers (DNS rebinding protection); default: the bind address, localhost, 127.0.0.1, [::1].'),
    publicMetrics: bool().describe('`/metrics`, `/healthz` and `/readyz` without credentials; default true on a loopback bind, false otherwise.'),
  })
  .partial();

export const sysSchema = z
  .strictObject({
    interval: int(0, 65535).describe('Seconds between `$SYS/broker/...` updates (only changed values are published); 0 = no $SYS tree.'),
    events: bool().describe('Publish client connect/disconnect events as JSON on `$SYS/broker/events/client/{connected,disconnected}` (reveals client ids).'),
  })
  .partial();

export const logSchema = z
  .strictObject({
    level: z.enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.map((l) => `"${l}"`).join(', ')}` }).describe('Log level.'),
  })
  .partial();

export const configSchema = z
  .strictObject({
    host: host().describe('Interface to bind the default listeners to.'),
    port: port().nullable().describe('MQTT over TCP port; `null` disables the TCP listener.'),
    wsPort: port().nullable().describe('MQTT over WebSocket port; `null` disables the WebSocket listener.'),
    wsPath: wsPath().describe('WebSocket path.'),
    tls: tlsSchema.describe('TLS files; with them MQTT over TLS listens on `tlsPort` and WebSocket over TLS on `wssPort`.'),
    tlsPort: port().nullable().describe('MQTT over TLS port (default 8883 when `tls` is set); `null` disables it.'),
    wssPort: port().nullable().describe('MQTT over WebSocket over TLS port (default 8084 when `tls` is set); `null` disables it.'),
    listeners: z
      .array(listenerSchema, { error: 'must be a list of listeners' })
      .min(1, { error: 'must list at least one listener' })
      .describe('Explicit listeners; when given, replaces `host`, `port` and `wsPort`.'),
    dataDir: nonEmptyString('a directory path').describe('State directory.'),
    workers: z
      .union([int(1, MAX_WORKERS), z.literal('auto')], { error: `must be a number of worker processes (1 to ${MAX_WORKERS}) or "auto"` })
      .describe(
        'Run this many worker processes sharing the listening ports as one broker (a cluster on Redis); `"auto"` = one per CPU core; unset = one process (docs/clustering.md#all-cores---workers).',
      ),
    workersBalance: z
      .enum(WORKERS_BALANCES, { error: 'must be "shared" (the workers accept from the shared socket) or "rr" (the primary hands connections out in turn)' })
      .describe(
        'How `workers` share a listening port: `"shared"`, every worker accepts from the shared socket and the kernel picks which (about half the CPU per connection); `"rr"`, the primary accepts each connection and hands it to the workers in turn (an even spread by construction). Default `"shared"` on Linux, `"rr"` elsewhere (docs/clustering.md#all-cores---workers).',
      ),
    redisServer: nonEmptyString('a file path').describe(
      'The `redis-server` executable that `workers` starts privately (unix socket and AOF in `dataDir`/redis) when `cluster.redis` is not set (ignored without `workers`); default: found on PATH.',
    ),
    log: logSchema.describe('Logging.'),
    mqtt: mqttSchema.describe('MQTT protocol limits and features.'),
    sessions: sessionsSchema.describe('Per-session limits.'),
    persistence: persistenceSchema.describe('Where sessions, queued messages and retained messages are kept.'),
    cluster: clusterSchema.describe('Run as one node of a cluster on Redis (docs/clustering.md).'),
    security: securitySchema.describe('Authentication and authorization.'),
    limits: limitsSchema.describe('Abuse limits; every breach is answered with its reason code and counted.'),
    admin: adminSchema.describe('The admin HTTP listener: Prometheus `/metrics`, the JSON API and the dashboard (docs/dashboard.md).'),
    sys: sysSchema.describe('The `$SYS/broker/...` topic tree (docs/observability.md).'),
    bridges: z
      .array(bridgeSchema, { error: 'must be a list of bridges' })
      .describe('Bridges to other MQTT brokers: each `{name, remotes, topics: [{filter, direction, qos, localPrefix, remotePrefix}], ...}` (docs/bridges.md).'),
  })
  .partial()
  .superRefine((c, ctx) => {
    const names = new Map<string, number>();
    c.bridges?.forEach((b, i) => {
      const first = names.get(b.name);
      if (first !== undefined) ctx.addIssue({ code: 'custom', path: ['bridges', i, 'name'], message: `same name as bridges[${first}]` });
      else names.set(b.name, i);
    });
    if ((c.bridges?.length ?? 0) > 0 && (c.cluster !== undefined || c.workers !== undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: ['bridges'],
        message: 'cannot be used with cluster or workers yet (each node would run every bridge); run bridges on a single broker that connects to the cluster',
      });
    }
    if (c.cluster !== undefined && c.cluster.redis === undefined && c.workers === undefined) {
      ctx.addIssue({ code: 'custom', path: ['cluster', 'redis'], message: 'is required: a cluster node needs the Redis URL' });
    }
    if (c.persistence?.engine === 'redis' && (c.cluster !== undefined || c.workers !== undefined)) {
      ctx.addIssue({ code: 'custom', path: ['persistence', 'engine'], message: 'cannot be "redis" in a cluster yet (sessions in Redis come with Cluster II)' });
    }
    if (c.listeners !== undefined) {
      for (const key of ['host', 'port', 'wsPort', 'wsPath', 'tlsPort', 'wssPort'] as const) {
        if (c[key] !== undefined) {
          ctx.addIssue({
            code: 'custom',
            path: [key],
            message: 'cannot be combined with "listeners" (set it on each listener instead)',
          });
        }
      }
      const seen = new Map<string, number>();
      c.listeners.forEach((l, i) => {
        if ((l.type === 'tls' || l.type === 'wss') && l.tls === undefined && c.tls === undefined) {
          ctx.addIssue({ code: 'custom', path: ['listeners', i, 'tls'], message: `a "${l.type}" listener needs TLS files (here or in the top-level "tls")` });
        }
        if (l.port === 0) return;
        const key = `${l.host ?? '*'}:${l.port}`;
        const first = seen.get(key);
        if (first !== undefined) {
          ctx.addIssue({ code: 'custom', path: ['listeners', i, 'port'], message: `same host and port as listeners[${first}]` });
        } else {
          seen.set(key, i);
        }
      });
    } else if (typeof c.port === 'number' && c.port !== 0 && c.port === c.wsPort) {
      ctx.addIssue({ code: 'custom', path: ['wsPort'], message: 'must differ from "port"' });
    }
  });

export type ConfigFile = z.infer<typeof configSchema>;
