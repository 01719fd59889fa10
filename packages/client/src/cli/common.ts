/**
 * What pub, sub and rr share: connection flags (mosquitto's names), the client options and URL
 * they make, -D properties, exit codes, and the I/O the tools write to.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Client } from '../client.js';
import { ClientError } from '../errors.js';
import { connect } from '../index.js';
import type { ClientOptions, CloseOptions, ProtocolVersion, PublishProperties, QoS } from '../types.js';
import { all, has, int, one, UsageError, type FlagSpec, type Parsed } from './args.js';

export const EXIT_OK = 0;
export const EXIT_ERROR = 1;
/** mosquitto's MOSQ_ERR_TIMEOUT: -W ran out. */
export const EXIT_TIMEOUT = 27;

/** 5.0 reason codes back to the 3.1.1 CONNACK return codes they stand for. */
const V311_RETURN_CODES: Readonly<Record<number, number>> = { 0x84: 1, 0x85: 2, 0x88: 3, 0x86: 4, 0x87: 5 };

export interface ToolIO {
  stdout: { write(s: string | Uint8Array): unknown };
  stderr: { write(s: string): unknown };
  stdin: AsyncIterable<Uint8Array | string>;
}

export const CONNECTION_FLAGS: FlagSpec[] = [
  { short: 'h', long: 'host', values: 1 },
  { short: 'p', long: 'port', values: 1 },
  { short: 'L', long: 'url', values: 1 },
  { short: 'i', long: 'id', values: 1 },
  { short: 'I', long: 'id-prefix', values: 1 },
  { short: 'u', long: 'username', values: 1 },
  { short: 'P', long: 'pw', values: 1 },
  { short: 'V', long: 'protocol-version', values: 1 },
  { short: 'k', long: 'keepalive', values: 1 },
  { short: 'c', long: 'disable-clean-session', values: 0 },
  { short: 'x', long: 'session-expiry-interval', values: 1 },
  { short: 'q', long: 'qos', values: 1 },
  { short: 'd', long: 'debug', values: 0 },
  { short: 'D', long: 'property', values: 3, repeat: true },
  { long: 'quiet', values: 0 },
  { long: 'cafile', values: 1 },
  { long: 'capath', values: 1 },
  { long: 'tls-version', values: 1 },
  { long: 'unix', values: 1 },
  { short: 'A', long: 'bind-address', values: 1 },
  { long: 'proxy', values: 1 },
  { long: 'cert', values: 1 },
  { long: 'key', values: 1 },
  { long: 'insecure', values: 0 },
  { long: 'ciphers', values: 1 },
  { long: 'psk', values: 1 },
  { long: 'psk-identity', values: 1 },
  { long: 'ws', values: 0 },
  { long: 'will-topic', values: 1 },
  { long: 'will-payload', values: 1 },
  { long: 'will-qos', values: 1 },
  { long: 'will-retain', values: 0 },
  { long: 'will-delay', values: 1 },
  { long: 'help', values: 0 },
];

export const CONNECTION_HELP = `Connection:
  -h HOST  -p PORT        broker (default localhost:1883, 8883 with --cafile/--cert)
  -L URL                  mqtt[s]://[user[:pass]@]host[:port]/topic or ws[s]://host[:port]/path
  --ws                    use WebSocket (path /mqtt)
  -i ID  -I PREFIX        client id, or a prefix followed by a random part
  -u USER  -P PASSWORD    credentials
  -V 5|311|31             protocol (default 5; mqttv5, mqttv311, mqttv31 also accepted)
  -k SECONDS              keep alive (default 60)
  -c                      keep the session (clean session off; v5: session expiry "forever" unless -x)
  -x SECONDS              v5 session expiry interval
  -q 0|1|2                QoS (default 0)
  --unix PATH             connect to a Unix domain socket
  -A ADDRESS              connect from this local address
  --proxy socks5h://[USER[:PASS]@]HOST[:PORT]   through a SOCKS5 proxy
  --cafile F --capath DIR --cert F --key F --insecure --tls-version tlsv1.2|tlsv1.3 --ciphers LIST   TLS
  --psk HEX --psk-identity ID    TLS with a pre-shared key instead of certificates (default port 8883)
  --will-topic T --will-payload P --will-qos Q --will-retain --will-delay S
  -D CMD PROPERTY VALUE   v5 property: connect|publish|subscribe|unsubscribe|disconnect user-property K V (or K=V),
                          publish content-type V, publish message-expiry-interval S, publish response-topic T,
                          publish correlation-data V, connect|disconnect session-expiry-interval S
  -d  --quiet             debug output to stderr / no error messages
`;

export function protocolVersion(p: Parsed): ProtocolVersion {
  const v = one(p, 'protocol-version') ?? '5';
  if (v === '5' || v === 'mqttv5') return 5;
  if (v === '311' || v === 'mqttv311') return 4;
  if (v === '31' || v === 'mqttv31') return 3;
  throw new UsageError(`unknown protocol version ${v} (5, 311 or 31)`);
}

export function qosOf(p: Parsed, name = 'qos'): QoS {
  return (int(p, name, 0, 2) ?? 0) as QoS;
}

/** The URL to connect to and the topic given in -L, if any. */
export function targetOf(p: Parsed): { url: string; topic: string | undefined } {
  const unix = one(p, 'unix');
  if (unix !== undefined) return { url: `unix://${resolve(unix).split('/').map(encodeURIComponent).join('/')}`, topic: undefined };
  const tls = has(p, 'cafile') || has(p, 'capath') || has(p, 'cert') || has(p, 'insecure') || has(p, 'psk');
  const L = one(p, 'url');
  if (L !== undefined) {
    const u = new URL(L);
    const ws = u.protocol === 'ws:' || u.protocol === 'wss:';
    const topic = ws ? undefined : decodeURIComponent(u.pathname.slice(1)) || undefined;
    if (!ws) u.pathname = '';
    return { url: u.href, topic };
  }
  const host = one(p, 'host') ?? 'localhost';
  const ws = has(p, 'ws');
  const port = int(p, 'port', 1, 65535) ?? (ws ? (tls ? 443 : 80) : tls ? 8883 : 1883);
  const h = host.includes(':') ? `[${host}]` : host;
  return { url: ws ? `${tls ? 'wss' : 'ws'}://${h}:${port}/mqtt` : `${tls ? 'mqtts' : 'mqtt'}://${h}:${port}`, topic: undefined };
}

/** v5 properties given with -D for `command` (publish or connect). */
export function propertiesFor(p: Parsed, command: string): PublishProperties & { sessionExpiry?: number; reasonString?: string } {
  const d = all(p, 'property');
  const out: PublishProperties & { sessionExpiry?: number; reasonString?: string } = {};
  for (let i = 0; i + 2 < d.length; i += 3) {
    const [cmd, prop, value] = [d[i]!, d[i + 1]!, d[i + 2]!];
    if (cmd !== command) continue;
    switch (prop) {
      case 'user-property': {
        const nul = value.indexOf('\0'); // NAME VALUE (mosquitto's form), else NAME=VALUE
        const at = nul >= 0 ? nul : value.indexOf('=');
        (out.userProperties ??= []).push(at > 0 ? [value.slice(0, at), value.slice(at + 1)] : [value, '']);
        break;
      }
      case 'content-type':
        out.contentType = value;
        break;
      case 'message-expiry-interval':
        out.messageExpiryInterval = Number(value);
        break;
      case 'response-topic':
        out.responseTopic = value;
        break;
      case 'correlation-data':
        out.correlationData = new TextEncoder().encode(value);
        break;
      case 'payload-format-indicator':
        out.payloadFormatIndicator = Number(value);
        break;
      case 'session-expiry-interval':
        out.sessionExpiry = Number(value);
        break;
      case 'reason-string':
        out.reasonString = value;
        break;
      default:
        throw new UsageError(`unsupported property ${cmd} ${prop}`);
    }
  }
  return out;
}

function randomSuffix(): string {
  return Math.floor(Math.random() * 0xffffffff)
    .toString(16)
    .padStart(8, '0');
}

export function clientOptions(p: Parsed, tool: string): ClientOptions {
  const version = protocolVersion(p);
  const keep = has(p, 'disable-clean-session');
  const prefix = one(p, 'id-prefix');
  const id = one(p, 'id') ?? (prefix !== undefined ? `${prefix}${randomSuffix()}` : version === 5 ? '' : `courier_${tool}_${randomSuffix()}`);
  if (keep && id === '' && version !== 5) throw new UsageError('-c needs a client id (-i) in MQTT 3.1.1');
  const o: ClientOptions = { protocolVersion: version, clientId: id, keepAlive: int(p, 'keepalive', 0, 65535) ?? 60, reconnect: false, connectTimeout: 10_000 };
  if (keep) o.clean = false;
  const connectProps = propertiesFor(p, 'connect');
  const expiry = int(p, 'session-expiry-interval', 0, 0xffffffff) ?? connectProps.sessionExpiry ?? (keep && version === 5 ? 0xffffffff : undefined);
  if (expiry !== undefined) o.sessionExpiry = expiry;
  if (connectProps.userProperties !== undefined) o.userProperties = connectProps.userProperties;
  const user = one(p, 'username');
  if (user !== undefined) o.username = user;
  const pw = one(p, 'pw');
  if (pw !== undefined) o.password = pw;
  const proxy = one(p, 'proxy');
  if (proxy !== undefined) o.proxy = proxy;
  const bind = one(p, 'bind-address');
  if (bind !== undefined) o.bindAddress = bind;
  const ca = one(p, 'cafile');
  const capath = one(p, 'capath');
  const cert = one(p, 'cert');
  const key = one(p, 'key');
  const tlsVersion = one(p, 'tls-version');
  const ciphers = one(p, 'ciphers');
  const psk = pskOf(p);
  if (
    ca !== undefined ||
    capath !== undefined ||
    cert !== undefined ||
    key !== undefined ||
    tlsVersion !== undefined ||
    ciphers !== undefined ||
    psk !== undefined ||
    has(p, 'insecure')
  ) {
    o.tls = { rejectUnauthorized: !has(p, 'insecure') };
    if (ciphers !== undefined) o.tls.ciphers = ciphers;
    if (psk !== undefined) o.tls.psk = psk;
    const cas: Uint8Array[] = [];
    if (ca !== undefined) cas.push(readFileSync(ca));
    // --capath: every PEM certificate file in the directory (mosquitto's c_rehash links included).
    if (capath !== undefined)
      for (const f of readdirSync(capath).sort()) if (/\.(pem|crt)$|^[0-9a-f]{8}\.\d+$/.test(f)) cas.push(readFileSync(join(capath, f)));
    if (cas.length > 0) o.tls.ca = cas;
    if (tlsVersion !== undefined) {
      const v = { 'tlsv1.2': 'TLSv1.2', 'tlsv1.3': 'TLSv1.3' }[tlsVersion.toLowerCase()] as 'TLSv1.2' | 'TLSv1.3' | undefined;
      if (v === undefined) throw new UsageError(`--tls-version must be tlsv1.2 or tlsv1.3, got ${tlsVersion}`);
      o.tls.version = v;
    }
    if (cert !== undefined) o.tls.cert = readFileSync(cert);
    if (key !== undefined) o.tls.key = readFileSync(key);
  }
  const willTopic = one(p, 'will-topic');
  if (willTopic !== undefined) {
    o.will = { topic: willTopic, payload: one(p, 'will-payload') ?? '', qos: qosOf(p, 'will-qos'), retain: has(p, 'will-retain') };
    const delay = int(p, 'will-delay', 0, 0xffffffff);
    if (delay !== undefined) o.will.properties = { willDelayInterval: delay };
  }
  return o;
}

/** --psk HEX --psk-identity ID (both, as mosquitto requires). */
function pskOf(p: Parsed): { identity: string; key: Uint8Array } | undefined {
  const hex = one(p, 'psk');
  const identity = one(p, 'psk-identity');
  if (hex === undefined && identity === undefined) return undefined;
  if (hex === undefined || identity === undefined) throw new UsageError('--psk and --psk-identity go together');
  if (!/^([0-9a-fA-F]{2})+$/.test(hex)) throw new UsageError(`--psk must be the key in hexadecimal (no 0x), got ${hex}`);
  return { identity, key: Uint8Array.from(hex.match(/../g)!.map((b) => parseInt(b, 16))) };
}

/** Connects as the flags say; on failure prints mosquitto-style and returns the exit code instead. */
export async function connectFrom(p: Parsed, tool: string, io: ToolIO, extra: Partial<ClientOptions> = {}): Promise<Client | number> {
  const { url } = targetOf(p);
  const options = { ...clientOptions(p, tool), ...extra };
  try {
    const c = await connect(url, options);
    if (has(p, 'debug'))
      io.stderr.write(
        `Client ${c.clientId || '(server-assigned)'} connected to ${url} (MQTT ${options.protocolVersion === 5 ? '5' : options.protocolVersion === 4 ? '3.1.1' : '3.1'})\n`,
      );
    return c;
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    if (!has(p, 'quiet')) io.stderr.write(`Connection error: ${err.message}\n`);
    // A refused CONNECT exits with its reason code, as mosquitto's clients return the CONNACK result.
    // (3.1.1: the return code 1..5 itself, not the 5.0 reason code the client reports.)
    if (!(err instanceof ClientError) || err.code !== 'REFUSED' || err.reasonCode === undefined) return EXIT_ERROR;
    return options.protocolVersion === 5 ? err.reasonCode : (V311_RETURN_CODES[err.reasonCode] ?? EXIT_ERROR);
  }
}

/** The DISCONNECT's 5.0 properties given with -D disconnect. */
export function closeOptions(p: Parsed): CloseOptions {
  const d = propertiesFor(p, 'disconnect');
  const o: CloseOptions = {};
  if (d.userProperties !== undefined) o.userProperties = d.userProperties;
  if (d.sessionExpiry !== undefined) o.sessionExpiry = d.sessionExpiry;
  if (d.reasonString !== undefined) o.reasonString = d.reasonString;
  return o;
}
