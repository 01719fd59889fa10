/** Between the client's API types and the codec's packets: CONNECT, payloads, properties, CONNACK limits, messages. */
import { view } from '../../../src/protocol/bytes.js';
import type { ConnectPacket, Properties, PublishPacket } from '../../../src/protocol/packets.js';
import { paramsOf, type CompiledFilter } from './params.js';
import type { ClientOptions, Message, Payload, PublishProperties, QoS, ServerLimits } from './types.js';

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();

export const DEFAULT_LIMITS: ServerLimits = {
  receiveMaximum: 65535,
  maximumPacketSize: 268_435_460,
  maximumQoS: 2,
  retainAvailable: true,
  topicAliasMaximum: 0,
  wildcardSubscriptionAvailable: true,
  subscriptionIdentifiersAvailable: true,
  sharedSubscriptionAvailable: true,
  serverKeepAlive: undefined,
  assignedClientId: undefined,
  responseInformation: undefined,
};

/**
 * The payload as the codec takes it. A Uint8Array goes as it is, not wrapped in a Buffer: the
 * encoder only reads its length and copies it (`set`), as in the browser build, where the codec's
 * "Buffers" are plain Uint8Arrays anyway.
 */
export function encodePayload(p: Payload): Buffer {
  return (typeof p === 'string' ? textEncoder.encode(p) : p) as Buffer;
}

export function toProperties(p: PublishProperties): Properties {
  const out: Properties = {};
  if (p.payloadFormatIndicator !== undefined) out.payloadFormatIndicator = p.payloadFormatIndicator;
  if (p.messageExpiryInterval !== undefined) out.messageExpiryInterval = p.messageExpiryInterval;
  if (p.contentType !== undefined) out.contentType = p.contentType;
  if (p.responseTopic !== undefined) out.responseTopic = p.responseTopic;
  if (p.correlationData !== undefined) out.correlationData = view(p.correlationData);
  if (p.userProperties !== undefined) out.userProperties = p.userProperties;
  return out;
}

/** The properties of a message that has none (shared: one object less per message). */
const NO_PROPERTIES: PublishProperties = Object.freeze({});

function fromProperties(p: Properties | undefined): PublishProperties {
  if (p === undefined) return NO_PROPERTIES;
  // The codec decodes each PUBLISH's properties into a new object holding only what a PUBLISH may
  // carry: without a Topic Alias (the client's business, not the message's) it is the message's as it is.
  if (p.topicAlias === undefined) return p as PublishProperties;
  const out: PublishProperties = {};
  if (p.payloadFormatIndicator !== undefined) out.payloadFormatIndicator = p.payloadFormatIndicator;
  if (p.messageExpiryInterval !== undefined) out.messageExpiryInterval = p.messageExpiryInterval;
  if (p.contentType !== undefined) out.contentType = p.contentType;
  if (p.responseTopic !== undefined) out.responseTopic = p.responseTopic;
  if (p.correlationData !== undefined) out.correlationData = p.correlationData;
  if (p.subscriptionIdentifiers !== undefined) out.subscriptionIdentifiers = p.subscriptionIdentifiers;
  if (p.userProperties !== undefined) out.userProperties = p.userProperties;
  return out;
}

class InboundMessage implements Message {
  readonly topic: string;
  readonly payload: Uint8Array;
  readonly qos: QoS;
  readonly retain: boolean;
  readonly dup: boolean;
  readonly properties: PublishProperties;
  readonly #compiled: CompiledFilter;
  #params: Record<string, string | string[]> | undefined;

  constructor(p: PublishPacket, compiled: CompiledFilter) {
    this.topic = p.topic;
    this.payload = p.payload;
    this.qos = p.qos;
    this.retain = p.retain;
    this.dup = p.dup;
    this.properties = fromProperties(p.properties);
    this.#compiled = compiled;
  }

  get params(): Record<string, never> {
    this.#params ??= paramsOf(this.#compiled, this.topic);
    return this.#params as Record<string, never>;
  }

  text(): string {
    return textDecoder.decode(this.payload);
  }

  json<T = unknown>(): T {
    return JSON.parse(this.text()) as T;
  }
}

export function toMessage(p: PublishPacket, compiled: CompiledFilter): Message {
  return new InboundMessage(p, compiled);
}

export function limitsOf(p: Properties | undefined, version: number): ServerLimits {
  if (version !== 5 || p === undefined) return DEFAULT_LIMITS;
  return {
    receiveMaximum: p.receiveMaximum ?? 65535,
    maximumPacketSize: p.maximumPacketSize ?? 268_435_460,
    maximumQoS: (p.maximumQoS ?? 2) as QoS,
    retainAvailable: p.retainAvailable !== 0,
    topicAliasMaximum: p.topicAliasMaximum ?? 0,
    wildcardSubscriptionAvailable: p.wildcardSubscriptionAvailable !== 0,
    subscriptionIdentifiersAvailable: p.subscriptionIdentifiersAvailable !== 0,
    sharedSubscriptionAvailable: p.sharedSubscriptionAvailable !== 0,
    serverKeepAlive: p.serverKeepAlive,
    assignedClientId: p.assignedClientIdentifier,
    responseInformation: p.responseInformation,
  };
}

interface ConnectSource {
  readonly options: Readonly<ClientOptions>;
  readonly version: 3 | 4 | 5;
  readonly clientId: string;
}

/** The CONNECT for an attempt; after the first connection, Clean Start is 0 when the session is meant to last. */
export function buildConnect(c: ConnectSource, reconnect: boolean): ConnectPacket {
  const o = c.options;
  const v = c.version;
  const persistent = o.clean === false || (v === 5 && (o.sessionExpiry ?? 0) > 0);
  const packet: ConnectPacket = {
    type: 'connect',
    protocolName: v === 3 ? 'MQIsdp' : 'MQTT',
    protocolVersion: v,
    clean: reconnect && persistent ? false : (o.clean ?? true),
    keepAlive: o.keepAlive ?? 60,
    clientId: c.clientId,
  };
  if (o.username !== undefined) packet.username = o.username;
  if (o.password !== undefined) packet.password = encodePayload(o.password);
  if (o.will !== undefined) {
    const w = o.will;
    packet.will = { topic: w.topic, payload: encodePayload(w.payload ?? ''), qos: w.qos ?? 0, retain: w.retain ?? false };
    if (v === 5 && w.properties !== undefined) {
      const props = toProperties(w.properties);
      if (w.properties.willDelayInterval !== undefined) props.willDelayInterval = w.properties.willDelayInterval;
      packet.will.properties = props;
    }
  }
  if (v === 5) {
    const props: Properties = {};
    if (o.sessionExpiry !== undefined && o.sessionExpiry > 0) props.sessionExpiryInterval = o.sessionExpiry;
    if (o.receiveMaximum !== undefined) props.receiveMaximum = o.receiveMaximum;
    if (o.maximumPacketSize !== undefined) props.maximumPacketSize = o.maximumPacketSize;
    if (o.topicAliasMaximum) props.topicAliasMaximum = o.topicAliasMaximum;
    if (o.requestResponseInformation === true) props.requestResponseInformation = 1;
    if (o.userProperties !== undefined) props.userProperties = o.userProperties;
    if (o.auth !== undefined) {
      props.authenticationMethod = o.auth.method;
      const data = o.auth.initial?.();
      if (data !== undefined) props.authenticationData = encodePayload(data);
    }
    if (Object.keys(props).length > 0) packet.properties = props;
  }
  return packet;
}

/** A fresh random id: 16 hex digits. */
export function randomId(): string {
  const b = new Uint8Array(8);
  crypto.getRandomValues(b);
  let s = '';
  for (const x of b) s += x.toString(16).padStart(2, '0');
  return s;
}
