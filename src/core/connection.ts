/**
 * One client connection: bytes → Decoder → packet handlers → BrokerCore, and encoded packets →
 * the stream. Owns what lives exactly as long as the network connection: the decoder, the keep
 * alive timer, inbound topic aliases, the will, and the write batching (all writes of one
 * event-loop turn leave in one corked flush).
 */
import { isUtf8 } from 'node:buffer';
import type { Duplex } from 'node:stream';
import { ConnackReturnCode, MAX_PACKET_SIZE, ReasonCode, type ProtocolVersion, type QoS } from '../protocol/constants.js';
import { Decoder } from '../protocol/decoder.js';
import { encode } from '../protocol/encoder.js';
import { MqttError, ProtocolError, UnsupportedProtocolVersionError } from '../protocol/errors.js';
import type {
  AckPacket,
  AuthPacket,
  ConnectPacket,
  DisconnectPacket,
  Packet,
  Properties,
  PublishPacket,
  SubscribePacket,
  UnsubscribePacket,
} from '../protocol/packets.js';
import { checkTopicFilter, checkTopicName, isWildcardFilter, parseSharedFilter } from '../topics/index.js';
import type { ConnectionInfo } from '../transport/types.js';
import type { Logger } from '../options.js';
import { isPromise, type Decision } from '../security/index.js';
import type { AuthenticationRequest, AuthenticationResult, EnhancedAuthConversation } from '../security/types.js';
import { NEVER_EXPIRES, type BrokerCore, type LiveConnection } from './broker-core.js';
import { createMessage, encodeDelivery, seedEncoding, type Message } from './message.js';
import { Output } from './output.js';
import type { ClientInfo, ConnectionContext, ConnectionObserver } from './connection-types.js';

export type { ClientInfo, ConnectionContext, ConnectionObserver, LimitCounters, ListenerPolicy } from './connection-types.js';
import type { Outlet, Session, Subscription, Will } from './session.js';

/** How long a connection being closed by the server may take to flush before it is destroyed. */
const CLOSE_GRACE_MS = 2_000;

const enum State {
  Connecting,
  Connected,
  Closed,
}

const ALLOWED: Decision = { allow: true, reasonCode: 0 };

/** The stream's link back to its connection (read by the shared stream listeners). */
const OWNER = Symbol('courier.connection');
interface OwnedStream extends Duplex {
  [OWNER]?: Connection;
}

interface ConnectPlan {
  readonly p: ConnectPacket;
  readonly clientId: string;
  readonly assignedId: string | undefined;
  readonly keepAlive: number;
  readonly serverKeepAlive: number | undefined;
  readonly will: Will | undefined;
}

let assigned = 0;
function assignClientId(): string {
  assigned = (assigned + 1) % 0x100000000;
  return `courier-${process.pid.toString(36)}-${Date.now().toString(36)}-${assigned.toString(36)}`;
}

export class Connection implements Outlet, LiveConnection {
  version: ProtocolVersion = 4;
  sendQuota = 0;
  readonly info: ConnectionInfo;
  readonly #stream: Duplex;
  readonly #ctx: ConnectionContext;
  readonly #core: BrokerCore;
  readonly #log: Logger;
  readonly #observer: ConnectionObserver;
  readonly #decoder: Decoder<Connection>;
  /** Packets held while an asynchronous hook (authentication, authorization) decides; undefined = not paused. */
  #held: Packet[] | undefined = undefined;
  /** Authenticated identity (ACLs, session ownership). */
  #username: string | undefined = undefined;
  #rateWindow = 0;
  #rateCount = 0;
  #rateBytes = 0;
  #state = State.Connecting;
  #session: Session | undefined = undefined;
  #client: ClientInfo | undefined = undefined;
  #clientMaxPacket = MAX_PACKET_SIZE;
  #keepAliveMs = 0;
  #lastSeen = Date.now();
  /** The CONNECT deadline while connecting. */
  #deadline = 0;
  /** Position in the broker's Sweeper (-1 = not registered). */
  sweepIndex = -1;
  #aliases: Map<number, string> | undefined = undefined;
  /** Outbound topic aliases: the client's Topic Alias Maximum, topic → alias, alias → topic, next slot to replace. */
  /** Enhanced authentication in progress (5.0 §4.12); the method of the CONNECT once accepted. */
  #auth: { method: string; conversation: EnhancedAuthConversation; plan: ConnectPlan | undefined } | undefined = undefined;
  #authMethod: string | undefined = undefined;
  #outAliasMax = 0;
  #outAliases: Map<string, number> | undefined = undefined;
  #outAliasTopics: Array<string | undefined> | undefined = undefined;
  #outAliasNext = 0;
  #closeReason = 'connection closed by the client';
  readonly #output: Output;

  constructor(stream: Duplex, info: ConnectionInfo, ctx: ConnectionContext) {
    const core = ctx.core;
    this.#stream = stream;
    this.info = info;
    this.#ctx = ctx;
    this.#core = core;
    this.#log = ctx.log;
    this.#observer = ctx.observer;
    // No closures per connection: the stream's listeners and the decoder's callback are shared
    // functions that find the connection through the stream (an idle connection costs less).
    this.#output = new Output(stream, this);
    this.#decoder = new Decoder<Connection>(Connection.#packetIn, { maxPacketSize: core.mqtt.maxPacketSize }, this);
    (stream as OwnedStream)[OWNER] = this;
    stream.on('data', Connection.#streamData);
    stream.on('error', Connection.#streamError);
    stream.on('end', Connection.#streamEnd);
    stream.on('close', Connection.#streamClose);
    // [MQTT-3.1.4-1] a client that never completes a CONNECT is closed (checked by the sweep).
    this.#deadline = this.#lastSeen + ctx.limits.connectTimeoutMs;
    ctx.sweeper.add(this);
  }

  static #packetIn(this: Connection, p: Packet): void {
    this.#onPacket(p);
  }

  static #streamData(this: Duplex, chunk: Buffer): void {
    (this as OwnedStream)[OWNER]!.#onData(chunk);
  }

  static #streamError(this: Duplex, err: Error): void {
    const c = (this as OwnedStream)[OWNER]!;
    c.#closeReason = `network error: ${err.message}`;
    c.#end();
  }

  static #streamEnd(this: Duplex): void {
    const c = (this as OwnedStream)[OWNER]!;
    c.#end();
    c.flush();
    // A net.Socket (allowHalfOpen false) has ended its side already; end() again would only
    // build an ERR_STREAM_ALREADY_FINISHED error, which is costly in a disconnect storm.
    if (!this.writableEnded) this.end();
  }

  static #streamClose(this: Duplex): void {
    const c = (this as OwnedStream)[OWNER]!;
    c.#end();
    c.#observer.released(c);
  }

  /** The store's pending commit (Output waits for it before acknowledging). */
  commitPoint(): Promise<void> | null {
    return this.#core.commitPoint();
  }

  /** The store could not commit what this connection was about to acknowledge. */
  storeFailed(err: unknown): void {
    this.#log.error({ err, clientId: this.#client?.clientId }, 'store commit failed; closing the connection without acknowledging');
    this.#stream.destroy();
  }

  /** Periodic check of the CONNECT deadline and keep alive (see Sweeper). */
  sweep(now: number): void {
    if (this.#state === State.Connecting) {
      if (now < this.#deadline) return;
      this.#closeReason = 'no CONNECT in time';
      this.#ctx.counters.connectTimeouts++;
      this.#log.warn({ remote: this.#remote() }, `closing connection: no CONNECT within ${this.#ctx.limits.connectTimeoutMs} ms`);
      this.#destroy();
      return;
    }
    // Keep alive: [MQTT-3.1.2-22] (5.0) / [MQTT-3.1.2-24] (3.1.1): 1.5 × keep alive without a packet.
    if (this.#state !== State.Connected || this.#keepAliveMs === 0) return;
    if (now - this.#lastSeen >= this.#keepAliveMs * 1.5) {
      const s = this.#keepAliveMs / 1000;
      this.#serverDisconnect(ReasonCode.KeepAliveTimeout, `keep alive timeout (${s} s × 1.5 without a packet)`, true);
    }
  }

  /** Destroys the socket (broker shutdown, after the grace period). */
  destroyStream(): void {
    this.#stream.destroy();
  }

  get clientId(): string | undefined {
    return this.#client?.clientId;
  }

  #remote(): string {
    return `${this.info.remoteAddress ?? '?'}:${this.info.remotePort ?? '?'}`;
  }

  // ---------------------------------------------------------------------------------------------
  // Input

  #onData(chunk: Buffer): void {
    if (this.#state === State.Closed) return;
    this.#lastSeen = Date.now();
    try {
      this.#decoder.push(chunk);
    } catch (err) {
      if (err instanceof MqttError) this.#violation(err);
      else this.#fail(err);
    }
  }

  #onPacket(p: Packet): void {
    if (this.#state === State.Closed) return;
    if (this.#held !== undefined) {
      this.#held.push(p);
      return;
    }
    if (this.#state === State.Connecting) {
      // The decoder only lets a CONNECT through first [MQTT-3.1.0-1].
      if (p.type === 'connect' && this.#auth === undefined) this.#onConnect(p);
      else if (p.type === 'auth' && this.#auth !== undefined) this.#onAuth(p);
      // 5.0 §4.12: during an authentication exchange only AUTH may come from the client.
      else throw new ProtocolError(`${p.type.toUpperCase()} while authentication is in progress`, '[MQTT-3.1.0-2]');
      return;
    }
    switch (p.type) {
      case 'publish':
        this.#onPublish(p);
        break;
      case 'puback':
        this.#session!.complete(p.packetId, Date.now());
        break;
      case 'pubrec':
        this.#onPubrec(p.packetId, p.reasonCode ?? 0);
        break;
      case 'pubrel':
        this.#onPubrel(p.packetId);
        break;
      case 'pubcomp':
        this.#session!.complete(p.packetId, Date.now());
        break;
      case 'subscribe':
        this.#onSubscribe(p);
        break;
      case 'unsubscribe':
        this.#onUnsubscribe(p);
        break;
      case 'pingreq':
        this.#write(Buffer.from([0xd0, 0]));
        break;
      case 'disconnect':
        this.#onDisconnect(p);
        break;
      case 'connect':
        throw new ProtocolError('a second CONNECT on the same connection', '[MQTT-3.1.0-2]');
      case 'auth':
        this.#onAuth(p);
        break;
      default:
        throw new ProtocolError(`a client must not send ${p.type.toUpperCase()}`);
    }
  }

  /**
   * Continues with `then` once `value` is there. Synchronous values continue at once (the fast
   * path); a promise pauses the input: later packets are held, in order, until it settles.
   */
  #after<T>(value: T | Promise<T>, then: (v: T) => void): void {
    if (!isPromise(value)) {
      then(value);
      return;
    }
    this.#held = [];
    this.#stream.pause();
    value.then(
      (v) => {
        if (this.#state === State.Closed) return;
        this.#guard(() => then(v));
        this.#resume();
      },
      (err: unknown) => this.#fail(err),
    );
  }

  #resume(): void {
    const held = this.#held;
    this.#held = undefined;
    if (held !== undefined) {
      for (let i = 0; i < held.length; i++) {
        if (this.#state === State.Closed) return;
        const again = this.#held as Packet[] | undefined;
        if (again !== undefined) {
          // Paused again by a held packet: keep the rest, in order, behind it.
          again.push(...held.slice(i));
          return;
        }
        this.#guard(() => this.#onPacket(held[i]!));
      }
    }
    if (this.#state !== State.Closed && this.#held === undefined) this.#stream.resume();
  }

  /** Runs a packet handler outside the decoder's call stack, mapping errors as #onData does. */
  #guard(f: () => void): void {
    try {
      f();
    } catch (err) {
      if (err instanceof MqttError) this.#violation(err);
      else this.#fail(err);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // CONNECT

  #connack(code: number, sessionPresent: boolean, properties?: Properties): void {
    const packet: Packet = { type: 'connack', sessionPresent, reasonCode: code };
    if (properties !== undefined && this.version === 5) packet.properties = properties;
    this.#write(encode(packet, this.version));
  }

  /** Refuses a CONNECT: CONNACK with the v5 reason code or the v3 return code, then close [MQTT-3.2.2-6]. */
  #refuse(v5Code: number, v3Code: number, reason: string, extra?: Properties): void {
    this.#log.warn({ remote: this.#remote(), reasonCode: v5Code }, `connection refused: ${reason}`);
    this.#closeReason = `refused: ${reason}`;
    this.#connack(this.version === 5 ? v5Code : v3Code, false, { reasonString: reason, ...extra });
    // [MQTT-3.1.4-5] nothing the client sent after a refused CONNECT is processed.
    this.#end();
    this.#closeGracefully();
  }

  #onConnect(p: ConnectPacket): void {
    const core = this.#core;
    const mqtt = core.mqtt;
    this.version = p.protocolVersion;
    const v5 = p.protocolVersion === 5;
    const props = p.properties;
    let clientId = p.clientId;
    let assignedId: string | undefined;

    const redirect = this.#ctx.redirect();
    if (redirect !== undefined) {
      // 5.0 §4.11 Server redirection: CONNACK 0x9C / 0x9D with Server Reference; 3.1.1 has only 0x03.
      return this.#refuse(
        redirect.permanent ? ReasonCode.ServerMoved : ReasonCode.UseAnotherServer,
        ConnackReturnCode.ServerUnavailable,
        'use another server',
        { serverReference: redirect.serverReference },
      );
    }
    const method = props?.authenticationMethod;
    if (method !== undefined && this.#ctx.enhancedAuth[method] === undefined) {
      return this.#refuse(
        ReasonCode.BadAuthenticationMethod,
        ConnackReturnCode.NotAuthorized,
        `authentication method ${JSON.stringify(method)} is not supported`,
      );
    }
    if (clientId.length === 0) {
      // [MQTT-3.1.3-8] 3.1.1: a zero-length id needs Clean Session 1; 5.0 always gets one assigned [MQTT-3.1.3-6].
      if (!mqtt.allowEmptyClientId || (!v5 && !p.clean)) {
        return this.#refuse(ReasonCode.ClientIdentifierNotValid, ConnackReturnCode.IdentifierRejected, 'an empty client identifier needs Clean Session 1');
      }
      clientId = assignClientId();
      if (v5) assignedId = clientId;
    } else if (clientId.length > mqtt.maxClientIdLength) {
      return this.#refuse(ReasonCode.ClientIdentifierNotValid, ConnackReturnCode.IdentifierRejected, `client identifier longer than ${mqtt.maxClientIdLength}`);
    }

    let keepAlive = p.keepAlive;
    let serverKeepAlive: number | undefined;
    if (mqtt.maxKeepAlive > 0 && (keepAlive === 0 || keepAlive > mqtt.maxKeepAlive)) {
      // 5.0 tells the client the value to use [MQTT-3.2.2-21]; 3.1.1 has no way to, so it is refused.
      if (!v5) return this.#refuse(0, ConnackReturnCode.IdentifierRejected, `keep alive ${keepAlive} exceeds the maximum of ${mqtt.maxKeepAlive}`);
      keepAlive = mqtt.maxKeepAlive;
      serverKeepAlive = keepAlive;
    }

    let will: Will | undefined;
    if (p.will !== undefined) {
      const w = p.will;
      const bad = checkTopicName(w.topic);
      if (bad !== null) return this.#refuse(ReasonCode.TopicNameInvalid, ConnackReturnCode.IdentifierRejected, `will topic: ${bad}`);
      // [MQTT-3.2.2-12] / [MQTT-3.2.2-13]: a will the server cannot honour is refused (5.0); 3.1.1 clips it.
      if (w.qos > mqtt.maximumQoS && v5) return this.#refuse(ReasonCode.QoSNotSupported, 0, `will QoS ${w.qos} exceeds the maximum QoS ${mqtt.maximumQoS}`);
      if (w.retain && !mqtt.retainAvailable && v5) return this.#refuse(ReasonCode.RetainNotSupported, 0, 'retained wills are not supported');
      const qos = (w.qos > mqtt.maximumQoS ? mqtt.maximumQoS : w.qos) as QoS;
      if (w.properties?.payloadFormatIndicator === 1 && !isUtf8(w.payload)) {
        return this.#refuse(ReasonCode.PayloadFormatInvalid, 0, 'will payload is not UTF-8 although its format indicator says so');
      }
      will = {
        message: createMessage(w.topic, w.payload, qos, w.retain && mqtt.retainAvailable, w.properties, clientId, Date.now()),
        delaySeconds: w.properties?.willDelayInterval ?? 0,
      };
    }

    const admission = this.#ctx.admit(this);
    if (admission !== null) {
      this.#ctx.counters.connectionsRefused++;
      return this.#refuse(admission.v5, admission.v3, admission.reason);
    }
    const req: AuthenticationRequest = {
      clientId,
      username: p.username,
      password: p.password,
      protocolVersion: p.protocolVersion,
      transport: this.info.transport,
      listener: this.info.listener,
      remoteAddress: this.info.remoteAddress,
    };
    if (this.info.certificate !== undefined) req.certificate = this.info.certificate;
    const plan: ConnectPlan = { p, clientId, assignedId, keepAlive, serverKeepAlive, will };
    if (method !== undefined) {
      // 5.0 §4.12 enhanced authentication: the exchange decides instead of the authenticators.
      const conversation = this.#ctx.enhancedAuth[method]!({ ...req, method, reauthenticate: false });
      this.#auth = { method, conversation, plan };
      this.#authStep(props?.authenticationData);
      return;
    }
    this.#after(this.#ctx.security.authenticate(req, this.#ctx.listener.loopback), (result) => this.#authenticated(plan, result));
  }

  /** AUTH from the client: the next step of a running exchange, or 0x19 re-authentication [MQTT-4.12.1-1]. */
  #onAuth(p: AuthPacket): void {
    const method = p.properties?.authenticationMethod;
    const code = p.reasonCode ?? 0;
    const current = this.#auth;
    if (current !== undefined) {
      // The method stays the same for the whole exchange [MQTT-4.12.0-5]; the client continues with 0x18 [MQTT-4.12.0-3].
      if (method !== current.method || code !== ReasonCode.ContinueAuthentication) {
        throw new ProtocolError(
          `AUTH with method ${JSON.stringify(method)} and reason 0x${code.toString(16)} during a ${JSON.stringify(current.method)} exchange`,
          method !== current.method ? '[MQTT-4.12.0-5]' : '[MQTT-4.12.0-3]',
        );
      }
      this.#authStep(p.properties?.authenticationData);
      return;
    }
    if (this.#state !== State.Connected || this.#authMethod === undefined) {
      throw new ProtocolError('AUTH without an Authentication Method in CONNECT', '[MQTT-4.12.0-7]');
    }
    if (code !== ReasonCode.ReAuthenticate || method !== this.#authMethod) {
      throw new ProtocolError('re-authentication must use AUTH 0x19 with the method of the CONNECT', '[MQTT-4.12.1-1]');
    }
    const req: AuthenticationRequest = {
      clientId: this.#client!.clientId,
      username: this.#username,
      password: undefined,
      protocolVersion: 5,
      transport: this.info.transport,
      listener: this.info.listener,
      remoteAddress: this.info.remoteAddress,
    };
    this.#auth = { method, conversation: this.#ctx.enhancedAuth[method]!({ ...req, method, reauthenticate: true }), plan: undefined };
    this.#authStep(p.properties?.authenticationData);
  }

  #authStep(data: Buffer | undefined): void {
    const auth = this.#auth!;
    this.#after(auth.conversation.step(data), (step) => {
      if (step.continue) {
        const properties: Properties = { authenticationMethod: auth.method };
        if (step.data !== undefined) properties.authenticationData = step.data;
        this.#write(encode({ type: 'auth', reasonCode: ReasonCode.ContinueAuthentication, properties }, 5));
        return;
      }
      this.#auth = undefined;
      const extra: Properties = { authenticationMethod: auth.method };
      if (step.data !== undefined) extra.authenticationData = step.data;
      if (auth.plan !== undefined) {
        this.#authMethod = auth.method;
        this.#authenticated(auth.plan, step.result, extra);
        return;
      }
      // Re-authentication: AUTH 0x00 on success; on failure DISCONNECT [MQTT-4.12.1-2].
      if (step.result.ok) {
        this.#write(encode({ type: 'auth', reasonCode: 0, properties: extra }, 5));
        return;
      }
      this.#ctx.counters.authenticationFailures++;
      this.#serverDisconnect(step.result.reasonCode ?? ReasonCode.NotAuthorized, step.result.reason ?? 're-authentication failed', true);
    });
  }

  #authenticated(plan: ConnectPlan, result: AuthenticationResult, authProps?: Properties): void {
    const { p, clientId, assignedId, keepAlive, serverKeepAlive, will } = plan;
    const core = this.#core;
    const mqtt = core.mqtt;
    const v5 = p.protocolVersion === 5;
    const props = p.properties;
    if (!result.ok) {
      this.#ctx.counters.authenticationFailures++;
      // v5 0x86/0x87 (or the hook's code); 3.1.1 0x04 for bad credentials, 0x05 otherwise.
      const code = result.reasonCode ?? ReasonCode.BadUserNameOrPassword;
      const v3 =
        code === ReasonCode.BadUserNameOrPassword
          ? ConnackReturnCode.BadUserNameOrPassword
          : code === ReasonCode.UseAnotherServer || code === ReasonCode.ServerMoved
            ? ConnackReturnCode.ServerUnavailable
            : ConnackReturnCode.NotAuthorized;
      const extra: Properties = { ...authProps };
      if (result.serverReference !== undefined) extra.serverReference = result.serverReference;
      return this.#refuse(code, v3, result.reason ?? (code === ReasonCode.BadUserNameOrPassword ? 'bad user name or password' : 'not authorized'), extra);
    }
    // The identity: what the authenticator says, else the CONNECT user name it accepted.
    this.#username = 'username' in result ? result.username : p.username;
    if (this.#ctx.security.options.sessionOwnership === true) {
      const existing = core.sessions.get(clientId);
      // Neither resuming nor (Clean Start) discarding another user's session, live or not.
      if (existing !== undefined && existing.owner !== undefined && existing.owner !== this.#username) {
        return this.#refuse(ReasonCode.NotAuthorized, ConnackReturnCode.NotAuthorized, 'the session belongs to another user');
      }
    }

    // Accepted.
    const now = Date.now();
    this.#state = State.Connected;
    this.#keepAliveMs = keepAlive * 1000;
    this.sendQuota = Math.min(props?.receiveMaximum ?? 65535, core.limits.maxInflight);
    if (props?.maximumPacketSize !== undefined) this.#clientMaxPacket = props.maximumPacketSize;
    if (v5 && (props?.topicAliasMaximum ?? 0) > 0 && mqtt.outboundTopicAliases) {
      this.#outAliasMax = props!.topicAliasMaximum!;
      this.#outAliases = new Map();
      this.#outAliasTopics = [];
    }

    const requestedExpiry = v5 ? (props?.sessionExpiryInterval ?? 0) : p.clean ? 0 : NEVER_EXPIRES;
    const expiry = Math.min(requestedExpiry, mqtt.maxSessionExpiryInterval);
    const { session, present } = core.openSession(clientId, p.clean);
    session.expiryInterval = expiry;
    session.will = will;
    session.owner = this.#username;
    this.#session = session;
    this.#client = {
      clientId,
      protocolVersion: p.protocolVersion,
      username: this.#username ?? p.username,
      transport: this.info.transport,
      remoteAddress: this.info.remoteAddress,
      remotePort: this.info.remotePort,
    };
    core.live.set(clientId, this);

    let ackProps: Properties | undefined;
    if (v5) {
      ackProps = {
        receiveMaximum: mqtt.receiveMaximum,
        retainAvailable: mqtt.retainAvailable ? 1 : 0,
        maximumPacketSize: mqtt.maxPacketSize,
        topicAliasMaximum: mqtt.topicAliasMaximum,
        wildcardSubscriptionAvailable: mqtt.wildcardSubscriptionAvailable ? 1 : 0,
        subscriptionIdentifiersAvailable: mqtt.subscriptionIdentifiersAvailable ? 1 : 0,
        sharedSubscriptionAvailable: mqtt.sharedSubscriptionAvailable ? 1 : 0,
      };
      if (authProps !== undefined) Object.assign(ackProps, authProps);
      // [MQTT-3.2.2-9] Maximum QoS is sent only when below 2.
      if (mqtt.maximumQoS < 2) ackProps.maximumQoS = mqtt.maximumQoS;
      if (assignedId !== undefined) ackProps.assignedClientIdentifier = assignedId;
      if (serverKeepAlive !== undefined) ackProps.serverKeepAlive = serverKeepAlive;
      if (expiry !== requestedExpiry) ackProps.sessionExpiryInterval = expiry;
      // 5.0 §3.1.2.11.7 / §3.2.2.3.15: Response Information only when asked for and configured.
      if (props?.requestResponseInformation === 1 && mqtt.responseInformation !== '') {
        ackProps.responseInformation = mqtt.responseInformation.replace(/%c/g, clientId);
      }
      if (mqtt.maxPacketSize >= MAX_PACKET_SIZE) delete ackProps.maximumPacketSize;
    }
    // [MQTT-3.2.2-2] / [MQTT-3.2.2-3] Session Present.
    this.#connack(0, present, ackProps);
    // Keep alive is checked by the sweep; without one the connection leaves it.
    if (keepAlive === 0) this.#ctx.sweeper.remove(this);
    this.#log.info(
      { clientId, remote: this.#remote(), transport: this.info.transport, version: p.protocolVersion, clean: p.clean, keepAlive, sessionPresent: present },
      'client connected',
    );
    this.#observer.connected(this.#client, present);
    core.connected(session);
    session.attach(this, now);
  }

  // ---------------------------------------------------------------------------------------------
  // PUBLISH and its acknowledgements

  #ack(type: 'puback' | 'pubrec' | 'pubrel' | 'pubcomp', packetId: number, reasonCode: number, reason?: string): void {
    const p: AckPacket<typeof type> = { type, packetId };
    if (this.version === 5 && reasonCode !== 0) {
      p.reasonCode = reasonCode;
      if (reason !== undefined) p.properties = { reasonString: reason };
    }
    this.#write(encode(p, this.version));
  }

  #onPublish(p: PublishPacket): void {
    const core = this.#core;
    const mqtt = core.mqtt;
    let topic = p.topic;
    const props = p.properties;
    if (props?.topicAlias !== undefined) {
      const alias = props.topicAlias;
      // [MQTT-3.3.2-8] / [MQTT-3.3.2-9]: 0 or above our Topic Alias Maximum is an error.
      if (alias === 0 || alias > mqtt.topicAliasMaximum) {
        throw new MqttError(
          'COURIER_TOPIC_ALIAS_INVALID',
          ReasonCode.TopicAliasInvalid,
          `topic alias ${alias} outside 1..${mqtt.topicAliasMaximum}`,
          alias === 0 ? '[MQTT-3.3.2-8]' : '[MQTT-3.3.2-9]',
        );
      }
      const aliases = (this.#aliases ??= new Map());
      if (topic.length === 0) {
        const known = aliases.get(alias);
        if (known === undefined) throw new ProtocolError(`topic alias ${alias} used before it was set on this connection`, '[MQTT-3.3.2-7]');
        topic = known;
      } else {
        aliases.set(alias, topic);
      }
    }
    const bad = checkTopicName(topic, this.#ctx.topicLimits);
    if (bad !== null) {
      if (checkTopicName(topic) === null) this.#ctx.counters.topicLimitExceeded++;
      throw new MqttError('COURIER_TOPIC_NAME_INVALID', ReasonCode.TopicNameInvalid, bad, '[MQTT-3.3.2-2]');
    }
    const rt = props?.responseTopic;
    if (rt !== undefined && checkTopicName(rt) !== null)
      throw new ProtocolError(`Response Topic ${JSON.stringify(rt)} is not a valid topic name`, '[MQTT-3.3.2-14]');
    if (p.qos > mqtt.maximumQoS) {
      throw new MqttError(
        'COURIER_QOS_NOT_SUPPORTED',
        ReasonCode.QoSNotSupported,
        `PUBLISH QoS ${p.qos} exceeds the maximum QoS ${mqtt.maximumQoS}`,
        '[MQTT-3.2.2-11]',
      );
    }
    if (p.retain && !mqtt.retainAvailable) {
      throw new MqttError('COURIER_RETAIN_NOT_SUPPORTED', ReasonCode.RetainNotSupported, 'retained PUBLISH while Retain Available is 0', '[MQTT-3.2.2-14]');
    }
    this.#checkRate(p.payload.length);
    const session = this.#session!;
    const id = p.packetId ?? 0;
    // [MQTT-4.3.3-9] a re-sent QoS 2 PUBLISH whose PUBREL has not arrived is acknowledged, not delivered again.
    if (p.qos === 2 && session.inboundQos2.has(id)) {
      this.#ack('pubrec', id, 0);
      return;
    }
    // [MQTT-3.3.4-7] / [MQTT-4.9.0-2] (5.0): a QoS 1/2 PUBLISH beyond our Receive Maximum. QoS 1
    // is acknowledged at once, so what counts as unacknowledged are the QoS 2 ids awaiting PUBREL.
    if (p.qos > 0 && session.inboundQos2.size >= mqtt.receiveMaximum) {
      throw new MqttError(
        'COURIER_RECEIVE_MAXIMUM_EXCEEDED',
        ReasonCode.ReceiveMaximumExceeded,
        `more than ${mqtt.receiveMaximum} QoS 1/2 publishes unacknowledged`,
        '[MQTT-3.3.4-7]',
      );
    }
    // [MQTT-3.3.2-4] (optional validation): a UTF-8 payload format must hold UTF-8.
    if (props?.payloadFormatIndicator === 1 && !isUtf8(p.payload)) {
      if (p.qos > 0) this.#ack(p.qos === 1 ? 'puback' : 'pubrec', id, ReasonCode.PayloadFormatInvalid, 'payload is not valid UTF-8');
      return;
    }
    const security = this.#ctx.security;
    if (!security.authorizes) {
      this.#route(p, topic, ALLOWED);
      return;
    }
    const decision = security.authorize({ action: 'publish', clientId: session.clientId, username: this.#username, topic, qos: p.qos, retain: p.retain });
    this.#after(decision, (d) => this.#route(p, topic, d));
  }

  #route(p: PublishPacket, topic: string, decision: Decision): void {
    const core = this.#core;
    const session = this.#session!;
    const id = p.packetId ?? 0;
    if (!decision.allow) {
      // 5.0: PUBACK/PUBREC 0x87; 3.1.1 has no way to say no: acknowledged as usual, not delivered [MQTT-3.3.5-2].
      this.#ctx.counters.publishesDenied++;
      this.#log.info({ clientId: session.clientId, topic }, 'publish not authorized');
      if (p.qos === 0) return;
      if (p.qos === 2 && this.version !== 5) core.inboundReceived(session, id);
      this.#ack(p.qos === 1 ? 'puback' : 'pubrec', id, decision.reasonCode, 'not authorized');
      return;
    }
    const m: Message = createMessage(topic, p.payload, p.qos, p.retain, p.properties, session.clientId, Date.now());
    if (p.qos === 0 && !p.retain && p.properties === undefined) {
      // Forwarded as it came to subscribers of the same protocol version: no encoding at all.
      const raw = this.#decoder.packetBytes();
      if (raw !== undefined) seedEncoding(m, this.version, raw);
    }
    const routed = core.publish(m, session.clientId);
    if (p.qos === 0) return;
    const code = routed === 0 ? ReasonCode.NoMatchingSubscribers : 0;
    if (p.qos === 1) this.#ack('puback', id, code);
    else {
      core.inboundReceived(session, id);
      this.#ack('pubrec', id, code);
    }
  }

  /** Publish rate and bytes per client per second (fixed one-second windows); v5 DISCONNECT 0x96 beyond. */
  #checkRate(bytes: number): void {
    const limits = this.#ctx.limits;
    if (limits.publishRatePerClient === 0 && limits.publishBytesPerClient === 0) return;
    const now = Date.now();
    if (now - this.#rateWindow >= 1000) {
      this.#rateWindow = now;
      this.#rateCount = 0;
      this.#rateBytes = 0;
    }
    this.#rateCount++;
    this.#rateBytes += bytes;
    if (
      (limits.publishRatePerClient > 0 && this.#rateCount > limits.publishRatePerClient) ||
      (limits.publishBytesPerClient > 0 && this.#rateBytes > limits.publishBytesPerClient)
    ) {
      this.#ctx.counters.rateLimited++;
      throw new MqttError(
        'COURIER_RATE_LIMITED',
        ReasonCode.MessageRateTooHigh,
        `more than ${limits.publishRatePerClient || '∞'} publishes or ${limits.publishBytesPerClient || '∞'} bytes per second`,
      );
    }
  }

  #onPubrec(packetId: number, reasonCode: number): void {
    const ok = this.#session!.received(packetId, reasonCode >= 0x80, Date.now());
    // 5.0 §3.6.2.1: a PUBREC for an unknown id is answered with PUBREL 0x92 (Packet Identifier not found).
    if (!ok && this.version === 5) this.#ack('pubrel', packetId, ReasonCode.PacketIdentifierNotFound);
  }

  #onPubrel(packetId: number): void {
    const session = this.#session!;
    const known = this.#core.inboundReleased(session, packetId);
    // [MQTT-4.3.3-11] PUBCOMP with the same id; 5.0 says 0x92 when the id was not pending.
    this.#ack('pubcomp', packetId, known ? 0 : ReasonCode.PacketIdentifierNotFound);
  }

  // ---------------------------------------------------------------------------------------------
  // SUBSCRIBE / UNSUBSCRIBE

  #onSubscribe(p: SubscribePacket): void {
    const core = this.#core;
    const mqtt = core.mqtt;
    const session = this.#session!;
    const v5 = this.version === 5;
    const subId = p.properties?.subscriptionIdentifiers?.[0];
    if (subId !== undefined && !mqtt.subscriptionIdentifiersAvailable) {
      throw new MqttError(
        'COURIER_SUBSCRIPTION_IDS_NOT_SUPPORTED',
        ReasonCode.SubscriptionIdentifiersNotSupported,
        'subscription identifiers are not supported (5.0 §3.2.2.3.12)',
      );
    }
    // First the checks that need nobody's opinion; then the authorizer for what passed them.
    const codes: number[] = [];
    const asks: number[] = [];
    for (const s of p.subscriptions) {
      let code = -1;
      const bad = checkTopicFilter(s.topicFilter, this.#ctx.topicLimits);
      const shared = bad === null ? parseSharedFilter(s.topicFilter) : null;
      if (bad !== null) {
        if (checkTopicFilter(s.topicFilter) === null) this.#ctx.counters.topicLimitExceeded++;
        this.#log.warn({ clientId: session.clientId, filter: s.topicFilter }, `subscription refused: ${bad}`);
        code = v5 ? ReasonCode.TopicFilterInvalid : 0x80;
      } else if (shared !== null && !mqtt.sharedSubscriptionAvailable) {
        // 5.0 §3.2.2.3.13: after CONNACK said 0, a shared subscription is a Protocol Error (DISCONNECT 0x9E).
        if (v5)
          throw new MqttError(
            'COURIER_SHARED_NOT_SUPPORTED',
            ReasonCode.SharedSubscriptionsNotSupported,
            'shared subscriptions are not supported',
            '[MQTT-4.13.1-1]',
          );
        code = 0x80;
      } else if (shared !== null && s.noLocal) {
        // [MQTT-3.8.3-4] No Local on a shared subscription is a Protocol Error.
        throw new ProtocolError('No Local set on a shared subscription', '[MQTT-3.8.3-4]');
      } else if (!mqtt.wildcardSubscriptionAvailable && isWildcardFilter(s.topicFilter)) {
        code = v5 ? ReasonCode.WildcardSubscriptionsNotSupported : 0x80;
      } else {
        asks.push(codes.length);
      }
      codes.push(code);
    }
    const security = this.#ctx.security;
    if (!security.authorizes || asks.length === 0) {
      this.#subscribe(
        p,
        codes,
        asks.map(() => ALLOWED),
        subId,
      );
      return;
    }
    const decisions = asks.map((i) => {
      const s = p.subscriptions[i]!;
      return security.authorize({ action: 'subscribe', clientId: session.clientId, username: this.#username, topic: s.topicFilter, qos: s.qos, retain: false });
    });
    const all = decisions.some(isPromise) ? Promise.all(decisions) : (decisions as Decision[]);
    this.#after(all, (ds) => this.#subscribe(p, codes, ds, subId));
  }

  #subscribe(p: SubscribePacket, codes: number[], decisions: Decision[], subId: number | undefined): void {
    const core = this.#core;
    const mqtt = core.mqtt;
    const session = this.#session!;
    const v5 = this.version === 5;
    const granted: Array<{ sub: Subscription; isNew: boolean }> = [];
    let d = 0;
    for (let i = 0; i < codes.length; i++) {
      if (codes[i] !== -1) continue;
      const s = p.subscriptions[i]!;
      const decision = decisions[d++]!;
      if (!decision.allow) {
        this.#ctx.counters.subscriptionsDenied++;
        codes[i] = v5 ? decision.reasonCode : 0x80;
        continue;
      }
      if (!session.subscriptions.has(s.topicFilter) && session.subscriptions.size >= this.#ctx.limits.maxSubscriptionsPerClient) {
        this.#ctx.counters.subscriptionQuotaExceeded++;
        codes[i] = v5 ? ReasonCode.QuotaExceeded : 0x80;
        continue;
      }
      // The granted QoS is at most the broker's Maximum QoS (§3.9.3: the server may grant less than requested).
      const qos = (s.qos > mqtt.maximumQoS ? mqtt.maximumQoS : s.qos) as QoS;
      const sub: Subscription = {
        filter: s.topicFilter,
        qos,
        noLocal: s.noLocal,
        retainAsPublished: s.retainAsPublished,
        retainHandling: s.retainHandling,
        subscriptionId: subId,
      };
      const existed = core.subscribe(session, sub);
      granted.push({ sub, isNew: !existed });
      codes[i] = qos;
    }
    // [MQTT-3.8.4-1] SUBACK with the same packet id, one code per filter [MQTT-3.8.4-6].
    this.#write(encode({ type: 'suback', packetId: p.packetId, reasonCodes: codes }, this.version));
    // Retained messages after the SUBACK, with RETAIN 1 [MQTT-3.3.1-9]; Retain Handling [MQTT-3.3.1-10], [MQTT-3.3.1-11].
    const now = Date.now();
    for (const { sub, isNew } of granted) {
      if (sub.retainHandling === 2 || (sub.retainHandling === 1 && !isNew)) continue;
      if (parseSharedFilter(sub.filter) !== null) continue;
      const ids = sub.subscriptionId === undefined ? undefined : [sub.subscriptionId];
      for (const m of core.retainedMatching(sub.filter, now)) {
        session.deliver(m, (m.qos < sub.qos ? m.qos : sub.qos) as QoS, true, ids);
      }
    }
    core.persist(session);
    this.#observer.subscribed(
      this.#client!,
      p.subscriptions.map((s, i) => ({ filter: s.topicFilter, qos: s.qos, reasonCode: codes[i]! })),
    );
  }

  #onUnsubscribe(p: UnsubscribePacket): void {
    const session = this.#session!;
    const codes = p.topicFilters.map((f) => (this.#core.unsubscribe(session, f) ? 0 : ReasonCode.NoSubscriptionExisted));
    // [MQTT-3.10.4-4] UNSUBACK even when nothing was removed; [MQTT-3.11.3-1] one code per filter (5.0).
    this.#write(encode({ type: 'unsuback', packetId: p.packetId, reasonCodes: codes }, this.version));
    this.#core.persist(session);
    this.#observer.unsubscribed(this.#client!, p.topicFilters);
  }

  // ---------------------------------------------------------------------------------------------
  // DISCONNECT

  #onDisconnect(p: DisconnectPacket): void {
    const session = this.#session!;
    const expiry = p.properties?.sessionExpiryInterval;
    if (expiry !== undefined) {
      // [MQTT-3.14.2-2] a session that was to end at disconnect cannot be made to last.
      if (session.expiryInterval === 0 && expiry !== 0) {
        throw new ProtocolError('DISCONNECT sets a Session Expiry Interval although CONNECT had 0', '[MQTT-3.14.2-2]');
      }
      session.expiryInterval = Math.min(expiry, this.#core.mqtt.maxSessionExpiryInterval);
    }
    // [MQTT-3.14.4-3] a normal DISCONNECT discards the will; 5.0 0x04 asks for it to be sent.
    if (p.reasonCode !== ReasonCode.DisconnectWithWillMessage) session.will = undefined;
    this.#closeReason =
      p.reasonCode === undefined || p.reasonCode === 0 ? 'client disconnected' : `client disconnected with reason 0x${p.reasonCode.toString(16)}`;
    this.#end();
    this.flush();
    this.#stream.end();
  }

  // ---------------------------------------------------------------------------------------------
  // Errors and ending

  /** The peer broke the protocol: log one line, tell a v5 client why, close; the will goes out. */
  #violation(err: MqttError): void {
    const connected = this.#state === State.Connected;
    this.#log.warn(
      { clientId: this.#client?.clientId, remote: this.#remote(), code: err.code, reasonCode: err.reasonCode, statement: err.statement },
      `protocol violation, closing connection: ${err.message}`,
    );
    this.#closeReason = `protocol violation: ${err.message}`;
    if (!connected) {
      // [MQTT-3.1.2-2] an unsupported protocol level is answered with CONNACK 0x01 (3.1.1) / 0x84 (5.0).
      if (err instanceof UnsupportedProtocolVersionError && (err.protocolName === 'MQTT' || err.protocolName === 'MQIsdp')) {
        if (err.protocolLevel >= 5) this.#writeRaw(encode({ type: 'connack', sessionPresent: false, reasonCode: ReasonCode.UnsupportedProtocolVersion }, 5));
        else this.#writeRaw(encode({ type: 'connack', sessionPresent: false, reasonCode: ConnackReturnCode.UnacceptableProtocolVersion }, 4));
        // #end() (not just the state) so the broker stops counting this connection.
        this.#end();
        this.#closeGracefully();
        return;
      }
      this.#destroy();
      return;
    }
    this.#serverDisconnect(err.reasonCode, err.message, true);
  }

  #fail(err: unknown): void {
    this.#log.error({ err, clientId: this.#client?.clientId, remote: this.#remote() }, 'internal error while handling a packet; closing the connection');
    this.#closeReason = 'internal error';
    if (this.#state === State.Connected) this.#serverDisconnect(ReasonCode.ImplementationSpecificError, 'internal error', true);
    else this.#destroy();
  }

  /** Server-initiated close of a connected client (5.0: DISCONNECT with a reason code first [MQTT-4.13.1-1]). */
  #serverDisconnect(code: number, reason: string, abnormal: boolean): void {
    if (this.#state !== State.Connected) return;
    if (this.version === 5) {
      let buf = encode({ type: 'disconnect', reasonCode: code, properties: { reasonString: reason } }, 5);
      if (buf.length > this.#clientMaxPacket) buf = encode({ type: 'disconnect', reasonCode: code }, 5);
      this.#writeRaw(buf);
    }
    this.#closeReason = reason;
    if (!abnormal && this.#session !== undefined) this.#session.will = undefined;
    this.#end();
    this.#closeGracefully();
  }

  /** Another connection took this client id over [MQTT-3.1.4-3]; 5.0 tells the old one with 0x8E. */
  takeover(): void {
    this.#serverDisconnect(ReasonCode.SessionTakenOver, 'session taken over by another connection', true);
  }

  /** Broker shutdown: 5.0 clients get DISCONNECT 0x8B. */
  shutdown(): void {
    if (this.#state === State.Connected) this.#serverDisconnect(ReasonCode.ServerShuttingDown, 'server shutting down', true);
    else this.#destroy();
  }

  /** Server redirection for a connected client: 5.0 DISCONNECT 0x9C/0x9D with Server Reference. */
  redirectTo(serverReference: string, permanent: boolean): void {
    if (this.#state !== State.Connected) return;
    if (this.version === 5) {
      this.#writeRaw(
        encode({ type: 'disconnect', reasonCode: permanent ? ReasonCode.ServerMoved : ReasonCode.UseAnotherServer, properties: { serverReference } }, 5),
      );
    }
    this.#closeReason = `redirected to ${serverReference}`;
    this.#end();
    this.#closeGracefully();
  }

  /** Disconnects the client with a reason code (library API). */
  disconnect(code: number, reason: string): void {
    this.#serverDisconnect(code, reason, true);
  }

  /** Runs once, when the connection ends for whatever reason; the will still set (if any) goes out. */
  #end(): void {
    if (this.#state === State.Closed) return;
    const wasConnected = this.#state === State.Connected;
    this.#state = State.Closed;
    this.#ctx.sweeper.remove(this);
    this.#observer.closed(this);
    if (!wasConnected) return;
    const session = this.#session!;
    const client = this.#client!;
    const core = this.#core;
    if (core.live.get(client.clientId) === this) core.live.delete(client.clientId);
    if (session.outlet === this) {
      core.connectionEnded(session, session.will, Date.now());
    }
    this.#log.info({ clientId: client.clientId, remote: this.#remote(), reason: this.#closeReason }, 'client disconnected');
    this.#observer.disconnected(client, this.#closeReason);
  }

  #closeGracefully(): void {
    this.#output.whenDrained(() => {
      this.flush();
      this.#stream.end();
      setTimeout(() => this.#stream.destroy(), CLOSE_GRACE_MS).unref();
    });
  }

  #destroy(): void {
    this.#end();
    this.#stream.destroy();
  }

  // ---------------------------------------------------------------------------------------------
  // Output (Outlet)

  congested(): boolean {
    return this.#output.buffered > this.#core.limits.maxOutboundBufferBytes;
  }

  sendPublish(m: Message, qos: QoS, retain: boolean, packetId: number, dup: boolean, subscriptionIds: number[] | undefined): boolean {
    const v5 = this.version === 5;
    const now = m.expiresAt === 0 ? 0 : Date.now();
    if (this.#outAliasMax === 0) {
      const buf = encodeDelivery(m, this.version, qos, retain, packetId, dup, v5 ? subscriptionIds : undefined, undefined, now);
      // [MQTT-3.1.2-24] never more than the client's Maximum Packet Size.
      if (buf.length > this.#clientMaxPacket) return false;
      this.#write(buf);
      return true;
    }
    // Outbound topic aliases (5.0 §3.3.2.3.4): a topic sent before goes as its alias alone.
    const topic = m.topic;
    const known = this.#outAliases!.get(topic);
    if (known !== undefined) {
      const buf = encodeDelivery(m, 5, qos, retain, packetId, dup, subscriptionIds, { topic: '', alias: known }, now);
      if (buf.length > this.#clientMaxPacket) return false;
      this.#write(buf);
      return true;
    }
    // A new alias, or the next slot in turn when all are taken, never above the client's maximum
    // [MQTT-3.3.2-11]: the mapping
    // counts only once the packet that sets it has gone out.
    const aliases = this.#outAliases!;
    const byAlias = this.#outAliasTopics!;
    const alias = aliases.size < this.#outAliasMax ? aliases.size + 1 : (this.#outAliasNext++ % this.#outAliasMax) + 1;
    const buf = encodeDelivery(m, 5, qos, retain, packetId, dup, subscriptionIds, { topic, alias }, now);
    if (buf.length > this.#clientMaxPacket) return false;
    const old = byAlias[alias];
    if (old !== undefined) aliases.delete(old);
    aliases.set(topic, alias);
    byAlias[alias] = topic;
    this.#write(buf);
    return true;
  }

  sendPubrel(packetId: number): void {
    this.#ack('pubrel', packetId, 0);
  }

  #write(buf: Buffer): void {
    if (this.#state === State.Closed) return;
    this.#writeRaw(buf);
  }

  #writeRaw(buf: Buffer): void {
    this.#output.write(buf);
  }

  /** Sends everything written in this event-loop turn (one writev). */
  flush(): void {
    this.#output.flush();
  }
}
