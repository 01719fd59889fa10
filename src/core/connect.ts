/**
 * CONNECT, enhanced authentication (AUTH) and DISCONNECT from the client: the start and the
 * orderly end of a connection's session. Functions of the connection (connection-internals.ts).
 */
import { isUtf8 } from 'node:buffer';
import { ConnackReturnCode, MAX_PACKET_SIZE, ReasonCode, type QoS } from '../protocol/constants.js';
import { encode } from '../protocol/encoder.js';
import { MalformedPacketError, ProtocolError } from '../protocol/errors.js';
import type { AuthPacket, ConnectPacket, DisconnectPacket, Packet, Properties } from '../protocol/packets.js';
import { checkTopicName } from '../topics/index.js';
import { noopLogger } from '../options.js';
import { isPromise } from '../security/index.js';
import type { AuthenticationRequest, AuthenticationResult } from '../security/types.js';
import { NEVER_EXPIRES } from './broker-core.js';
import { ConnectedClient } from './connected-client.js';
import { createMessage, detach } from './message.js';
import { Phase, type ConnectionInternals } from './connection-internals.js';
import type { Will } from './session.js';
import { applyClaim } from './takeover.js';

/** A CONNECT that passed its checks, waiting for authentication. */
export interface ConnectPlan {
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

/**
 * The CONNACKs of accepted 3.1.1 clients, encoded once, by Session Present (3.1's has no such
 * flag). Written as they are by every connection (Output never changes a buffer it is given).
 */
const ACCEPTED_V4 = [
  encode({ type: 'connack', sessionPresent: false, reasonCode: 0 }, 4),
  encode({ type: 'connack', sessionPresent: true, reasonCode: 0 }, 4),
] as const;

function connack(c: ConnectionInternals, code: number, sessionPresent: boolean, properties: Properties | undefined): void {
  if (code === 0 && c.version === 4) {
    c.write(ACCEPTED_V4[sessionPresent ? 1 : 0]);
    return;
  }
  const packet: Packet = { type: 'connack', sessionPresent, reasonCode: code };
  if (properties !== undefined && c.version === 5) packet.properties = properties;
  c.write(encode(packet, c.version));
}

/** CONNACK capability properties whose absence means the same value (5.0 §3.2.2.3). */
const CAPABILITY_DEFAULTS = [
  ['receiveMaximum', 65535],
  ['retainAvailable', 1],
  ['topicAliasMaximum', 0],
  ['maximumQoS', 2],
  ['wildcardSubscriptionAvailable', 1],
  ['subscriptionIdentifiersAvailable', 1],
  ['sharedSubscriptionAvailable', 1],
] as const;

/**
 * The CONNACK properties that keep the CONNACK within the client's Maximum Packet Size
 * [MQTT-3.1.2-24]. While it is too large, optional properties are left out: Reason String and
 * User Property ([MQTT-3.2.2-19], [MQTT-3.2.2-20]), then the capability properties at their
 * default values, then Response Information and Server Reference (the client may do without
 * them). null when even then it does not fit: the client cannot be answered. Measures only when
 * the client announced a limit (an encode of a few dozen bytes).
 */
function fitConnack(c: ConnectionInternals, code: number, properties: Properties | undefined): Properties | undefined | null {
  const max = c.clientMaxPacket;
  if (c.version !== 5 || max >= MAX_PACKET_SIZE || connackFits(code, properties, max)) return properties;
  if (properties === undefined) return null;
  const fewer: Properties = { ...properties };
  delete fewer.reasonString;
  delete fewer.userProperties;
  if (connackFits(code, fewer, max)) return fewer;
  for (const [key, value] of CAPABILITY_DEFAULTS) if (fewer[key] === value) delete fewer[key];
  if (connackFits(code, fewer, max)) return fewer;
  delete fewer.responseInformation;
  delete fewer.serverReference;
  return connackFits(code, fewer, max) ? fewer : null;
}

function connackFits(code: number, properties: Properties | undefined, max: number): boolean {
  const packet: Packet = { type: 'connack', sessionPresent: false, reasonCode: code };
  if (properties !== undefined) packet.properties = properties;
  return encode(packet, 5).length <= max;
}

/** Not even the smallest CONNACK fits the client's Maximum Packet Size: closed without one, nothing accepted [MQTT-3.1.2-24]. */
function unanswerable(c: ConnectionInternals): void {
  const reason = `not even the smallest CONNACK fits the client's Maximum Packet Size of ${c.clientMaxPacket}`;
  c.log.warn({ remote: c.remote() }, `connection closed: ${reason}`);
  c.closeReason = reason;
  c.end();
  c.closeGracefully();
}

/** Refuses a CONNECT: CONNACK with the v5 reason code or the v3 return code, then close [MQTT-3.2.2-6]. */
function refuse(c: ConnectionInternals, v5Code: number, v3Code: number, reason: string, extra?: Properties): void {
  c.log.warn({ remote: c.remote(), reasonCode: v5Code }, `connection refused: ${reason}`);
  c.closeReason = `refused: ${reason}`;
  const code = c.version === 5 ? v5Code : v3Code;
  const properties = fitConnack(c, code, { reasonString: reason, ...extra });
  if (properties !== null) connack(c, code, false, properties);
  // [MQTT-3.1.4-5] nothing the client sent after a refused CONNECT is processed.
  c.end();
  c.closeGracefully();
}

export function onConnect(c: ConnectionInternals, p: ConnectPacket): void {
  const ctx = c.ctx;
  const mqtt = c.core.mqtt;
  c.version = p.protocolVersion;
  const v5 = p.protocolVersion === 5;
  const props = p.properties;
  // [MQTT-3.1.2-24] nothing larger than the client's Maximum Packet Size, from the CONNACK on.
  if (props?.maximumPacketSize !== undefined) c.clientMaxPacket = props.maximumPacketSize;
  let clientId = p.clientId;
  let assignedId: string | undefined;

  const redirect = ctx.redirect();
  if (redirect !== undefined) {
    // 5.0 §4.11 Server redirection: CONNACK 0x9C / 0x9D with Server Reference; 3.1.1 has only 0x03.
    return refuse(c, redirect.permanent ? ReasonCode.ServerMoved : ReasonCode.UseAnotherServer, ConnackReturnCode.ServerUnavailable, 'use another server', {
      serverReference: redirect.serverReference,
    });
  }
  const method = props?.authenticationMethod;
  if (method !== undefined && ctx.enhancedAuth[method] === undefined) {
    return refuse(c, ReasonCode.BadAuthenticationMethod, ConnackReturnCode.NotAuthorized, `authentication method ${JSON.stringify(method)} is not supported`);
  }
  if (p.protocolVersion === 3 && (clientId.length === 0 || clientId.length > 23)) {
    // MQTT 3.1 §3.1 (Client Identifier): 1 to 23 characters, else return code 0x02 (3.1.1 lifted both limits).
    return refuse(c, 0, ConnackReturnCode.IdentifierRejected, 'an MQTT 3.1 client identifier has 1 to 23 characters');
  }
  if (clientId.length === 0) {
    // [MQTT-3.1.3-8] 3.1.1: a zero-length id needs Clean Session 1; 5.0 always gets one assigned [MQTT-3.1.3-6].
    if (!mqtt.allowEmptyClientId || (!v5 && !p.clean)) {
      return refuse(c, ReasonCode.ClientIdentifierNotValid, ConnackReturnCode.IdentifierRejected, 'an empty client identifier needs Clean Session 1');
    }
    clientId = assignClientId();
    if (v5) assignedId = clientId;
  } else if (clientId.length > mqtt.maxClientIdLength) {
    return refuse(c, ReasonCode.ClientIdentifierNotValid, ConnackReturnCode.IdentifierRejected, `client identifier longer than ${mqtt.maxClientIdLength}`);
  }

  let keepAlive = p.keepAlive;
  let serverKeepAlive: number | undefined;
  if (mqtt.maxKeepAlive > 0 && (keepAlive === 0 || keepAlive > mqtt.maxKeepAlive)) {
    // 5.0 tells the client the value to use [MQTT-3.2.2-21]; 3.1.1 has no way to, so it is refused.
    if (!v5) return refuse(c, 0, ConnackReturnCode.IdentifierRejected, `keep alive ${keepAlive} exceeds the maximum of ${mqtt.maxKeepAlive}`);
    keepAlive = mqtt.maxKeepAlive;
    serverKeepAlive = keepAlive;
  }

  let will: Will | undefined;
  if (p.will !== undefined) {
    const w = p.will;
    const bad = checkTopicName(w.topic);
    if (bad !== null) {
      // 3.1/3.1.1 have no return code for it: a CONNECT that does not conform (an empty topic is
      // malformed [MQTT-4.7.3-1]) is closed without a CONNACK [MQTT-3.1.4-1]. 5.0 may say 0x90 first.
      if (!v5) throw new MalformedPacketError(`will topic: ${bad}`, w.topic.length === 0 ? '[MQTT-4.7.3-1]' : '[MQTT-3.1.4-1]');
      return refuse(c, ReasonCode.TopicNameInvalid, 0, `will topic: ${bad}`);
    }
    // [MQTT-3.2.2-12] / [MQTT-3.2.2-13]: a will the server cannot honour is refused (5.0); 3.1.1 clips it.
    if (w.qos > mqtt.maximumQoS && v5) return refuse(c, ReasonCode.QoSNotSupported, 0, `will QoS ${w.qos} exceeds the maximum QoS ${mqtt.maximumQoS}`);
    if (w.retain && !mqtt.retainAvailable && v5) return refuse(c, ReasonCode.RetainNotSupported, 0, 'retained wills are not supported');
    const qos = (w.qos > mqtt.maximumQoS ? mqtt.maximumQoS : w.qos) as QoS;
    if (w.properties?.payloadFormatIndicator === 1 && !isUtf8(w.payload)) {
      return refuse(c, ReasonCode.PayloadFormatInvalid, 0, 'will payload is not UTF-8 although its format indicator says so');
    }
    const message = createMessage(w.topic, w.payload, qos, w.retain && mqtt.retainAvailable, w.properties, clientId, Date.now());
    // Kept for the connection's life: only its own bytes (message.ts detach).
    detach(message);
    will = { message, delaySeconds: w.properties?.willDelayInterval ?? 0 };
  }

  const admission = ctx.admit(c);
  if (admission !== null) {
    ctx.counters.connectionsRefused++;
    return refuse(c, admission.v5, admission.v3, admission.reason);
  }
  const info = c.info;
  const req: AuthenticationRequest = {
    clientId,
    username: p.username,
    password: p.password,
    protocolVersion: p.protocolVersion,
    transport: info.transport,
    listener: info.listener,
    // A system call (transport/socket-info.ts): only when an authenticator will see the request.
    remoteAddress: ctx.security.authenticates ? info.remoteAddress : undefined,
  };
  if (info.certificate !== undefined) req.certificate = info.certificate;
  const plan: ConnectPlan = { p, clientId, assignedId, keepAlive, serverKeepAlive, will };
  if (method !== undefined) {
    // 5.0 §4.12 enhanced authentication: the exchange decides instead of the authenticators.
    const conversation = ctx.enhancedAuth[method]!({ ...req, remoteAddress: info.remoteAddress, method, reauthenticate: false });
    c.auth = { method, conversation, plan };
    authStep(c, props?.authenticationData);
    return;
  }
  const decided = ctx.security.authenticate(req, ctx.listener.loopback);
  // Synchronous (no hook, or a synchronous one): on at once, without a continuation per CONNECT.
  if (!isPromise(decided)) authenticated(c, plan, decided);
  else c.after(decided, (result) => authenticated(c, plan, result));
}

/** AUTH from the client: the next step of a running exchange, or 0x19 re-authentication [MQTT-4.12.1-1]. */
export function onAuth(c: ConnectionInternals, p: AuthPacket): void {
  const method = p.properties?.authenticationMethod;
  const code = p.reasonCode ?? 0;
  const current = c.auth;
  if (current !== undefined) {
    // The method stays the same for the whole exchange [MQTT-4.12.0-5]; the client continues with 0x18 [MQTT-4.12.0-3].
    if (method !== current.method || code !== ReasonCode.ContinueAuthentication) {
      throw new ProtocolError(
        `AUTH with method ${JSON.stringify(method)} and reason 0x${code.toString(16)} during a ${JSON.stringify(current.method)} exchange`,
        method !== current.method ? '[MQTT-4.12.0-5]' : '[MQTT-4.12.0-3]',
      );
    }
    authStep(c, p.properties?.authenticationData);
    return;
  }
  if (c.phase !== Phase.Connected || c.authMethod === undefined) {
    throw new ProtocolError('AUTH without an Authentication Method in CONNECT', '[MQTT-4.12.0-7]');
  }
  if (code !== ReasonCode.ReAuthenticate || method !== c.authMethod) {
    throw new ProtocolError('re-authentication must use AUTH 0x19 with the method of the CONNECT', '[MQTT-4.12.1-1]');
  }
  const info = c.info;
  const req: AuthenticationRequest = {
    clientId: c.client!.clientId,
    username: c.username,
    password: undefined,
    protocolVersion: 5,
    transport: info.transport,
    listener: info.listener,
    remoteAddress: info.remoteAddress,
  };
  c.auth = { method, conversation: c.ctx.enhancedAuth[method]!({ ...req, method, reauthenticate: true }), plan: undefined };
  authStep(c, p.properties?.authenticationData);
}

function authStep(c: ConnectionInternals, data: Buffer | undefined): void {
  const auth = c.auth!;
  c.after(auth.conversation.step(data), (step) => {
    if (step.continue) {
      const properties: Properties = { authenticationMethod: auth.method };
      if (step.data !== undefined) properties.authenticationData = step.data;
      c.write(encode({ type: 'auth', reasonCode: ReasonCode.ContinueAuthentication, properties }, 5));
      return;
    }
    c.auth = undefined;
    const extra: Properties = { authenticationMethod: auth.method };
    if (step.data !== undefined) extra.authenticationData = step.data;
    if (auth.plan !== undefined) {
      c.authMethod = auth.method;
      authenticated(c, auth.plan, step.result, extra);
      return;
    }
    // Re-authentication: AUTH 0x00 on success; on failure DISCONNECT [MQTT-4.12.1-2].
    if (step.result.ok) {
      c.write(encode({ type: 'auth', reasonCode: 0, properties: extra }, 5));
      return;
    }
    c.ctx.counters.authenticationFailures++;
    c.serverDisconnect(step.result.reasonCode ?? ReasonCode.NotAuthorized, step.result.reason ?? 're-authentication failed', true);
  });
}

function authenticated(c: ConnectionInternals, plan: ConnectPlan, result: AuthenticationResult, authProps?: Properties): void {
  const { p, clientId, assignedId, serverKeepAlive } = plan;
  const ctx = c.ctx;
  const core = c.core;
  const mqtt = core.mqtt;
  const v5 = p.protocolVersion === 5;
  const props = p.properties;
  if (!result.ok) {
    ctx.counters.authenticationFailures++;
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
    return refuse(c, code, v3, result.reason ?? (code === ReasonCode.BadUserNameOrPassword ? 'bad user name or password' : 'not authorized'), extra);
  }
  // The identity: what the authenticator says, else the CONNECT user name it accepted.
  const username = 'username' in result ? result.username : p.username;
  c.username = username;
  if (ctx.security.options.sessionOwnership === true) {
    const existing = core.sessions.get(clientId);
    // Neither resuming nor (Clean Start) discarding another user's session, live or not.
    if (existing !== undefined && existing.owner !== undefined && existing.owner !== username) {
      return refuse(c, ReasonCode.NotAuthorized, ConnackReturnCode.NotAuthorized, 'the session belongs to another user');
    }
  }

  const requestedExpiry = v5 ? (props?.sessionExpiryInterval ?? 0) : p.clean ? 0 : NEVER_EXPIRES;
  const expiry = Math.min(requestedExpiry, mqtt.maxSessionExpiryInterval);
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
  const fitted = fitConnack(c, 0, ackProps);
  if (fitted === null) return unanswerable(c);

  // In a cluster the session is claimed in Redis first (Cluster II: fenced takeover from
  // whichever node held it); the connection reads nothing more until that is settled.
  const claiming = core.cluster?.claim?.(clientId, p.clean);
  if (claiming === undefined) return accept(c, plan, username, expiry, fitted, undefined);
  const settled = claiming.then(
    (claim) => {
      applyClaim(core, clientId, p.clean, claim, Date.now());
      return claim;
    },
    (err: unknown) => {
      c.log.warn({ clientId, err: String(err) }, 'cluster: session claim failed; CONNECT refused');
      return null;
    },
  );
  // A connection that closed while its claim was in flight: a claim that holds no session here is released.
  void settled.then((claim) => {
    if (claim !== null && c.phase === Phase.Closed && !core.sessions.has(clientId)) core.cluster?.sessionEnded?.(clientId, claim.token);
  });
  c.after(settled, (claim) => {
    if (claim === null) return refuse(c, ReasonCode.ServerUnavailable, ConnackReturnCode.ServerUnavailable, 'the cluster (Redis) is unreachable');
    if (claim.superseded) {
      if (!core.sessions.has(clientId)) core.cluster?.sessionEnded?.(clientId, claim.token);
      return refuse(c, ReasonCode.ServerUnavailable, ConnackReturnCode.ServerUnavailable, 'the session was taken over by a newer connection');
    }
    accept(c, plan, username, expiry, fitted, claim.token);
  });
}

function accept(
  c: ConnectionInternals,
  plan: ConnectPlan,
  username: string | undefined,
  expiry: number,
  fitted: Properties | undefined,
  claimToken: string | undefined,
): void {
  const { p, clientId, keepAlive, will } = plan;
  const ctx = c.ctx;
  const core = c.core;
  const props = p.properties;
  const v5 = p.protocolVersion === 5;
  // Accepted.
  const now = Date.now();
  c.phase = Phase.Connected;
  c.accepted(now);
  c.keepAliveMs = keepAlive * 1000;
  c.sendQuota = Math.min(props?.receiveMaximum ?? 65535, core.limits.maxInflight);
  if (v5 && (props?.topicAliasMaximum ?? 0) > 0 && core.mqtt.outboundTopicAliases) {
    c.outAliases = { max: props!.topicAliasMaximum!, byTopic: new Map(), topics: [], next: 0 };
  }

  const { session, present } = core.openSession(clientId, p.clean);
  session.expiryInterval = expiry;
  session.will = will;
  session.owner = username;
  if (claimToken !== undefined) session.claimToken = claimToken;
  c.session = session;
  const info = c.info;
  const client = new ConnectedClient(clientId, p.protocolVersion, username ?? p.username, info);
  c.client = client;
  // Whoever watches connections may ask for the address after a reset, when it can no longer be
  // read: read it now (the log line below reads it too). Nobody watching: never read (socket-info.ts).
  if (c.observer.wantsAddress()) void info.remoteAddress;
  core.live.set(clientId, c);

  // [MQTT-3.2.2-2] / [MQTT-3.2.2-3] Session Present.
  connack(c, 0, present, fitted);
  // Keep alive is checked by the sweep; without one the connection leaves it.
  if (keepAlive === 0) ctx.sweeper.remove(c);
  // Not even the arguments of a log line when nothing logs (the library's default): a connection burst pays for them.
  if (c.log !== noopLogger) {
    c.log.info(
      { clientId, remote: c.remote(), transport: info.transport, version: p.protocolVersion, clean: p.clean, keepAlive, sessionPresent: present },
      'client connected',
    );
  }
  c.observer.connected(client, present);
  core.connected(session);
  session.attach(c, now);
}

export function onDisconnect(c: ConnectionInternals, p: DisconnectPacket): void {
  const session = c.session!;
  const expiry = p.properties?.sessionExpiryInterval;
  if (expiry !== undefined) {
    // [MQTT-3.14.2-2] a session that was to end at disconnect cannot be made to last.
    if (session.expiryInterval === 0 && expiry !== 0) {
      throw new ProtocolError('DISCONNECT sets a Session Expiry Interval although CONNECT had 0', '[MQTT-3.14.2-2]');
    }
    session.expiryInterval = Math.min(expiry, c.core.mqtt.maxSessionExpiryInterval);
  }
  // [MQTT-3.14.4-3] a normal DISCONNECT discards the will; 5.0 0x04 asks for it to be sent.
  if (p.reasonCode !== ReasonCode.DisconnectWithWillMessage) session.will = undefined;
  c.closeReason = p.reasonCode === undefined || p.reasonCode === 0 ? 'client disconnected' : `client disconnected with reason 0x${p.reasonCode.toString(16)}`;
  c.endByClient();
}
