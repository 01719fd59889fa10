/**
 * One bridge: the local session (local.ts) for `out` rules, the remote client (remote.ts) with
 * the remote subscriptions of `in` rules, topic mapping (topics.ts) and loop prevention:
 * - out: the local subscriptions have No Local, and what the bridge publishes here carries the
 *   local session's client id as its origin, so it never goes back out [MQTT-3.8.3-3];
 * - in: on a 5.0 remote the subscriptions have No Local; a 3.1.1 remote has none, so the bridge
 *   notes what it sent that an `in` rule would bring back, and drops those echoes (loop-guard.ts).
 */
import { hostname } from 'node:os';
import { readFileSync } from 'node:fs';
import type { QoS } from '../protocol/constants.js';
import type { BrokerCore } from '../core/broker-core.js';
import { createMessage, type Message } from '../core/message.js';
import type { Properties } from '../protocol/packets.js';
import type { Logger } from '../options.js';
import { LocalSession, type Sink } from './local.js';
import { LoopGuard } from './loop-guard.js';
import { RemoteLink } from './remote.js';
import { comesBack, compileRule, inRuleFor, outRuleFor, toLocal, toRemote, type TopicRule } from './topics.js';
import { filterMatches } from '../topics/index.js';
import type { BridgeOptions, BridgeState, BridgeStats, RemoteClient, RemoteClientOptions, RemoteMessage, RemotePublishProperties } from './types.js';

export interface BridgeEnvironment {
  core: BrokerCore;
  log: Logger;
  /** The broker's Maximum Packet Size (what the remote may send us). */
  maxPacketSize: number;
  /** Default for `maxOutboundBufferBytes`. */
  maxOutboundBufferBytes: number;
  /** Called on every change of connected / not connected. */
  onState(bridge: Bridge, connected: boolean): void;
}

export class Bridge implements Sink {
  readonly name: string;
  readonly options: Readonly<BridgeOptions>;
  readonly #env: BridgeEnvironment;
  readonly #rules: TopicRule[];
  readonly #local: LocalSession;
  readonly #remote: RemoteLink;
  readonly #guard = new LoopGuard();
  readonly #v5: boolean;
  readonly #retainAsPublished: boolean;
  #client: RemoteClient | undefined;
  #connected = false;
  #state: BridgeState = 'stopped';
  #connects = 0;
  #forwardedOut = 0;
  #forwardedIn = 0;
  #refused = 0;
  #loops = 0;

  constructor(options: BridgeOptions, env: BridgeEnvironment) {
    this.name = options.name;
    this.options = options;
    this.#env = env;
    this.#rules = options.topics.map(compileRule);
    this.#v5 = (options.protocolVersion ?? 5) === 5;
    this.#retainAsPublished = options.retainAsPublished ?? true;
    this.#local = new LocalSession(env.core, options.name, this, options.maxOutboundBufferBytes ?? env.maxOutboundBufferBytes);
    this.#remote = new RemoteLink(options.name, options.remotes, options.addressOrder ?? 'failover', clientOptions(options, env.maxPacketSize), env.log, {
      created: (c) => this.#subscribeRemote(c),
      up: (c, fresh) => this.#up(c, fresh),
      down: () => this.#down(),
    });
  }

  /** Opens the local session (queued messages wait there) and starts connecting. */
  start(now: number): void {
    const subs = this.#rules
      .filter((r) => r.out)
      .map((r) => ({ filter: r.localFilter, qos: r.qos, noLocal: true, retainAsPublished: true, retainHandling: 0 as const, subscriptionId: undefined }));
    this.#local.start(subs, this.options.sendRetained ?? true, now);
    this.#state = 'connecting';
    this.#remote.start();
  }

  async stop(): Promise<void> {
    this.#state = 'stopped';
    this.#local.stop(Date.now());
    const was = this.#connected;
    this.#connected = false;
    await this.#remote.stop();
    if (was) this.#env.onState(this, false);
  }

  get connected(): boolean {
    return this.#connected;
  }

  stats(): BridgeStats {
    return {
      name: this.name,
      state: this.#state,
      remote: this.#remote.current,
      connected: this.#connected,
      lastError: this.#remote.lastError,
      connects: this.#connects,
      queued: this.#local.held,
      forwardedOut: this.#forwardedOut,
      forwardedIn: this.#forwardedIn,
      dropped: { qos0: this.#local.droppedQos0, queueFull: this.#local.droppedQueueFull, refused: this.#refused, loop: this.#loops },
    };
  }

  // Remote side ----------------------------------------------------------------------------

  #subscribeRemote(client: RemoteClient): void {
    this.#client = client;
    const sendRetained = this.options.sendRetained ?? true;
    for (const rule of this.#rules) {
      if (!rule.in) continue;
      client
        .subscribe(rule.remoteFilter, {
          qos: rule.qos,
          noLocal: this.#v5,
          retainAsPublished: true,
          // Retained messages once per subscription, not again at every reconnect (5.0; 3.1.1 sends them each time).
          retainHandling: sendRetained ? 1 : 2,
          handler: (m) => this.#inbound(rule, m),
        })
        .catch((e: unknown) => {
          if (this.#client !== client) return;
          this.#env.log.error(
            { bridge: this.name, filter: rule.remoteFilter, error: e instanceof Error ? e.message : String(e) },
            `bridge ${this.name}: the remote refused the subscription to ${rule.remoteFilter}`,
          );
        });
    }
  }

  #up(client: RemoteClient, fresh: boolean): void {
    this.#client = client;
    this.#connects++;
    this.#state = 'connected';
    const wanted = this.options.maxInflight ?? (this.#v5 ? 64 : 20);
    this.#local.open(Math.max(1, Math.min(wanted, client.server.receiveMaximum)), fresh, Date.now());
    if (!this.#connected) {
      this.#connected = true;
      this.#env.onState(this, true);
    }
  }

  #down(): void {
    this.#local.close();
    if (this.#state !== 'stopped') this.#state = 'reconnecting';
    if (this.#connected) {
      this.#connected = false;
      this.#env.onState(this, false);
    }
  }

  /** A message from the remote: published here under its local name. */
  #inbound(subscribed: TopicRule, m: RemoteMessage): void {
    const now = Date.now();
    // The client routes a message the remote queued for an earlier connection by topic: the rule is the one whose filter matches.
    const rule = filterMatches(subscribed.remoteFilter, m.topic) ? subscribed : inRuleFor(this.#rules, m.topic);
    if (rule === undefined) return;
    if (!this.#v5 && this.#guard.echo(m.topic, m.payload, now)) {
      this.#loops++;
      return;
    }
    const topic = toLocal(rule, m.topic);
    const payload = Buffer.isBuffer(m.payload) ? m.payload : Buffer.from(m.payload.buffer, m.payload.byteOffset, m.payload.byteLength);
    const retain = this.#retainAsPublished && m.retain;
    const id = this.#local.clientId;
    this.#forwardedIn++;
    this.#env.core.publish(createMessage(topic, payload, m.qos, retain, this.#v5 ? toCoreProperties(m.properties) : undefined, id, now), id);
  }

  // Sink (local.ts) ------------------------------------------------------------------------

  buffered(): number {
    return this.#remote.buffered();
  }

  forward(m: Message, qos: QoS, retain: boolean, done: ((refused: boolean) => void) | undefined): boolean {
    const client = this.#client;
    const rule = outRuleFor(this.#rules, m.topic);
    if (client === undefined) return false;
    if (rule === undefined) {
      // No rule sends this topic out (cannot happen: every subscription of the session is a rule's).
      done?.(true);
      return true;
    }
    const now = Date.now();
    if (m.expiresAt !== 0 && m.expiresAt <= now) {
      done?.(false);
      return true;
    }
    const topic = toRemote(rule, m.topic);
    const server = client.server;
    const q = (qos > server.maximumQoS ? server.maximumQoS : qos) as QoS;
    const r = retain && this.#retainAsPublished && server.retainAvailable;
    const options: { qos: QoS; retain: boolean; properties?: RemotePublishProperties } = { qos: q, retain: r };
    if (this.#v5) {
      const p = toRemoteProperties(m, now);
      if (p !== undefined) options.properties = p;
    } else if (comesBack(this.#rules, topic)) this.#guard.sent(topic, m.payload, now);
    const sent = client.publish(topic, m.payload, options);
    if (q === 0) {
      sent.then(
        () => this.#forwardedOut++,
        () => this.#local.droppedQos0++,
      );
      done?.(false);
      return true;
    }
    sent.then(
      () => {
        this.#forwardedOut++;
        done?.(false);
      },
      (e: unknown) => {
        const code = (e as { code?: unknown }).code;
        // CLOSED: the client stopped; the entry stays in flight in the session and goes again with the next client.
        if (code === 'CLOSED') return;
        this.#refused++;
        this.#env.log.warn(
          { bridge: this.name, topic, error: e instanceof Error ? e.message : String(e) },
          `bridge ${this.name}: message on ${topic} not taken by the remote; dropped`,
        );
        done?.(true);
      },
    );
    return true;
  }
}

function clientOptions(o: BridgeOptions, maxPacketSize: number): RemoteClientOptions {
  const v5 = (o.protocolVersion ?? 5) === 5;
  const clean = o.cleanStart ?? false;
  const r: RemoteClientOptions = {
    protocolVersion: v5 ? 5 : 4,
    clientId: o.clientId ?? `${hostname()}.${o.name}`,
    keepAlive: o.keepAlive ?? 60,
    clean,
    maxInflight: o.maxInflight ?? (v5 ? 64 : 20),
    reconnect: { initialDelay: o.reconnect?.initialDelay ?? 1000, maxDelay: o.reconnect?.maxDelay ?? 60_000, jitter: 'equal' },
    // The local session bounds what is in flight; the client's own queue only bridges a reconnect.
    offline: { maxMessages: 65_535, maxBytes: 1024 * 1024 * 1024 },
    connectTimeout: 30_000,
  };
  if (v5) {
    r.maximumPacketSize = maxPacketSize;
    if (!clean) r.sessionExpiry = o.sessionExpiry ?? 86_400;
  }
  if (o.username !== undefined) r.username = o.username;
  if (o.password !== undefined) r.password = o.password;
  const t = o.tls;
  if (t !== undefined) {
    r.tls = {};
    if (t.ca !== undefined) r.tls.ca = readFileSync(t.ca);
    if (t.cert !== undefined) r.tls.cert = readFileSync(t.cert);
    if (t.key !== undefined) r.tls.key = readFileSync(t.key);
    if (t.rejectUnauthorized !== undefined) r.tls.rejectUnauthorized = t.rejectUnauthorized;
    if (t.servername !== undefined) r.tls.servername = t.servername;
  }
  return r;
}

function toRemoteProperties(m: Message, now: number): RemotePublishProperties | undefined {
  const p = m.properties;
  if (p === undefined && m.expiresAt === 0) return undefined;
  const out: RemotePublishProperties = {};
  if (p?.payloadFormatIndicator !== undefined) out.payloadFormatIndicator = p.payloadFormatIndicator;
  if (p?.contentType !== undefined) out.contentType = p.contentType;
  if (p?.responseTopic !== undefined) out.responseTopic = p.responseTopic;
  if (p?.correlationData !== undefined) out.correlationData = p.correlationData;
  if (p?.userProperties !== undefined) out.userProperties = p.userProperties;
  // [MQTT-3.3.2-6] the Message Expiry Interval sent on is what is left of it.
  if (m.expiresAt !== 0) out.messageExpiryInterval = Math.max(1, Math.ceil((m.expiresAt - now) / 1000));
  return out;
}

function toCoreProperties(p: RemotePublishProperties): Properties | undefined {
  let out: Properties | undefined;
  if (p.payloadFormatIndicator !== undefined) (out ??= {}).payloadFormatIndicator = p.payloadFormatIndicator;
  if (p.messageExpiryInterval !== undefined) (out ??= {}).messageExpiryInterval = p.messageExpiryInterval;
  if (p.contentType !== undefined) (out ??= {}).contentType = p.contentType;
  if (p.responseTopic !== undefined) (out ??= {}).responseTopic = p.responseTopic;
  if (p.correlationData !== undefined) (out ??= {}).correlationData = Buffer.from(p.correlationData);
  if (p.userProperties !== undefined) (out ??= {}).userProperties = p.userProperties;
  return out;
}
