/**
 * SUBSCRIBE and UNSUBSCRIBE from the client: filter checks, authorization, SUBACK / UNSUBACK,
 * retained messages for new subscriptions. Functions of the connection (connection-internals.ts).
 */
import { ReasonCode, type QoS } from '../protocol/constants.js';
import { encode } from '../protocol/encoder.js';
import { MqttError, ProtocolError } from '../protocol/errors.js';
import type { SubscribePacket, UnsubscribePacket } from '../protocol/packets.js';
import { checkTopicFilter, isWildcardFilter, parseSharedFilter } from '../topics/index.js';
import { isPromise, type Decision } from '../security/index.js';
import type { ConnectionInternals } from './connection-internals.js';
import { ALLOWED } from './publish.js';
import type { Subscription } from './session.js';

export function onSubscribe(c: ConnectionInternals, p: SubscribePacket): void {
  const ctx = c.ctx;
  const mqtt = c.core.mqtt;
  const session = c.session!;
  const v5 = c.version === 5;
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
    const bad = checkTopicFilter(s.topicFilter, ctx.topicLimits);
    const shared = bad === null ? parseSharedFilter(s.topicFilter) : null;
    if (bad !== null) {
      if (checkTopicFilter(s.topicFilter) === null) ctx.counters.topicLimitExceeded++;
      c.log.warn({ clientId: session.clientId, filter: s.topicFilter }, `subscription refused: ${bad}`);
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
  const security = ctx.security;
  let decisions: Array<Decision | Promise<Decision>>;
  if (!security.authorizes || asks.length === 0) decisions = asks.map(() => ALLOWED);
  else {
    decisions = asks.map((i) => {
      const s = p.subscriptions[i]!;
      return security.authorize({ action: 'subscribe', clientId: session.clientId, username: c.username, topic: s.topicFilter, qos: s.qos, retain: false });
    });
  }
  let all: Decision[] | Promise<Decision[]> = decisions.some(isPromise) ? Promise.all(decisions) : (decisions as Decision[]);
  // In a cluster, retained changes acknowledged on any node before this SUBSCRIBE are applied
  // here before it is answered (read-your-writes; null when there is nothing to wait for).
  const barrier = asks.length > 0 && p.subscriptions.some((s) => s.retainHandling !== 2) ? c.core.retainedBarrier() : null;
  if (barrier !== null) {
    const decided = all;
    all = barrier.then(() => decided);
  }
  c.after(all, (ds) => subscribe(c, p, codes, ds, subId));
}

function subscribe(c: ConnectionInternals, p: SubscribePacket, codes: number[], decisions: Decision[], subId: number | undefined): void {
  const ctx = c.ctx;
  const core = c.core;
  const mqtt = core.mqtt;
  const session = c.session!;
  const v5 = c.version === 5;
  const granted: Array<{ sub: Subscription; isNew: boolean }> = [];
  let d = 0;
  for (let i = 0; i < codes.length; i++) {
    if (codes[i] !== -1) continue;
    const s = p.subscriptions[i]!;
    const decision = decisions[d++]!;
    if (!decision.allow) {
      ctx.counters.subscriptionsDenied++;
      codes[i] = v5 ? decision.reasonCode : 0x80;
      continue;
    }
    if (!session.subscriptions.has(s.topicFilter) && session.subscriptions.size >= ctx.limits.maxSubscriptionsPerClient) {
      ctx.counters.subscriptionQuotaExceeded++;
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
  // In a cluster the SUBACK waits until the new routes are accepted (then they replicate at once).
  if (core.cluster !== undefined) c.clusterMark = core.cluster.writes;
  // [MQTT-3.8.4-1] SUBACK with the same packet id, one code per filter [MQTT-3.8.4-6].
  c.write(encode({ type: 'suback', packetId: p.packetId, reasonCodes: codes }, c.version));
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
  c.observer.subscribed(
    c.client!,
    p.subscriptions.map((s, i) => ({ filter: s.topicFilter, qos: s.qos, reasonCode: codes[i]! })),
  );
}

export function onUnsubscribe(c: ConnectionInternals, p: UnsubscribePacket): void {
  const session = c.session!;
  const core = c.core;
  const codes = p.topicFilters.map((f) => (core.unsubscribe(session, f) ? 0 : ReasonCode.NoSubscriptionExisted));
  // [MQTT-3.10.4-4] UNSUBACK even when nothing was removed; [MQTT-3.11.3-1] one code per filter (5.0).
  c.write(encode({ type: 'unsuback', packetId: p.packetId, reasonCodes: codes }, c.version));
  core.persist(session);
  c.observer.unsubscribed(c.client!, p.topicFilters);
}
